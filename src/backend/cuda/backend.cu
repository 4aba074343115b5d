// The CUDA backend's op table: memory, the per-pass batch upload, and the dispatch of each op to its
// kernel launcher (kernels.cuh). Everything runs on one stream in issue order; the host waits only in
// to_host (logits) and when it uploads a batch from pageable memory (which orders it after the work
// already queued). Failures are sticky: the first one is kept with CUDA's message and reported by
// status(), as the op table contract says.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.cuh"

namespace {

// Rows of one sequence in a pass from which attention runs tiled (attention_prefill.cu).
constexpr int kTiledMinRows = 16;

struct cuda_backend {
    llm_backend base;
    llm_backend_config cfg;
    cudaStream_t stream;
    cublasHandle_t cublas;
    cuda_matmul_ctx mm;
    llm_status status;
    char msg[256];
    // the current pass's batch, mirrored on the device
    const llm_batch *cur;
    cuda_batch batch;
    int32_t *d_meta;  // one allocation: tokens, positions, row_seq [T] ×3; seq arrays [S] ×3; tables [S][B]
    int32_t *h_meta;  // host staging of the same layout
    size_t meta_ints;
    int32_t *d_rows;  // get_rows ids
    float *d_inv_freq;
    const float *inv_freq_host;
    int inv_half;
    void *attn_scratch;
    size_t attn_scratch_bytes;
    void *cublas_ws; // cuBLAS's workspace, set explicitly so that GEMMs can be captured in a graph
    void *pinned[2];  // to_host staging (see be_to_host)
    size_t pinned_bytes;
    cudaEvent_t pinned_done[2];
    // CUDA graphs of decode passes (see begin_batch): captured once per shape, replayed after
    struct graph {
        uint64_t key;
        cudaGraphExec_t exec;
    } graphs[32];
    int n_graphs;
    int capturing, replaying; // this pass is being captured / is a replay (ops launch nothing)
    uint64_t pass_key;
    int graphs_off; // a capture failed once: graphs stay off for this backend
    int no_fuse;    // LLAMAC_CUDA_NO_FUSE=qkv|swiglu|1: grouped q/k/v (1), fused gate/up (2) GEMVs off
    int attn_force; // LLAMAC_CUDA_ATTN: 1 = always the tiled kernel, -1 = always split-K, 0 = by batch
};

cuda_backend *cb(llm_backend *be) {
    return reinterpret_cast<cuda_backend *>(be);
}

void fail(cuda_backend *c, llm_status st, const char *what, const char *detail) {
    if (c->status != LLM_OK) return;
    c->status = st;
    snprintf(c->msg, sizeof c->msg, "cuda: %s: %s", what, detail);
}

// Records the first CUDA error (launch or asynchronous) with the op's name.
bool check(cuda_backend *c, const char *what, cudaError_t e = cudaSuccess) {
    if (e == cudaSuccess) e = cudaGetLastError();
    if (e == cudaSuccess) return true;
    fail(c, LLM_ERR_BACKEND, what, cudaGetErrorString(e));
    return false;
}

bool ok(cuda_backend *c) {
    return c->status == LLM_OK;
}

// ---- CUDA graphs ------------------------------------------------------------------------------
// A decode pass (every sequence contributes one row, T <= 64) is ~14 launches per layer, each a few
// microseconds of GPU work: launch overhead would dominate. Such a pass is captured into a graph the
// first time its shape is seen and replayed afterwards. What a replay needs is all in fixed device
// memory (weights, KV cache, activation arena, the batch mirror uploaded by begin_batch); the host
// values the launches bake in are the shape (T, S, block-table stride) and the attention's key span,
// which is rounded up to a bucket (longer spans only add empty split-K chunks). The pass's logits
// part (get_rows uploads host row ids) runs outside the graph: the capture ends there.

uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}

// Ends a capture (instantiating and launching it) or launches a replay; no-op otherwise.
void finish_graph(cuda_backend *c) {
    if (c->capturing) {
        c->capturing = 0;
        cudaGraph_t g = nullptr;
        cudaError_t e = cudaStreamEndCapture(c->stream, &g);
        cudaGraphExec_t exec = nullptr;
        if (e == cudaSuccess) e = cudaGraphInstantiate(&exec, g, 0);
        if (g) cudaGraphDestroy(g);
        if (e != cudaSuccess) { // capture is an optimisation: fall back to plain launches for good
            cudaGetLastError();
            c->graphs_off = 1;
            fail(c, LLM_ERR_BACKEND, "graph capture", cudaGetErrorString(e));
            return;
        }
        if (c->n_graphs == 32) { // full: forget the oldest shape
            cudaGraphExecDestroy(c->graphs[0].exec);
            memmove(c->graphs, c->graphs + 1, sizeof c->graphs[0] * 31);
            c->n_graphs--;
        }
        c->graphs[c->n_graphs].key = c->pass_key;
        c->graphs[c->n_graphs].exec = exec;
        c->n_graphs++;
        check(c, "graph launch", cudaGraphLaunch(exec, c->stream));
    } else if (c->replaying) {
        c->replaying = 0;
        for (int i = 0; i < c->n_graphs; i++)
            if (c->graphs[i].key == c->pass_key) {
                check(c, "graph launch", cudaGraphLaunch(c->graphs[i].exec, c->stream));
                return;
            }
    }
}

