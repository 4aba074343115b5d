#include "engine/gen_text.h"

#include <stdlib.h>
#include <string.h>

llm_status llm_gen_text_init(llm_gen_text *g, llm_tokenizer *tok, const char *const *stops, size_t n_stops) {
    memset(g, 0, sizeof *g);
    llm_stop_matcher_init(&g->stop, stops, n_stops);
    g->piece_cap = 256;
    g->piece = malloc(g->piece_cap);
    if (!g->piece) return LLM_ERR_OUT_OF_MEMORY;
    if (!tok) return n_stops ? LLM_ERR_INVALID_ARGUMENT : LLM_OK; /* tokens only, no text */
    return llm_detok_stream_create(tok, 0, &g->stream);
}

void llm_gen_text_free(llm_gen_text *g) {
    llm_detok_stream_free(g->stream);
    llm_stop_matcher_free(&g->stop);
    llm_strbuf_free(&g->released);
    free(g->piece);
    memset(g, 0, sizeof *g);
}

/* Feeds the stream (token >= 0) or flushes it (token < 0) into g->piece; returns its length. */
static llm_status detok(llm_gen_text *g, int32_t token, size_t *len) {
    if (!g->stream) { /* a model without a tokenizer: tokens only */
        *len = 0;
        g->piece[0] = '\0';
        return LLM_OK;
    }
    for (;;) {
        llm_status st = token >= 0 ? llm_detok_stream_feed(g->stream, token, g->piece, g->piece_cap, len)
                                   : llm_detok_stream_flush(g->stream, g->piece, g->piece_cap, len);
        if (st != LLM_ERR_BUFFER_TOO_SMALL) return st;
        char *bigger = realloc(g->piece, *len + 1); /* rare: a piece longer than any so far */
        if (!bigger) return LLM_ERR_OUT_OF_MEMORY;
        g->piece = bigger;
        g->piece_cap = *len + 1;
    }
}

static llm_status release(llm_gen_text *g, const llm_strbuf *from) {
    if (from->len && llm_strbuf_append(&g->released, from->data, from->len) != 0)
        return LLM_ERR_OUT_OF_MEMORY;
    return LLM_OK;
}

llm_status llm_gen_text_push(llm_gen_text *g, int32_t token, int *stopped) {
    *stopped = 0;
    llm_strbuf_clear(&g->released);
    size_t len = 0;
    llm_status st = detok(g, token, &len);
    if (st != LLM_OK) return st;
    int hit = llm_stop_matcher_push(&g->stop, g->piece, len);
    if (hit < 0) return LLM_ERR_OUT_OF_MEMORY;
    *stopped = hit;
    return release(g, &g->stop.out);
}

llm_status llm_gen_text_finish(llm_gen_text *g) {
    llm_strbuf_clear(&g->released);
    size_t len = 0;
    llm_status st = detok(g, -1, &len);
    if (st != LLM_OK) return st;
    /* text completed by the flush may still finish a stop string */
    int hit = llm_stop_matcher_push(&g->stop, g->piece, len);
    if (hit < 0) return LLM_ERR_OUT_OF_MEMORY;
    if ((st = release(g, &g->stop.out)) != LLM_OK) return st;
    if (hit) return LLM_OK;
    llm_stop_matcher_finish(&g->stop);
    return release(g, &g->stop.out);
}
