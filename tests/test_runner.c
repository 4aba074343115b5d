/* The continuous-batching runner on the bundled demo model: requests batched together produce exactly
 * the tokens and text each produces alone through llm_generate (greedy and seeded sampling), also when
 * the KV budget forces preemption and recomputation; cancellation (queued, mid-prefill, mid-decode)
 * ends each request with exactly one done callback and frees its KV blocks; submissions are refused
 * with messages that give the numbers; submit and cancel are safe from many threads at once. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/strbuf.h"
#include "test_util.h"

#define DEMO LLAMAC_SOURCE_DIR "/models/kjv-tiny"

/* Under ASan the model's kernels run ~50x slower (scalar, instrumented): the sanitized build runs the
 * same scenarios with fewer and shorter requests so that it stays within seconds. */
#if defined(__SANITIZE_ADDRESS__)
#define TR_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TR_ASAN 1
#endif
#endif
#ifndef TR_ASAN
#define TR_ASAN 0
#endif
#define MAX_OUT 256

static double wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct outcome {
    int32_t tokens[MAX_OUT];
    int n;
    llm_strbuf text;
    int events_after_done;
    atomic_int n_done;
    llm_status status;
    llm_generate_result res;
    llm_request_id id;
    /* cancellation hooks */
    llm_runner *runner;
    int cancel_self_after;       /* cancel itself through llm_runner_cancel after this many tokens */
    llm_request_id cancel_other; /* ... and/or this other request */
    int cancel_other_after;
    int stop_after; /* return nonzero from on_event at this many tokens */
} outcome;

static int on_event(const llm_generate_event *ev, void *user) {
    outcome *o = user;
    if (atomic_load(&o->n_done)) o->events_after_done++;
    if (ev->token >= 0 && o->n < MAX_OUT) o->tokens[o->n++] = ev->token;
    llm_strbuf_append(&o->text, ev->text, ev->text_len);
    if (ev->token >= 0 && o->cancel_self_after && o->n == o->cancel_self_after)
        llm_runner_cancel(o->runner, o->id);
    if (ev->token >= 0 && o->cancel_other && o->n == o->cancel_other_after)
        llm_runner_cancel(o->runner, o->cancel_other);
    return ev->token >= 0 && o->stop_after && o->n == o->stop_after;
}

static void on_done(llm_request_id id, llm_status status, const llm_generate_result *res, const char *error,
                    void *user) {
    outcome *o = user;
    (void)id;
    o->status = status;
    o->res = *res;
    if (status != LLM_OK) fprintf(stderr, "  request %lld failed: %s\n", (long long)id, error);
    atomic_fetch_add(&o->n_done, 1);
}

static void outcome_reset(outcome *o) {
    llm_strbuf_free(&o->text);
    memset(o, 0, sizeof *o);
}

/* The reference: one llm_generate on a fresh engine, nothing else running, with the KV block size of
 * the engine under test: attention's online softmax runs block by block, so the block size changes
 * the rounding (not the batch, which is what must not matter). */
static void run_alone_blocks(llm_model *m, const int32_t *prompt, int n_prompt, const llm_generate_params *gp,
                             outcome *o, int32_t block) {
    llm_engine_params ep = llm_engine_default_params();
    ep.n_ctx = 512;
    ep.n_seq_max = 1;
    ep.kv_block_size = block;
    llm_engine *e = NULL;
    TU_CHECK(llm_engine_create(m, &ep, &e) == LLM_OK, "reference engine");
    if (!e) return;
    llm_seq_id s;
    llm_seq_create(e, &s);
    llm_generate_params p = *gp;
    p.on_event = on_event;
    p.user_data = o;
    llm_status st = llm_generate(e, s, prompt, (size_t)n_prompt, &p, &o->res);
    TU_CHECK(st == LLM_OK, "reference generate: %s", llm_engine_last_error(e));
    llm_engine_free(e);
}