// 1 when this op's launches are covered by a replayed graph.
bool skipped(cuda_backend *c) {
    return c->replaying != 0;
}

void be_free(llm_backend *be) {
    cuda_backend *c = cb(be);
    if (c->stream) cudaStreamSynchronize(c->stream);
    cudaFree(c->d_meta);
    cudaFree(c->d_rows);
    cudaFree(c->d_inv_freq);
    cudaFree(c->attn_scratch);
    cudaFree(c->mm.workspace);
    cudaFree(c->cublas_ws);
    for (int i = 0; i < 2; i++) {
        if (c->pinned[i]) cudaFreeHost(c->pinned[i]);
        if (c->pinned_done[i]) cudaEventDestroy(c->pinned_done[i]);
    }
    for (int i = 0; i < c->n_graphs; i++) cudaGraphExecDestroy(c->graphs[i].exec);
    free(c->h_meta);
    if (c->cublas) cublasDestroy(c->cublas);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c);
}

llm_status be_status(llm_backend *be, char *msg, size_t cap) {
    cuda_backend *c = cb(be);
    finish_graph(c);
    check(c, "asynchronous failure");
    if (msg && cap) snprintf(msg, cap, "%s", c->msg);
    return c->status;
}

void *be_alloc(llm_backend *be, size_t bytes) {
    cuda_backend *c = cb(be);
    void *p = nullptr;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        char d[160];
        snprintf(d, sizeof d, "%s (%zu bytes)", cudaGetErrorString(e), bytes);
        fail(c, LLM_ERR_OUT_OF_MEMORY, "cudaMalloc", d);
        cudaGetLastError(); // clear it: an allocation failure is reported, not sticky in the runtime
        return nullptr;
    }
    return p;
}

void be_release(llm_backend *be, void *p) {
    (void)be;
    if (p) cudaFree(p);
}

