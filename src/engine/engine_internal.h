/* Engine internals shared with tests (test-only switches live here, not in the public header). */
#ifndef LLM_ENGINE_INTERNAL_H
#define LLM_ENGINE_INTERNAL_H

#include "llamac.h"

/* TEST ONLY: rotates every query at position pos + offset while keys stay at pos — the classic
 * off-by-one between query and key positions. A parity test must fail with offset 1; that is how we
 * know it can fail. (Shifting queries and keys alike would be invisible: RoPE scores depend only on
 * the distance between positions.) */
void llm_engine_debug_set_query_rope_offset(llm_engine *engine, int offset);

/* Blocks currently in a sequence's table (-1 for an unknown id). */
int32_t llm_engine_debug_seq_blocks(const llm_engine *engine, llm_seq_id seq);

/* The model an engine runs. */
llm_model *llm_engine_model(const llm_engine *engine);

/* Records a failure as the engine's last error and returns st (for layers built on the engine). */
llm_status llm_engine_set_error(llm_engine *engine, llm_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