static void run_alone(llm_model *m, const int32_t *prompt, int n_prompt, const llm_generate_params *gp,
                      outcome *o) {
    run_alone_blocks(m, prompt, n_prompt, gp, o, 16);
}

static llm_engine *make_engine(llm_model *m, int32_t n_ctx, int32_t n_seq_max, int64_t kv_tokens,
                               int32_t block) {
    llm_engine_params ep = llm_engine_default_params();
    ep.n_ctx = n_ctx;
    ep.n_seq_max = n_seq_max;
    ep.kv_block_size = block;
    ep.kv_budget_tokens = kv_tokens;
    llm_engine *e = NULL;
    TU_CHECK(llm_engine_create(m, &ep, &e) == LLM_OK, "engine: %s", llm_model_last_error(m));
    return e;
}

static void random_prompt(tu_rng *rng, int32_t *p, int n, int32_t n_vocab) {
    for (int i = 0; i < n; i++) p[i] = (int32_t)tu_rng_below(rng, (uint32_t)n_vocab);
}

static llm_request_id submit(llm_runner *r, const int32_t *prompt, int n, const llm_generate_params *gp,
                             outcome *o) {
    llm_request rq;
    memset(&rq, 0, sizeof rq);
    rq.prompt = prompt;
    rq.n_prompt = (size_t)n;
    rq.gen = *gp;
    rq.gen.on_event = on_event;
    rq.gen.user_data = o;
    rq.on_done = on_done;
    llm_request_id id = 0;
    char err[256];
    o->runner = r; /* before the submit: the runner thread may read it at once */
    const llm_request_id expected = o->id;
    llm_status st = llm_runner_submit(r, &rq, &id, err, sizeof err);
    TU_CHECK(st == LLM_OK && id > 0, "submit: %s (%s)", llm_status_name(st), err);
    /* a request that cancels itself has its id filled in beforehand (ids count from 1) */
    TU_CHECK(expected == 0 || expected == id, "id %lld, expected %lld", (long long)id, (long long)expected);
    if (expected == 0) o->id = id;
    return id;
}

/* Batched and preempted requests must reproduce their solo runs: tokens, text and finish reason. */
static void compare(const char *what, int i, const outcome *got, const outcome *want) {
    TU_CHECK(atomic_load(&got->n_done) == 1, "%s %d: %d done callbacks", what, i, atomic_load(&got->n_done));
    TU_CHECK(got->status == LLM_OK, "%s %d: status %s", what, i, llm_status_name(got->status));
    int same = got->n == want->n && memcmp(got->tokens, want->tokens, (size_t)got->n * sizeof(int32_t)) == 0;
    int at = 0;
    while (at < got->n && at < want->n && got->tokens[at] == want->tokens[at]) at++;
    TU_CHECK(same, "%s %d: %d tokens vs %d alone, first difference at %d", what, i, got->n, want->n, at);
    TU_CHECK(got->text.len == want->text.len &&
                 (got->text.len == 0 || memcmp(got->text.data, want->text.data, got->text.len) == 0),
             "%s %d: streamed text differs (%zu vs %zu bytes)", what, i, got->text.len, want->text.len);
    TU_CHECK(got->res.finish == want->res.finish && got->res.n_generated == want->res.n_generated,
             "%s %d: finish %s/%d vs %s/%d alone", what, i, llm_finish_reason_name(got->res.finish),
             got->res.n_generated, llm_finish_reason_name(want->res.finish), want->res.n_generated);
    TU_CHECK(got->events_after_done == 0, "%s %d: events after on_done", what, i);
}

static void check_no_leak(llm_engine *e, const char *what) {
    llm_engine_info info;
    llm_engine_get_info(e, &info);
    TU_CHECK(info.kv_blocks_used == 0 && info.n_seqs == 0, "%s: %d KV blocks and %d sequences left", what,
             info.kv_blocks_used, info.n_seqs);
}