// Large copies (logits of many rows: 64 x 128k floats is 32 MB per step) go through two pinned
// buffers: the device writes one while the host copies the other out, so the transfer runs at DMA
// speed and the host copy overlaps it (a pageable destination is several times slower).
void be_to_host(llm_backend *be, float *dst, const float *src, size_t n) {
    cuda_backend *c = cb(be);
    finish_graph(c);
    if (!ok(c)) return;
    const size_t bytes = n * sizeof(float);
    if (bytes < ((size_t)1 << 20) || !c->pinned[0]) { /* small: one pageable copy */
        check(c, "to_host", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
        check(c, "to_host (synchronize)", cudaStreamSynchronize(c->stream));
        return;
    }
    const size_t chunk = c->pinned_bytes;
    const char *s = reinterpret_cast<const char *>(src);
    char *d = reinterpret_cast<char *>(dst);
    size_t n_chunks = (bytes + chunk - 1) / chunk;
    for (size_t i = 0; i <= n_chunks && ok(c); i++) {
        if (i < n_chunks) { /* start chunk i into buffer i % 2 */
            const size_t len = bytes - i * chunk < chunk ? bytes - i * chunk : chunk;
            check(c, "to_host", cudaMemcpyAsync(c->pinned[i % 2], s + i * chunk, len, cudaMemcpyDeviceToHost, c->stream));
            check(c, "to_host", cudaEventRecord(c->pinned_done[i % 2], c->stream));
        }
        if (i > 0) { /* finish chunk i - 1 while chunk i is in flight */
            const size_t j = i - 1, len = bytes - j * chunk < chunk ? bytes - j * chunk : chunk;
            if (!check(c, "to_host (synchronize)", cudaEventSynchronize(c->pinned_done[j % 2]))) return;
            memcpy(d + j * chunk, c->pinned[j % 2], len);
        }
    }
}

void be_from_host(llm_backend *be, void *dst, const void *src, size_t bytes) {
    cuda_backend *c = cb(be);
    finish_graph(c);
    if (!ok(c)) return;
    // pageable source: returns once staged, so the caller may reuse src at once
    check(c, "from_host", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
}

void be_copy(llm_backend *be, void *dst, const void *src, size_t bytes) {
    cuda_backend *c = cb(be);
    finish_graph(c);
    if (!ok(c)) return;
    check(c, "copy", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream));
}

// Uploads a host id array unless it is one of the current batch's (already on the device).
const int32_t *device_ids(cuda_backend *c, const int32_t *host, int n, int32_t *scratch) {
    if (c->cur && host == c->cur->tokens) return c->batch.tokens;
    if (c->cur && host == c->cur->positions) return c->batch.positions;
    if (c->capturing) { /* a host upload cannot be part of a graph (only test hooks get here) */
        c->graphs_off = 1;
        fail(c, LLM_ERR_INTERNAL, "graph capture", "an op uploaded host ids inside a captured pass");
        return scratch;
    }
    check(c, "upload ids", cudaMemcpyAsync(scratch, host, (size_t)n * sizeof(int32_t), cudaMemcpyHostToDevice, c->stream));
    return scratch;
}

void be_begin_batch(llm_backend *be, const llm_batch *b) {
    cuda_backend *c = cb(be);
    finish_graph(c); /* a pass that ended without logits */
    c->cur = b;
    if (!ok(c)) return;
    const int T = b->n_tokens, S = b->n_seqs, B = c->cfg.max_blocks_per_seq;
    const size_t need = (size_t)3 * T + (size_t)3 * S + (size_t)S * B + (size_t)3 * T; /* + tiles */
    if (need > c->meta_ints) {
        fail(c, LLM_ERR_INTERNAL, "begin_batch", "batch larger than the backend was sized for");
        return;
    }
    int32_t *h = c->h_meta;
    int32_t *tokens = h, *pos = h + T, *row_seq = h + 2 * T, *seq_row = h + 3 * T, *seq_n = seq_row + S,
            *seq_past = seq_n + S, *tables = seq_past + S;
    memcpy(tokens, b->tokens, (size_t)T * sizeof(int32_t));
    memcpy(pos, b->positions, (size_t)T * sizeof(int32_t));
    int32_t *tiles = tables + (size_t)S * B;
    int max_keys = 0, max_rows = 0, n_tiles = 0;
    for (int s = 0; s < S; s++) {
        const llm_batch_seq *q = &b->seqs[s];
        if (q->n_rows > max_rows) max_rows = q->n_rows;
        for (int r = 0; r < q->n_rows; r += CUDA_PREFILL_TILE_ROWS, n_tiles++) {
            tiles[3 * n_tiles] = s;
            tiles[3 * n_tiles + 1] = q->row_begin + r;
            tiles[3 * n_tiles + 2] = q->n_rows - r < CUDA_PREFILL_TILE_ROWS ? q->n_rows - r : CUDA_PREFILL_TILE_ROWS;
        }
        seq_row[s] = q->row_begin;
        seq_n[s] = q->n_rows;
        seq_past[s] = q->n_past;
        for (int r = 0; r < q->n_rows; r++) row_seq[q->row_begin + r] = s;
        const int keys = q->n_past + q->n_rows;
        if (keys > max_keys) max_keys = keys;
        // the whole table row (the engine allocates max_blocks_per_seq entries per sequence); entries
        // past the sequence's blocks are never read by the kernels
        memcpy(tables + (size_t)s * B, q->block_table, (size_t)B * sizeof(int32_t));
    }
    // pageable source: the call returns once the bytes are staged, so h_meta may be reused at once
    if (!check(c, "begin_batch upload",
               cudaMemcpyAsync(c->d_meta, h, (need - (size_t)3 * T + (size_t)3 * n_tiles) * sizeof(int32_t),
                               cudaMemcpyHostToDevice, c->stream)))
        return;
    int32_t *d = c->d_meta;
    c->batch.n_tokens = T;
    c->batch.n_seqs = S;
    c->batch.tokens = d;
    c->batch.positions = d + T;
    c->batch.row_seq = d + 2 * T;
    c->batch.seq_row = d + 3 * T;
    c->batch.seq_n_rows = d + 3 * T + S;
    c->batch.seq_n_past = d + 3 * T + 2 * S;
    c->batch.block_table = d + 3 * T + 3 * S;
    c->batch.max_blocks = B;
    c->batch.max_keys = max_keys;
    c->batch.max_rows = max_rows;
    c->batch.tiles = d + 3 * T + 3 * S + (size_t)S * B;
    c->batch.n_tiles = n_tiles;
    /* decode passes run as CUDA graphs (see above) */
    /* (after the first pass: the RoPE frequencies are then on the device, no upload can happen inside) */
    int decode = T <= 64 && !c->graphs_off && c->inv_freq_host != nullptr;
    for (int s = 0; decode && s < S; s++) decode = b->seqs[s].n_rows == 1;
    if (!decode) return;
    int bucket = 256;
    while (bucket < max_keys) bucket *= 2;
    c->batch.max_keys = bucket;
    c->pass_key = mix(mix(mix(mix(0, (uint64_t)T), (uint64_t)S), (uint64_t)B), (uint64_t)bucket);
    for (int i = 0; i < c->n_graphs; i++)
        if (c->graphs[i].key == c->pass_key) {
            c->replaying = 1;
            return;
        }
    if (check(c, "graph capture", cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal))) c->capturing = 1;
}

