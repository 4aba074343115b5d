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
#include "core/threadpool.h"
#include "engine/runner_internal.h"
#include "model/model_internal.h"

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

double llm_runner_now(const llm_runner *r) {
    return mono_ms() + r->clock_offset_ms;
}

void llm_runner_debug_advance_clock(llm_runner *r, double ms) {
    pthread_mutex_lock(&r->mu);
    r->clock_offset_ms += ms;
    pthread_cond_signal(&r->work);
    pthread_mutex_unlock(&r->mu);
}

static double now_ms(void) {
    return mono_ms();
}

llm_status llm_runner_put_err(char *err, size_t cap, llm_status st, const char *fmt, ...) {
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

/* Hands output to the request's consumers: its on_event (a nonzero return cancels) and its pull box. */
static void emit(llm_runner *r, runner_req *q, int32_t token, const llm_sample_result *sr) {
    const char *text = q->text.released.data ? q->text.released.data : "";
    const size_t len = q->text.released.len;
    if (q->box) llm_runner_box_push(r, q->box, token, text, len);
    if (q->gen.on_event) {
        llm_generate_event ev = {token, text, len, sr};
        if (q->gen.on_event(&ev, q->gen.user_data) && q->finish == LLM_FINISH_NONE)
            q->finish = LLM_FINISH_CANCELLED;
    }
}

/* A request reached logits: the prompt's prefill time is taken at the first. Returns 1 if it is to
 * sample, 0 if it was cancelled (it then ends without drawing). */
static int sample_begin(llm_runner *r, runner_req *q) {
    if (!q->got_logits) {
        q->got_logits = 1;
        q->res.prefill_ms = now_ms() - q->t_admit;
    }
    if (cancel_seen(r, q)) {
        q->finish = LLM_FINISH_CANCELLED;
        return 0;
    }
    return 1;
}

/* Streams q's sampled token, as one iteration of llm_generate's loop. A token that ends the request
 * is kept in tail_tok (a session's history includes it). */
static void sample_finish(llm_runner *r, runner_req *q, llm_status st, const llm_sample_result *sr) {
    if (st != LLM_OK) {
        fail(q, st, "request %lld: sampling failed: %s", (long long)q->id,
             llm_sampler_last_error(q->sampler));
        return;
    }
    if (cancel_seen(r, q)) { /* cancelled meanwhile (another request's callback): nothing more streams */
        q->finish = LLM_FINISH_CANCELLED;
        return;
    }
    if (q->res.n_generated == 0 && q->t_first == 0) q->t_first = now_ms();
    if (!q->gen.ignore_eos && is_eos(r->model, sr->token)) {
        q->finish = LLM_FINISH_EOS;
        q->tail_tok = sr->token;
        return;
    }
    q->res.n_generated++;
    int hit = 0;
    st = llm_gen_text_push(&q->text, sr->token, &hit);
    if (st != LLM_OK) {
        fail(q, st, "request %lld: detokenizing token %d failed", (long long)q->id, sr->token);
        return;
    }
    emit(r, q, sr->token, sr);
    if (hit) q->finish = LLM_FINISH_STOP;
    if (q->finish == LLM_FINISH_NONE && (q->res.n_generated >= q->gen.max_tokens || q->n_toks >= r->n_ctx))
        q->finish = LLM_FINISH_LENGTH;
    if (q->finish != LLM_FINISH_NONE) {
        q->tail_tok = sr->token;
        return;
    }
    if (q->n_toks == q->cap_toks) { /* cannot happen: cap is n_prompt + max_tokens */
        fail(q, LLM_ERR_INTERNAL, "request %lld: token buffer full", (long long)q->id);
        return;
    }
    q->toks[q->n_toks++] = sr->token;
}

/* The draws of one step's rows: each request has its own sampler, so rows are independent and may run
 * on the sampling pool's threads (callbacks and streaming stay on the runner thread, in row order). */
static void sample_task(void *arg, int ith, int nth) {
    llm_runner *r = arg;
    long b, e;
    llm_split_range((long)r->n_draw, ith, nth, &b, &e);
    for (long i = b; i < e; i++)
        r->draw_st[i] = llm_sampler_sample(r->draw_req[i]->sampler, r->draw_logits[i], &r->draw_res[i]);
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

/* KV budget exhausted. In order: frees the sequences of requests that already ended this step; parks
 * an idle session (its history stays); preempts the most recently admitted request still generating
 * (frees its sequence and puts it back at the front of the queue). Returns 0 when none is possible
 * (one request runs alone: it does not fit, and fails). */
static int make_room(llm_runner *r) {
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
    pthread_mutex_lock(&r->mu);
    if (llm_runner_session_park_one(r, NULL)) {
        pthread_mutex_unlock(&r->mu);
        return 1;
    }
    if (n_active < 2) {
        pthread_mutex_unlock(&r->mu);
        return 0;
    }
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
    return 1;
}

static int in_decode(const runner_req *q) {
    return q->seq && q->n_done > 0 && q->n_toks - q->n_done == 1;
}

/* Lists this step's work as llm_step items: every decoding request's next token first, then prefill
 * chunks in admission order, at most step_token_budget prompt tokens and max_batch_tokens rows. */
static size_t build_items(llm_runner *r) {
    size_t n = 0;
    int64_t rows = 0;
    for (int32_t i = 0; i < r->n_running; i++) { /* membership changes only on this thread */
        runner_req *q = r->running[i];
        if (!req_active(q) || !in_decode(q)) continue;
        r->items[n] = (llm_step_item){q->seq, q->toks + q->n_toks - 1, 1, LLM_LOGITS_LAST, 0};
        r->item_req[n++] = q;
        rows++;
    }
    int64_t budget = r->p.step_token_budget;
    if (budget > r->max_batch_tokens - rows) budget = r->max_batch_tokens - rows;
    for (int32_t i = 0; i < r->n_running && budget > 0; i++) {
        runner_req *q = r->running[i];
        if (!req_active(q) || !q->seq || in_decode(q) || q->n_done >= q->n_toks) continue;
        const int32_t left = q->n_toks - q->n_done;
        const int32_t c = left < budget ? left : (int32_t)budget;
        r->items[n] =
            (llm_step_item){q->seq, q->toks + q->n_done, c, c == left ? LLM_LOGITS_LAST : LLM_LOGITS_NONE, 0};
        r->item_req[n++] = q;
        budget -= c;
    }
    return n;
}

/* One engine step: ONE llm_step over every item; on LLM_ERR_KV_FULL, room is made and the batch
 * rebuilt. Then each request with logits samples its next token. */
static void run_step(llm_runner *r) {
    const size_t V = (size_t)r->n_vocab;
    for (;;) {
        const size_t n = build_items(r);
        if (n == 0) return;
        llm_status st = llm_step(r->engine, r->items, n, r->logits, (size_t)r->p.max_running * V, NULL);
        if (st == LLM_ERR_KV_FULL) {
            if (make_room(r)) continue;
            runner_req *q = r->item_req[0]; /* the one request still active */
            fail(q, st, "request %lld does not fit the KV budget alone: %s", (long long)q->id,
                 llm_engine_last_error(r->engine));
            continue;
        }
        if (st != LLM_OK) {
            for (size_t i = 0; i < n; i++)
                fail(r->item_req[i], st, "step failed: %s", llm_engine_last_error(r->engine));
            return;
        }
        uint64_t n_decode = 0, n_prefill = 0, n_cached = 0;
        const float *lp = r->logits;
        for (size_t i = 0; i < n; i++) {
            runner_req *q = r->item_req[i];
            const llm_step_item *it = &r->items[i];
            const int decoding = q->n_toks - q->n_done == 1 && q->n_done > 0;
            if (decoding)
                n_decode++;
            else
                n_prefill += (uint64_t)it->n_tokens;
            if (!q->got_logits) {
                /* prompt tokens reused from the prefix cache, counted once (not again after preemption) */
                const int32_t reused = it->n_reused;
                q->res.n_cached_tokens += reused;
                n_cached += (uint64_t)reused;
            }
            q->n_done += it->n_tokens;
            if (it->logits == LLM_LOGITS_LAST) {
                if (sample_begin(r, q)) {
                    r->draw_req[r->n_draw] = q;
                    r->draw_logits[r->n_draw++] = lp;
                }
                lp += V;
            }
        }
        /* many rows (a GPU step): draw them in parallel; the results are the same either way */
        if (r->sample_pool && r->n_draw >= 8)
            llm_threadpool_run(r->sample_pool, sample_task, r);
        else
            sample_task(r, 0, 1);
        for (size_t i = 0; i < r->n_draw; i++)
            sample_finish(r, r->draw_req[i], r->draw_st[i], &r->draw_res[i]);
        r->n_draw = 0;
        pthread_mutex_lock(&r->mu);
        if (n_decode) r->stats.decode_calls++;
        r->stats.decode_tokens += n_decode;
        r->stats.prefill_tokens += n_prefill;
        r->stats.cached_tokens += n_cached;
        pthread_mutex_unlock(&r->mu);
        return;
    }
}

/* Ends q (runner thread, mutex not held): flushes held text, hands a session its history and
 * sequence, frees the sequence otherwise. */
static void finalize(llm_runner *r, runner_req *q) {
    if (q->status == LLM_OK && q->finish != LLM_FINISH_STOP && q->text_ready) {
        llm_status st = llm_gen_text_finish(&q->text);
        if (st != LLM_OK)
            fail(q, st, "request %lld: flushing the detokenizer failed", (long long)q->id);
        else if (q->text.released.len)
            emit(r, q, -1, NULL);
    }
    pthread_mutex_lock(&r->mu);
    runner_session *sess = q->session;
    if (sess) llm_runner_session_release(r, sess, q); /* takes q->seq */
    pthread_mutex_unlock(&r->mu);
    if (q->seq) llm_seq_free(r->engine, q->seq);
    q->seq = 0;
    llm_generate_result *res = &q->res;
    res->n_prompt_tokens = q->n_prompt;
    res->finish = q->status != LLM_OK ? LLM_FINISH_NONE : q->finish;
    const double t_end = now_ms();
    res->ttft_ms = q->t_first > 0 ? q->t_first - q->t_submit : 0;
    res->decode_ms = q->t_first > 0 ? t_end - q->t_first : 0;
    res->prefill_tok_s = res->prefill_ms > 0 ? (double)q->n_prompt / (res->prefill_ms / 1e3) : 0;
    const int32_t steps = res->n_generated > 1 ? res->n_generated - 1 : 0;
    res->decode_tok_s = res->decode_ms > 0 ? steps / (res->decode_ms / 1e3) : 0;
}

/* Length of the common prefix of a and b. */
static int32_t common_prefix(const int32_t *a, int32_t na, const int32_t *b, int32_t nb) {
    int32_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i;
}

/* Gives q a sequence: its session's (kept up to the longest prefix it shares with q's tokens, at
 * least one token left to compute), else a new one. LLM_OK or llm_seq_create's status. */
static llm_status take_sequence(llm_runner *r, runner_req *q) {
    pthread_mutex_lock(&r->mu);
    runner_session *s = q->session;
    llm_seq_id seq = s ? s->seq : 0;
    if (s) s->seq = 0, s->n_kv = 0;
    pthread_mutex_unlock(&r->mu);
    if (seq) {
        const int32_t held = llm_seq_length(r->engine, seq);
        int32_t keep = common_prefix(llm_seq_tokens(r->engine, seq), held, q->toks, q->n_toks);
        if (keep == q->n_toks) keep--; /* the last token is computed: its logits are needed */
        llm_seq_truncate(r->engine, seq, keep);
        q->seq = seq;
        q->n_done = keep;
        if (!q->got_logits) {
            q->res.n_cached_tokens += keep;
            pthread_mutex_lock(&r->mu);
            r->stats.cached_tokens += (uint64_t)keep;
            pthread_mutex_unlock(&r->mu);
        }
        return LLM_OK;
    }
    llm_status st = llm_seq_create(r->engine, &seq);
    while (st == LLM_ERR_TOO_MANY_SEQUENCES) { /* idle sessions hold the slots: park one */
        pthread_mutex_lock(&r->mu);
        int parked = llm_runner_session_park_one(r, NULL);
        pthread_mutex_unlock(&r->mu);
        if (!parked) break;
        st = llm_seq_create(r->engine, &seq);
    }
    if (st == LLM_OK) q->seq = seq, q->n_done = 0;
    return st;
}

/* Admission (runner thread): gives queued requests a sequence, oldest first. A request is admitted
 * while the free KV blocks cover its tokens so far (always when nothing runs; idle sessions are
 * parked to make room), so that a full cache does not make it prefill only to be preempted at once;
 * growth past that is handled by preemption. */
static void admit(llm_runner *r) {
    for (;;) {
        llm_engine_info info;
        llm_engine_get_info(r->engine, &info);
        const int64_t free_blocks = (int64_t)info.kv_blocks_total - info.kv_blocks_used;
        pthread_mutex_lock(&r->mu);
        runner_req *q = r->q_head;
        if (!q || r->n_running >= r->p.max_running) {
            pthread_mutex_unlock(&r->mu);
            return;
        }
        const int64_t need = ((int64_t)q->n_toks + 1 + r->block_size - 1) / r->block_size;
        if (r->n_running > 0 && need > free_blocks) {
            const int parked = llm_runner_session_park_one(r, q->session);
            pthread_mutex_unlock(&r->mu);
            if (parked) continue;
            return;
        }
        const int32_t n_running = r->n_running;
        pthread_mutex_unlock(&r->mu);

        llm_status st = take_sequence(r, q);
        if (st == LLM_OK && !q->sampler) {
            char serr[256] = "";
            st = llm_sampler_create(&q->gen.sampling, r->n_vocab, &q->sampler, serr, sizeof serr);
            if (st == LLM_OK) {
                for (int32_t i = 0; i < q->n_prompt; i++) llm_sampler_accept_prompt(q->sampler, q->toks[i]);
                st = llm_gen_text_init(&q->text, r->model->tokenizer, (const char *const *)q->stops,
                                       q->gen.n_stop);
                q->text_ready = st == LLM_OK;
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
        if (q->t_admit == 0) q->t_admit = now_ms();
    }
}

void llm_runner_refresh_kv_stats(llm_runner *r) {
    llm_engine_info info;
    llm_engine_get_info(r->engine, &info);
    r->stats.kv_blocks_total = info.kv_blocks_total;
    r->stats.kv_blocks_used = info.kv_blocks_used;
    r->stats.kv_blocks_cached = info.kv_blocks_cached;
    r->stats.n_seqs = info.n_seqs;
    r->stats.prefix_hit_tokens = info.prefix_hit_tokens;
    r->stats.computed_tokens = info.computed_tokens;
}

/* Waits (mutex held) until there is something to do: requests, control work, shutdown, or the next
 * session expiry. */
static void wait_for_work(llm_runner *r) {
    while (!r->shutdown && !r->q_head && r->n_running == 0 && r->ctl_posted == r->ctl_done) {
        const double wait = llm_runner_sessions_next_expiry(r);
        if (wait < 0) {
            pthread_cond_wait(&r->work, &r->mu);
            continue;
        }
        if (wait <= 0) return; /* a session is due */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        const double ns = (double)ts.tv_nsec + wait * 1e6 + 1e6; /* 1 ms late rather than early */
        ts.tv_sec += (time_t)(ns / 1e9);
        ts.tv_nsec = (long)(ns - (double)(time_t)(ns / 1e9) * 1e9);
        pthread_cond_timedwait(&r->work, &r->mu, &ts);
        if (llm_runner_sessions_next_expiry(r) == 0) return;
    }
}

static void *loop(void *arg) {
    llm_runner *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        wait_for_work(r);
        if (r->shutdown && !r->q_head && r->n_running == 0) break;
        llm_runner_sessions_service(r); /* forks, closed sessions' sequences, expiry */
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
            run_step(r);
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
        if (fin_head) { /* an on_done sees the accounting with its blocks given back */
            pthread_mutex_lock(&r->mu);
            llm_runner_refresh_kv_stats(r);
            pthread_mutex_unlock(&r->mu);
        }
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
            const char *error = q->status == LLM_OK ? "" : q->error;
            if (q->on_done) q->on_done(q->id, q->status, &q->res, error, q->gen.user_data);
            if (q->box) llm_runner_box_finish(r, q->box, q->status, &q->res, error);
            req_free(q);
        }
        pthread_mutex_lock(&r->mu);
        llm_runner_refresh_kv_stats(r);
        r->n_live -= n_fin;
        if (r->n_live == 0) pthread_cond_broadcast(&r->idle);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ---- public API -------------------------------------------------------------------------------- */

static void runner_destroy(llm_runner *r) {
    llm_threadpool_free(r->sample_pool);
    free(r->draw_req);
    free(r->draw_logits);
    free(r->draw_res);
    free(r->draw_st);
    free(r->running);
    free(r->logits);
    free(r->items);
    free(r->item_req);
    free(r->seqs_to_free);
    free(r);
}

llm_status llm_runner_create(llm_engine *engine, const llm_runner_params *params, llm_runner **out) {
    if (out) *out = NULL;
    if (!engine || !out) return LLM_ERR_INVALID_ARGUMENT;
    llm_runner_params p = params ? *params : llm_runner_default_params();
    if (p.max_running < 0 || p.step_token_budget < 0 || p.max_sessions < 0)
        return llm_engine_set_error(
            engine, LLM_ERR_INVALID_ARGUMENT,
            "runner: max_running %d, step_token_budget %d and max_sessions %d must be >= 0", p.max_running,
            p.step_token_budget, p.max_sessions);
    llm_engine_info info;
    llm_engine_get_info(engine, &info);
    if (p.max_running == 0 || p.max_running > info.n_seq_max) p.max_running = info.n_seq_max;
    if (p.step_token_budget == 0) p.step_token_budget = info.max_batch_tokens;
    if (p.max_sessions == 0) p.max_sessions = 256;
    if (p.session_ttl_ms == 0) p.session_ttl_ms = 600000;

    llm_runner *r = calloc(1, sizeof *r);
    if (!r) return llm_engine_set_error(engine, LLM_ERR_OUT_OF_MEMORY, "runner: out of memory");
    r->engine = engine;
    r->model = llm_engine_model(engine);
    r->p = p;
    r->n_ctx = info.n_ctx;
    r->n_vocab = r->model->hp.n_vocab;
    r->block_size = info.kv_block_size;
    r->blocks_total = info.kv_blocks_total;
    r->max_batch_tokens = info.max_batch_tokens;
    r->next_id = 1;
    const size_t mr = (size_t)p.max_running;
    r->running = calloc(mr, sizeof *r->running);
    r->logits = malloc(mr * (size_t)r->n_vocab * sizeof *r->logits);
    r->items = calloc(mr, sizeof *r->items);
    r->item_req = calloc(mr, sizeof *r->item_req);
    r->seqs_to_free = malloc((size_t)p.max_sessions * sizeof *r->seqs_to_free); /* one per session at most */
    r->draw_req = calloc(mr, sizeof *r->draw_req);
    r->draw_logits = calloc(mr, sizeof *r->draw_logits);
    r->draw_res = calloc(mr, sizeof *r->draw_res);
    r->draw_st = calloc(mr, sizeof *r->draw_st);
    /* On a GPU the host's cores idle during a step: they draw the rows' samples (a 64-row step over a
     * 128k vocabulary is ~8 ms of sampling on one core). On the CPU those cores are the engine's. */
    if (r->model->backend == LLM_BACKEND_CUDA && r->model->n_threads > 1)
        r->sample_pool = llm_threadpool_create(r->model->n_threads < 16 ? r->model->n_threads : 16);
    if (!r->running || !r->logits || !r->items || !r->item_req || !r->seqs_to_free || !r->draw_req ||
        !r->draw_logits || !r->draw_res || !r->draw_st) {
        runner_destroy(r);
        return llm_engine_set_error(engine, LLM_ERR_OUT_OF_MEMORY, "runner: out of memory");
    }
    llm_runner_refresh_kv_stats(r);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* session expiry waits on the monotonic clock */
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->work, &ca);
    pthread_cond_init(&r->pull_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&r->idle, NULL);
    pthread_cond_init(&r->ctl_cv, NULL);
    if (pthread_create(&r->thread, NULL, loop, r) != 0) {
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->work);
        pthread_cond_destroy(&r->pull_cv);
        pthread_cond_destroy(&r->idle);
        pthread_cond_destroy(&r->ctl_cv);
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

/* Refusals that need no runner state. */
static llm_status check_request(const llm_runner *r, const llm_request *rq, char *err, size_t err_cap) {
    const llm_generate_params *g = &rq->gen;
    if (!rq->prompt || rq->n_prompt == 0)
        return llm_runner_put_err(err, err_cap, LLM_ERR_INVALID_ARGUMENT,
                                  "a request needs at least one prompt token");
    for (size_t i = 0; i < rq->n_prompt; i++)
        if (rq->prompt[i] < 0 || rq->prompt[i] >= r->n_vocab)
            return llm_runner_put_err(err, err_cap, LLM_ERR_INVALID_ARGUMENT,
                                      "prompt[%zu] = %d is outside the vocabulary [0, %d)", i, rq->prompt[i],
                                      r->n_vocab);
    if (g->max_tokens < 1)
        return llm_runner_put_err(err, err_cap, LLM_ERR_INVALID_ARGUMENT,
                                  "max_tokens is %d; it must be at least 1", g->max_tokens);
    for (size_t i = 0; i < g->n_stop; i++)
        if (!g->stop || !g->stop[i] || !g->stop[i][0])
            return llm_runner_put_err(err, err_cap, LLM_ERR_INVALID_ARGUMENT, "stop[%zu] is empty", i);
    if (g->n_stop && !r->model->tokenizer)
        return llm_runner_put_err(err, err_cap, LLM_ERR_INVALID_ARGUMENT,
                                  "stop strings need text, and the model has no tokenizer.json");
    if (rq->session_prompt != LLM_SESSION_APPEND && rq->session_prompt != LLM_SESSION_WHOLE)
        return llm_runner_put_err(err, err_cap, LLM_ERR_INVALID_ARGUMENT,
                                  "session_prompt %d is neither APPEND nor WHOLE", (int)rq->session_prompt);
    if (rq->n_prompt > (size_t)r->n_ctx)
        return llm_runner_put_err(err, err_cap, LLM_ERR_CONTEXT_FULL,
                                  "prompt of %zu tokens + max_tokens %d exceeds the context of %d tokens",
                                  rq->n_prompt, g->max_tokens, r->n_ctx);
    llm_sampler *s = NULL;
    char serr[256] = "";
    llm_status st = llm_sampler_create(&g->sampling, r->n_vocab, &s, serr, sizeof serr);
    llm_sampler_free(s);
    if (st != LLM_OK) return llm_runner_put_err(err, err_cap, st, "%s", serr);
    return LLM_OK;
}

/* The size checks, once the request's full token list (with its session's history) is known. */
static llm_status check_fits(const llm_runner *r, int64_t n_history, size_t n_prompt, int32_t max_tokens,
                             char *err, size_t err_cap) {
    const int64_t total = n_history + (int64_t)n_prompt + max_tokens;
    if (total - 1 > r->n_ctx) { /* the last sampled token is never stored: n_ctx + 1 tokens fit */
        if (n_history)
            return llm_runner_put_err(
                err, err_cap, LLM_ERR_CONTEXT_FULL,
                "session history of %lld tokens + prompt of %zu tokens + max_tokens %d = %lld tokens "
                "exceeds the context of %d tokens (+1 never stored)",
                (long long)n_history, n_prompt, max_tokens, (long long)total, r->n_ctx);
        return llm_runner_put_err(
            err, err_cap, LLM_ERR_CONTEXT_FULL,
            "prompt of %zu tokens + max_tokens %d = %lld tokens exceeds the context of %d tokens "
            "(+1 never stored)",
            n_prompt, max_tokens, (long long)total, r->n_ctx);
    }
    /* the last sampled token is never fed */
    const int64_t blocks = (total - 1 + r->block_size - 1) / r->block_size;
    if (blocks > r->blocks_total)
        return llm_runner_put_err(
            err, err_cap, LLM_ERR_KV_FULL,
            "%lld context tokens + max_tokens %d need %lld KV blocks; the engine has %d",
            (long long)(n_history + (int64_t)n_prompt), max_tokens, (long long)blocks, r->blocks_total);
    return LLM_OK;
}

llm_status llm_runner_submit(llm_runner *r, const llm_request *rq, llm_request_id *out, char *err,
                             size_t err_cap) {
    if (out) *out = 0;
    if (err && err_cap) err[0] = '\0';
    if (!r || !rq)
        return llm_runner_put_err(err, err_cap, LLM_ERR_INVALID_ARGUMENT,
                                  "runner and request must not be NULL");
    llm_status st = check_request(r, rq, err, err_cap);
    if (st != LLM_OK) return st;
    const llm_generate_params *g = &rq->gen;
    if (!rq->session && (st = check_fits(r, 0, rq->n_prompt, g->max_tokens, err, err_cap)) != LLM_OK)
        return st;

    runner_req *q = calloc(1, sizeof *q);
    if (!q) return llm_runner_put_err(err, err_cap, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    q->gen = *g;
    q->on_done = rq->on_done;
    q->tail_tok = -1;
    int ok = 1;
    if (g->n_stop) {
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
        return llm_runner_put_err(err, err_cap, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    }

    pthread_mutex_lock(&r->mu);
    /* the token list: the session's history (APPEND) and the prompt */
    runner_session *sess = NULL;
    int32_t n_hist = 0;
    int created = 0;
    if (rq->session) {
        sess = llm_runner_session_find(r, rq->session);
        if (!sess)
            sess = llm_runner_session_new(r, rq->session, &st, err, err_cap), created = sess != NULL;
        else if (sess->req)
            st = llm_runner_put_err(err, err_cap, LLM_ERR_BUSY, "session \"%s\" already has request %lld",
                                    sess->name, (long long)sess->req->id);
        if (st == LLM_OK && rq->session_prompt == LLM_SESSION_APPEND) n_hist = sess->n_toks;
        if (st == LLM_OK) st = check_fits(r, n_hist, rq->n_prompt, g->max_tokens, err, err_cap);
    }
    const int64_t total = (int64_t)n_hist + (int64_t)rq->n_prompt + g->max_tokens;
    if (st == LLM_OK) {
        q->cap_toks = (int32_t)total;
        q->toks = malloc((size_t)total * sizeof *q->toks);
        if (!q->toks) st = llm_runner_put_err(err, err_cap, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    }
    if (st == LLM_OK && rq->pull && !(q->box = llm_runner_box_new(r, r->next_id)))
        st = llm_runner_put_err(err, err_cap, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    if (st != LLM_OK) {
        if (created) llm_runner_session_discard(r, sess); /* a refused request creates nothing */
        pthread_mutex_unlock(&r->mu);
        req_free(q);
        return st;
    }
    if (n_hist) memcpy(q->toks, sess->toks, (size_t)n_hist * sizeof *q->toks);
    memcpy(q->toks + n_hist, rq->prompt, rq->n_prompt * sizeof *q->toks);
    q->n_toks = q->n_prompt = n_hist + (int32_t)rq->n_prompt;
    if (sess) sess->req = q, q->session = sess;
    q->t_submit = now_ms();
    q->id = r->next_id++;
    q_push_back(r, q);
    r->n_live++;
    r->stats.submitted++;
    if (out) *out = q->id;
    pthread_cond_signal(&r->work);
    pthread_mutex_unlock(&r->mu);
    return LLM_OK;
}

/* (mu) Marks request id for cancellation. */
static llm_status cancel_locked(llm_runner *r, llm_request_id id) {
    for (runner_req *q = r->q_head; q; q = q->next)
        if (q->id == id) {
            q->cancel_requested = 1;
            pthread_cond_signal(&r->work);
            return LLM_OK;
        }
    for (int32_t i = 0; i < r->n_running; i++)
        if (r->running[i]->id == id) {
            r->running[i]->cancel_requested = 1;
            pthread_cond_signal(&r->work);
            return LLM_OK;
        }
    return LLM_ERR_NOT_FOUND;
}

llm_status llm_runner_cancel(llm_runner *r, llm_request_id id) {
    if (!r) return LLM_ERR_INVALID_ARGUMENT;
    pthread_mutex_lock(&r->mu);
    llm_status st = cancel_locked(r, id);
    pthread_mutex_unlock(&r->mu);
    return st;
}

void llm_runner_cancel_req(llm_runner *r, runner_req *q) {
    q->cancel_requested = 1;
    pthread_cond_signal(&r->work);
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
    stats->sessions = r->n_sessions;
    pthread_mutex_unlock(&r->mu);
}

void llm_runner_free(llm_runner *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->shutdown = 1;
    pthread_cond_signal(&r->work);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    llm_runner_sessions_free(r); /* the engine is ours again: session sequences are freed here */
    llm_runner_boxes_free(r);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->work);
    pthread_cond_destroy(&r->pull_cv);
    pthread_cond_destroy(&r->idle);
    pthread_cond_destroy(&r->ctl_cv);
    runner_destroy(r);
}
