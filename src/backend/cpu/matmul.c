/* out[T][M] = x[T][K] · W[M][K]ᵀ + b — the op that dominates run time.
 *
 * Work is split over W's rows, so each weight byte is read from memory once per call however many
 * tokens the batch holds. Rows are processed LLM_CPU_MATMUL_TILE at a time: widened to f32 into a
 * per-thread buffer, then dotted with every token row. Every output element is one dot product
 * accumulated in a fixed lane order, whatever T is and wherever the row falls in a tile: prefill and
 * decode produce bit-identical results (batch invariance). */
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/half.h"

#define LANES 16

/* Four dot products sharing the loads of x. Each dot accumulates in 16 lanes then reduces as a
 * fixed tree. target_clones compiles AVX-512 and AVX2 versions picked at load time by cpuid. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(LLM_NO_TARGET_CLONES)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static void
dot4(const float *restrict w0, const float *restrict w1, const float *restrict w2, const float *restrict w3,
     const float *restrict x, int64_t k, float out[4]) {
    float a0[LANES] = {0}, a1[LANES] = {0}, a2[LANES] = {0}, a3[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= k; i += LANES) {
        for (int l = 0; l < LANES; l++) {
            const float xv = x[i + l];
            a0[l] += w0[i + l] * xv;
            a1[l] += w1[i + l] * xv;
            a2[l] += w2[i + l] * xv;
            a3[l] += w3[i + l] * xv;
        }
    }
    for (int l = 0; i + l < k; l++) {
        const float xv = x[i + l];
        a0[l] += w0[i + l] * xv;
        a1[l] += w1[i + l] * xv;
        a2[l] += w2[i + l] * xv;
        a3[l] += w3[i + l] * xv;
    }
    for (int width = LANES / 2; width > 0; width /= 2) {
        for (int l = 0; l < width; l++) {
            a0[l] += a0[l + width];
            a1[l] += a1[l + width];
            a2[l] += a2[l + width];
            a3[l] += a3[l + width];
        }
    }
    out[0] = a0[0];
    out[1] = a1[0];
    out[2] = a2[0];
    out[3] = a3[0];
}

/* The same four dot products reading bf16 weights directly: widening bf16 is exact, so this gives
 * bit-identical results to widening first and calling dot4 — used when there are too few token rows
 * to amortise the widening (decode). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(LLM_NO_TARGET_CLONES)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static void
dot4_bf16(const uint16_t *restrict w0, const uint16_t *restrict w1, const uint16_t *restrict w2,
          const uint16_t *restrict w3, const float *restrict x, int64_t k, float out[4]) {
    float a0[LANES] = {0}, a1[LANES] = {0}, a2[LANES] = {0}, a3[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= k; i += LANES) {
        for (int l = 0; l < LANES; l++) {
            const float xv = x[i + l];
            a0[l] += llm_bf16_to_f32(w0[i + l]) * xv;
            a1[l] += llm_bf16_to_f32(w1[i + l]) * xv;
            a2[l] += llm_bf16_to_f32(w2[i + l]) * xv;
            a3[l] += llm_bf16_to_f32(w3[i + l]) * xv;
        }
    }
    for (int l = 0; i + l < k; l++) {
        const float xv = x[i + l];
        a0[l] += llm_bf16_to_f32(w0[i + l]) * xv;
        a1[l] += llm_bf16_to_f32(w1[i + l]) * xv;
        a2[l] += llm_bf16_to_f32(w2[i + l]) * xv;
        a3[l] += llm_bf16_to_f32(w3[i + l]) * xv;
    }
    for (int width = LANES / 2; width > 0; width /= 2) {
        for (int l = 0; l < width; l++) {
            a0[l] += a0[l + width];
            a1[l] += a1[l + width];
            a2[l] += a2[l + width];
            a3[l] += a3[l + width];
        }
    }
    out[0] = a0[0];
    out[1] = a1[0];
    out[2] = a2[0];
    out[3] = a3[0];
}

/* Token rows up to which bf16 weights are read directly rather than widened once per tile. */
#define LLM_CPU_DIRECT_BF16_MAX_ROWS 2

typedef struct {
    llm_backend_cpu *cpu;
    float *out;
    const float *x;
    const llm_tensor *w;
    const llm_tensor *bias;
    int n;
} matmul_args;

static void matmul_task(void *p, int ith, int nth) {
    const matmul_args *a = p;
    const int64_t m = a->w->rows, k = a->w->cols;
    const int64_t n_tiles = (m + LLM_CPU_MATMUL_TILE - 1) / LLM_CPU_MATMUL_TILE;
    long t_begin, t_end;
    llm_split_range((long)n_tiles, ith, nth, &t_begin, &t_end);
    float *buf = a->cpu->scratch + (size_t)ith * a->cpu->scratch_stride;
    float bias_row[LLM_CPU_MATMUL_TILE];
    const int direct = a->w->dtype == LLM_DTYPE_BF16 && a->n <= LLM_CPU_DIRECT_BF16_MAX_ROWS;
    for (long tile = t_begin; tile < t_end; tile++) {
        const int64_t r0 = tile * LLM_CPU_MATMUL_TILE;
        const int rows = (int)(m - r0 < LLM_CPU_MATMUL_TILE ? m - r0 : LLM_CPU_MATMUL_TILE);
        if (direct) {
            const uint16_t *w = (const uint16_t *)a->w->data;
            const uint16_t *wr16[LLM_CPU_MATMUL_TILE];
            for (int r = 0; r < LLM_CPU_MATMUL_TILE; r++) wr16[r] = w + (size_t)(r0 + (r < rows ? r : 0)) * k;
            for (int t = 0; t < a->n; t++) {
                float res[LLM_CPU_MATMUL_TILE];
                dot4_bf16(wr16[0], wr16[1], wr16[2], wr16[3], a->x + (size_t)t * k, k, res);
                float *o = a->out + (size_t)t * m + r0;
                for (int r = 0; r < rows; r++)
                    o[r] = res[r] + (a->bias ? llm_cpu_elem_f32(a->bias, r0 + r) : 0.0f);
            }
            continue;
        }
        const float *wr[LLM_CPU_MATMUL_TILE];
        for (int r = 0; r < rows; r++) wr[r] = llm_cpu_row_f32(a->w, r0 + r, buf + (size_t)r * k);
        /* a short last tile repeats its last row: same kernel, extra results dropped */
        for (int r = rows; r < LLM_CPU_MATMUL_TILE; r++) wr[r] = wr[0];
        for (int r = 0; r < LLM_CPU_MATMUL_TILE; r++) bias_row[r] = 0.0f;
        if (a->bias)
            for (int r = 0; r < rows; r++) bias_row[r] = llm_cpu_elem_f32(a->bias, r0 + r);
        for (int t = 0; t < a->n; t++) {
            float res[LLM_CPU_MATMUL_TILE];
            dot4(wr[0], wr[1], wr[2], wr[3], a->x + (size_t)t * k, k, res);
            float *o = a->out + (size_t)t * m + r0;
            for (int r = 0; r < rows; r++) o[r] = res[r] + bias_row[r];
        }
    }
}

void llm_cpu_matmul(llm_backend *be, float *out, const float *x, const llm_tensor *w, const llm_tensor *bias,
                    int n) {
    llm_backend_cpu *cpu = llm_cpu(be);
    LLM_ASSERT(w->cols <= cpu->max_row);
    matmul_args a = {cpu, out, x, w, bias, n};
    llm_threadpool_run(cpu->pool, matmul_task, &a);
}
