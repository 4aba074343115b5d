/* The backend interface: the only way model code touches numbers.
 *
 * A backend is a struct of function pointers (llm_backend_ops) plus its instance state. The model
 * forward (src/model/forward.c) is written purely in terms of these ops, so the CPU reference backend
 * and an accelerator backend plug in side by side. Activation pointers passed to ops are backend
 * memory (from ops->alloc): host memory on the CPU, device memory on an accelerator.
 *
 * Ops do not return a status: an accelerator reports failures asynchronously anyway. A backend keeps
 * the first failure sticky; callers check ops->status() once per forward pass.
 *
 * Shapes in comments are row-major, outermost first: x[T][D] is T rows of D floats. */
#ifndef LLM_BACKEND_BACKEND_H
#define LLM_BACKEND_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "llamac.h"

/* A weight tensor as the backend sees it: 1-D (rows == 1) or 2-D [rows][cols], contiguous. */
typedef struct llm_tensor {
    const void *data; /* backend memory (on the CPU: straight from the file's mmap) */
    llm_dtype dtype;
    int64_t rows, cols;
    const char *name; /* for messages; owned by the model */
} llm_tensor;

/* One sequence's slice of a batch. Its rows are consecutive positions n_past, n_past+1, ... */
typedef struct llm_batch_seq {
    int32_t row_begin; /* first row of this sequence in the batch */
    int32_t n_rows;
    int32_t n_past;             /* tokens already in the KV cache before this batch */
    const int32_t *block_table; /* KV block of each block-sized span of positions */
} llm_batch_seq;

/* A ragged batch: T token rows from S sequences (prefill chunks and single decode tokens alike). */
typedef struct llm_batch {
    int32_t n_tokens;          /* T */
    const int32_t *tokens;     /* [T] host memory */
    const int32_t *positions;  /* [T] host memory */
    int32_t n_seqs;            /* S */
    const llm_batch_seq *seqs; /* [S] host memory */
} llm_batch;

/* The KV cache geometry and one layer's storage, as attention and kv_write see it.
 * Layout of k and v: [n_blocks][n_head_kv][block_size][head_dim] elements of dtype, so one head's keys
 * of one block are contiguous. dtype is F32, or BF16 on an accelerator (k and v then point at 16-bit
 * elements and must be cast); the CPU backend is only ever given F32. */
typedef struct llm_kv_view {
    float *k, *v;
    int32_t n_head_kv, head_dim, block_size;
    llm_dtype dtype;
} llm_kv_view;

typedef struct llm_backend llm_backend;