/* (1) 16 requests of mixed prompt lengths, greedy, submitted together: each equals its solo run. */
static void batched_equals_alone(llm_model *m, tu_rng *rng) {
    enum { N = TR_ASAN ? 8 : 16 };
    const int32_t V = 4096;
    static int32_t prompts[N][128];
    static outcome got[N], want[N];
    int n_prompt[N];
    llm_generate_params gp[N];
    for (int i = 0; i < N; i++) {
        n_prompt[i] = 1 + (int)tu_rng_below(rng, TR_ASAN ? 16 : 40);
        random_prompt(rng, prompts[i], n_prompt[i], V);
        gp[i] = llm_generate_default_params();
        gp[i].sampling.temperature = 0;
        gp[i].max_tokens = TR_ASAN ? 8 + (int)tu_rng_below(rng, 9) : 24 + (int)tu_rng_below(rng, 25);
        run_alone(m, prompts[i], n_prompt[i], &gp[i], &want[i]);
    }
    llm_engine *e = make_engine(m, 512, 16, 16 * 96, 16);
    if (!e) return;
    llm_runner_params rp = llm_runner_default_params();
    rp.max_running = 16;
    rp.step_token_budget = TR_ASAN ? 8 : 24; /* several chunks per prompt, interleaved with decodes */
    llm_runner *r = NULL;
    TU_CHECK(llm_runner_create(e, &rp, &r) == LLM_OK, "runner: %s", llm_engine_last_error(e));
    if (!r) {
        llm_engine_free(e);
        return;
    }
    for (int i = 0; i < N; i++) submit(r, prompts[i], n_prompt[i], &gp[i], &got[i]);
    llm_runner_wait_idle(r);
    llm_runner_stats st;
    llm_runner_get_stats(r, &st);
    llm_runner_free(r);
    for (int i = 0; i < N; i++) compare("batched", i, &got[i], &want[i]);
    printf("batched: %d requests, %llu steps, %llu decode calls of %.1f tokens on average, %llu prefill "
           "tokens\n",
           N, (unsigned long long)st.steps, (unsigned long long)st.decode_calls,
           st.decode_calls ? (double)st.decode_tokens / (double)st.decode_calls : 0.0,
           (unsigned long long)st.prefill_tokens);
    TU_CHECK(st.completed == N && st.cancelled == 0 && st.failed == 0 && st.preempted == 0,
             "stats: completed %llu cancelled %llu failed %llu preempted %llu",
             (unsigned long long)st.completed, (unsigned long long)st.cancelled,
             (unsigned long long)st.failed, (unsigned long long)st.preempted);
    /* really batched: most decode calls carried many sequences */
    TU_CHECK(st.decode_calls > 0 && st.decode_tokens >= (uint64_t)(N / 4) * st.decode_calls,
             "mean decode batch %.1f",
             st.decode_calls ? (double)st.decode_tokens / (double)st.decode_calls : 0.0);
    check_no_leak(e, "batched");
    llm_engine_free(e);
    for (int i = 0; i < N; i++) {
        outcome_reset(&got[i]);
        outcome_reset(&want[i]);
    }
}

