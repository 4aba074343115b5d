/* The fast CPU kernels: one table of function pointers per level (cpu_features.h), filled once when the
 * backend is created, so no op asks cpuid again.
 *
 * Matmul micro-kernels work on one tile: LLM_CPU_MR weight rows × up to `nr` token rows, over one block
 * of the K dimension. Each output element owns an accumulator of `lanes` floats; a block adds its
 * chunks of `chunk` K-elements to it in K order (a partial last chunk is zero-padded), and the final
 * block reduces the lanes with a fixed tree. That sequence is the level's canonical reduction order:
 * the driver (matmul_fast.c) may cut K into any blocks that are multiples of `chunk` and group tokens
 * into tiles of any size, and each element still gets the same bits — the same value for a token
 * whether it comes alone (decode) or with 255 others (prefill). */
#ifndef LLM_BACKEND_CPU_KERNELS_H
#define LLM_BACKEND_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "backend/cpu/cpu_features.h"
#include "llamac.h"

#define LLM_CPU_MR        4  /* weight rows per micro-tile */
#define LLM_CPU_NR_MAX    8  /* token rows per micro-tile, at most */
#define LLM_CPU_LANES_MAX 16 /* accumulator floats per output element, at most */

/* One micro-tile call. acc is [LLM_CPU_MR][LLM_CPU_NR_MAX][lanes] floats (the tile's accumulators,
 * kept between K blocks). */
typedef struct llm_gemm_tile {
    const void *w[LLM_CPU_MR]; /* weight rows, at this block's first column (a short tile repeats one) */
    const void *x;             /* first token row of the tile, at this block's first column */
    int64_t ldx;               /* elements between token rows */
    int nt;                    /* token rows, 1..nr */
    int64_t kc;                /* columns in this block (a multiple of chunk unless it is the last) */
    float *acc;
    int load;     /* 0: start from zero (first block), 1: continue acc */
    float *out;   /* final block only: out[t * ldo + r] for t < nt, r < nr_valid */
    int64_t ldo;  /* 0 for a block that is not the last: acc is stored instead */
    int nr_valid; /* rows of the tile that exist */
} llm_gemm_tile;

typedef struct llm_gemm_kernel {
    void (*tile)(const llm_gemm_tile *t); /* NULL: this dtype has no fast path at this level */
    int lanes, chunk, nr;
    int act_bf16; /* activations are rounded to bf16 first and passed as uint16_t rows */
} llm_gemm_kernel;

/* Online-softmax state of one attention row: acc[hd] (unnormalised output), running max and sum. */
typedef struct llm_attn_state {
    float *acc;
    float max, sum;
} llm_attn_state;

typedef struct llm_cpu_ktable {
    llm_cpu_level level;
    llm_gemm_kernel gemm[LLM_DTYPE_COUNT]; /* indexed by weight dtype (F32, F16, BF16) */
    /* dst[N] = bf16(src[N]), round to nearest even (only where some gemm has act_bf16) */
    void (*to_bf16)(uint16_t *dst, const float *src, int64_t n);
    /* out[D] = x[D] / rms(x) * w[D]; w is f32. out may alias x. */
    void (*rmsnorm_row)(float *out, const float *x, const float *w, int dim, float eps);
    /* x[D] += y[D]; out[D] = x / rms(x) * w[D]. out may alias y, never x. */
    void (*add_rmsnorm_row)(float *out, float *x, const float *y, const float *w, int dim, float eps);
    /* out[N] = silu(gate[N]) * up[N] */
    void (*swiglu)(float *out, const float *gate, const float *up, size_t n);
    /* One attention row over cnt keys/values [cnt][hd] of one block: scores = q·k * scale, then the
     * online-softmax update of st. hd <= 512, cnt <= 256. */
    void (*attn_block)(llm_attn_state *st, const float *q, const float *k, const float *v, int cnt, int hd,
                       float scale);
} llm_cpu_ktable;

/* Fill k for level (which f must support). The SIMD ones exist only on x86-64; they return 0 where the
 * level cannot be built, 1 on success. */
void llm_cpu_kernels_portable(llm_cpu_ktable *k);
int llm_cpu_kernels_avx2(llm_cpu_ktable *k);
int llm_cpu_kernels_avx512(llm_cpu_ktable *k, const llm_cpu_features *f);

/* The table for level on this machine; 0 on success, -1 if the CPU cannot run it. */
int llm_cpu_kernels_init(llm_cpu_ktable *k, llm_cpu_level level, const llm_cpu_features *f);

#endif
