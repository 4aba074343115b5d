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

/* TEST ONLY: replaces the KV block hash (NULL restores the default), e.g. with a constant to force
 * collisions: lookups must still never reuse a block holding other tokens. Refused
 * (LLM_ERR_INVALID_ARGUMENT) once any block is registered. */
llm_status llm_engine_debug_set_block_hash(llm_engine *engine,
                                           uint64_t (*fn)(uint64_t parent, const int32_t *tokens, int32_t n));

/* Forward passes run so far (llm_step runs one per max_batch_tokens rows). */
uint64_t llm_engine_debug_forward_passes(const llm_engine *engine);

/* Cached blocks evicted so far (to reuse their memory). */
uint64_t llm_engine_debug_evictions(const llm_engine *engine);

/* Checks the KV pool and prefix cache against the sequences: every block in exactly one place (free,
 * cached LRU, referenced), refcounts equal to the sequences' references, registered hashes equal to
 * the hash of their stored ids, registered blocks holding the ids of the sequences using them.
 * 0 if sound, else -1 with a message in msg. */
int llm_engine_debug_check(const llm_engine *engine, char *msg, size_t cap);

/* The model an engine runs. */
llm_model *llm_engine_model(const llm_engine *engine);

/* llm_step, except that the rows it writes are the final-RMSNormed hidden states (the input of lm_head:
 * n_embd floats per row, rows chosen by each item's logits mode exactly as llm_step chooses logit
 * rows) instead of logits. hidden_len receives rows * n_embd. Used by llm_embed (embed.c). */
llm_status llm_engine_step_hidden(llm_engine *engine, llm_step_item *items, size_t n_items, float *hidden,
                                  size_t hidden_cap, size_t *hidden_len);

/* Records a failure as the engine's last error and returns st (for layers built on the engine). */
llm_status llm_engine_set_error(llm_engine *engine, llm_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* TEST ONLY: moves a runner's clock (session expiry) forward by ms and wakes its loop. */
void llm_runner_debug_advance_clock(llm_runner *runner, double ms);

#endif
