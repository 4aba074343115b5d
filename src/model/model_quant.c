/* Quantize-at-load: every 2-D weight matrix of a bound model converted to Q8_0 or Q4_K (GGUF's block
 * layouts, src/core/quant.h) into owned memory, so that a safetensors or random-weight model decodes
 * from a quarter to a half of the bytes.
 *
 * Which tensors: the seven matrices of every layer and the token embedding (llama.cpp quantizes
 * token_embd too; with tied embeddings it is also the output projection, the largest matrix of small
 * models, so leaving it in bf16 would give up much of the gain), and an untied output matrix. Norms
 * and biases are vectors read once per token: they stay as they are. A matrix whose rows are not a
 * whole number of blocks falls back to Q8_0 (32-weight blocks) when that fits, else keeps its dtype,
 * as llama.cpp's quantizer falls back. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/fileutil.h"
#include "core/quant.h"
#include "core/threadpool.h"
#include "model/model_internal.h"

static llm_dtype target_dtype(llm_quantize q) {
    return q == LLM_QUANTIZE_Q4_K ? LLM_DTYPE_Q4_K : LLM_DTYPE_Q8_0;
}

/* The dtype tensor t gets when quantizing to want. */
static llm_dtype quantized_dtype(const llm_tensor *t, llm_dtype want) {
    if (llm_dtype_is_quant(t->dtype)) return t->dtype;
    if (t->cols % llm_dtype_block_elems(want) == 0) return want;
    if (t->cols % llm_dtype_block_elems(LLM_DTYPE_Q8_0) == 0) return LLM_DTYPE_Q8_0;
    return t->dtype;
}

/* The matrices that get quantized, each distinct tensor once (a tied output is not listed). */
static size_t list_matrices(llm_model *m, llm_tensor **out) {
    size_t n = 0;
    llm_weights *w = &m->w;
    out[n++] = &w->tok_embd;
    if (!m->hp.tied_embeddings) out[n++] = &w->output;
    for (int l = 0; l < m->hp.n_layer; l++) {
        llm_layer_weights *L = &w->layers[l];
        llm_tensor *t[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) out[n++] = t[i];
    }
    return n;
}

static size_t tensor_bytes(const llm_tensor *t) {
    return (size_t)(t->rows > 0 ? t->rows : 1) * llm_dtype_row_bytes(t->dtype, t->cols);
}

void llm_model_recount_bytes(llm_model *m) {
    m->weight_bytes = 0;
    memset(m->bytes_by_dtype, 0, sizeof m->bytes_by_dtype);
    llm_weights *w = &m->w;
    const llm_tensor *seen_embd = &w->tok_embd;
    const llm_tensor *top[] = {&w->tok_embd, &w->output_norm, &w->output};
    for (size_t i = 0; i < 3; i++) {
        const llm_tensor *t = top[i];
        if (!t->data || (i == 2 && t->data == seen_embd->data)) continue; /* tied: counted once */
        m->weight_bytes += tensor_bytes(t);
        m->bytes_by_dtype[t->dtype] += tensor_bytes(t);
    }
    for (int l = 0; l < m->hp.n_layer; l++) {
        const llm_layer_weights *L = &w->layers[l];
        const llm_tensor *t[] = {&L->attn_norm, &L->wq,   &L->wk,     &L->wv,     &L->wo,     &L->bq,
                                 &L->bk,        &L->bv,   &L->bo,     &L->q_norm, &L->k_norm, &L->ffn_norm,
                                 &L->w_gate,    &L->w_up, &L->w_down, &L->b_gate, &L->b_up,   &L->b_down};
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
            if (t[i]->data) {
                m->weight_bytes += tensor_bytes(t[i]);
                m->bytes_by_dtype[t[i]->dtype] += tensor_bytes(t[i]);
            }
    }
}

/* Rows per claim: 64 rows of 2048 Q4_K weights take ~3 ms on one core, so claims cost nothing next to
 * the work, and the threads finish within one chunk of each other. */
#define QUANT_CHUNK_ROWS 64

typedef struct quant_job {
    const llm_tensor *src;
    unsigned char *dst;
    llm_dtype dtype;
    float *scratch;       /* [n_threads][cols] */
    _Atomic int64_t next; /* the next unclaimed row */
} quant_job;

/* Threads claim chunks of rows from a shared counter rather than taking fixed halves: the quantization
 * of a row depends on that row only, so the bytes are the same whoever quantizes it, and on a busy
 * machine a thread that lost its core leaves its rows to the others instead of holding up the load. */
static void quant_task(void *arg, int ith, int nth) {
    (void)nth;
    quant_job *j = arg;
    const int64_t rows = j->src->rows, cols = j->src->cols;
    const size_t in_row = llm_dtype_row_bytes(j->src->dtype, cols),
                 out_row = llm_dtype_row_bytes(j->dtype, cols);
    float *x = j->scratch + (size_t)ith * (size_t)cols;
    for (;;) {
        const int64_t begin = atomic_fetch_add_explicit(&j->next, QUANT_CHUNK_ROWS, memory_order_relaxed);
        if (begin >= rows) break;
        const int64_t end = begin + QUANT_CHUNK_ROWS < rows ? begin + QUANT_CHUNK_ROWS : rows;
        for (int64_t r = begin; r < end; r++) {
            llm_dequant_row(j->src->dtype, (const unsigned char *)j->src->data + (size_t)r * in_row, x, cols);
            llm_quantize_row(j->dtype, x, j->dst + (size_t)r * out_row, cols);
        }
    }
}

