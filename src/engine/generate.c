/* llm_generate: prefill a prompt, then sample, stream and append tokens until a finish condition.
 *
 * Per step: sample from the last logits -> EOS? stop : detokenize (complete UTF-8 only) -> stop-string
 * matcher -> event -> max_tokens? stop : decode the token to get the next logits. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine_internal.h"
#include "engine/gen_text.h"
#include "model/model_internal.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

const char *llm_finish_reason_name(llm_finish_reason r) {
    switch (r) {
    case LLM_FINISH_NONE:
        return "none";
    case LLM_FINISH_STOP:
        return "stop";
    case LLM_FINISH_LENGTH:
        return "length";
    case LLM_FINISH_EOS:
        return "eos";
    case LLM_FINISH_CANCELLED:
        return "cancelled";
    }
    return "?";
}

llm_generate_params llm_generate_default_params(void) {
    llm_generate_params p;
    memset(&p, 0, sizeof p);
    p.sampling = llm_sampling_default_params();
    p.max_tokens = 256;
    return p;
}

/* The end-of-sequence ids: generation_config.json's list plus the tokenizer's eos_token. */
static int is_eos(const llm_model *m, int32_t tok) {
    for (int i = 0; i < m->hp.n_eos; i++)
        if (m->hp.eos_token_ids[i] == tok) return 1;
    return m->tokenizer && llm_tokenizer_special_id(m->tokenizer, LLM_SPECIAL_EOS) == tok;
}

static llm_status validate(llm_engine *e, const llm_generate_params *p) {
    if (p->max_tokens < 1)
        return llm_engine_set_error(e, LLM_ERR_INVALID_ARGUMENT, "max_tokens is %d; it must be at least 1",
                                    p->max_tokens);
    for (size_t i = 0; i < p->n_stop; i++)
        if (!p->stop || !p->stop[i] || !p->stop[i][0])
            return llm_engine_set_error(e, LLM_ERR_INVALID_ARGUMENT, "stop[%zu] is empty", i);
    if (p->n_stop && !llm_engine_model(e)->tokenizer)
        return llm_engine_set_error(e, LLM_ERR_INVALID_ARGUMENT,
                                    "stop strings need text, and the model has no tokenizer.json");
    return LLM_OK;
}

llm_status llm_generate(llm_engine *e, llm_seq_id seq, const int32_t *prompt, size_t n_prompt,
                        const llm_generate_params *params, llm_generate_result *result) {
    if (!e) return LLM_ERR_INVALID_ARGUMENT;
    llm_generate_result res_local;
    llm_generate_result *res = result ? result : &res_local;
    memset(res, 0, sizeof *res);
    const llm_generate_params defaults = llm_generate_default_params();
    const llm_generate_params *p = params ? params : &defaults;
    llm_model *m = llm_engine_model(e);
    if (!prompt || n_prompt == 0)
        return llm_engine_set_error(e, LLM_ERR_INVALID_ARGUMENT,
                                    "generation needs at least one prompt token");
    llm_status st = validate(e, p);
    if (st != LLM_OK) return st;

    const double t0 = now_ms();
    const size_t V = (size_t)m->hp.n_vocab;
    llm_gen_text g;
    llm_sampler *sampler = NULL;
    float *logits = malloc(V * sizeof *logits);
    char serr[512];
    st = llm_gen_text_init(&g, m->tokenizer, p->stop, p->n_stop);
    if (!logits || st != LLM_OK) {
        st = llm_engine_set_error(e, LLM_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    st = llm_sampler_create(&p->sampling, m->hp.n_vocab, &sampler, serr, sizeof serr);
    if (st != LLM_OK) {
        llm_engine_set_error(e, st, "%s", serr);
        goto done;
    }
    /* the repetition penalty sees the whole context: earlier turns and this prompt */
    const int32_t n_before = llm_seq_length(e, seq);
    const int32_t *history = llm_seq_tokens(e, seq);
    for (int32_t i = 0; history && i < n_before; i++) llm_sampler_accept_prompt(sampler, history[i]);
    for (size_t i = 0; i < n_prompt; i++) llm_sampler_accept_prompt(sampler, prompt[i]);

    st = llm_prefill(e, seq, prompt, n_prompt, LLM_LOGITS_LAST, logits, V, NULL);
    if (st != LLM_OK) goto done;
    const double t_prefilled = now_ms();
    res->n_prompt_tokens = (int32_t)n_prompt;
    res->prefill_ms = t_prefilled - t0;
    int32_t n_ctx = 0;
    {
        llm_engine_info info;
        llm_engine_get_info(e, &info);
        n_ctx = info.n_ctx;
    }
    double t_first = 0;
    llm_finish_reason finish = LLM_FINISH_NONE;
    while (finish == LLM_FINISH_NONE) {
        if (p->cancel && *p->cancel) {
            finish = LLM_FINISH_CANCELLED;
            break;
        }
        llm_sample_result sr;
        st = llm_sampler_sample(sampler, logits, &sr);
        if (st != LLM_OK) {
            llm_engine_set_error(e, st, "sampling failed");
            goto done;
        }
        if (res->n_generated == 0) t_first = now_ms();
        if (!p->ignore_eos && is_eos(m, sr.token)) {
            finish = LLM_FINISH_EOS;
            break;
        }
        res->n_generated++;
        int hit = 0;
        st = llm_gen_text_push(&g, sr.token, &hit);
        if (st != LLM_OK) {
            llm_engine_set_error(e, st, "detokenizing token %d failed", sr.token);
            goto done;
        }
        if (p->on_event) {
            llm_generate_event ev = {sr.token, g.released.data ? g.released.data : "", g.released.len, &sr};
            if (p->on_event(&ev, p->user_data)) finish = LLM_FINISH_CANCELLED;
        }
        if (hit) finish = LLM_FINISH_STOP;
        if (finish != LLM_FINISH_NONE) break;
        if (res->n_generated >= p->max_tokens || llm_seq_length(e, seq) >= n_ctx) {
            finish = LLM_FINISH_LENGTH;
            break;
        }
        st = llm_decode(e, &seq, &sr.token, 1, logits, V, NULL);
        if (st != LLM_OK) goto done;
    }
    /* release whatever the detokenizer and the stop matcher still hold (not after a stop match) */
    if (finish != LLM_FINISH_STOP) {
        st = llm_gen_text_finish(&g);
        if (st != LLM_OK) {
            llm_engine_set_error(e, st, "flushing the detokenizer failed");
            goto done;
        }
        if (g.released.len && p->on_event) {
            llm_generate_event ev = {-1, g.released.data, g.released.len, NULL};
            p->on_event(&ev, p->user_data);
        }
    }
    res->finish = finish;
    const double t_end = now_ms();
    res->ttft_ms = (res->n_generated || finish == LLM_FINISH_EOS) ? t_first - t0 : 0;
    res->decode_ms = t_first > 0 ? t_end - t_first : 0;
    res->prefill_tok_s = res->prefill_ms > 0 ? (double)n_prompt / (res->prefill_ms / 1e3) : 0;
    const int32_t decode_steps = res->n_generated > 1 ? res->n_generated - 1 : 0;
    res->decode_tok_s = res->decode_ms > 0 ? decode_steps / (res->decode_ms / 1e3) : 0;
    st = LLM_OK;
done:
    llm_gen_text_free(&g);
    llm_sampler_free(sampler);
    free(logits);
    return st;
}
