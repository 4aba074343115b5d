/* The text side of generation: tokens -> complete UTF-8 (streaming detokenizer) -> stop strings.
 * One per generation; owned by its caller. */
#ifndef LLM_ENGINE_GEN_TEXT_H
#define LLM_ENGINE_GEN_TEXT_H

#include "engine/stop_matcher.h"
#include "llamac.h"

typedef struct llm_gen_text {
    llm_detok_stream *stream;
    llm_stop_matcher stop;
    char *piece;
    size_t piece_cap;
    llm_strbuf released; /* what the last call released */
} llm_gen_text;

/* tok and stops are borrowed for the object's life. tok may be NULL (a model without a tokenizer):
 * tokens then release no text, and stop strings are an LLM_ERR_INVALID_ARGUMENT. */
llm_status llm_gen_text_init(llm_gen_text *g, llm_tokenizer *tok, const char *const *stops, size_t n_stops);
void llm_gen_text_free(llm_gen_text *g);

/* Takes one generated token. *stopped is set when a stop string completed; g->released then holds
 * the text before it and nothing more may be pushed. */
llm_status llm_gen_text_push(llm_gen_text *g, int32_t token, int *stopped);

/* End of generation without a stop: releases everything still held (incomplete UTF-8 as U+FFFD). */
llm_status llm_gen_text_finish(llm_gen_text *g);

#endif