void be_embed(llm_backend *be, float *out, const llm_tensor *table, const int32_t *ids, int n) {
    cuda_backend *c = cb(be);
    if (skipped(c)) return;
    if (!ok(c)) return;
    const int32_t *d_ids = device_ids(c, ids, n, c->d_rows);
    cuda_embed(c->stream, out, table->data, table->dtype, d_ids, n, (int)table->cols);
    check(c, "embed");
}

void be_rmsnorm(llm_backend *be, float *out, const float *x, const llm_tensor *w, int rows, int dim, float eps) {
    cuda_backend *c = cb(be);
    if (skipped(c)) return;
    if (!ok(c)) return;
    cuda_rmsnorm(c->stream, out, x, w->data, w->dtype, rows, dim, eps);
    check(c, "rmsnorm");
}

void be_add_rmsnorm(llm_backend *be, float *out, float *x, const float *y, const llm_tensor *w, int rows, int dim,
                    float eps) {
    cuda_backend *c = cb(be);
    if (skipped(c)) return;
    if (!ok(c)) return;
    cuda_add_rmsnorm(c->stream, out, x, y, w->data, w->dtype, rows, dim, eps);
    check(c, "add_rmsnorm");
}

void be_matmul(llm_backend *be, float *out, const float *x, const llm_tensor *w, const llm_tensor *bias, int n) {
    cuda_backend *c = cb(be);
    if (skipped(c)) return;
    if (!ok(c)) return;
    if (cuda_matmul(c->stream, &c->mm, out, x, w->data, w->dtype, w->rows, w->cols, bias ? bias->data : nullptr,
                    bias ? bias->dtype : LLM_DTYPE_F32, n) != 0) {
        char d[160];
        snprintf(d, sizeof d, "cuBLAS failed on %s [%lld x %lld] with %d rows", w->name ? w->name : "?",
                 (long long)w->rows, (long long)w->cols, n);
        fail(c, LLM_ERR_BACKEND, "matmul", d);
        return;
    }
    check(c, "matmul");
}

void be_matmul_multi(llm_backend *be, int n, float *const outs[], const float *x, const llm_tensor *const ws[],
                     const llm_tensor *const biases[], int T) {
    cuda_backend *c = cb(be);
    if (skipped(c)) return;
    if (!ok(c)) return;
    bool one = n >= 1 && n <= CUDA_MATMUL_MAX_GROUP && !(c->no_fuse & 1);
    for (int i = 1; one && i < n; i++)
        one = ws[i]->dtype == ws[0]->dtype && ws[i]->cols == ws[0]->cols &&
              (biases[i] ? biases[i]->dtype : LLM_DTYPE_F32) == (biases[0] ? biases[0]->dtype : LLM_DTYPE_F32);
    if (!one) {
        for (int i = 0; i < n; i++) be_matmul(be, outs[i], x, ws[i], biases[i], T);
        return;
    }
    const void *wp[CUDA_MATMUL_MAX_GROUP], *bp[CUDA_MATMUL_MAX_GROUP];
    int64_t Ms[CUDA_MATMUL_MAX_GROUP];
    for (int i = 0; i < n; i++) wp[i] = ws[i]->data, bp[i] = biases[i] ? biases[i]->data : nullptr, Ms[i] = ws[i]->rows;
    if (cuda_matmul_group(c->stream, &c->mm, n, outs, x, wp, Ms, bp, ws[0]->dtype,
                          biases[0] ? biases[0]->dtype : LLM_DTYPE_F32, ws[0]->cols, T) != 0) {
        char d[160];
        snprintf(d, sizeof d, "cuBLAS failed on %s (+%d) [%lld x %lld] with %d rows", ws[0]->name ? ws[0]->name : "?",
                 n - 1, (long long)ws[0]->rows, (long long)ws[0]->cols, T);
        fail(c, LLM_ERR_BACKEND, "matmul", d);
        return;
    }
    check(c, "matmul (grouped)");
}

