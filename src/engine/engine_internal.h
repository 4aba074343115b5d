/* Engine internals shared with tests (test-only switches live here, not in the public header). */
#ifndef LLM_ENGINE_INTERNAL_H
#define LLM_ENGINE_INTERNAL_H

#include "llamac.h"

/* TEST ONLY: adds `offset` to every RoPE position (not to KV slots). A parity test must fail with
 * offset 1; that is how we know the parity test can fail. */
void llm_engine_debug_set_rope_offset(llm_engine *engine, int offset);

/* Blocks currently in a sequence's table (-1 for an unknown id). */
int32_t llm_engine_debug_seq_blocks(const llm_engine *engine, llm_seq_id seq);

#endif