typedef struct llm_backend_ops {
    const char *name;
    void (*free)(llm_backend *be);
    /* First failure since creation (LLM_OK if none), with its message in msg. */
    llm_status (*status)(llm_backend *be, char *msg, size_t cap);

    /* Memory: alloc returns NULL on failure (and records it); release(NULL) is a no-op. */
    void *(*alloc)(llm_backend *be, size_t bytes);
    void (*release)(llm_backend *be, void *p);
    /* Copies n floats of backend memory to host memory (and waits for them). */
    void (*to_host)(llm_backend *be, float *dst, const float *src, size_t n);
    /* Copies bytes of host memory into backend memory (src may be reused when it returns). */
    void (*from_host)(llm_backend *be, void *dst, const void *src, size_t bytes);
    /* Copies bytes of backend memory to backend memory (non-overlapping), e.g. a KV block on
     * copy-on-write. */
    void (*copy)(llm_backend *be, void *dst, const void *src, size_t bytes);

    /* out[T][D] = table[ids[t]] (table: [V][D]) */
    void (*embed)(llm_backend *be, float *out, const llm_tensor *table, const int32_t *ids, int n);
    /* out[R][D] = x[R][D] / rms(x) * w[D]   (out may alias x) */
    void (*rmsnorm)(llm_backend *be, float *out, const float *x, const llm_tensor *w, int rows, int dim,
                    float eps);
    /* x[R][D] += y[R][D], then out[R][D] = x / rms(x) * w[D]: the residual add fused with the norm that
     * follows it, giving exactly the numbers of add then rmsnorm. out may alias y, never x. */
    void (*add_rmsnorm)(llm_backend *be, float *out, float *x, const float *y, const llm_tensor *w, int rows,
                        int dim, float eps);
    /* out[T][M] = x[T][K] · w[M][K]ᵀ (+ bias[M]); bias may be NULL. Each element's value must not
     * depend on T (batch invariance: prefill and decode give the same numbers). */
    void (*matmul)(llm_backend *be, float *out, const float *x, const llm_tensor *w, const llm_tensor *bias,
                   int n);
    /* outs[i][T][M_i] = x[T][K] · ws[i]ᵀ (+ biases[i]) for n <= 3 weights of one dtype sharing the input
     * (q, k, v): each exactly as matmul computes it, in as few passes as the backend can. A bias may be
     * NULL. */
    void (*matmul_multi)(llm_backend *be, int n, float *const outs[], const float *x, const llm_tensor *const ws[],
                         const llm_tensor *const biases[], int n_tokens);
    /* out[T][F] = silu(x Wgᵀ + bg) * (x Wuᵀ + bu): exactly matmul, matmul, swiglu, fused where the backend
     * can; scratch[T][F] may be overwritten. Biases may be NULL. */
    void (*matmul_swiglu)(llm_backend *be, float *out, float *scratch, const float *x, const llm_tensor *w_gate,
                          const llm_tensor *b_gate, const llm_tensor *w_up, const llm_tensor *b_up, int n_tokens);
    /* cos/sin[T][half] for the given positions: angle = pos * inv_freq[i] (inv_freq: host, [half]) */
    void (*rope_table)(llm_backend *be, float *cos_out, float *sin_out, const int32_t *pos, int n,
                       const float *inv_freq, int half);
    /* In place on x[T][H][head_dim]. Pair i (< head_dim/2) rotates by angle i: elements i and
     * i + head_dim/2 (rotate-half, Hugging Face's layout), or, when interleaved, elements 2i and 2i+1
     * (the layout of llama.cpp's GGUF Llama files, whose Q/K rows are permuted so). */
    void (*rope)(llm_backend *be, float *x, int n, int n_heads, int head_dim, const float *cos_t,
                 const float *sin_t, int interleaved);
    /* Stores k, v [T][n_head_kv*head_dim] at each row's position through its sequence's block table. */
    void (*kv_write)(llm_backend *be, const llm_kv_view *kv, const float *k, const float *v,
                     const llm_batch *b);
    /* out[T][n_head*head_dim] = causal softmax(q kᵀ * scale) v over each row's own sequence, positions
     * 0..pos inclusive, reading K/V through the block table. GQA: head h uses kv head h / (n_head/n_head_kv).
     */
    void (*attention)(llm_backend *be, float *out, const float *q, const llm_kv_view *kv, const llm_batch *b,
                      int n_head, float scale);
    /* out[N] = silu(gate[N]) * up[N] */
    void (*swiglu)(llm_backend *be, float *out, const float *gate, const float *up, size_t n);
    /* x[N] += y[N] */
    void (*add)(llm_backend *be, float *x, const float *y, size_t n);
    /* out[R][D] = x[rows[r]][D] (rows: host memory) */
    void (*get_rows)(llm_backend *be, float *out, const float *x, const int32_t *rows, int n_rows, int dim);
    /* Optional (NULL on the CPU): called once per forward pass before any op of it, with the batch
     * every op of the pass will see (its host arrays stay unchanged until the pass ends), so that an
     * accelerator uploads tokens, positions and block tables once instead of per op. */
    void (*begin_batch)(llm_backend *be, const llm_batch *b);
} llm_backend_ops;

struct llm_backend {
    const llm_backend_ops *ops;
};

typedef struct llm_backend_config {
    int n_threads;   /* CPU: worker threads (>= 1) */
    int64_t max_row; /* longest row any op will see (max of K and M dims), for per-thread scratch */
    /* accelerators size their workspaces from these: */
    int max_tokens;            /* rows of one forward pass */
    int max_ctx;               /* longest sequence (n_ctx) */
    int n_head, head_dim;      /* attention shape */
    int max_blocks_per_seq;    /* block-table length of one sequence */
    int max_seqs;              /* sequences in one pass */
    /* CPU: kernel level (llm_cpu_level of backend/cpu/cpu_features.h): 0 = the reference kernels (what a
     * zeroed config gets), -1 = the best this CPU runs. A level the CPU lacks makes the create fail. */
    int cpu_level;
} llm_backend_config;

/* The CUDA backend: see backend/cuda/cuda_backend.h. */

/* The CPU backend (reference or fast kernels, per cfg->cpu_level). NULL on allocation failure or when
 * the CPU cannot run cfg->cpu_level (check with llm_cpu_level_supported first to say why). */
llm_backend *llm_backend_cpu_create(const llm_backend_config *cfg);

/* Bytes llm_backend_cpu_create(cfg) allocates for its kernels' buffers (per-thread weight tiles and
 * accumulators, the converted-activation buffer of the fast levels), for footprint planning. */
size_t llm_backend_cpu_scratch_bytes(const llm_backend_config *cfg);

#endif
