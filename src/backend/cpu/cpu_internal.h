/* State shared by the CPU backend's op files. */
#ifndef LLM_BACKEND_CPU_INTERNAL_H
#define LLM_BACKEND_CPU_INTERNAL_H

#include <stdio.h>

#include "backend/backend.h"
#include "backend/cpu/kernels.h"
#include "core/error.h"
#include "core/threadpool.h"

/* Rows of W converted and dotted together in the reference matmul kernel. */
#define LLM_CPU_MATMUL_TILE 4

/* Fast matmul blocking (matmul_fast.c): weight rows per panel (a multiple of LLM_CPU_MR), token tiles
 * per chunk of tokens (their accumulators live in the per-thread accbuf). */
#define LLM_CPU_PANEL 16
/* K columns per matmul block. Measured on Zen 5 (prefill, T = 128): blocking K at 512-4096 costs 10-30%
 * against none (the accumulators' trips through memory outweigh the L1 reuse: the token tiles stream
 * from L2 fast enough), so by default it only splits rows longer than any model's. */
#define LLM_CPU_KBLOCK      16384
#define LLM_CPU_TOKEN_TILES 16

/* Attention limits (stack buffers per row). */
#define LLM_CPU_MAX_BLOCK    256
#define LLM_CPU_MAX_HEAD_DIM 512

typedef struct llm_backend_cpu {
    llm_backend base;
    llm_threadpool *pool;
    int n_threads;
    int64_t max_row;
    float *scratch;        /* [n_threads][scratch_stride] floats: per-thread weight-row buffers */
    size_t scratch_stride; /* floats per thread */
    llm_cpu_ktable kern;   /* the fast kernels of the chosen level (kern.level; REF uses none of them) */
    uint16_t *xb;          /* activations rounded to bf16 for the bf16 dot-product kernels, shared */
    size_t xb_cap;         /* elements of xb */
    int64_t kblock;        /* matmul K block (LLM_CPU_KBLOCK; tests shrink it to prove it changes no bits) */
    float *accbuf;         /* [n_threads][acc_stride]: matmul accumulators of one panel × token chunk */
    size_t acc_stride;     /* floats per thread */
    llm_status status;
    char msg[256];
} llm_backend_cpu;

static inline llm_backend_cpu *llm_cpu(llm_backend *be) {
    return (llm_backend_cpu *)be;
}

/* Widens row `row` of w into dst (cols floats). Returns a pointer to the row's floats: dst, or the
 * tensor's own memory when it is already f32. */
const float *llm_cpu_row_f32(const llm_tensor *w, int64_t row, float *dst);

/* Element i of a 1-D tensor, widened. */
float llm_cpu_elem_f32(const llm_tensor *t, int64_t i);

/* Work smaller than this many elements runs on the calling thread: a dispatch costs more. */
#define LLM_CPU_PARALLEL_MIN 32768

void llm_cpu_matmul(llm_backend *be, float *out, const float *x, const llm_tensor *w, const llm_tensor *bias,
                    int n);
void llm_cpu_matmul_multi(llm_backend *be, int n, float *const outs[], const float *x,
                          const llm_tensor *const ws[], const llm_tensor *const biases[], int n_tokens);
void llm_cpu_matmul_swiglu(llm_backend *be, float *out, float *scratch, const float *x,
                           const llm_tensor *w_gate, const llm_tensor *b_gate, const llm_tensor *w_up,
                           const llm_tensor *b_up, int n_tokens);
void llm_cpu_attention(llm_backend *be, float *out, const float *q, const llm_kv_view *kv, const llm_batch *b,
                       int n_head, float scale);
void llm_cpu_kv_write(llm_backend *be, const llm_kv_view *kv, const float *k, const float *v,
                      const llm_batch *b);
void llm_cpu_rmsnorm(llm_backend *be, float *out, const float *x, const llm_tensor *w, int rows, int dim,
                     float eps);
void llm_cpu_add_rmsnorm(llm_backend *be, float *out, float *x, const float *y, const llm_tensor *w, int rows,
                         int dim, float eps);
void llm_cpu_rope_table(llm_backend *be, float *cos_out, float *sin_out, const int32_t *pos, int n,
                        const float *inv_freq, int half);
void llm_cpu_rope(llm_backend *be, float *x, int n, int n_heads, int head_dim, const float *cos_t,
                  const float *sin_t, int interleaved);
void llm_cpu_embed(llm_backend *be, float *out, const llm_tensor *table, const int32_t *ids, int n);
void llm_cpu_swiglu(llm_backend *be, float *out, const float *gate, const float *up, size_t n);
void llm_cpu_add(llm_backend *be, float *x, const float *y, size_t n);
/* The fast levels' versions (same contracts as above). */
void llm_cpu_matmul_fast(llm_backend *be, float *out, const float *x, const llm_tensor *w,
                         const llm_tensor *bias, int n);
void llm_cpu_attention_fast(llm_backend *be, float *out, const float *q, const llm_kv_view *kv,
                            const llm_batch *b, int n_head, float scale);
void llm_cpu_rmsnorm_fast(llm_backend *be, float *out, const float *x, const llm_tensor *w, int rows, int dim,
                          float eps);
void llm_cpu_add_rmsnorm_fast(llm_backend *be, float *out, float *x, const float *y, const llm_tensor *w,
                              int rows, int dim, float eps);
void llm_cpu_swiglu_fast(llm_backend *be, float *out, const float *gate, const float *up, size_t n);
void llm_cpu_matmul_multi_fast(llm_backend *be, int n, float *const outs[], const float *x,
                               const llm_tensor *const ws[], const llm_tensor *const biases[], int n_tokens);
void llm_cpu_matmul_swiglu_fast(llm_backend *be, float *out, float *scratch, const float *x,
                                const llm_tensor *w_gate, const llm_tensor *b_gate, const llm_tensor *w_up,
                                const llm_tensor *b_up, int n_tokens);

/* The kernel level a backend runs (for tests and messages). */
llm_cpu_level llm_backend_cpu_level(const llm_backend *be);

void llm_cpu_get_rows(llm_backend *be, float *out, const float *x, const int32_t *rows, int n_rows, int dim);

#endif