void be_matmul_swiglu(llm_backend *be, float *out, float *scratch, const float *x, const llm_tensor *wg,
                      const llm_tensor *bg, const llm_tensor *wu, const llm_tensor *bu, int T) {
    cuda_backend *c = cb(be);
    if (skipped(c)) return;
    if (!ok(c)) return;
    const llm_dtype bgt = bg ? bg->dtype : LLM_DTYPE_F32, but = bu ? bu->dtype : LLM_DTYPE_F32;
    if (wg->dtype != wu->dtype || bgt != but || wg->rows != wu->rows || wg->cols != wu->cols || (c->no_fuse & 2)) {
        be_matmul(be, out, x, wg, bg, T);
        be_matmul(be, scratch, x, wu, bu, T);
        if (!ok(c)) return;
        cuda_swiglu(c->stream, out, out, scratch, (size_t)T * (size_t)wg->rows);
        check(c, "swiglu");
        return;
    }
    if (cuda_matmul_swiglu(c->stream, &c->mm, out, scratch, x, wg->data, bg ? bg->data : nullptr, wu->data,
                           bu ? bu->data : nullptr, wg->dtype, bgt, wg->rows, wg->cols, T) != 0) {
        char d[160];
        snprintf(d, sizeof d, "cuBLAS failed on %s/%s [%lld x %lld] with %d rows", wg->name ? wg->name : "?",
                 wu->name ? wu->name : "?", (long long)wg->rows, (long long)wg->cols, T);
        fail(c, LLM_ERR_BACKEND, "matmul", d);
        return;
    }
    check(c, "matmul + swiglu");
}

void be_rope_table(llm_backend *be, float *cos_out, float *sin_out, const int32_t *pos, int n, const float *inv_freq,
                   int half) {
    cuda_backend *c = cb(be);
    if (skipped(c)) return;
    if (!ok(c)) return;
    if (inv_freq != c->inv_freq_host || half != c->inv_half) { // constant per engine: uploaded once
        if (half > c->cfg.head_dim) {
            fail(c, LLM_ERR_INTERNAL, "rope_table", "head_dim larger than the backend was sized for");
            return;
        }
        check(c, "rope_table upload",
              cudaMemcpy(c->d_inv_freq, inv_freq, (size_t)half * sizeof(float), cudaMemcpyHostToDevice));
        c->inv_freq_host = inv_freq;
        c->inv_half = half;
    }
    const int32_t *d_pos = device_ids(c, pos, n, c->d_rows);
    cuda_rope_table(c->stream, cos_out, sin_out, d_pos, n, c->d_inv_freq, half);
    check(c, "rope_table");
}

void be_rope(llm_backend *be, float *x, int n, int n_heads, int head_dim, const float *cos_t, const float *sin_t,
             int interleaved) {
    cuda_backend *c = cb(be);
    if (skipped(c)) return;
    if (!ok(c)) return;
    cuda_rope(c->stream, x, n, n_heads, head_dim, cos_t, sin_t, interleaved);
    check(c, "rope");
}

bool same_batch(cuda_backend *c, const llm_batch *b, const char *what) {
    if (b == c->cur) return true;
    fail(c, LLM_ERR_INTERNAL, what, "the batch was not announced with begin_batch");
    return false;
}

void be_kv_write(llm_backend *be, const llm_kv_view *kv, const float *k, const float *v, const llm_batch *b) {
    cuda_backend *c = cb(be);
    if (skipped(c)) return;
    if (!ok(c) || !same_batch(c, b, "kv_write")) return;
    cuda_kv_write(c->stream, kv->k, kv->v, kv->dtype == LLM_DTYPE_BF16, kv->n_head_kv, kv->head_dim, kv->block_size,
                  k, v, &c->batch);
    check(c, "kv_write");
}

void be_attention(llm_backend *be, float *out, const float *q, const llm_kv_view *kv, const llm_batch *b, int n_head,
                  float scale) {
    cuda_backend *c = cb(be);
    if (skipped(c)) return;
    if (!ok(c) || !same_batch(c, b, "attention")) return;
    /* Prompts (a sequence with kTiledMinRows rows or more in the pass) go through the tiled kernel, which
     * reads each K/V tile once per 32 rows; decode-only passes keep the split-K kernel, which spreads a
     * few long rows over the whole GPU. LLAMAC_CUDA_ATTN=split|tiled forces one (tests, comparisons). */
    const int tiled = c->attn_force ? c->attn_force > 0 : c->batch.max_rows >= kTiledMinRows;
    const bool kv16 = kv->dtype == LLM_DTYPE_BF16;
    if (tiled && cuda_attention_prefill(c->stream, out, q, kv->k, kv->v, kv16, kv->n_head_kv, kv->head_dim,
                                        kv->block_size, &c->batch, n_head, scale)) {
        check(c, "attention (tiled)");
        return;
    }
    cuda_attention(c->stream, out, q, kv->k, kv->v, kv16, kv->n_head_kv, kv->head_dim, kv->block_size, &c->batch, n_head,
                   scale, c->attn_scratch, c->attn_scratch_bytes);
    check(c, "attention");
}