/* (2) Cancellation while queued, mid-prefill and mid-decode. */
static void cancellation(llm_model *m, tu_rng *rng) {
    enum { N = 10, LONG = 120 };
    static int32_t prompts[N][LONG];
    static outcome o[N];
    int n_prompt[N];
    llm_engine *e = make_engine(m, 512, 4, 4 * 512, 16);
    if (!e) return;
    llm_runner_params rp = llm_runner_default_params();
    rp.max_running = 4;
    rp.step_token_budget = 8;
    llm_runner *r = NULL;
    TU_CHECK(llm_runner_create(e, &rp, &r) == LLM_OK, "runner: %s", llm_engine_last_error(e));
    if (!r) {
        llm_engine_free(e);
        return;
    }
    llm_generate_params gp = llm_generate_default_params();
    gp.sampling.temperature = 0.7f;
    gp.sampling.seed = tu_rng_next(rng);
    gp.ignore_eos = 1;
    gp.max_tokens = TR_ASAN ? 10 : 20;
    /* 0: decodes and, at its 3rd token, cancels 1 (then mid-prefill: 120 tokens at 8 a step, sharing
     * the budget); 2: cancels itself at its 5th token (mid-decode); 3: runs to the end; 4..9 queued
     * behind them (max_running 4): 4..7 cancelled at once, 8 stops at its 4th
     * token through its callback, 9 runs. */
    llm_request_id id[N];
    for (int i = 0; i < N; i++) {
        n_prompt[i] = i == 1 ? LONG : 4 + (int)tu_rng_below(rng, 20);
        random_prompt(rng, prompts[i], n_prompt[i], 4096);
    }
    o[2].cancel_self_after = 5;
    o[2].id = 3;
    o[8].stop_after = 4;   /* 8 stops itself through its callback's return value */
    o[0].cancel_other = 2; /* ids are given in order from 1: request 1 gets id 2 */
    o[0].cancel_other_after = 3;
    for (int i = 0; i < N; i++) id[i] = submit(r, prompts[i], n_prompt[i], &gp, &o[i]);
    TU_CHECK(id[1] == 2, "ids in submission order from 1: %lld", (long long)id[1]);
    for (int i = 4; i < 8; i++) TU_CHECK(llm_runner_cancel(r, id[i]) == LLM_OK, "cancel queued %d", i);
    llm_runner_wait_idle(r);
    TU_CHECK(llm_runner_cancel(r, id[0]) == LLM_ERR_NOT_FOUND, "cancelling a finished request");
    llm_runner_stats st;
    llm_runner_get_stats(r, &st);
    llm_runner_free(r);
    for (int i = 0; i < N; i++) {
        TU_CHECK(atomic_load(&o[i].n_done) == 1, "request %d: %d done callbacks", i,
                 atomic_load(&o[i].n_done));
        TU_CHECK(o[i].status == LLM_OK, "request %d: status %s", i, llm_status_name(o[i].status));
        TU_CHECK(o[i].events_after_done == 0, "request %d: events after done", i);
        const int cancelled = i == 1 || i == 2 || (i >= 4 && i < 8) || i == 8;
        TU_CHECK((o[i].res.finish == LLM_FINISH_CANCELLED) == cancelled, "request %d: finish %s", i,
                 llm_finish_reason_name(o[i].res.finish));
        if (!cancelled)
            TU_CHECK(o[i].n == gp.max_tokens && o[i].res.finish == LLM_FINISH_LENGTH,
                     "request %d: %d tokens, %s", i, o[i].n, llm_finish_reason_name(o[i].res.finish));
    }
    TU_CHECK(o[1].n == 0 && o[1].res.n_generated == 0, "mid-prefill cancel: %d tokens", o[1].n);
    TU_CHECK(o[2].n == 5, "mid-decode cancel after 5 tokens: %d", o[2].n);
    for (int i = 4; i < 8; i++) TU_CHECK(o[i].n == 0, "queued cancel %d streamed %d tokens", i, o[i].n);
    TU_CHECK(o[8].n == 4 && o[8].res.n_generated == 4, "callback stop after 4 tokens: %d", o[8].n);
    TU_CHECK(st.cancelled == 7 && st.completed == 3 && st.failed == 0, "stats: cancelled %llu completed %llu",
             (unsigned long long)st.cancelled, (unsigned long long)st.completed);
    check_no_leak(e, "cancellation");
    llm_engine_free(e);
    for (int i = 0; i < N; i++) outcome_reset(&o[i]);
}

/* (3) A KV budget of 16 blocks for 6 requests that each grow to 8: preemption and recomputation,
 * with every output as it is alone (greedy and seeded sampling alike). */
