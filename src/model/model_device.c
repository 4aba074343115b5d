/* Puts a model's weights where its backend computes. The CPU reads them straight from the file's
 * mmap; the CUDA backend gets one device copy of every tensor, uploaded once here through pinned
 * staging (progress reported), so that engines never copy weights. */
#include <stdio.h>
#include <string.h>

#include "backend/cuda/cuda_backend.h"
#include "core/fileutil.h"
#include "core/quant.h"
#include "model/model_internal.h"

/* Calls fn on every bound tensor (data != NULL) of m, in a fixed order. */
static void each_tensor(llm_model *m, void (*fn)(llm_tensor *t, void *user), void *user) {
    llm_weights *w = &m->w;
    llm_tensor *top[] = {&w->tok_embd, &w->output_norm, &w->output};
    for (size_t i = 0; i < 3; i++)
        if (top[i]->data) fn(top[i], user);
    for (int l = 0; l < m->hp.n_layer; l++) {
        llm_layer_weights *L = &w->layers[l];
        llm_tensor *t[] = {&L->attn_norm, &L->wq,   &L->wk,     &L->wv,     &L->wo,     &L->bq,
                           &L->bk,        &L->bv,   &L->bo,     &L->q_norm, &L->k_norm, &L->ffn_norm,
                           &L->w_gate,    &L->w_up, &L->w_down, &L->b_gate, &L->b_up,   &L->b_down};
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
            if (t[i]->data) fn(t[i], user);
    }
}

static size_t tensor_bytes(const llm_tensor *t) { /* whole rows: also right for block-quantized dtypes */
    return (size_t)(t->rows > 0 ? t->rows : 1) * llm_dtype_row_bytes(t->dtype, t->cols);
}

typedef struct upload {
    llm_model *m;
    llm_cuda_store *store;
    uint64_t total, done;
    const void *last_host, *last_dev; /* tied embeddings: the same host tensor is uploaded once */
    llm_status st;
    char err[256];
} upload;

static void count(llm_tensor *t, void *user) {
    upload *u = user;
    if (t->data == u->last_host) return;
    u->last_host = t->data;
    u->total += (tensor_bytes(t) + 255) & ~(uint64_t)255;
}

static void put(llm_tensor *t, void *user) {
    upload *u = user;
    if (u->st != LLM_OK) return;
    if (t->data == u->last_host) { /* lm_head tied to the embedding */
        t->data = u->last_dev;
        return;
    }
    const void *dev = NULL;
    u->last_host = t->data;
    u->st = llm_cuda_store_put(u->store, t->data, tensor_bytes(t), &dev, u->err, sizeof u->err);
    if (u->st != LLM_OK) return;
    u->last_dev = dev;
    t->data = dev;
    u->done += tensor_bytes(t);
    llm_model_progress(u->m, (double)u->done / (double)(u->total ? u->total : 1));
}

static void find_quantized(llm_tensor *t, void *user) {
    const llm_tensor **first = user;
    if (!*first && llm_dtype_is_quant(t->dtype)) *first = t;
}

llm_status llm_model_place_weights(llm_model *m, llm_error *err) {
    if (m->backend != LLM_BACKEND_CUDA) return LLM_OK;
    /* block-quantized weights have CPU kernels only: auto falls back to the CPU and says why; an
     * explicit request for CUDA is refused */
    const llm_tensor *q = NULL;
    each_tensor(m, find_quantized, &q);
    if (q) {
        if (m->params.backend == LLM_BACKEND_CUDA)
            return llm_fail(err, LLM_ERR_UNSUPPORTED,
                            "backend 'cuda' requested, but the cuda backend has no kernels for %s weights "
                            "(tensor '%s'); use the cpu backend, or unquantized (bf16/f16/f32) weights",
                            llm_dtype_name(q->dtype), q->name ? q->name : "?");
        m->backend = LLM_BACKEND_CPU;
        snprintf(m->backend_reason, sizeof m->backend_reason,
                 "cpu: auto; the cuda backend has no kernels for %s weights (tensor '%s')", llm_dtype_name(q->dtype),
                 q->name ? q->name : "?");
        return LLM_OK;
    }
    upload u = {.m = m, .st = LLM_OK};
    each_tensor(m, count, &u);
    u.last_host = NULL;
    llm_status st = llm_cuda_store_create(u.total, &u.store, u.err, sizeof u.err);
    if (st != LLM_OK) return llm_fail(err, st, "%s", u.err);
    llm_model_progress(m, 0);
    each_tensor(m, put, &u);
    if (u.st == LLM_OK) u.st = llm_cuda_store_finish(u.store, u.err, sizeof u.err);
    if (u.st != LLM_OK) {
        llm_cuda_store_free(u.store);
        return llm_fail(err, u.st, "uploading the weights: %s", u.err);
    }
    m->cuda_store = u.store;
    char b[32];
    llm_log(&m->log, LLM_LOG_INFO, "uploaded %s of weights to the GPU",
            llm_format_bytes(u.total, b, sizeof b));
    return LLM_OK;
}

llm_status llm_model_choose_backend(llm_model *m, llm_backend_kind requested, llm_error *err) {
    char why[160] = "";
    m->backend = LLM_BACKEND_CPU;
    if (requested == LLM_BACKEND_CPU) {
        snprintf(m->backend_reason, sizeof m->backend_reason, "cpu: requested");
        return LLM_OK;
    }
    const int have = llm_cuda_probe(why, sizeof why);
    if (requested == LLM_BACKEND_CUDA) {
        if (!have) return llm_fail(err, LLM_ERR_BACKEND_UNAVAILABLE, "backend 'cuda' requested, but %s", why);
        m->backend = LLM_BACKEND_CUDA;
        snprintf(m->backend_reason, sizeof m->backend_reason, "cuda: requested; %s", why);
        return LLM_OK;
    }
    /* auto */
    if (have && llm_cuda_auto_allowed()) {
        m->backend = LLM_BACKEND_CUDA;
        snprintf(m->backend_reason, sizeof m->backend_reason, "cuda: auto; %s", why);
    } else if (have) {
        snprintf(m->backend_reason, sizeof m->backend_reason,
                 "cpu: auto; %s found, but this CUDA build has not passed the parity gate (make test-cuda)",
                 why);
    } else {
        snprintf(m->backend_reason, sizeof m->backend_reason, "cpu: auto; %s", why);
    }
    return LLM_OK;
}

llm_dtype llm_model_default_kv_dtype(const llm_model *m) {
    /* F32 everywhere for now: the BF16 cache (kv_dtype = BF16, CUDA) halves the bytes, but the split-K
     * decode kernel reading it measured slower on an H100 (8B shape: 7.3 vs 6.6 ms per batch-1 step, no
     * gain at 64 rows), so it stays opt-in until that kernel is reworked for 16-bit rows. */
    (void)m;
    return LLM_DTYPE_F32;
}