/* The float source of a random-weight model lives in an anonymous mapping: once a tensor is quantized
 * its pages are given back, so building e.g. an 8B model in Q8_0 never holds both copies whole. */
static void release_source(llm_model *m, const llm_tensor *t, size_t bytes) {
    if (!m->weight_block) return;
    const uintptr_t lo = (uintptr_t)m->weight_block, hi = lo + m->weight_block_bytes;
    uintptr_t b = (uintptr_t)t->data, e = b + bytes;
    if (b < lo || e > hi) return;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    b = (b + page - 1) / page * page; /* whole pages inside the tensor only: neighbours stay intact */
    e = e / page * page;
    if (e > b) madvise((void *)b, e - b, MADV_DONTNEED);
}

llm_status llm_model_quantize_weights(llm_model *m, double from, llm_error *err) {
    if (m->params.quantize == LLM_QUANTIZE_NONE) return LLM_OK;
    if (m->params.quantize != LLM_QUANTIZE_Q8_0 && m->params.quantize != LLM_QUANTIZE_Q4_K)
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "unknown quantize value %d", (int)m->params.quantize);
    const llm_dtype want = target_dtype(m->params.quantize);
    llm_tensor **mats = malloc(((size_t)m->hp.n_layer * 7 + 2) * sizeof *mats);
    if (!mats) return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    const size_t n = list_matrices(m, mats);

    /* the footprint after quantization, checked against the limit before anything is allocated */
    uint64_t after = m->weight_bytes, work = 0;
    int64_t max_cols = 1;
    for (size_t i = 0; i < n; i++) {
        llm_tensor q = *mats[i];
        q.dtype = quantized_dtype(mats[i], want);
        if (q.dtype == mats[i]->dtype) continue;
        after = after - tensor_bytes(mats[i]) + tensor_bytes(&q);
        work += tensor_bytes(mats[i]);
        if (q.cols > max_cols) max_cols = q.cols;
    }
    llm_status st = LLM_OK;
    if (after > m->memory_limit) {
        char a[32], b[32];
        st =
            llm_fail(err, LLM_ERR_MEMORY_LIMIT, "quantized weights need %s, more than the memory limit of %s",
                     llm_format_bytes(after, a, sizeof a), llm_format_bytes(m->memory_limit, b, sizeof b));
    }
    const int nt = m->n_threads > 0 ? m->n_threads : 1;
    llm_threadpool *pool = st == LLM_OK && nt > 1 ? llm_threadpool_create(nt) : NULL;
    const int used_threads = pool ? nt : 1;
    float *scratch = st == LLM_OK ? malloc((size_t)used_threads * (size_t)max_cols * sizeof *scratch) : NULL;
    void **grown = st == LLM_OK ? realloc(m->owned, (size_t)(m->n_owned + (int)n) * sizeof *grown) : NULL;
    if (grown) m->owned = grown;
    if (st == LLM_OK && (!scratch || !grown)) st = llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    uint64_t done = 0;
    for (size_t i = 0; i < n && st == LLM_OK; i++) {
        llm_tensor *t = mats[i];
        const llm_dtype dt = quantized_dtype(t, want);
        if (dt == t->dtype) continue;
        llm_tensor q = *t;
        q.dtype = dt;
        const size_t bytes = tensor_bytes(&q), src_bytes = tensor_bytes(t);
        void *dst = NULL;
        if (posix_memalign(&dst, LLM_ARENA_ALIGN, bytes ? bytes : 1) != 0) {
            char a[32];
            st = llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "cannot allocate %s to quantize tensor '%s'",
                          llm_format_bytes(bytes, a, sizeof a), t->name ? t->name : "?");
            break;
        }
        m->owned[m->n_owned++] = dst;
        quant_job job = {t, dst, dt, scratch, 0};
        if (pool)
            llm_threadpool_run(pool, quant_task, &job);
        else
            quant_task(&job, 0, 1);
        release_source(m, t, src_bytes);
        t->data = dst;
        t->dtype = dt;
        done += src_bytes;
        llm_model_progress(m, from + (1.0 - from) * (double)done / (double)(work ? work : 1));
    }
    llm_threadpool_free(pool);
    free(scratch);
    free(mats);
    if (st != LLM_OK) return st;
    if (m->hp.tied_embeddings) m->w.output = m->w.tok_embd;
    llm_model_recount_bytes(m);
    char a[32];
    llm_log(&m->log, LLM_LOG_INFO, "quantized the weight matrices to %s: %s of weights", llm_dtype_name(want),
            llm_format_bytes(m->weight_bytes, a, sizeof a));
    return LLM_OK;
}