void be_swiglu(llm_backend *be, float *out, const float *gate, const float *up, size_t n) {
    cuda_backend *c = cb(be);
    if (skipped(c)) return;
    if (!ok(c)) return;
    cuda_swiglu(c->stream, out, gate, up, n);
    check(c, "swiglu");
}

void be_add(llm_backend *be, float *x, const float *y, size_t n) {
    cuda_backend *c = cb(be);
    if (skipped(c)) return;
    if (!ok(c)) return;
    cuda_add(c->stream, x, y, n);
    check(c, "add");
}

void be_get_rows(llm_backend *be, float *out, const float *x, const int32_t *rows, int n_rows, int dim) {
    cuda_backend *c = cb(be);
    finish_graph(c); /* the logits part runs outside the graph: it uploads host row ids */
    if (!ok(c)) return;
    if (n_rows > c->cfg.max_tokens) {
        fail(c, LLM_ERR_INTERNAL, "get_rows", "more rows than the backend was sized for");
        return;
    }
    check(c, "get_rows upload",
          cudaMemcpyAsync(c->d_rows, rows, (size_t)n_rows * sizeof(int32_t), cudaMemcpyHostToDevice, c->stream));
    cuda_get_rows(c->stream, out, x, c->d_rows, n_rows, dim);
    check(c, "get_rows");
}

const llm_backend_ops cuda_ops = {
    .name = "cuda",
    .free = be_free,
    .status = be_status,
    .alloc = be_alloc,
    .release = be_release,
    .to_host = be_to_host,
    .from_host = be_from_host,
    .copy = be_copy,
    .embed = be_embed,
    .rmsnorm = be_rmsnorm,
    .add_rmsnorm = be_add_rmsnorm,
    .matmul = be_matmul,
    .matmul_multi = be_matmul_multi,
    .matmul_swiglu = be_matmul_swiglu,
    .rope_table = be_rope_table,
    .rope = be_rope,
    .kv_write = be_kv_write,
    .attention = be_attention,
    .swiglu = be_swiglu,
    .add = be_add,
    .get_rows = be_get_rows,
    .begin_batch = be_begin_batch,
};

} // namespace

extern "C" int llm_cuda_compiled(void) {
    return 1;
}

extern "C" int llm_cuda_auto_allowed(void) {
#ifdef LLAMAC_CUDA_GATE_PASSED
    return 1;
#else
    return 0;
#endif
}

extern "C" int llm_cuda_probe(char *why, size_t cap) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        if (why && cap)
            snprintf(why, cap, "no CUDA device: %s", e != cudaSuccess ? cudaGetErrorString(e) : "none found");
        cudaGetLastError();
        return 0;
    }
    if (why && cap) {
        cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, 0) == cudaSuccess)
            snprintf(why, cap, "%s (compute %d.%d, %.0f GiB)", p.name, p.major, p.minor,
                     (double)p.totalGlobalMem / (1024.0 * 1024 * 1024));
    }
    return 1;
}

