/* llm_runner: continuous batching over one engine, on a thread of its own.
 *
 * Ownership of state: the queue, the running list's membership, cancel flags and stats are guarded by
 * the mutex; everything a request carries for generation (tokens, sampler, text stream, sequence) is
 * touched only by the runner thread. Callbacks run with the mutex released.
 *
 * A request's tokens are the prompt followed by every sampled token that must enter the sequence; n_done
 * of them are in the KV cache. With more than one missing it prefills (in chunks), with exactly one it
 * decodes it in the step's batch. Preemption frees the sequence and sets n_done to 0: the next admission
 * prefills prompt + generated tokens and samples from logits equal to those the decode would have given. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine_internal.h"
#include "engine/gen_text.h"
#include "model/model_internal.h"

typedef struct runner_req {
    llm_request_id id;
    int32_t *toks; /* prompt + generated tokens to be in the sequence */
    int32_t n_toks, cap_toks;
    int32_t n_prompt;
    int32_t n_done; /* of toks in the sequence */
    llm_seq_id seq; /* 0 while queued */
    llm_generate_params gen;
    char **stops;         /* owned copies of gen.stop */
    llm_logit_bias *bias; /* owned copy of gen.sampling.logit_bias */
    llm_request_done_fn on_done;
    llm_sampler *sampler; /* created at first admission */
    llm_gen_text text;
    int text_ready;
    int cancel_requested;     /* guarded by the runner mutex */
    llm_finish_reason finish; /* NONE while generating */
    llm_status status;
    char error[256];
    llm_generate_result res;
    double t_submit, t_admit, t_first;
    int got_logits;                 /* the prompt's logits were reached once */
    struct runner_req *prev, *next; /* queue links */
} runner_req;

struct llm_runner {
    llm_engine *engine;
    llm_model *model;
    llm_runner_params p;
    int32_t n_ctx, n_vocab, block_size, blocks_total;

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work; /* the loop waits on it for requests */
    pthread_cond_t idle; /* wait_idle waits on it */
    int shutdown;
    llm_request_id next_id;
    runner_req *q_head, *q_tail; /* queued, admission order */
    runner_req **running;        /* [max_running], admission order */
    int32_t n_running;
    int64_t n_live; /* accepted and not yet past on_done */
    llm_runner_stats stats;

