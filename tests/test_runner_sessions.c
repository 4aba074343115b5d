/* Sessions, pull and KV accounting of the runner, on the demo model:
 *  - a multi-turn session prefills only each new turn (the runner's prefill counter moves by the
 *    turn's length) and every turn's tokens equal a fresh run of the whole conversation alone;
 *  - LLM_SESSION_WHOLE keeps the longest common prefix and recomputes the rest;
 *  - fork shares the blocks (the accounting does not move), the fork continues independently, and
 *    both continuations equal fresh runs; close gives the blocks back;
 *  - busy sessions refuse a second request, fork and history; closing one cancels its request;
 *  - an idle session is parked when a request needs its blocks, and recomputes correctly later;
 *  - idle sessions expire after the TTL (runner clock moved by the test hook);
 *  - pull: tokens and text in small pieces equal the callback stream; done exactly once;
 *  - cancellation frees the request's blocks within one step (runner stats). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/strbuf.h"
#include "engine/engine_internal.h"
#include "test_util.h"

#define DEMO LLAMAC_SOURCE_DIR "/models/kjv-tiny"
#define V    4096
#define MAXT 512

typedef struct outcome {
    int32_t toks[MAXT];
    int n;
    llm_strbuf text;
    atomic_int n_done;
    llm_status status;
    llm_generate_result res;
    atomic_int events;
} outcome;

static int on_event(const llm_generate_event *ev, void *user) {
    outcome *o = user;
    if (ev->token >= 0 && o->n < MAXT) o->toks[o->n++] = ev->token;
    llm_strbuf_append(&o->text, ev->text, ev->text_len);
    atomic_fetch_add(&o->events, 1);
    return 0;
}

static void on_done(llm_request_id id, llm_status status, const llm_generate_result *res, const char *error,
                    void *user) {
    outcome *o = user;
    if (status != LLM_OK) fprintf(stderr, "  request %lld failed: %s\n", (long long)id, error);
    o->status = status;
    o->res = *res;
    atomic_fetch_add(&o->n_done, 1);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void reset(outcome *o) {
    llm_strbuf_free(&o->text);
    memset(o, 0, sizeof *o);
}

static llm_engine *new_engine(llm_model *m, int32_t n_seq, int64_t budget) {
    llm_engine_params ep = llm_engine_default_params();
    ep.n_ctx = 512;
    ep.n_seq_max = n_seq;
    ep.kv_block_size = 16;
    ep.kv_budget_tokens = budget;
    llm_engine *e = NULL;
    TU_CHECK(llm_engine_create(m, &ep, &e) == LLM_OK, "engine: %s", llm_model_last_error(m));
    return e;
}

static llm_generate_params greedy(int max_tokens) {
    llm_generate_params gp = llm_generate_default_params();
    gp.sampling.temperature = 0;
    gp.ignore_eos = 1;
    gp.max_tokens = max_tokens;
    return gp;
}

/* The reference: the whole token list alone on a fresh engine. */
static void alone(llm_model *m, const int32_t *prompt, int n, int max_tokens, outcome *o) {
    llm_engine *e = new_engine(m, 1, 512);
    if (!e) return;
    llm_seq_id s;
    llm_seq_create(e, &s);
    llm_generate_params gp = greedy(max_tokens);
    gp.on_event = on_event;
    gp.user_data = o;
    TU_CHECK(llm_generate(e, s, prompt, (size_t)n, &gp, &o->res) == LLM_OK, "%s", llm_engine_last_error(e));
    llm_engine_free(e);
}

static llm_status submit(llm_runner *r, const char *session, llm_session_prompt mode, const int32_t *p, int n,
                         int max_tokens, outcome *o, llm_request_id *id) {
    llm_request rq = {.prompt = p, .n_prompt = (size_t)n, .gen = greedy(max_tokens), .on_done = on_done};
    rq.gen.on_event = on_event;
    rq.gen.user_data = o;
    rq.session = session;
    rq.session_prompt = mode;
    char err[256];
    llm_status st = llm_runner_submit(r, &rq, id, err, sizeof err);
    if (st != LLM_OK && st != LLM_ERR_BUSY) fprintf(stderr, "  submit: %s\n", err);
    return st;
}

