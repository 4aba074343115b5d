/* One forward pass of a Llama / Qwen2 / Qwen3 decoder over a ragged batch of T token rows.
 *
 *   x = embed(tokens)
 *   for each layer:
 *     h = rmsnorm(x);  q, k, v = h Wq (+bq), h Wk (+bk), h Wv (+bv)
 *       (every "x += ...; h = rmsnorm(x)" runs as one fused add_rmsnorm op)
 *     [Qwen3] q, k = rmsnorm per head (q_norm, k_norm)
 *     q, k = rope(q, k, positions);  store k, v in the paged KV cache
 *     x += attention(q, cache) Wo (+bo)
 *     h = rmsnorm(x);  x += (silu(h Wgate) * (h Wup)) Wdown
 *   logits = rmsnorm(x) Wlm_head   (only for the rows that want them)
 *   (or, llm_forward_run_hidden: rmsnorm(x) itself, the final hidden states, for embeddings)
 *
 * D = hidden size, H / KV = query / key-value heads, hd = head dim, F = FFN size, V = vocabulary. */
#include "model/forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"

static size_t buf_bytes(size_t floats) {
    return llm_align_up(floats * sizeof(float), LLM_ARENA_ALIGN);
}

size_t llm_forward_arena_bytes(const llm_hparams *hp, int32_t max_tokens, int32_t logits_chunk) {
    const size_t T = (size_t)max_tokens, D = (size_t)hp->n_embd, QD = (size_t)hp->n_head * hp->head_dim,
                 KVD = (size_t)hp->n_head_kv * hp->head_dim, F = (size_t)hp->n_ff,
                 half = (size_t)hp->head_dim / 2;
    return 2 * buf_bytes(T * D) + 2 * buf_bytes(T * QD) + 2 * buf_bytes(T * KVD) + 2 * buf_bytes(T * F) +
           4 * buf_bytes(T * half) + buf_bytes((size_t)logits_chunk * (size_t)hp->n_vocab);
}

llm_status llm_forward_init(llm_forward *f, const llm_hparams *hp, const llm_weights *w, llm_backend *be,
                            const llm_kv_cache *kv, int32_t max_tokens, int32_t logits_chunk,
                            llm_error *err) {
    memset(f, 0, sizeof *f);
    f->hp = hp;
    f->w = w;
    f->be = be;
    f->kv = kv;
    f->max_tokens = max_tokens;
    f->logits_chunk = logits_chunk;
    const size_t half = (size_t)hp->head_dim / 2;
    f->inv_freq = malloc(half * sizeof *f->inv_freq);
    f->q_positions = malloc((size_t)max_tokens * sizeof *f->q_positions);
    double *inv = malloc(half * sizeof *inv);
    f->arena_bytes = llm_forward_arena_bytes(hp, max_tokens, logits_chunk);
    f->arena = be->ops->alloc(be, f->arena_bytes);
    if (!f->inv_freq || !f->q_positions || !inv || !f->arena) {
        free(inv);
        llm_forward_release(f);
        return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes of activation memory",
                        f->arena_bytes);
    }
    llm_rope_inv_freq(hp, inv);
    for (size_t i = 0; i < half; i++) f->inv_freq[i] = (float)inv[i];
    free(inv);

    llm_arena a = {f->arena, f->arena_bytes, 0, 0};
    const size_t T = (size_t)max_tokens, D = (size_t)hp->n_embd, QD = (size_t)hp->n_head * hp->head_dim,
                 KVD = (size_t)hp->n_head_kv * hp->head_dim, F = (size_t)hp->n_ff;
    f->x = llm_arena_alloc(&a, T * D * sizeof(float));
    f->xn = llm_arena_alloc(&a, T * D * sizeof(float));
    f->q = llm_arena_alloc(&a, T * QD * sizeof(float));
    f->attn = llm_arena_alloc(&a, T * QD * sizeof(float));
    f->k = llm_arena_alloc(&a, T * KVD * sizeof(float));
    f->v = llm_arena_alloc(&a, T * KVD * sizeof(float));
    f->gate = llm_arena_alloc(&a, T * F * sizeof(float));
    f->up = llm_arena_alloc(&a, T * F * sizeof(float));
    f->rope_cos = llm_arena_alloc(&a, T * half * sizeof(float));
    f->rope_sin = llm_arena_alloc(&a, T * half * sizeof(float));
    f->rope_cos_q = llm_arena_alloc(&a, T * half * sizeof(float));
    f->rope_sin_q = llm_arena_alloc(&a, T * half * sizeof(float));
    f->logits = llm_arena_alloc(&a, (size_t)logits_chunk * (size_t)hp->n_vocab * sizeof(float));
    LLM_ASSERT(f->logits && "arena sized by llm_forward_arena_bytes");
    return LLM_OK;
}

