/* The sampler handle, shared by the files of src/sample. */
#ifndef LLM_SAMPLE_SAMPLER_INTERNAL_H
#define LLM_SAMPLE_SAMPLER_INTERNAL_H

#include <stdint.h>

#include "core/error.h"
#include "llamac.h"
#include "sample/rng.h"
#include "sample/select.h"

/* history[t]: bit 31 set once t is seen as a prompt token; the low 31 bits count how often t was
 * generated (saturating). A token with history[t] != 0 has been seen. */
#define LLM_SMP_IN_PROMPT 0x80000000u
#define LLM_SMP_GEN_MASK  0x7fffffffu

struct llm_sampler {
    llm_sampling_params params; /* validated; logit_bias points at bias below */
    int32_t n_vocab;
    llm_logit_bias *bias; /* own copy, n_bias entries */
    size_t n_bias;
    llm_smp_rng rng;

    uint32_t *history; /* [n_vocab], see above */
    int32_t *seen_ids; /* the distinct tokens with history != 0, in first-seen order */
    int32_t n_seen;

    /* Scratch, sized at create so a call never allocates. */
    float *z;           /* [n_vocab] logits after bias and penalties (when any apply) */
    llm_smp_cand *cand; /* [n_vocab] top-k / nucleus candidates */
    double *block_sums; /* [ceil(n_vocab / LLM_SMP_BLOCK)] */

    llm_error err;
};

/* Checks params against n_vocab (n_vocab itself included), all but repeated logit_bias tokens; on
 * failure fills err with a message naming the parameter and its allowed range and returns
 * LLM_ERR_INVALID_ARGUMENT. */
llm_status llm_smp_validate(const llm_sampling_params *p, int32_t n_vocab, llm_error *err);

/* Fails if a token appears twice in bias[0..n); uses mark[n_vocab] (all zero on entry and return). */
llm_status llm_smp_check_bias_repeats(const llm_logit_bias *bias, size_t n, uint32_t *mark, llm_error *err);

/* For tests: marks in mask[n_vocab] the tokens that llm_sampler_sample would choose from for these
 * logits in the sampler's current state (each with positive probability), without drawing or
 * recording anything. Returns as llm_sampler_sample. */
llm_status llm_smp_kept_mask(llm_sampler *s, const float *logits, uint8_t *mask);

#endif