extern "C" llm_backend *llm_backend_cuda_create(const llm_backend_config *cfg, char *err, size_t cap) {
    if (!llm_cuda_probe(err, cap)) return nullptr;
    cuda_backend *c = static_cast<cuda_backend *>(calloc(1, sizeof(cuda_backend)));
    if (!c) {
        snprintf(err, cap, "out of memory");
        return nullptr;
    }
    c->base.ops = &cuda_ops;
    c->cfg = *cfg;
    if (c->cfg.max_tokens < 1) c->cfg.max_tokens = 1;
    if (c->cfg.max_seqs < 1) c->cfg.max_seqs = c->cfg.max_tokens;
    const int T = c->cfg.max_tokens, S = c->cfg.max_seqs < T ? c->cfg.max_seqs : T;
    c->meta_ints = (size_t)3 * T + (size_t)3 * S + (size_t)S * (size_t)(c->cfg.max_blocks_per_seq > 0 ? c->cfg.max_blocks_per_seq : 1) +
                   (size_t)3 * T; /* prefill tiles: at most one per row */
    c->h_meta = static_cast<int32_t *>(malloc(c->meta_ints * sizeof(int32_t)));
    const char *what = "cudaStreamCreate";
    cudaError_t e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess) what = "cudaMalloc (batch)", e = cudaMalloc(&c->d_meta, c->meta_ints * sizeof(int32_t));
    if (e == cudaSuccess) e = cudaMalloc(&c->d_rows, (size_t)T * sizeof(int32_t));
    if (e == cudaSuccess) e = cudaMalloc(&c->d_inv_freq, (size_t)(c->cfg.head_dim > 0 ? c->cfg.head_dim : 1) * sizeof(float));
    if (e == cudaSuccess) {
        what = "cudaMalloc (attention scratch)";
        c->attn_scratch_bytes = cuda_attention_scratch_bytes(T, c->cfg.n_head, c->cfg.head_dim, c->cfg.max_ctx);
        e = cudaMalloc(&c->attn_scratch, c->attn_scratch_bytes ? c->attn_scratch_bytes : 1);
    }
    if (e == cudaSuccess) {
        what = "cudaMalloc (matmul workspace)";
        c->mm.workspace_bytes = (size_t)T * (size_t)c->cfg.max_row * 2;
        e = cudaMalloc(&c->mm.workspace, c->mm.workspace_bytes ? c->mm.workspace_bytes : 1);
    }
    if (e != cudaSuccess || !c->h_meta) {
        snprintf(err, cap, "%s: %s", what, e != cudaSuccess ? cudaGetErrorString(e) : "out of host memory");
        cudaGetLastError();
        be_free(&c->base);
        return nullptr;
    }
    if (cublasCreate(&c->cublas) != CUBLAS_STATUS_SUCCESS || cublasSetStream(c->cublas, c->stream) != CUBLAS_STATUS_SUCCESS) {
        snprintf(err, cap, "cublasCreate failed");
        be_free(&c->base);
        return nullptr;
    }
    /* a workspace of our own: cuBLAS may not allocate while a graph is being captured */
    const size_t ws = (size_t)32 << 20;
    if (cudaMalloc(&c->cublas_ws, ws) != cudaSuccess || cublasSetWorkspace(c->cublas, c->cublas_ws, ws) != CUBLAS_STATUS_SUCCESS) {
        cudaGetLastError();
        c->graphs_off = 1; // works, without graphs
    }
    if (getenv("LLAMAC_CUDA_NO_GRAPHS")) c->graphs_off = 1; /* for comparisons */
    if (const char *f = getenv("LLAMAC_CUDA_NO_FUSE"))
        c->no_fuse = strcmp(f, "qkv") == 0 ? 1 : strcmp(f, "swiglu") == 0 ? 2 : 3;
    if (const char *a = getenv("LLAMAC_CUDA_ATTN")) c->attn_force = strcmp(a, "tiled") == 0 ? 1 : strcmp(a, "split") == 0 ? -1 : 0;
    c->pinned_bytes = (size_t)4 << 20;
    for (int i = 0; i < 2; i++)
        if (cudaMallocHost(&c->pinned[i], c->pinned_bytes) != cudaSuccess ||
            cudaEventCreateWithFlags(&c->pinned_done[i], cudaEventDisableTiming) != cudaSuccess) {
            cudaGetLastError(); /* without staging, large copies go pageable: slower, still correct */
            if (c->pinned[0]) cudaFreeHost(c->pinned[0]);
            if (c->pinned[1]) cudaFreeHost(c->pinned[1]);
            c->pinned[0] = c->pinned[1] = nullptr;
            break;
        }
    c->mm.cublas = c->cublas;
    c->status = LLM_OK;
    return &c->base;
}

extern "C" double llm_cuda_copy_bandwidth(void) {
    const size_t bytes = (size_t)1 << 30;
    void *a = nullptr, *b = nullptr;
    cudaEvent_t t0, t1;
    double best = 0;
    if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess ||
        cudaEventCreate(&t0) != cudaSuccess || cudaEventCreate(&t1) != cudaSuccess) {
        cudaGetLastError();
        cudaFree(a);
        cudaFree(b);
        return 0;
    }
    cudaMemset(a, 1, bytes);
    for (int i = 0; i < 6; i++) { // the first is a warm-up
        cudaEventRecord(t0);
        cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
        cudaEventRecord(t1);
        cudaEventSynchronize(t1);
        float ms = 0;
        cudaEventElapsedTime(&ms, t0, t1);
        const double bw = 2.0 * (double)bytes / (ms * 1e-3);
        if (i > 0 && bw > best) best = bw;
    }
    cudaEventDestroy(t0);
    cudaEventDestroy(t1);
    cudaFree(a);
    cudaFree(b);
    cudaGetLastError();
    return best;
}

