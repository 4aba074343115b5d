/* The decoder forward pass over a ragged batch, written only in backend ops. */
#ifndef LLM_MODEL_FORWARD_H
#define LLM_MODEL_FORWARD_H

#include "backend/backend.h"
#include "core/error.h"
#include "kv/kv_cache.h"
#include "model/hparams.h"
#include "model/weights.h"

typedef struct llm_forward {
    const llm_hparams *hp;
    const llm_weights *w;
    llm_backend *be;
    const llm_kv_cache *kv;
    int32_t max_tokens;   /* rows of one pass */
    int32_t logits_chunk; /* rows of logits computed at once */
    float *inv_freq;      /* host, [head_dim/2] */
    void *arena;          /* backend memory holding every activation buffer below */
    size_t arena_bytes;
    float *x;                   /* [T][D]      residual stream */
    float *xn;                  /* [T][D]      normed input of a block / block output */
    float *q;                   /* [T][H*hd] */
    float *k, *v;               /* [T][KV*hd] */
    float *attn;                /* [T][H*hd] */
    float *gate, *up;           /* [T][F] */
    float *rope_cos, *rope_sin; /* [T][hd/2] */
    float *rope_cos_q,
        *rope_sin_q;             /* [T][hd/2] the query's table: rope_cos/sin unless the test switch is on */
    int32_t *q_positions;        /* host [T], only for the test switch */
    int debug_q_position_offset; /* TEST ONLY: rotate queries at pos + offset (keys at pos) */
    float *logits;               /* [logits_chunk][V] */
} llm_forward;

/* Activation memory for passes of up to max_tokens rows. */
size_t llm_forward_arena_bytes(const llm_hparams *hp, int32_t max_tokens, int32_t logits_chunk);

llm_status llm_forward_init(llm_forward *f, const llm_hparams *hp, const llm_weights *w, llm_backend *be,
                            const llm_kv_cache *kv, int32_t max_tokens, int32_t logits_chunk, llm_error *err);
void llm_forward_release(llm_forward *f);

/* Runs the batch (T <= max_tokens rows), writing K/V of every row into the cache, and the logits of
 * the rows listed in logit_rows (n_logit_rows of them, in that order) to logits_out (host memory,
 * [n_logit_rows][V]). */
llm_status llm_forward_run(llm_forward *f, const llm_batch *b, const int32_t *logit_rows,
                           int32_t n_logit_rows, float *logits_out, llm_error *err);

/* The same pass, but for the rows listed in rows (n_rows <= T of them, in that order) it writes the
 * final-RMSNormed hidden states — the input of lm_head, HF's last_hidden_state — to hidden_out (host
 * memory, [n_rows][D]) instead of logits. K/V of every row are written as by llm_forward_run. */
llm_status llm_forward_run_hidden(llm_forward *f, const llm_batch *b, const int32_t *rows, int32_t n_rows,
                                  float *hidden_out, llm_error *err);

#endif
