/* llm_embed: pooled, L2-normalised final hidden states of a token sequence (OpenAI /v1/embeddings).
 *
 * The tokens run through a temporary sequence with llm_engine_step_hidden (llm_step writing the
 * final-normed hidden rows instead of logits), so block reservation, chunking into forward passes,
 * rollback and prefix caching are the engine's own. Everything that can be refused is checked before
 * the sequence exists, so a failure leaves the engine as it was. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "model/model_internal.h"

static llm_status check_embed_args(llm_engine *e, const int32_t *tokens, size_t n_tokens, llm_pooling pooling,
                                   const float *out, size_t out_cap, const llm_engine_info *info, int32_t D,
                                   int32_t V) {
    if (n_tokens == 0 || !tokens)
        return llm_engine_set_error(e, LLM_ERR_INVALID_ARGUMENT, "an embedding needs at least one token");
    if (pooling != LLM_POOL_MEAN && pooling != LLM_POOL_LAST)
        return llm_engine_set_error(e, LLM_ERR_INVALID_ARGUMENT,
                                    "unknown pooling %d (LLM_POOL_MEAN or LLM_POOL_LAST)", (int)pooling);
    if (!out || out_cap < (size_t)D)
        return llm_engine_set_error(e, LLM_ERR_BUFFER_TOO_SMALL,
                                    "embedding buffer holds %zu floats, %d (n_embd) needed",
                                    out ? out_cap : 0, D);
    if (n_tokens > (size_t)info->n_ctx)
        return llm_engine_set_error(e, LLM_ERR_CONTEXT_FULL,
                                    "%zu tokens to embed exceed the context of %d tokens", n_tokens,
                                    info->n_ctx);
    for (size_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return llm_engine_set_error(e, LLM_ERR_INVALID_ARGUMENT,
                                        "token %d at index %zu is outside the vocabulary [0, %d)", tokens[i],
                                        i, V);
    const int32_t bs = info->kv_block_size;
    const int64_t need = ((int64_t)n_tokens + bs - 1) / bs;
    const int32_t avail = info->kv_blocks_total - info->kv_blocks_used; /* free + cached */
    if (need > avail)
        return llm_engine_set_error(
            e, LLM_ERR_KV_FULL,
            "KV cache full: embedding %zu tokens needs %lld blocks of %d tokens, %d of %d "
            "are free or cached",
            n_tokens, (long long)need, bs, avail, info->kv_blocks_total);
    if (info->n_seqs >= info->n_seq_max)
        return llm_engine_set_error(
            e, LLM_ERR_TOO_MANY_SEQUENCES,
            "an embedding needs a temporary sequence, and all %d sequence slots are in use", info->n_seq_max);
    return LLM_OK;
}

/* Runs the tokens through seq; sum[D] receives the sum (MEAN) or the last row (LAST) of the final
 * hidden states, in double. rows: host scratch of chunk * D floats. */
static llm_status run_hidden(llm_engine *e, llm_seq_id seq, const int32_t *tokens, size_t n_tokens,
                             llm_pooling pooling, int32_t chunk, float *rows, int32_t D, double *sum) {
    if (pooling == LLM_POOL_LAST) { /* one step; the engine splits it into passes, one row comes out */
        llm_step_item it = {seq, tokens, (int32_t)n_tokens, LLM_LOGITS_LAST, 0};
        llm_status st = llm_engine_step_hidden(e, &it, 1, rows, (size_t)D, NULL);
        if (st != LLM_OK) return st;
        for (int32_t d = 0; d < D; d++) sum[d] = rows[d];
        return LLM_OK;
    }
    for (int32_t d = 0; d < D; d++) sum[d] = 0;
    for (size_t t0 = 0; t0 < n_tokens; t0 += (size_t)chunk) { /* one pass per chunk: its rows fit rows[] */
        const int32_t n = n_tokens - t0 < (size_t)chunk ? (int32_t)(n_tokens - t0) : chunk;
        llm_step_item it = {seq, tokens + t0, n, LLM_LOGITS_ALL, 0};
        llm_status st = llm_engine_step_hidden(e, &it, 1, rows, (size_t)n * (size_t)D, NULL);
        if (st != LLM_OK) return st;
        for (int32_t r = 0; r < n; r++)
            for (int32_t d = 0; d < D; d++) sum[d] += rows[(size_t)r * D + d];
    }
    for (int32_t d = 0; d < D; d++) sum[d] /= (double)n_tokens;
    return LLM_OK;
}

llm_status llm_embed(llm_engine *e, const int32_t *tokens, size_t n_tokens, llm_pooling pooling, float *out,
                     size_t out_cap, size_t *out_len) {
    if (!e) return LLM_ERR_INVALID_ARGUMENT;
    const llm_hparams *hp = &llm_engine_model(e)->hp;
    const int32_t D = hp->n_embd;
    if (out_len) *out_len = (size_t)D;
    llm_engine_info info;
    llm_engine_get_info(e, &info);
    llm_status st = check_embed_args(e, tokens, n_tokens, pooling, out, out_cap, &info, D, hp->n_vocab);
    if (st != LLM_OK) return st;

    /* Per request, not per token: the hidden rows of one forward pass and the double accumulator. */
    const int32_t chunk = pooling == LLM_POOL_LAST                   ? 1
                          : n_tokens < (size_t)info.max_batch_tokens ? (int32_t)n_tokens
                                                                     : info.max_batch_tokens;
    float *rows = malloc((size_t)chunk * (size_t)D * sizeof *rows);
    double *sum = malloc((size_t)D * sizeof *sum);
    if (!rows || !sum) {
        free(rows);
        free(sum);
        return llm_engine_set_error(e, LLM_ERR_OUT_OF_MEMORY,
                                    "cannot allocate the embedding scratch (%d x %d)", chunk, D);
    }
    llm_seq_id seq = 0;
    st = llm_seq_create(e, &seq);
    if (st == LLM_OK) st = run_hidden(e, seq, tokens, n_tokens, pooling, chunk, rows, D, sum);
    if (seq) llm_seq_free(e, seq); /* its full blocks stay in the prefix cache, as for any sequence */
    free(rows);
    if (st != LLM_OK) {
        free(sum);
        return st;
    }
    double norm2 = 0;
    for (int32_t d = 0; d < D; d++) norm2 += sum[d] * sum[d];
    if (!isfinite(norm2)) {
        free(sum);
        return llm_engine_set_error(e, LLM_ERR_BACKEND, "the pooled hidden state is not finite");
    }
    const double inv = norm2 > 0 ? 1.0 / sqrt(norm2) : 0.0;
    for (int32_t d = 0; d < D; d++) out[d] = (float)(sum[d] * inv);
    free(sum);
    return LLM_OK;
}