// ---- the weight store ------------------------------------------------------------------------------

struct llm_cuda_store {
    char *base;
    uint64_t size, used;
    cudaStream_t stream;
    char *pinned[2]; // double-buffered staging: the CPU fills one while the other is copied
    cudaEvent_t done[2];
    int cur;
};

namespace {
const size_t STAGE = (size_t)64 << 20;

llm_status store_err(char *err, size_t cap, const char *what, cudaError_t e) {
    snprintf(err, cap, "cuda: %s: %s", what, cudaGetErrorString(e));
    cudaGetLastError();
    return e == cudaErrorMemoryAllocation ? LLM_ERR_OUT_OF_MEMORY : LLM_ERR_BACKEND;
}
} // namespace

extern "C" llm_status llm_cuda_store_create(uint64_t total_bytes, llm_cuda_store **out, char *err, size_t cap) {
    *out = nullptr;
    if (!llm_cuda_probe(err, cap)) return LLM_ERR_BACKEND_UNAVAILABLE;
    llm_cuda_store *st = static_cast<llm_cuda_store *>(calloc(1, sizeof(llm_cuda_store)));
    if (!st) return snprintf(err, cap, "out of memory"), LLM_ERR_OUT_OF_MEMORY;
    cudaError_t e = cudaMalloc(&st->base, total_bytes ? total_bytes : 1);
    if (e != cudaSuccess) {
        char what[96];
        snprintf(what, sizeof what, "cudaMalloc of %.2f GiB for the weights", (double)total_bytes / (1 << 30));
        llm_status s = store_err(err, cap, what, e);
        free(st);
        return s;
    }
    st->size = total_bytes;
    if ((e = cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking)) != cudaSuccess ||
        (e = cudaMallocHost(&st->pinned[0], STAGE)) != cudaSuccess || (e = cudaMallocHost(&st->pinned[1], STAGE)) != cudaSuccess ||
        (e = cudaEventCreateWithFlags(&st->done[0], cudaEventDisableTiming)) != cudaSuccess ||
        (e = cudaEventCreateWithFlags(&st->done[1], cudaEventDisableTiming)) != cudaSuccess) {
        llm_status s = store_err(err, cap, "weight staging", e);
        llm_cuda_store_free(st);
        return s;
    }
    *out = st;
    return LLM_OK;
}

extern "C" llm_status llm_cuda_store_put(llm_cuda_store *st, const void *host, size_t bytes, const void **dev, char *err,
                                         size_t cap) {
    const uint64_t at = (st->used + 255) & ~(uint64_t)255;
    if (at + bytes > st->size) return snprintf(err, cap, "cuda: weight store overflow"), LLM_ERR_INTERNAL;
    const char *src = static_cast<const char *>(host);
    for (size_t off = 0; off < bytes;) {
        const size_t n = bytes - off < STAGE ? bytes - off : STAGE;
        cudaError_t e = cudaEventSynchronize(st->done[st->cur]); // this buffer's previous copy has landed
        if (e != cudaSuccess) return store_err(err, cap, "weight upload", e);
        memcpy(st->pinned[st->cur], src + off, n); // reads the mmap: page faults happen here, overlapped
        e = cudaMemcpyAsync(st->base + at + off, st->pinned[st->cur], n, cudaMemcpyHostToDevice, st->stream);
        if (e == cudaSuccess) e = cudaEventRecord(st->done[st->cur], st->stream);
        if (e != cudaSuccess) return store_err(err, cap, "weight upload", e);
        st->cur ^= 1;
        off += n;
    }
    st->used = at + bytes;
    *dev = st->base + at;
    return LLM_OK;
}

extern "C" llm_status llm_cuda_store_finish(llm_cuda_store *st, char *err, size_t cap) {
    cudaError_t e = cudaStreamSynchronize(st->stream);
    return e == cudaSuccess ? LLM_OK : store_err(err, cap, "weight upload", e);
}

extern "C" void llm_cuda_store_free(llm_cuda_store *st) {
    if (!st) return;
    if (st->stream) cudaStreamSynchronize(st->stream);
    cudaFree(st->base);
    for (int i = 0; i < 2; i++) {
        if (st->pinned[i]) cudaFreeHost(st->pinned[i]);
        if (st->done[i]) cudaEventDestroy(st->done[i]);
    }
    if (st->stream) cudaStreamDestroy(st->stream);
    free(st);
}