void llm_forward_release(llm_forward *f) {
    if (f->arena) f->be->ops->release(f->be, f->arena);
    free(f->inv_freq);
    free(f->q_positions);
    memset(f, 0, sizeof *f);
}

static const llm_tensor *opt(const llm_tensor *t) {
    return t->data ? t : NULL;
}

/* On entry f->xn holds rmsnorm(x) with this layer's attn_norm; on exit f->x is the layer's output and
 * f->xn its norm with `next_norm` (the next layer's attn_norm), or f->xn is scratch when next_norm is
 * NULL (the last layer). */
static void layer_forward(llm_forward *f, const llm_layer_weights *L, int il, const llm_batch *b,
                          const float *cos_q, const float *sin_q, const llm_tensor *next_norm) {
    const llm_hparams *hp = f->hp;
    llm_backend *be = f->be;
    const llm_backend_ops *op = be->ops;
    const int T = b->n_tokens, D = hp->n_embd, H = hp->n_head, KV = hp->n_head_kv, hd = hp->head_dim,
              F = hp->n_ff;
    const float eps = (float)hp->rms_norm_eps;
    const llm_kv_view kv = llm_kv_layer(f->kv, il);

    /* attention block (xn[T][D] = rmsnorm(x) already) */
    { /* q[T][H*hd], k[T][KV*hd], v[T][KV*hd]: three projections of xn, in one op */
        float *const outs[3] = {f->q, f->k, f->v};
        const llm_tensor *const ws[3] = {&L->wq, &L->wk, &L->wv};
        const llm_tensor *const bs[3] = {opt(&L->bq), opt(&L->bk), opt(&L->bv)};
        if (L->wq.dtype == L->wk.dtype && L->wq.dtype == L->wv.dtype)
            op->matmul_multi(be, 3, outs, f->xn, ws, bs, T);
        else
            for (int i = 0; i < 3; i++) op->matmul(be, outs[i], f->xn, ws[i], bs[i], T);
    }
    if (hp->qk_norm) {                                   /* per-head norms, before RoPE */
        op->rmsnorm(be, f->q, f->q, &L->q_norm, T * H, hd, eps);
        op->rmsnorm(be, f->k, f->k, &L->k_norm, T * KV, hd, eps);
    }
    op->rope(be, f->q, T, H, hd, cos_q, sin_q, hp->rope_interleaved);
    op->rope(be, f->k, T, KV, hd, f->rope_cos, f->rope_sin, hp->rope_interleaved);
    op->kv_write(be, &kv, f->k, f->v, b);
    op->attention(be, f->attn, f->q, &kv, b, H, (float)(1.0 / sqrt((double)hd))); /* attn[T][H*hd] */
    op->matmul(be, f->xn, f->attn, &L->wo, opt(&L->bo), T);                       /* xn[T][D] */
    /* x[T][D] += attention output; xn[T][D] = rmsnorm(x) */
    op->add_rmsnorm(be, f->xn, f->x, f->xn, &L->ffn_norm, T, D, eps);

    /* feed-forward block */
    /* gate[T][F] = silu(xn Wgate) * (xn Wup)   (up[T][F]: scratch) */
    if (L->w_gate.dtype == L->w_up.dtype) {
        op->matmul_swiglu(be, f->gate, f->up, f->xn, &L->w_gate, opt(&L->b_gate), &L->w_up, opt(&L->b_up), T);
    } else {
        op->matmul(be, f->gate, f->xn, &L->w_gate, opt(&L->b_gate), T);
        op->matmul(be, f->up, f->xn, &L->w_up, opt(&L->b_up), T);
        op->swiglu(be, f->gate, f->gate, f->up, (size_t)T * F);
    }
    op->matmul(be, f->xn, f->gate, &L->w_down, opt(&L->b_down), T); /* xn[T][D] */
    if (next_norm) /* x[T][D] += ffn output; xn[T][D] = rmsnorm(x) for the next layer */
        op->add_rmsnorm(be, f->xn, f->x, f->xn, next_norm, T, D, eps);
    else
        op->add(be, f->x, f->xn, (size_t)T * D); /* x[T][D] += ffn output */
}

