/* Stop strings matched on generated text across token boundaries.
 *
 * Text arrives in pieces (complete UTF-8 from the streaming detokenizer). The matcher releases text
 * as soon as it can no longer be the start of a stop string, holds back the longest tail that still
 * could be, and reports a match with the text before it; nothing after the start of a match is ever
 * released. */
#ifndef LLM_ENGINE_STOP_MATCHER_H
#define LLM_ENGINE_STOP_MATCHER_H

#include <stddef.h>

#include "core/strbuf.h"

typedef struct llm_stop_matcher {
    const char *const *stops; /* borrowed */
    size_t n_stops;
    llm_strbuf held; /* text not yet released */
    llm_strbuf out;  /* what the last push released */
} llm_stop_matcher;

void llm_stop_matcher_init(llm_stop_matcher *m, const char *const *stops, size_t n_stops);
void llm_stop_matcher_free(llm_stop_matcher *m);

/* Appends text. Returns 1 if a stop string is now complete (m->out holds the text before it), else 0
 * (m->out holds what became safe to release). -1 on out of memory. */
int llm_stop_matcher_push(llm_stop_matcher *m, const char *text, size_t len);

/* End of generation without a match: releases everything held into m->out. */
void llm_stop_matcher_finish(llm_stop_matcher *m);

#endif