    /* runner thread only */
    float *logits; /* [max_running * n_vocab] */
    llm_seq_id *b_seqs;
    int32_t *b_toks;
    runner_req **batch;
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static llm_status put_err(char *err, size_t cap, llm_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static llm_status put_err(char *err, size_t cap, llm_status st, const char *fmt, ...) {
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return st;
}

llm_runner_params llm_runner_default_params(void) {
    llm_runner_params p;
    memset(&p, 0, sizeof p);
    return p;
}

/* ---- requests ---------------------------------------------------------------------------------- */

static void req_free(runner_req *r) {
    if (!r) return;
    if (r->stops)
        for (size_t i = 0; i < r->gen.n_stop; i++) free(r->stops[i]);
    free(r->stops);
    free(r->bias);
    free(r->toks);
    llm_sampler_free(r->sampler);
    if (r->text_ready) llm_gen_text_free(&r->text);
    free(r);
}

/* The same set llm_generate stops at: generation_config.json's ids and the tokenizer's eos_token. */
static int is_eos(const llm_model *m, int32_t tok) {
    for (int i = 0; i < m->hp.n_eos; i++)
        if (m->hp.eos_token_ids[i] == tok) return 1;
    return m->tokenizer && llm_tokenizer_special_id(m->tokenizer, LLM_SPECIAL_EOS) == tok;
}

/* ---- queue (mutex held) ------------------------------------------------------------------------ */

static void q_push_back(llm_runner *r, runner_req *q) {
    q->next = NULL;
    q->prev = r->q_tail;
    if (r->q_tail)
        r->q_tail->next = q;
    else
        r->q_head = q;
    r->q_tail = q;
    r->stats.queued++;
}

static void q_push_front(llm_runner *r, runner_req *q) {
    q->prev = NULL;
    q->next = r->q_head;
    if (r->q_head)
        r->q_head->prev = q;
    else
        r->q_tail = q;
    r->q_head = q;
    r->stats.queued++;
}

static void q_remove(llm_runner *r, runner_req *q) {
    if (q->prev)
        q->prev->next = q->next;
    else
        r->q_head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        r->q_tail = q->prev;
    q->prev = q->next = NULL;
    r->stats.queued--;
}

/* ---- the step's pieces (runner thread) --------------------------------------------------------- */

static int cancel_seen(llm_runner *r, runner_req *q) {
    if (q->gen.cancel && *q->gen.cancel) return 1;
    pthread_mutex_lock(&r->mu);
    int c = q->cancel_requested || r->shutdown;
    pthread_mutex_unlock(&r->mu);
    return c;
}

static void fail(runner_req *q, llm_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(runner_req *q, llm_status st, const char *fmt, ...) {
    if (q->status != LLM_OK) return;
    q->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->error, sizeof q->error, fmt, ap);
    va_end(ap);
}

static int req_active(const runner_req *q) {
    return q->finish == LLM_FINISH_NONE && q->status == LLM_OK;
}

/* Samples q's next token from logits and streams it, as one iteration of llm_generate's loop. */
static void sample_one(llm_runner *r, runner_req *q, const float *logits) {
    if (!q->got_logits) {
        q->got_logits = 1;
        q->res.prefill_ms = now_ms() - q->t_admit;
    }
    if (cancel_seen(r, q)) {
        q->finish = LLM_FINISH_CANCELLED;
        return;
    }
    llm_sample_result sr;
    llm_status st = llm_sampler_sample(q->sampler, logits, &sr);
    if (st != LLM_OK) {
        fail(q, st, "request %lld: sampling failed: %s", (long long)q->id,
             llm_sampler_last_error(q->sampler));
        return;
    }
    if (q->res.n_generated == 0 && q->t_first == 0) q->t_first = now_ms();
    if (!q->gen.ignore_eos && is_eos(r->model, sr.token)) {
        q->finish = LLM_FINISH_EOS;
        return;
    }
    q->res.n_generated++;
    int hit = 0;
    st = llm_gen_text_push(&q->text, sr.token, &hit);
    if (st != LLM_OK) {
        fail(q, st, "request %lld: detokenizing token %d failed", (long long)q->id, sr.token);
        return;
    }
    if (q->gen.on_event) {
        llm_generate_event ev = {sr.token, q->text.released.data ? q->text.released.data : "",
                                 q->text.released.len, &sr};
        if (q->gen.on_event(&ev, q->gen.user_data)) q->finish = LLM_FINISH_CANCELLED;
    }
    if (hit) q->finish = LLM_FINISH_STOP;
    if (q->finish != LLM_FINISH_NONE) return;
    if (q->res.n_generated >= q->gen.max_tokens || q->n_toks >= r->n_ctx) {
        q->finish = LLM_FINISH_LENGTH;
        return;
    }
    if (q->n_toks == q->cap_toks) { /* cannot happen: cap is n_prompt + max_tokens */
        fail(q, LLM_ERR_INTERNAL, "request %lld: token buffer full", (long long)q->id);
        return;
    }
    q->toks[q->n_toks++] = sr.token;
}

/* Moves q out of the running list (mutex held by the caller). */
static void running_remove(llm_runner *r, runner_req *q) {
    for (int32_t i = 0; i < r->n_running; i++)
        if (r->running[i] == q) {
            memmove(r->running + i, r->running + i + 1, (size_t)(r->n_running - i - 1) * sizeof *r->running);
            r->n_running--;
            r->stats.running = r->n_running;
            return;
        }
}

/* KV budget exhausted. First frees the sequences of requests that already ended this step; else
 * preempts the most recently admitted request still generating: frees its sequence and puts it back
 * at the front of the queue (*victim). Returns 0 when neither is possible (one request runs alone: it
 * does not fit, and fails). */
static int make_room(llm_runner *r, runner_req **victim) {
    *victim = NULL;
    int freed = 0, n_active = 0;
    for (int32_t i = 0; i < r->n_running; i++) {
        runner_req *q = r->running[i];
        if (req_active(q)) {
            n_active++;
        } else if (q->seq) {
            llm_seq_free(r->engine, q->seq);
            q->seq = 0;
            freed = 1;
        }
    }
    if (freed) return 1;
    if (n_active < 2) return 0;
    pthread_mutex_lock(&r->mu);
    runner_req *v = NULL;
    for (int32_t i = r->n_running - 1; i >= 0 && !v; i--)
        if (req_active(r->running[i])) v = r->running[i];
    running_remove(r, v);
    q_push_front(r, v);
    r->stats.preempted++;
    pthread_mutex_unlock(&r->mu);
    llm_seq_free(r->engine, v->seq);
    v->seq = 0;
    v->n_done = 0;
    *victim = v;
    return 1;
}

static int in_decode(const runner_req *q) {
    return q->seq && q->n_done > 0 && q->n_toks - q->n_done == 1;
}

static void decode_batch(llm_runner *r) {
    size_t nb = 0;
    for (int32_t i = 0; i < r->n_running; i++) /* membership changes only on this thread */
        if (req_active(r->running[i]) && in_decode(r->running[i])) r->batch[nb++] = r->running[i];
    const size_t V = (size_t)r->n_vocab;
    while (nb > 0) {
        for (size_t i = 0; i < nb; i++) {
            r->b_seqs[i] = r->batch[i]->seq;
            r->b_toks[i] = r->batch[i]->toks[r->batch[i]->n_toks - 1];
        }
        llm_status st = llm_decode(r->engine, r->b_seqs, r->b_toks, nb, r->logits, nb * V, NULL);
        if (st == LLM_OK) {
            pthread_mutex_lock(&r->mu);
            r->stats.decode_calls++;
            r->stats.decode_tokens += nb;
            pthread_mutex_unlock(&r->mu);
            for (size_t i = 0; i < nb; i++) {
                r->batch[i]->n_done++;
                sample_one(r, r->batch[i], r->logits + i * V);
            }
            return;
        }
        if (st == LLM_ERR_KV_FULL) {
            runner_req *v = NULL;
            if (!make_room(r, &v)) {
                fail(r->batch[0], st, "request %lld does not fit the KV budget alone: %s",
                     (long long)r->batch[0]->id, llm_engine_last_error(r->engine));
                return;
            }
            size_t k = 0;
            for (size_t i = 0; i < nb; i++)
                if (r->batch[i] != v) r->batch[k++] = r->batch[i];
            nb = k;
            continue;
        }
        for (size_t i = 0; i < nb; i++)
            fail(r->batch[i], st, "decode failed: %s", llm_engine_last_error(r->engine));
        return;
    }
}

static void prefill_chunks(llm_runner *r) {
    int64_t budget = r->p.step_token_budget;
    const size_t V = (size_t)r->n_vocab;
    for (int32_t i = 0; i < r->n_running && budget > 0; i++) {
        runner_req *q = r->running[i];
        if (!req_active(q) || in_decode(q) || q->n_done >= q->n_toks) continue;
        for (;;) {
            const int32_t left = q->n_toks - q->n_done;
            const int32_t n = left < budget ? left : (int32_t)budget;
            const int last = n == left;
            llm_status st = llm_prefill(r->engine, q->seq, q->toks + q->n_done, (size_t)n,
                                        last ? LLM_LOGITS_LAST : LLM_LOGITS_NONE, last ? r->logits : NULL,
                                        last ? V : 0, NULL);
            if (st == LLM_OK) {
                pthread_mutex_lock(&r->mu);
                r->stats.prefill_tokens += (uint64_t)n;
                pthread_mutex_unlock(&r->mu);
                q->n_done += n;
                budget -= n;
                if (last) sample_one(r, q, r->logits);
                break;
            }
            if (st == LLM_ERR_KV_FULL) {
                runner_req *v = NULL;
                if (!make_room(r, &v)) {
                    fail(q, st, "request %lld does not fit the KV budget alone: %s", (long long)q->id,
                         llm_engine_last_error(r->engine));
                    break;
                }
                if (v == q) return; /* it was the latest: nothing after it runs */
                continue;
            }
            fail(q, st, "prefill failed: %s", llm_engine_last_error(r->engine));
            break;
        }
    }
}

/* Ends q (runner thread, mutex not held): flushes held text, frees its sequence. */
static void finalize(llm_runner *r, runner_req *q) {
    if (q->status == LLM_OK && q->finish != LLM_FINISH_STOP && q->text_ready) {
        llm_status st = llm_gen_text_finish(&q->text);
        if (st != LLM_OK)
            fail(q, st, "request %lld: flushing the detokenizer failed", (long long)q->id);
        else if (q->text.released.len && q->gen.on_event) {
            llm_generate_event ev = {-1, q->text.released.data, q->text.released.len, NULL};
            q->gen.on_event(&ev, q->gen.user_data);
        }
    }
    if (q->seq) llm_seq_free(r->engine, q->seq);
    q->seq = 0;
    llm_generate_result *res = &q->res;
    res->n_prompt_tokens = q->n_prompt;
    if (q->status != LLM_OK) {
        res->finish = LLM_FINISH_NONE;
    } else {
        res->finish = q->finish;
    }
    const double t_end = now_ms();
    res->ttft_ms = q->t_first > 0 ? q->t_first - q->t_submit : 0;
    res->decode_ms = q->t_first > 0 ? t_end - q->t_first : 0;
    res->prefill_tok_s = res->prefill_ms > 0 ? (double)q->n_prompt / (res->prefill_ms / 1e3) : 0;
    const int32_t steps = res->n_generated > 1 ? res->n_generated - 1 : 0;
    res->decode_tok_s = res->decode_ms > 0 ? steps / (res->decode_ms / 1e3) : 0;
}

/* Admission (runner thread): gives queued requests a sequence, oldest first. A request is admitted
 * while the free KV blocks cover its tokens so far (always when nothing runs), so that a full cache
 * does not make it prefill only to be preempted at once; growth past that is handled by preemption. */
static void admit(llm_runner *r) {
    llm_engine_info info;
    llm_engine_get_info(r->engine, &info);
    int64_t free_blocks = (int64_t)info.kv_blocks_total - info.kv_blocks_used;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        runner_req *q = r->q_head;
        if (!q || r->n_running >= r->p.max_running) {
            pthread_mutex_unlock(&r->mu);
            return;
        }
        const int64_t need = ((int64_t)q->n_toks + 1 + r->block_size - 1) / r->block_size;
        if (r->n_running > 0 && need > free_blocks) {
            pthread_mutex_unlock(&r->mu);
            return;
        }
        const int32_t n_running = r->n_running;
        pthread_mutex_unlock(&r->mu);

        llm_seq_id seq = 0;
        llm_status st = llm_seq_create(r->engine, &seq);
        if (st == LLM_OK && !q->sampler) {
            char serr[256] = "";
            st = llm_sampler_create(&q->gen.sampling, r->n_vocab, &q->sampler, serr, sizeof serr);
            if (st == LLM_OK) {
                for (int32_t i = 0; i < q->n_prompt; i++) llm_sampler_accept_prompt(q->sampler, q->toks[i]);
                st = llm_gen_text_init(&q->text, r->model->tokenizer, (const char *const *)q->stops,
                                       q->gen.n_stop);
                q->text_ready = 1;
            }
            if (st != LLM_OK)
                fail(q, st, "request %lld: %s", (long long)q->id, serr[0] ? serr : "out of memory");
        } else if (st != LLM_OK) {
            if (n_running > 0) return; /* a slot frees up when a running request ends */
            fail(q, st, "request %lld: no sequence: %s", (long long)q->id, llm_engine_last_error(r->engine));
        }
        pthread_mutex_lock(&r->mu);
        q_remove(r, q);
        r->running[r->n_running++] = q;
        r->stats.running = r->n_running;
        pthread_mutex_unlock(&r->mu);
        q->seq = seq;
        if (q->t_admit == 0) q->t_admit = now_ms();
        free_blocks -= need;
    }
}

static void *loop(void *arg) {
    llm_runner *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->shutdown && !r->q_head && r->n_running == 0) pthread_cond_wait(&r->work, &r->mu);
        if (r->shutdown && !r->q_head && r->n_running == 0) break;
        /* queued requests that were cancelled (or everything, on shutdown) end without running */
        runner_req *fin_head = NULL, *fin_tail = NULL; /* ended this step, linked through next */
        int64_t n_fin = 0;
#define FIN_PUSH(q_)                                                                                         \
    do {                                                                                                     \
        (q_)->next = NULL;                                                                                   \
        if (fin_tail)                                                                                        \
            fin_tail->next = (q_);                                                                           \
        else                                                                                                 \
            fin_head = (q_);                                                                                 \
        fin_tail = (q_);                                                                                     \
        n_fin++;                                                                                             \
    } while (0)
        for (runner_req *q = r->q_head, *nx; q; q = nx) {
            nx = q->next;
            if (r->shutdown || q->cancel_requested || (q->gen.cancel && *q->gen.cancel)) {
                q_remove(r, q);
                q->finish = LLM_FINISH_CANCELLED;
                FIN_PUSH(q);
            }
        }
        for (int32_t i = 0; i < r->n_running; i++) {
            runner_req *q = r->running[i];
            if (req_active(q) && (r->shutdown || q->cancel_requested)) q->finish = LLM_FINISH_CANCELLED;
        }
        pthread_mutex_unlock(&r->mu);