static void kv_overflow(llm_model *m, tu_rng *rng) {
    enum { N = TR_ASAN ? 4 : 6, BLOCK = TR_ASAN ? 4 : 8 };
    static int32_t prompts[N][32];
    static outcome got[N], want[N];
    int n_prompt[N];
    llm_generate_params gp[N];
    for (int i = 0; i < N; i++) {
        n_prompt[i] = (BLOCK + (int)tu_rng_below(rng, 3 * BLOCK / 2));
        random_prompt(rng, prompts[i], n_prompt[i], 4096);
        gp[i] = llm_generate_default_params();
        gp[i].sampling.temperature = i % 2 ? 0.8f : 0.0f;
        gp[i].sampling.top_k = 40;
        gp[i].sampling.seed = tu_rng_next(rng);
        gp[i].ignore_eos = 1;
        gp[i].max_tokens =
            8 * BLOCK - n_prompt[i]; /* 8 * BLOCK - 1 tokens in the cache at the end: 8 blocks */
        run_alone_blocks(m, prompts[i], n_prompt[i], &gp[i], &want[i], BLOCK);
    }
    double t_solo = wall_s();
    llm_engine *e = make_engine(m, 128, 8, 16 * BLOCK, BLOCK);
    if (!e) return;
    llm_engine_info info;
    llm_engine_get_info(e, &info);
    TU_CHECK(info.kv_blocks_total == 16, "KV blocks %d", info.kv_blocks_total);
    llm_runner_params rp = llm_runner_default_params();
    rp.step_token_budget = 4 * BLOCK;
    llm_runner *r = NULL;
    TU_CHECK(llm_runner_create(e, &rp, &r) == LLM_OK, "runner: %s", llm_engine_last_error(e));
    if (!r) {
        llm_engine_free(e);
        return;
    }
    for (int i = 0; i < N; i++) submit(r, prompts[i], n_prompt[i], &gp[i], &got[i]);
    llm_runner_wait_idle(r);
    llm_runner_stats st;
    llm_runner_get_stats(r, &st);
    llm_runner_free(r);
    int n_prompt_sum = 0;
    for (int i = 0; i < N; i++) n_prompt_sum += n_prompt[i];
    for (int i = 0; i < N; i++) compare("kv overflow", i, &got[i], &want[i]);
    printf("kv overflow: runner %.2f s; %llu preemptions, %llu steps, %llu prefill tokens (prompts: %d)\n",
           wall_s() - t_solo, (unsigned long long)st.preempted, (unsigned long long)st.steps,
           (unsigned long long)st.prefill_tokens, n_prompt_sum);
    TU_CHECK(st.preempted > 0 && st.completed == N && st.failed == 0,
             "preempted %llu completed %llu failed %llu", (unsigned long long)st.preempted,
             (unsigned long long)st.completed, (unsigned long long)st.failed);
    check_no_leak(e, "kv overflow");
    llm_engine_free(e);
    for (int i = 0; i < N; i++) {
        outcome_reset(&got[i]);
        outcome_reset(&want[i]);
    }
}