static void stats(llm_runner *r, llm_runner_stats *s) {
    llm_runner_get_stats(r, s);
}

/* history of a session (idle) */
static int history(llm_runner *r, const char *name, int32_t *out) {
    size_t n = 0;
    llm_status st = llm_runner_session_history(r, name, out, MAXT, &n);
    TU_CHECK(st == LLM_OK, "history of %s: %s", name, llm_status_name(st));
    return (int)n;
}

static void same_tokens(const char *what, const outcome *got, const outcome *want) {
    int at = 0;
    while (at < got->n && at < want->n && got->toks[at] == want->toks[at]) at++;
    TU_CHECK(got->n == want->n && at == got->n, "%s: %d tokens vs %d alone, first difference at %d", what,
             got->n, want->n, at);
    TU_CHECK(got->text.len == want->text.len &&
                 (!got->text.len || memcmp(got->text.data, want->text.data, got->text.len) == 0),
             "%s: text differs", what);
}

static void multi_turn(llm_model *m, tu_rng *rng) {
    llm_engine *e = new_engine(m, 4, 4 * 512);
    llm_runner *r = NULL;
    if (!e || llm_runner_create(e, NULL, &r) != LLM_OK) {
        TU_CHECK(0, "runner");
        llm_engine_free(e);
        return;
    }
    static outcome got, want;
    int32_t turn[40], hist[MAXT], conv[MAXT];
    int n_hist = 0;
    for (int t = 0; t < 3; t++) {
        const int n = 10 + (int)tu_rng_below(rng, 30);
        for (int i = 0; i < n; i++) turn[i] = (int32_t)tu_rng_below(rng, V);
        llm_runner_stats s0, s1;
        stats(r, &s0);
        llm_request_id id;
        TU_CHECK(submit(r, "chat", LLM_SESSION_APPEND, turn, n, 12, &got, &id) == LLM_OK, "turn %d", t);
        llm_runner_wait_idle(r);
        stats(r, &s1);
        /* the reference: the whole conversation so far, alone */
        memcpy(conv, hist, (size_t)n_hist * sizeof *conv);
        memcpy(conv + n_hist, turn, (size_t)n * sizeof *conv);
        alone(m, conv, n_hist + n, 12, &want);
        char what[64];
        snprintf(what, sizeof what, "turn %d", t);
        same_tokens(what, &got, &want);
        /* only the new turn was prefilled: the history's KV was the session's; the previous turn's
         * final sampled token was never fed, so it is prefilled with the turn */
        const uint64_t prefilled = s1.prefill_tokens - s0.prefill_tokens;
        const int expect = t == 0 ? n : n + 1;
        TU_CHECK(prefilled == (uint64_t)expect, "turn %d prefilled %llu tokens, %d expected", t,
                 (unsigned long long)prefilled, expect);
        TU_CHECK(got.res.n_cached_tokens == (t == 0 ? 0 : n_hist - 1),
                 "turn %d: %d cached tokens, %d expected", t, got.res.n_cached_tokens,
                 t == 0 ? 0 : n_hist - 1);
        TU_CHECK(got.res.n_prompt_tokens == n_hist + n, "turn %d: context %d", t, got.res.n_prompt_tokens);
        n_hist = history(r, "chat", hist);
        TU_CHECK(n_hist == got.res.n_prompt_tokens + 12, "turn %d: history %d tokens", t, n_hist);
        TU_CHECK(memcmp(hist, conv, (size_t)(n_hist - 12) * sizeof *hist) == 0 &&
                     memcmp(hist + n_hist - 12, want.toks, 12 * sizeof *hist) == 0,
                 "turn %d: history = conversation + reply", t);
        reset(&got);
        reset(&want);
    }
    /* WHOLE: the conversation with its last 20 tokens changed: the common prefix is reused */
    memcpy(conv, hist, (size_t)n_hist * sizeof *conv);
    for (int i = n_hist - 20; i < n_hist; i++) conv[i] = (int32_t)tu_rng_below(rng, V);
    conv[n_hist - 20] = (hist[n_hist - 20] + 1) % V; /* surely different */
    llm_runner_stats s0, s1;
    stats(r, &s0);
    llm_request_id id;
    TU_CHECK(submit(r, "chat", LLM_SESSION_WHOLE, conv, n_hist, 8, &got, &id) == LLM_OK, "whole");
    llm_runner_wait_idle(r);
    stats(r, &s1);
    alone(m, conv, n_hist, 8, &want);
    same_tokens("whole conversation", &got, &want);
    TU_CHECK(got.res.n_cached_tokens == n_hist - 20, "whole: %d cached, %d expected", got.res.n_cached_tokens,
             n_hist - 20);
    TU_CHECK(s1.prefill_tokens - s0.prefill_tokens == 20, "whole: %llu prefilled, 20 expected",
             (unsigned long long)(s1.prefill_tokens - s0.prefill_tokens));
    reset(&got);
    reset(&want);

    /* fork: no block moves; both continue independently and equal fresh runs */
    n_hist = history(r, "chat", hist);
    stats(r, &s0);
    char err[256];
    TU_CHECK(llm_runner_session_fork(r, "chat", "branch", err, sizeof err) == LLM_OK, "fork: %s", err);
    stats(r, &s1);
    TU_CHECK(s1.kv_blocks_used == s0.kv_blocks_used && s1.n_seqs == s0.n_seqs + 1,
             "fork shares blocks: used %d -> %d, sequences %d -> %d", s0.kv_blocks_used, s1.kv_blocks_used,
             s0.n_seqs, s1.n_seqs);
    TU_CHECK(llm_runner_session_fork(r, "chat", "branch", err, sizeof err) == LLM_ERR_EXISTS,
             "fork onto existing");
    TU_CHECK(llm_runner_session_fork(r, "nope", "b2", err, sizeof err) == LLM_ERR_NOT_FOUND,
             "fork of missing");
    static outcome g2, w2;
    int32_t t1[6] = {1, 2, 3, 4, 5, 6}, t2[5] = {9, 8, 7, 6, 5};
    TU_CHECK(submit(r, "chat", LLM_SESSION_APPEND, t1, 6, 6, &got, &id) == LLM_OK, "chat after fork");
    TU_CHECK(submit(r, "branch", LLM_SESSION_APPEND, t2, 5, 6, &g2, &id) == LLM_OK, "branch after fork");
    llm_runner_wait_idle(r);
    memcpy(conv, hist, (size_t)n_hist * sizeof *conv);
    memcpy(conv + n_hist, t1, sizeof t1);
    alone(m, conv, n_hist + 6, 6, &want);
    memcpy(conv + n_hist, t2, sizeof t2);
    alone(m, conv, n_hist + 5, 6, &w2);
    same_tokens("chat after fork", &got, &want);
    same_tokens("branch after fork", &g2, &w2);
    TU_CHECK(g2.res.n_cached_tokens == n_hist - 1, "branch reused %d of %d", g2.res.n_cached_tokens,
             n_hist - 1);
    size_t n_sess = 0;
    llm_session_info info[4];
    TU_CHECK(llm_runner_session_list(r, info, 4, &n_sess) == LLM_OK && n_sess == 2, "2 sessions listed (%zu)",
             n_sess);
    TU_CHECK(n_sess == 2 && strcmp(info[0].name, "chat") == 0 && strcmp(info[1].name, "branch") == 0 &&
                 info[0].n_kv_tokens > 0 && !info[0].busy,
             "list in creation order, with KV held");
    /* close gives every block back to the pool or the prefix cache */
    TU_CHECK(llm_runner_session_close(r, "chat") == LLM_OK && llm_runner_session_close(r, "branch") == LLM_OK,
             "close");
    TU_CHECK(llm_runner_session_close(r, "chat") == LLM_ERR_NOT_FOUND, "closing twice");
    stats(r, &s1);
    TU_CHECK(s1.kv_blocks_used == 0 && s1.n_seqs == 0 && s1.sessions == 0,
             "after close: %d blocks used, %d seqs", s1.kv_blocks_used, s1.n_seqs);
    reset(&got), reset(&want), reset(&g2), reset(&w2);
    llm_runner_free(r);
    char msg[256];
    TU_CHECK(llm_engine_debug_check(e, msg, sizeof msg) == 0, "engine consistent: %s", msg);
    llm_engine_free(e);
}