        for (int32_t i = 0; i < r->n_running; i++) {
            runner_req *q = r->running[i];
            if (req_active(q) && q->gen.cancel && *q->gen.cancel) q->finish = LLM_FINISH_CANCELLED;
        }
        admit(r);
        if (r->n_running > 0) {
            decode_batch(r);
            prefill_chunks(r);
            pthread_mutex_lock(&r->mu);
            r->stats.steps++;
            pthread_mutex_unlock(&r->mu);
        }

        /* finished running requests leave the list (their sequences are freed before any on_done) */
        pthread_mutex_lock(&r->mu);
        for (int32_t i = 0; i < r->n_running;) {
            runner_req *q = r->running[i];
            if (!req_active(q)) {
                running_remove(r, q);
                FIN_PUSH(q);
            } else {
                i++;
            }
        }
        pthread_mutex_unlock(&r->mu);
#undef FIN_PUSH
        for (runner_req *q = fin_head; q; q = q->next) finalize(r, q);
        for (runner_req *q = fin_head, *nx; q; q = nx) {
            nx = q->next;
            pthread_mutex_lock(&r->mu);
            if (q->status != LLM_OK)
                r->stats.failed++;
            else if (q->finish == LLM_FINISH_CANCELLED)
                r->stats.cancelled++;
            else
                r->stats.completed++;
            pthread_mutex_unlock(&r->mu);
            if (q->on_done)
                q->on_done(q->id, q->status, &q->res, q->status == LLM_OK ? "" : q->error, q->gen.user_data);
            req_free(q);
        }
        pthread_mutex_lock(&r->mu);
        r->n_live -= n_fin;
        if (r->n_live == 0) pthread_cond_broadcast(&r->idle);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ---- public API -------------------------------------------------------------------------------- */

static void runner_destroy(llm_runner *r) {
    free(r->running);
    free(r->logits);
    free(r->b_seqs);
    free(r->b_toks);
    free(r->batch);
    free(r);
}

llm_status llm_runner_create(llm_engine *engine, const llm_runner_params *params, llm_runner **out) {
    if (out) *out = NULL;
    if (!engine || !out) return LLM_ERR_INVALID_ARGUMENT;
    llm_runner_params p = params ? *params : llm_runner_default_params();
    if (p.max_running < 0 || p.step_token_budget < 0)
        return llm_engine_set_error(engine, LLM_ERR_INVALID_ARGUMENT,
                                    "runner: max_running %d and step_token_budget %d must be >= 0",
                                    p.max_running, p.step_token_budget);
    llm_engine_info info;
    llm_engine_get_info(engine, &info);
    if (p.max_running == 0 || p.max_running > info.n_seq_max) p.max_running = info.n_seq_max;
    if (p.step_token_budget == 0) p.step_token_budget = info.max_batch_tokens;

    llm_runner *r = calloc(1, sizeof *r);
    if (!r) return llm_engine_set_error(engine, LLM_ERR_OUT_OF_MEMORY, "runner: out of memory");
    r->engine = engine;
    r->model = llm_engine_model(engine);
    r->p = p;
    r->n_ctx = info.n_ctx;
    r->n_vocab = r->model->hp.n_vocab;
    r->block_size = info.kv_block_size;
    r->blocks_total = info.kv_blocks_total;
    r->next_id = 1;
    const size_t mr = (size_t)p.max_running;
    r->running = calloc(mr, sizeof *r->running);
    r->logits = malloc(mr * (size_t)r->n_vocab * sizeof *r->logits);
    r->b_seqs = calloc(mr, sizeof *r->b_seqs);
    r->b_toks = calloc(mr, sizeof *r->b_toks);
    r->batch = calloc(mr, sizeof *r->batch);
    if (!r->running || !r->logits || !r->b_seqs || !r->b_toks || !r->batch) {
        runner_destroy(r);
        return llm_engine_set_error(engine, LLM_ERR_OUT_OF_MEMORY, "runner: out of memory");
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->work, NULL);
    pthread_cond_init(&r->idle, NULL);
    if (pthread_create(&r->thread, NULL, loop, r) != 0) {
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->work);
        pthread_cond_destroy(&r->idle);
        runner_destroy(r);
        return llm_engine_set_error(engine, LLM_ERR_INTERNAL, "runner: cannot start its thread");
    }
    *out = r;
    return LLM_OK;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

llm_status llm_runner_submit(llm_runner *r, const llm_request *rq, llm_request_id *out, char *err,
                             size_t err_cap) {
    if (out) *out = 0;
    if (err && err_cap) err[0] = '\0';
    if (!r || !rq)
        return put_err(err, err_cap, LLM_ERR_INVALID_ARGUMENT, "runner and request must not be NULL");
    const llm_generate_params *g = &rq->gen;
    if (!rq->prompt || rq->n_prompt == 0)
        return put_err(err, err_cap, LLM_ERR_INVALID_ARGUMENT, "a request needs at least one prompt token");
    for (size_t i = 0; i < rq->n_prompt; i++)
        if (rq->prompt[i] < 0 || rq->prompt[i] >= r->n_vocab)
            return put_err(err, err_cap, LLM_ERR_INVALID_ARGUMENT,
                           "prompt[%zu] = %d is outside the vocabulary [0, %d)", i, rq->prompt[i],
                           r->n_vocab);
    if (g->max_tokens < 1)
        return put_err(err, err_cap, LLM_ERR_INVALID_ARGUMENT, "max_tokens is %d; it must be at least 1",
                       g->max_tokens);
    for (size_t i = 0; i < g->n_stop; i++)
        if (!g->stop || !g->stop[i] || !g->stop[i][0])
            return put_err(err, err_cap, LLM_ERR_INVALID_ARGUMENT, "stop[%zu] is empty", i);
    if (g->n_stop && !r->model->tokenizer)
        return put_err(err, err_cap, LLM_ERR_INVALID_ARGUMENT,
                       "stop strings need text, and the model has no tokenizer.json");
    const int64_t total = (int64_t)rq->n_prompt + g->max_tokens;
    if (total > r->n_ctx)
        return put_err(err, err_cap, LLM_ERR_CONTEXT_FULL,
                       "prompt of %zu tokens + max_tokens %d = %lld tokens exceeds the context of %d tokens",
                       rq->n_prompt, g->max_tokens, (long long)total, r->n_ctx);
    /* the last sampled token is never appended */
    const int64_t blocks = (total - 1 + r->block_size - 1) / r->block_size;
    if (blocks > r->blocks_total)
        return put_err(err, err_cap, LLM_ERR_KV_FULL,
                       "prompt of %zu tokens + max_tokens %d needs %lld KV blocks; the engine has %d",
                       rq->n_prompt, g->max_tokens, (long long)blocks, r->blocks_total);
    {
        llm_sampler *s = NULL;
        char serr[256] = "";
        llm_status st = llm_sampler_create(&g->sampling, r->n_vocab, &s, serr, sizeof serr);
        llm_sampler_free(s);
        if (st != LLM_OK) return put_err(err, err_cap, st, "%s", serr);
    }

    runner_req *q = calloc(1, sizeof *q);
    if (!q) return put_err(err, err_cap, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    q->gen = *g;
    q->on_done = rq->on_done;
    q->n_prompt = (int32_t)rq->n_prompt;
    q->cap_toks = (int32_t)total;
    q->toks = malloc((size_t)total * sizeof *q->toks);
    int ok = q->toks != NULL;
    if (ok) memcpy(q->toks, rq->prompt, rq->n_prompt * sizeof *q->toks);
    q->n_toks = q->n_prompt;
    if (ok && g->n_stop) {
        q->stops = calloc(g->n_stop, sizeof *q->stops);
        ok = q->stops != NULL;
        for (size_t i = 0; ok && i < g->n_stop; i++) ok = (q->stops[i] = dup_str(g->stop[i])) != NULL;
    }
    q->gen.stop = (const char *const *)q->stops;
    if (ok && g->sampling.n_logit_bias) {
        q->bias = malloc(g->sampling.n_logit_bias * sizeof *q->bias);
        ok = q->bias != NULL;
        if (ok) memcpy(q->bias, g->sampling.logit_bias, g->sampling.n_logit_bias * sizeof *q->bias);
    }
    q->gen.sampling.logit_bias = q->bias;
    if (!ok) {
        req_free(q);
        return put_err(err, err_cap, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    }
    q->t_submit = now_ms();

    pthread_mutex_lock(&r->mu);
    q->id = r->next_id++;
    q_push_back(r, q);
    r->n_live++;
    r->stats.submitted++;
    if (out) *out = q->id;
    pthread_cond_signal(&r->work);
    pthread_mutex_unlock(&r->mu);
    return LLM_OK;
}

llm_status llm_runner_cancel(llm_runner *r, llm_request_id id) {
    if (!r) return LLM_ERR_INVALID_ARGUMENT;
    llm_status st = LLM_ERR_NOT_FOUND;
    pthread_mutex_lock(&r->mu);
    for (runner_req *q = r->q_head; q && st != LLM_OK; q = q->next)
        if (q->id == id) {
            q->cancel_requested = 1;
            st = LLM_OK;
        }
    for (int32_t i = 0; i < r->n_running && st != LLM_OK; i++)
        if (r->running[i]->id == id) {
            r->running[i]->cancel_requested = 1;
            st = LLM_OK;
        }
    if (st == LLM_OK) pthread_cond_signal(&r->work);
    pthread_mutex_unlock(&r->mu);
    return st;
}

void llm_runner_wait_idle(llm_runner *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    while (r->n_live > 0) pthread_cond_wait(&r->idle, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

void llm_runner_get_stats(llm_runner *r, llm_runner_stats *stats) {
    if (!r || !stats) return;
    pthread_mutex_lock(&r->mu);
    *stats = r->stats;
    pthread_mutex_unlock(&r->mu);
}

void llm_runner_free(llm_runner *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->shutdown = 1;
    pthread_cond_signal(&r->work);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->work);
    pthread_cond_destroy(&r->idle);
    runner_destroy(r);
}