/* (4) Refusals name their numbers; refused requests get no callback. */
static void refusals(llm_model *m) {
    llm_engine *e = make_engine(m, 256, 4, 128, 16);
    if (!e) return;
    llm_runner *r = NULL;
    TU_CHECK(llm_runner_create(e, NULL, &r) == LLM_OK, "runner");
    if (!r) {
        llm_engine_free(e);
        return;
    }
    static int32_t prompt[200];
    for (int i = 0; i < 200; i++) prompt[i] = (i * 37 + 11) % 4096;
    outcome o;
    memset(&o, 0, sizeof o);
    llm_request rq;
    memset(&rq, 0, sizeof rq);
    rq.prompt = prompt;
    rq.n_prompt = 200;
    rq.gen = llm_generate_default_params();
    rq.gen.max_tokens = 100;
    rq.gen.user_data = &o;
    rq.on_done = on_done;
    char err[256] = "";
    llm_request_id id = 99;
    TU_CHECK(llm_runner_submit(r, &rq, &id, err, sizeof err) == LLM_ERR_CONTEXT_FULL && id == 0,
             "context full");
    TU_CHECK(strstr(err, "300") && strstr(err, "256"), "message gives 200 + 100 = 300 and n_ctx 256: %s",
             err);
    /* fits the context (256) but not the KV budget (128 tokens = 8 blocks) */
    rq.n_prompt = 100;
    rq.gen.max_tokens = 100;
    TU_CHECK(llm_runner_submit(r, &rq, &id, err, sizeof err) == LLM_ERR_KV_FULL, "kv full");
    TU_CHECK(strstr(err, "13") && strstr(err, " 8"), "message gives 13 blocks needed and 8: %s", err);
    rq.gen.max_tokens = 0;
    TU_CHECK(llm_runner_submit(r, &rq, &id, err, sizeof err) == LLM_ERR_INVALID_ARGUMENT &&
                 strstr(err, "max_tokens"),
             "max_tokens 0: %s", err);
    rq.gen.max_tokens = 4;
    rq.gen.sampling.temperature = -1;
    TU_CHECK(llm_runner_submit(r, &rq, &id, err, sizeof err) == LLM_ERR_INVALID_ARGUMENT &&
                 strstr(err, "temperature"),
             "temperature -1: %s", err);
    rq.gen.sampling.temperature = 0;
    prompt[7] = 4096;
    TU_CHECK(llm_runner_submit(r, &rq, &id, err, sizeof err) == LLM_ERR_INVALID_ARGUMENT &&
                 strstr(err, "[7]") && strstr(err, "4096"),
             "token out of range: %s", err);
    rq.n_prompt = 0;
    TU_CHECK(llm_runner_submit(r, &rq, &id, err, sizeof err) == LLM_ERR_INVALID_ARGUMENT, "empty prompt");
    llm_runner_wait_idle(r);
    llm_runner_free(r);
    TU_CHECK(atomic_load(&o.n_done) == 0, "refused requests got %d done callbacks", atomic_load(&o.n_done));
    llm_runner_params bad = llm_runner_default_params();
    bad.max_running = -1;
    TU_CHECK(llm_runner_create(e, &bad, &r) == LLM_ERR_INVALID_ARGUMENT && r == NULL &&
                 strstr(llm_engine_last_error(e), "max_running"),
             "max_running -1: %s", llm_engine_last_error(e));
    llm_engine_free(e);
}

/* (5) 4 threads x 25 requests, random cancels from the submitting threads. */
enum { THREADS = 4, PER_THREAD = 25 };
typedef struct stress_thread {
    llm_runner *r;
    uint64_t seed;
    outcome *o; /* [PER_THREAD] */
    int32_t prompts[PER_THREAD][32];
    int n_cancel_calls;
} stress_thread;