/* Embedding and every layer: leaves the residual stream of all T rows in f->x (and their K/V in the
 * cache). */
static void run_layers(llm_forward *f, const llm_batch *b) {
    const llm_hparams *hp = f->hp;
    llm_backend *be = f->be;
    const llm_backend_ops *op = be->ops;
    const int T = b->n_tokens;
    LLM_ASSERT(T > 0 && T <= f->max_tokens);

    if (op->begin_batch) op->begin_batch(be, b);
    op->embed(be, f->x, &f->w->tok_embd, b->tokens, T); /* x[T][D] */
    op->rope_table(be, f->rope_cos, f->rope_sin, b->positions, T, f->inv_freq,
                   hp->head_dim / 2); /* [T][hd/2] */
    const float *cos_q = f->rope_cos, *sin_q = f->rope_sin;
    if (f->debug_q_position_offset) { /* test-only: a query/key position mismatch */
        for (int t = 0; t < T; t++) f->q_positions[t] = b->positions[t] + f->debug_q_position_offset;
        op->rope_table(be, f->rope_cos_q, f->rope_sin_q, f->q_positions, T, f->inv_freq, hp->head_dim / 2);
        cos_q = f->rope_cos_q, sin_q = f->rope_sin_q;
    }
    const llm_layer_weights *layers = f->w->layers;
    op->rmsnorm(be, f->xn, f->x, &layers[0].attn_norm, T, hp->n_embd, (float)hp->rms_norm_eps); /* xn[T][D] */
    for (int il = 0; il < hp->n_layer; il++)
        layer_forward(f, &layers[il], il, b, cos_q, sin_q,
                      il + 1 < hp->n_layer ? &layers[il + 1].attn_norm : NULL);
}

/* The backend's sticky status after a pass. */
static llm_status pass_status(llm_forward *f, llm_error *err) {
    char msg[256];
    llm_status st = f->be->ops->status(f->be, msg, sizeof msg);
    if (st != LLM_OK) return llm_fail(err, st, "%s", msg);
    return LLM_OK;
}

llm_status llm_forward_run(llm_forward *f, const llm_batch *b, const int32_t *logit_rows,
                           int32_t n_logit_rows, float *logits_out, llm_error *err) {
    const llm_hparams *hp = f->hp;
    llm_backend *be = f->be;
    const llm_backend_ops *op = be->ops;
    const int D = hp->n_embd, V = hp->n_vocab;
    run_layers(f, b);

    /* logits, a chunk of rows at a time: rows gathered, final-normed, projected, copied out */
    for (int32_t r0 = 0; r0 < n_logit_rows; r0 += f->logits_chunk) {
        const int n = n_logit_rows - r0 < f->logits_chunk ? n_logit_rows - r0 : f->logits_chunk;
        op->get_rows(be, f->xn, f->x, logit_rows + r0, n, D); /* xn[n][D] */
        op->rmsnorm(be, f->xn, f->xn, &f->w->output_norm, n, D, (float)hp->rms_norm_eps);
        op->matmul(be, f->logits, f->xn, &f->w->output, NULL, n); /* logits[n][V] */
        op->to_host(be, logits_out + (size_t)r0 * V, f->logits, (size_t)n * V);
    }
    return pass_status(f, err);
}

llm_status llm_forward_run_hidden(llm_forward *f, const llm_batch *b, const int32_t *rows, int32_t n_rows,
                                  float *hidden_out, llm_error *err) {
    const llm_hparams *hp = f->hp;
    llm_backend *be = f->be;
    const llm_backend_ops *op = be->ops;
    const int D = hp->n_embd;
    LLM_ASSERT(n_rows >= 0 && n_rows <= b->n_tokens);
    run_layers(f, b);
    /* the logits path up to lm_head: rows gathered, final-normed (same ops, same numbers), copied out;
     * xn holds max_tokens rows, so all n_rows fit at once */
    if (n_rows > 0) {
        op->get_rows(be, f->xn, f->x, rows, n_rows, D); /* xn[n][D] */
        op->rmsnorm(be, f->xn, f->xn, &f->w->output_norm, n_rows, D, (float)hp->rms_norm_eps);
        op->to_host(be, hidden_out, f->xn, (size_t)n_rows * D);
    }
    return pass_status(f, err);
}
