// The CUDA backend's kernel launchers: one kernel family per .cu file, each with its launcher, all on
// the backend's stream, none synchronizing with the host. The op table (backend.cu) calls only these.
//
// Memory: every pointer below is device memory unless it says host. Activations are float32; weights
// are F32, F16 or BF16 as stored in the model (uploaded once); the KV cache is float32 with the CPU
// backend's layout, per layer [n_blocks][n_head_kv][block_size][head_dim].
//
// Launch failures are not reported here: the backend checks cudaGetLastError() after each op and keeps
// the first error sticky (see common.cuh).
#pragma once

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "llamac.h"

// The device mirror of an llm_batch, uploaded once per forward pass (backend.cu, begin_batch).
struct cuda_batch {
    int n_tokens;               // T
    int n_seqs;                 // S
    const int32_t *tokens;      // [T]
    const int32_t *positions;   // [T]
    const int32_t *row_seq;     // [T]: the sequence (0..S-1) of each row
    const int32_t *seq_row;     // [S]: first row of each sequence
    const int32_t *seq_n_rows;  // [S]
    const int32_t *seq_n_past;  // [S]
    const int32_t *block_table; // [S][max_blocks]: KV block of each block-sized span of positions
    int max_blocks;             // row stride of block_table
    int max_keys;               // max over sequences of n_past + n_rows (the longest attention span)
    int max_rows;               // max over sequences of n_rows (a prefill chunk's length)
    const int32_t *tiles;       // [n_tiles][3]: sequence, first row, rows (<= CUDA_PREFILL_TILE_ROWS)
    int n_tiles;                // every row of the batch is in exactly one tile
};

// Query rows per tile of the prefill attention kernel (attention_prefill.cu).
#define CUDA_PREFILL_TILE_ROWS 32

// out[rows][dim] = x / rms(x) * w (out may alias x). w: dim values of dtype wt.
void cuda_rmsnorm(cudaStream_t s, float *out, const float *x, const void *w, llm_dtype wt, int rows, int dim,
                  float eps);
void cuda_add_rmsnorm(cudaStream_t s, float *out, float *x, const float *y, const void *w, llm_dtype wt, int rows,
                      int dim, float eps);

// out[n][dim] = table[ids[i]] converted to float. ids: device [n].
void cuda_embed(cudaStream_t s, float *out, const void *table, llm_dtype dt, const int32_t *ids, int n, int dim);

// out[n][dim] = x[rows[i]][dim]. rows: device [n].
void cuda_get_rows(cudaStream_t s, float *out, const float *x, const int32_t *rows, int n, int dim);

// cos/sin[n][half]: angle = pos[i] * inv_freq[j], computed as the CPU does: the angle and its cos/sin
// in double, rounded to float (positions reach 10^5+). pos, inv_freq: device.
void cuda_rope_table(cudaStream_t s, float *cos_out, float *sin_out, const int32_t *pos, int n,
                     const float *inv_freq, int half);

// In place on x[n][n_heads][head_dim], rotate-half pairs (i, i + head_dim/2).
void cuda_rope(cudaStream_t s, float *x, int n, int n_heads, int head_dim, const float *cos_t, const float *sin_t,
               int interleaved);

// out[n] = silu(gate[n]) * up[n]
void cuda_swiglu(cudaStream_t s, float *out, const float *gate, const float *up, size_t n);

// x[n] += y[n]
void cuda_add(cudaStream_t s, float *x, const float *y, size_t n);

// Stores k, v [T][n_head_kv*head_dim] at each row's position through its sequence's block table.
// The caches hold float, or bf16 (kv16: values rounded to nearest even as they are stored).
void cuda_kv_write(cudaStream_t s, void *k_cache, void *v_cache, bool kv16, int n_head_kv, int head_dim,
                   int block_size, const float *k, const float *v, const cuda_batch *b);

// out[T][n_head*head_dim] = causal softmax(q kᵀ * scale) v for each row over positions 0..pos of its
// own sequence, K/V read through the block table; GQA: head h uses kv head h / (n_head / n_head_kv).
// scratch: device workspace of cuda_attention_scratch_bytes(...) bytes (split-K partial results).
size_t cuda_attention_scratch_bytes(int max_tokens, int n_head, int head_dim, int max_ctx);
void cuda_attention(cudaStream_t s, float *out, const float *q, const void *k_cache, const void *v_cache, bool kv16,
                    int n_head_kv, int head_dim, int block_size, const cuda_batch *b, int n_head, float scale,
                    void *scratch, size_t scratch_bytes);

// Flash-attention-style tiled causal attention over b's tiles (attention_prefill.cu): the same result
// as cuda_attention for every row, computed a tile of rows of one sequence at a time so each K/V tile
// is read once per tile instead of once per row. False (nothing launched) when the shape is not
// supported (head_dim other than 64 or 128, unaligned cache): then use cuda_attention.
bool cuda_attention_prefill_supported(int head_dim);
bool cuda_attention_prefill(cudaStream_t s, float *out, const float *q, const void *k_cache, const void *v_cache,
                            bool kv16, int n_head_kv, int head_dim, int block_size, const cuda_batch *b, int n_head,
                            float scale);

// Matrix products. A context holds the cuBLAS handle and a workspace (backend.cu owns it).
struct cuda_matmul_ctx {
    void *cublas;          // cublasHandle_t
    void *workspace;       // device scratch for converted activations: >= max_tokens * max_k * 2 bytes
    size_t workspace_bytes;
};
// out[T][M] = x[T][K] · w[M][K]ᵀ (+ bias[M]); w (and bias) of dtype wt (bias dtype bt). Small T runs a
// memory-bound GEMV kernel (weights converted on the fly); large T runs cuBLAS. Both round the
// activations to the weights' type when it is F16/BF16 (float accumulation), so that a row's result
// does not depend on T beyond summation order. Returns 0, or -1 when cuBLAS
// failed (the backend records the error).
int cuda_matmul(cudaStream_t s, cuda_matmul_ctx *ctx, float *out, const float *x, const void *w, llm_dtype wt,
                int64_t M, int64_t K, const void *bias, llm_dtype bt, int T);

// Several matmuls of one input: outs[i][T][Ms[i]] = x[T][K] . ws[i]ᵀ (+ biases[i]), all weights of
// dtype wt (biases of bt, or NULL). At decode sizes one launch (bit-identical to separate ones), else
// one cuda_matmul each. n <= CUDA_MATMUL_MAX_GROUP. 0, or -1 when cuBLAS failed.
#define CUDA_MATMUL_MAX_GROUP 3
int cuda_matmul_group(cudaStream_t s, cuda_matmul_ctx *ctx, int n, float *const outs[], const float *x,
                      const void *const ws[], const int64_t Ms[], const void *const biases[], llm_dtype wt,
                      llm_dtype bt, int64_t K, int T);

// out[T][M] = silu(x . wgᵀ + bg) * (x . wuᵀ + bu). At decode sizes one fused GEMV (bit-identical to
// two matmuls and cuda_swiglu); else those three, with scratch[T][M] holding the up projection.
int cuda_matmul_swiglu(cudaStream_t s, cuda_matmul_ctx *ctx, float *out, float *scratch, const float *x,
                       const void *wg, const void *bg, const void *wu, const void *bu, llm_dtype wt, llm_dtype bt,
                       int64_t M, int64_t K, int T);

// SwiGLU of one element, the CPU's formula and roundings: g / (1 + expf(-g)) * u, IEEE division, no
// contraction (shared by the elementwise kernel and the fused GEMV).
__device__ __forceinline__ float cuda_silu_mul(float g, float u) {
    return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
}