static void *stress_main(void *arg) {
    stress_thread *t = arg;
    tu_rng rng = {t->seed | 1};
    llm_request_id ids[PER_THREAD];
    for (int i = 0; i < PER_THREAD; i++) {
        int n = 1 + (int)tu_rng_below(&rng, TR_ASAN ? 4 : 16);
        random_prompt(&rng, t->prompts[i], n, 4096);
        llm_generate_params gp = llm_generate_default_params();
        gp.sampling.temperature = tu_rng_below(&rng, 2) ? 0.0f : 1.0f;
        gp.sampling.seed = tu_rng_next(&rng);
        gp.max_tokens = 1 + (int)tu_rng_below(&rng, TR_ASAN ? 3 : 10);
        ids[i] = submit(t->r, t->prompts[i], n, &gp, &t->o[i]);
        /* cancel an earlier (maybe finished, maybe running, maybe queued) request a third of the time */
        if (tu_rng_below(&rng, 3) == 0) {
            int k = (int)tu_rng_below(&rng, (uint32_t)i + 1);
            llm_status st = llm_runner_cancel(t->r, ids[k]);
            TU_CHECK(st == LLM_OK || st == LLM_ERR_NOT_FOUND, "cancel: %s", llm_status_name(st));
            t->n_cancel_calls++;
        }
        if (tu_rng_below(&rng, 4) == 0) {
            struct timespec ts = {0, (long)tu_rng_below(&rng, 2000000)};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static void concurrent(llm_model *m, tu_rng *rng) {
    static outcome o[THREADS][PER_THREAD];
    static stress_thread t[THREADS];
    llm_engine *e = make_engine(m, 128, 6, 6 * 16, 8);
    if (!e) return;
    llm_runner_params rp = llm_runner_default_params();
    rp.step_token_budget = 8;
    llm_runner *r = NULL;
    TU_CHECK(llm_runner_create(e, &rp, &r) == LLM_OK, "runner");
    if (!r) {
        llm_engine_free(e);
        return;
    }
    const double t0 = (double)clock();
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        t[i].r = r;
        t[i].seed = tu_rng_next(rng);
        t[i].o = o[i];
        pthread_create(&th[i], NULL, stress_main, &t[i]);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    /* bounded time: poll the stats for up to 60 s rather than block forever on a bug */
    llm_runner_stats st;
    for (int k = 0; k < 6000; k++) {
        llm_runner_get_stats(r, &st);
        if (st.completed + st.cancelled + st.failed == THREADS * PER_THREAD) break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    TU_CHECK(st.completed + st.cancelled + st.failed == THREADS * PER_THREAD && st.running == 0 &&
                 st.queued == 0,
             "after 60 s: %llu completed, %llu cancelled, %llu failed, %d running, %d queued",
             (unsigned long long)st.completed, (unsigned long long)st.cancelled,
             (unsigned long long)st.failed, st.running, st.queued);
    llm_runner_wait_idle(r);
    llm_runner_free(r);
    clock_gettime(CLOCK_MONOTONIC, &w1);
    int calls = 0, cancelled = 0;
    for (int i = 0; i < THREADS; i++) {
        calls += t[i].n_cancel_calls;
        for (int j = 0; j < PER_THREAD; j++) {
            TU_CHECK(atomic_load(&o[i][j].n_done) == 1, "thread %d request %d: %d done callbacks", i, j,
                     atomic_load(&o[i][j].n_done));
            TU_CHECK(o[i][j].status == LLM_OK && o[i][j].events_after_done == 0, "thread %d request %d", i,
                     j);
            cancelled += o[i][j].res.finish == LLM_FINISH_CANCELLED;
        }
    }
    printf("concurrent: %d requests from %d threads, %d cancel calls, %d cancelled, %.2f s (%.2f s CPU)\n",
           THREADS * PER_THREAD, THREADS, calls, cancelled,
           (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) * 1e-9,
           ((double)clock() - t0) / CLOCKS_PER_SEC);
    TU_CHECK(st.failed == 0 && st.cancelled == (uint64_t)cancelled, "stats: failed %llu cancelled %llu vs %d",
             (unsigned long long)st.failed, (unsigned long long)st.cancelled, cancelled);
    check_no_leak(e, "concurrent");
    llm_engine_free(e);
    for (int i = 0; i < THREADS; i++)
        for (int j = 0; j < PER_THREAD; j++) outcome_reset(&o[i][j]);
}

int main(void) {
    tu_rng rng = {tu_fresh_seed("test_runner") | 1};
    llm_model *m = tu_load_model(DEMO, 1);
    TU_CHECK(m != NULL, "demo model loads");
    if (m) {
        llm_model_info mi;
        llm_model_get_info(m, &mi);
        TU_CHECK(mi.n_vocab == 4096, "demo vocabulary %d", mi.n_vocab);
        double t = wall_s();
        batched_equals_alone(m, &rng);
        printf("  (%.2f s)\n", wall_s() - t);
        t = wall_s();
        cancellation(m, &rng);
        printf("cancellation (%.2f s)\n", wall_s() - t);
        t = wall_s();
        kv_overflow(m, &rng);
        printf("  (%.2f s)\n", wall_s() - t);
        t = wall_s();
        refusals(m);
        t = wall_s();
        concurrent(m, &rng);
        printf("  (%.2f s)\n", wall_s() - t);
    }
    llm_model_free(m);
    return tu_finish("test_runner");
}
