/* Sampling parameters: defaults and validation. Every message names the parameter, the value given
 * and the allowed range, so a server can hand it to its client unchanged. */
#include <math.h>

#include "sample/sampler_internal.h"

llm_sampling_params llm_sampling_default_params(void) {
    llm_sampling_params p = {0};
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repetition_penalty = 1.0f;
    p.presence_penalty = 0.0f;
    p.frequency_penalty = 0.0f;
    p.logit_bias = NULL;
    p.n_logit_bias = 0;
    p.seed = 0;
    p.top_logprobs = 0;
    return p;
}

#define BAD(...) llm_fail(err, LLM_ERR_INVALID_ARGUMENT, __VA_ARGS__)

llm_status llm_smp_validate(const llm_sampling_params *p, int32_t n_vocab, llm_error *err) {
    if (n_vocab <= 0) return BAD("n_vocab = %d: must be >= 1", (int)n_vocab);
    /* Written as "!(ok)" so that NaN, which fails every comparison, is rejected too. */
    if (!(p->temperature >= 0.0f && isfinite(p->temperature)))
        return BAD("temperature = %.9g: must be a finite number >= 0 (0 = greedy)", (double)p->temperature);
    if (p->top_k < 0) return BAD("top_k = %d: must be >= 0 (0 = off)", (int)p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return BAD("top_p = %.9g: must be in (0, 1] (1 = off)", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return BAD("min_p = %.9g: must be in [0, 1] (0 = off)", (double)p->min_p);
    if (!(p->repetition_penalty > 0.0f && isfinite(p->repetition_penalty)))
        return BAD("repetition_penalty = %.9g: must be a finite number > 0 (1 = off)",
                   (double)p->repetition_penalty);
    if (!(p->presence_penalty >= -2.0f && p->presence_penalty <= 2.0f))
        return BAD("presence_penalty = %.9g: must be in [-2, 2] (0 = off)", (double)p->presence_penalty);
    if (!(p->frequency_penalty >= -2.0f && p->frequency_penalty <= 2.0f))
        return BAD("frequency_penalty = %.9g: must be in [-2, 2] (0 = off)", (double)p->frequency_penalty);
    if (p->top_logprobs < 0 || p->top_logprobs > LLM_MAX_TOP_LOGPROBS)
        return BAD("top_logprobs = %d: must be in [0, %d]", (int)p->top_logprobs, LLM_MAX_TOP_LOGPROBS);
    if (p->n_logit_bias > 0 && !p->logit_bias)
        return BAD("logit_bias is NULL but n_logit_bias = %zu", p->n_logit_bias);
    for (size_t i = 0; i < p->n_logit_bias; i++) {
        const llm_logit_bias b = p->logit_bias[i];
        if (b.token < 0 || b.token >= n_vocab)
            return BAD("logit_bias[%zu].token = %d: must be a token id in [0, %d) (n_vocab %d)", i,
                       (int)b.token, (int)n_vocab, (int)n_vocab);
        if (!(b.bias >= -100.0f && b.bias <= 100.0f))
            return BAD("logit_bias[%zu].bias = %.9g (token %d): must be in [-100, 100]", i, (double)b.bias,
                       (int)b.token);
    }
    return LLM_OK;
}

llm_status llm_smp_check_bias_repeats(const llm_logit_bias *bias, size_t n, uint32_t *mark, llm_error *err) {
    /* mark[t] = 1 + the index of t's first entry */
    llm_status st = LLM_OK;
    size_t i = 0;
    for (; i < n; i++) {
        const int32_t t = bias[i].token;
        if (mark[t]) {
            st = BAD("logit_bias[%zu].token = %d: repeats logit_bias[%u] (each token may appear once)", i,
                     (int)t, (unsigned)(mark[t] - 1));
            break;
        }
        mark[t] = (uint32_t)(i + 1); /* i < n_vocab: a repeat comes by then at the latest */
    }
    for (size_t j = 0; j < i; j++) mark[bias[j].token] = 0;
    return st;
}