static void busy_park_expire(llm_model *m, tu_rng *rng) {
    /* 12 blocks of 16: the session holds ~5, the big request needs 10 */
    llm_engine *e = new_engine(m, 4, 12 * 16);
    llm_runner_params rp = llm_runner_default_params();
    rp.session_ttl_ms = 60000;
    llm_runner *r = NULL;
    if (!e || llm_runner_create(e, &rp, &r) != LLM_OK) {
        TU_CHECK(0, "runner");
        llm_engine_free(e);
        return;
    }
    static outcome a, b, c, want;
    int32_t p[260];
    for (int i = 0; i < 260; i++) p[i] = (int32_t)tu_rng_below(rng, V);
    llm_request_id id_a, id;
    TU_CHECK(submit(r, "s", LLM_SESSION_APPEND, p, 60, 16, &a, &id_a) == LLM_OK, "first turn");
    /* busy: a second request, fork and history are refused while it runs */
    llm_status st2 = submit(r, "s", LLM_SESSION_APPEND, p, 5, 4, &b, &id);
    char err[256];
    llm_status st3 = llm_runner_session_fork(r, "s", "t", err, sizeof err);
    size_t n;
    int32_t tmp[4];
    llm_status st4 = llm_runner_session_history(r, "s", tmp, 4, &n);
    llm_runner_wait_idle(r);
    TU_CHECK(st2 == LLM_ERR_BUSY && st3 == LLM_ERR_BUSY && st4 == LLM_ERR_BUSY, "busy: %s %s %s",
             llm_status_name(st2), llm_status_name(st3), llm_status_name(st4));
    llm_runner_stats s0, s1;
    stats(r, &s0);
    TU_CHECK(s0.kv_blocks_used >= 4, "the idle session holds its blocks (%d)", s0.kv_blocks_used);
    /* a request that needs most of the pool: the idle session is parked, not the request refused */
    TU_CHECK(submit(r, NULL, LLM_SESSION_APPEND, p + 100, 150, 8, &c, &id) == LLM_OK, "big request");
    llm_runner_wait_idle(r);
    stats(r, &s1);
    TU_CHECK(c.status == LLM_OK && c.res.finish == LLM_FINISH_LENGTH, "big request completed");
    TU_CHECK(s1.sessions_parked == s0.sessions_parked + 1, "session parked (%llu)",
             (unsigned long long)s1.sessions_parked);
    alone(m, p + 100, 150, 8, &want);
    same_tokens("big request", &c, &want);
    reset(&want);
    /* the parked session's next turn recomputes what the prefix cache lost, correctly */
    int32_t hist[MAXT], conv[MAXT];
    const int n_hist = history(r, "s", hist);
    TU_CHECK(n_hist == 60 + 16, "history %d", n_hist);
    reset(&b);
    TU_CHECK(submit(r, "s", LLM_SESSION_APPEND, p + 100, 7, 5, &b, &id) == LLM_OK, "turn after parking");
    llm_runner_wait_idle(r);
    memcpy(conv, hist, (size_t)n_hist * sizeof *conv);
    memcpy(conv + n_hist, p + 100, 7 * sizeof *conv);
    alone(m, conv, n_hist + 7, 5, &want);
    same_tokens("after parking", &b, &want);
    reset(&want);

    /* closing a busy session cancels its request; blocks come back */
    reset(&a);
    TU_CHECK(submit(r, "s", LLM_SESSION_APPEND, p, 20, 60, &a, &id_a) == LLM_OK, "long turn");
    const double t0 = now_s();
    while (atomic_load(&a.events) < 2 && now_s() - t0 < 30) usleep(1000);
    TU_CHECK(llm_runner_session_close(r, "s") == LLM_OK, "close busy");
    llm_runner_wait_idle(r);
    stats(r, &s1);
    TU_CHECK(a.res.finish == LLM_FINISH_CANCELLED && atomic_load(&a.n_done) == 1,
             "close cancelled the request (%s)", llm_finish_reason_name(a.res.finish));
    TU_CHECK(s1.sessions == 0 && s1.kv_blocks_used == 0 && s1.n_seqs == 0, "closed: %d sessions, %d blocks",
             s1.sessions, s1.kv_blocks_used);

    /* expiry: two idle sessions, the clock moves past the TTL, both go with their blocks */
    reset(&a), reset(&b);
    TU_CHECK(submit(r, "x", LLM_SESSION_APPEND, p, 30, 3, &a, &id) == LLM_OK, "x");
    TU_CHECK(submit(r, "y", LLM_SESSION_APPEND, p + 30, 30, 3, &b, &id) == LLM_OK, "y");
    llm_runner_wait_idle(r);
    stats(r, &s0);
    TU_CHECK(s0.sessions == 2 && s0.kv_blocks_used > 0, "two idle sessions hold %d blocks",
             s0.kv_blocks_used);
    llm_runner_debug_advance_clock(r, 59000);
    usleep(20000);
    stats(r, &s1);
    TU_CHECK(s1.sessions == 2, "not expired before the TTL");
    llm_runner_debug_advance_clock(r, 2000);
    const double t1 = now_s();
    do {
        usleep(2000);
        stats(r, &s1);
    } while (s1.sessions && now_s() - t1 < 10);
    TU_CHECK(s1.sessions == 0 && s1.sessions_expired == 2 && s1.kv_blocks_used == 0,
             "expired: %d sessions left, %llu expired, %d blocks used", s1.sessions,
             (unsigned long long)s1.sessions_expired, s1.kv_blocks_used);
    reset(&a), reset(&b), reset(&c);
    llm_runner_free(r);
    char msg[256];
    TU_CHECK(llm_engine_debug_check(e, msg, sizeof msg) == 0, "engine consistent: %s", msg);
    llm_engine_free(e);
}

/* pull in small pieces equals the callback stream; cancellation frees blocks within one step */
static void pull_and_cancel(llm_model *m, tu_rng *rng) {
    llm_engine *e = new_engine(m, 4, 4 * 512);
    llm_runner *r = NULL;
    if (!e || llm_runner_create(e, NULL, &r) != LLM_OK) {
        TU_CHECK(0, "runner");
        llm_engine_free(e);
        return;
    }
    int32_t p[40];
    for (int i = 0; i < 40; i++) p[i] = (int32_t)tu_rng_below(rng, V);
    static outcome cb;
    llm_request rq = {.prompt = p, .n_prompt = 40, .gen = greedy(40), .on_done = on_done};
    rq.gen.on_event = on_event;
    rq.gen.user_data = &cb;
    rq.pull = 1;
    llm_request_id id;
    char err[256];
    TU_CHECK(llm_runner_submit(r, &rq, &id, err, sizeof err) == LLM_OK, "pull submit: %s", err);
    int32_t toks[MAXT];
    int n_toks = 0, dones = 0, pulls = 0;
    llm_strbuf text = LLM_STRBUF_INIT;
    char buf[6];
    int32_t tb[3];
    llm_pull pl;
    const double t0 = now_s();
    while (!dones && now_s() - t0 < 60) {
        memset(&pl, 0, sizeof pl);
        pl.text = buf, pl.text_cap = sizeof buf, pl.tokens = tb, pl.tokens_cap = 3;
        llm_status st = llm_runner_pull(r, id, 1000, &pl);
        TU_CHECK(st == LLM_OK, "pull: %s", llm_status_name(st));
        if (st != LLM_OK) break;
        pulls++;
        TU_CHECK(pl.text_len < sizeof buf && strlen(buf) == pl.text_len,
                 "pulled text fits and is terminated");
        llm_strbuf_append(&text, buf, pl.text_len);
        for (size_t i = 0; i < pl.n_tokens && n_toks < MAXT; i++) toks[n_toks++] = tb[i];
        dones += pl.done;
    }
    TU_CHECK(dones == 1 && pl.status == LLM_OK && pl.result.n_generated == 40,
             "pull done once (%d), %d generated", dones, pl.result.n_generated);
    TU_CHECK(n_toks == cb.n && memcmp(toks, cb.toks, (size_t)n_toks * sizeof *toks) == 0,
             "pulled tokens (%d) equal the callback's (%d)", n_toks, cb.n);
    TU_CHECK(text.len == cb.text.len && (!text.len || memcmp(text.data, cb.text.data, text.len) == 0),
             "pulled text equals the callback's (%zu vs %zu bytes)", text.len, cb.text.len);
    TU_CHECK(pulls > 3, "pulled in pieces (%d pulls)", pulls);
    memset(&pl, 0, sizeof pl);
    TU_CHECK(llm_runner_pull(r, id, 0, &pl) == LLM_ERR_NOT_FOUND, "pulled to the end: forgotten");
    TU_CHECK(llm_runner_pull(r, 987654, 0, &pl) == LLM_ERR_NOT_FOUND, "unknown id");
    char small[4];
    pl.text = small, pl.text_cap = sizeof small;
    TU_CHECK(llm_runner_pull(r, id, 0, &pl) == LLM_ERR_INVALID_ARGUMENT,
             "a text buffer under 5 bytes refused");
    llm_strbuf_free(&text);
    reset(&cb);

    /* cancellation: the blocks are back within one step of the cancel being seen */
    static outcome a;
    TU_CHECK(submit(r, NULL, LLM_SESSION_APPEND, p, 40, 400, &a, &id) == LLM_OK, "long request");
    while (atomic_load(&a.events) < 3 && now_s() - t0 < 60) usleep(500);
    llm_runner_stats s0, s1;
    stats(r, &s0);
    TU_CHECK(s0.kv_blocks_used >= 3, "running request holds blocks (%d)", s0.kv_blocks_used);
    TU_CHECK(llm_runner_cancel(r, id) == LLM_OK, "cancel");
    while (!atomic_load(&a.n_done) && now_s() - t0 < 60) usleep(200);
    stats(r, &s1);
    TU_CHECK(a.res.finish == LLM_FINISH_CANCELLED, "cancelled");
    TU_CHECK(s1.kv_blocks_used == 0 && s1.n_seqs == 0, "blocks back after cancel: %d used",
             s1.kv_blocks_used);
    /* the step running when cancel was called, and the one that saw it (and ran nothing for it) */
    TU_CHECK(s1.steps - s0.steps <= 2, "freed within one step: %llu steps passed",
             (unsigned long long)(s1.steps - s0.steps));
    reset(&a);
    llm_runner_free(r);
    llm_engine_free(e);
}

int main(void) {
    tu_rng rng = {tu_fresh_seed("test_runner_sessions") | 1};
    llm_model *m = tu_load_model(DEMO, 1);
    TU_CHECK(m != NULL, "demo model loads");
    if (m) {
        multi_turn(m, &rng);
        busy_park_expire(m, &rng);
        pull_and_cancel(m, &rng);
    }
    llm_model_free(m);
    return tu_finish("test_runner_sessions");
}
