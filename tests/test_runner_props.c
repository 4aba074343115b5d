/* The runner's acceptance property test: 10,000 random operations from three threads (submit with
 * random lengths, sampling, sessions, pull and callback cancels; cancel at random points; session
 * create / fork / close / list / history; short sleeps so sessions expire; wait_idle) against a small
 * KV budget, ending with zero leaked KV blocks and sequences, consistent block refcounts and a sound
 * prefix cache (llm_engine_debug_check), and never a deadlock (a watchdog bounds the whole run).
 *
 * Every accepted request gets exactly one on_done with LLM_OK, or LLM_ERR_KV_FULL when it alone
 * needs more KV than the budget; its events, pulled tokens and result agree. Sessions whose names only
 * one thread uses are mirrored by that thread (a shadow history) and their statuses and histories are
 * checked exactly; a few shared names are used by every thread and only checked for allowed statuses.
 *
 * The model is the random-weight HF fixture llama_f32 (vocabulary 512, hidden 64, 2 layers, no
 * tokenizer): a token costs microseconds even under ASan, so the 10,000 operations keep realistic
 * lengths. Replay: LLAMAC_TEST_SEED=<seed> (or the seed as argv[1]); LLAMAC_PROPS_OPS=<n> for
 * shorter runs while debugging; LLAMAC_PROPS_MODEL=tiny runs the llm_model_create_random "tiny"
 * preset instead (slow: for plain builds only). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine_internal.h"
#include "test_util.h"

enum {
    N_CTX = 256,
    BLOCK = 8,
    KV_TOKENS = 192, /* 24 blocks: less than one full context, so big requests hit LLM_ERR_KV_FULL */
    N_SEQ_MAX = 8,
    MAX_RUNNING = 4,
    STEP_BUDGET = 16,
    MAX_SESSIONS = 10,
    TTL_MS = 25,
    N_THREADS = 3, /* the main thread and two workers */
    OWNED_PER_THREAD = 4,
    N_SHARED = 3,
    MAX_GEN = 24,
    MAX_PROMPT = 40,
    EOS_ID = 2, /* the fixture's generation_config.json */
    DEFAULT_OPS = 10000,
    WATCHDOG_S = 240,
};

static int32_t g_vocab;
static int g_ops_total = DEFAULT_OPS;
static uint64_t g_seed;
static llm_runner *g_runner;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* ---- watchdog: a deadlock fails the test with the phase it hung in ------------------------------ */

static _Atomic(const char *) g_phase = "setup";
static atomic_int g_ops_done;
static atomic_int g_finished;

static void *watchdog_main(void *arg) {
    (void)arg;
    const double deadline = now_ms() + WATCHDOG_S * 1e3;
    while (!atomic_load(&g_finished)) {
        if (now_ms() > deadline) {
            fprintf(stderr,
                    "test_runner_props: DEADLOCK or runaway: still in phase '%s' after %d s (%d of %d "
                    "operations done); replay with LLAMAC_TEST_SEED=%llu\n",
                    atomic_load(&g_phase), WATCHDOG_S, atomic_load(&g_ops_done), g_ops_total,
                    (unsigned long long)g_seed);
            fflush(stderr);
            _exit(3);
        }
        sleep_us(50000);
    }
    return NULL;
}

/* ---- requests ----------------------------------------------------------------------------------- */

typedef struct req_rec req_rec;
struct req_rec {
    _Atomic llm_request_id id; /* 0 until submit returned */
    int accepted;              /* written by the submitting thread before id is published */
    int thread;
    /* what was asked */
    int32_t prompt[N_CTX + 8];
    int n_prompt;
    llm_sampling_params sampling;
    int max_tokens, ignore_eos, stop_at, pull, has_on_event, has_on_done, use_flag;
    struct req_rec *cb_cancel; /* on_event cancels this other request at its cb_cancel_at-th token */
    int cb_cancel_at;
    int on_session;
    int session_owned; /* the submitting thread mirrors the session (shadow) */
    int whole;
    int base_known; /* the history after it can be computed (WHOLE, or APPEND with base known) */
    int32_t *base;
    int n_base;
    double t_submit;
    volatile int cancel_flag;
    atomic_int cancel_attempted; /* llm_runner_cancel, the flag, or a session close was tried */
    /* runner thread: events and the end */
    int n_events, events_after_done, bad_tokens, eos_streamed, flush_events, stop_hit;
    int32_t gen[MAX_GEN + 1];
    atomic_int n_done;
    llm_request_id done_id;
    llm_status status;
    llm_generate_result res;
    char error[160];
    /* pull */
    int32_t pulled[MAX_GEN + 1];
    int n_pulled, pull_done, pull_abandoned;
    llm_status pull_status;
    llm_generate_result pull_res;
};

static req_rec *g_recs;
static int g_n_recs_cap;
static atomic_int g_n_recs;
static atomic_llong g_accepted;

static int on_event(const llm_generate_event *ev, void *user) {
    req_rec *q = user;
    if (atomic_load(&q->n_done)) q->events_after_done++;
    if (ev->token < 0) {
        q->flush_events++;
        return 0;
    }
    if (ev->token >= g_vocab) q->bad_tokens++;
    if (ev->token == EOS_ID && !q->ignore_eos) q->eos_streamed++;
    if (q->n_events <= MAX_GEN) q->gen[q->n_events] = ev->token;
    q->n_events++;
    if (q->cb_cancel && q->n_events == q->cb_cancel_at) {
        atomic_store(&q->cb_cancel->cancel_attempted, 1);
        llm_status st = llm_runner_cancel(g_runner, atomic_load(&q->cb_cancel->id));
        TU_CHECK(st == LLM_OK || st == LLM_ERR_NOT_FOUND, "cancel from a callback: %s", llm_status_name(st));
    }
    if (q->stop_at && q->n_events == q->stop_at) {
        q->stop_hit = 1;
        return 1;
    }
    return 0;
}

static void on_done(llm_request_id id, llm_status status, const llm_generate_result *res, const char *error,
                    void *user) {
    req_rec *q = user;
    q->done_id = id;
    q->status = status;
    q->res = *res;
    snprintf(q->error, sizeof q->error, "%s", error ? error : "(null)");
    atomic_fetch_add(&q->n_done, 1);
}

/* ---- sessions ----------------------------------------------------------------------------------- */

enum { ABSENT, PRESENT, UNKNOWN };

typedef struct shadow {
    char name[32];
    int state;
    int hist_known;
    int32_t hist[N_CTX + 8];
    int n_hist;
    double lb; /* no later than the start of its current idle period */
    req_rec *pending;
    double t_settled; /* when the last pending request was seen done */
    int closed_busy;  /* closed while pending ran: it goes when that request ends */
} shadow;

typedef struct worker {
    int idx;
    tu_rng rng;
    int n_ops;
    shadow own[OWNED_PER_THREAD];
    int pulls[4096]; /* record indices of pull requests this thread still has to pull or abandon */
    int n_pulls;
    int32_t buf[N_CTX + 64];
    /* counts for the summary */
    int n_submit, n_refused_ctx, n_refused_kv, n_busy, n_cancel, n_session_ops, n_expired_seen, n_pull_calls;
} worker;

static worker g_workers[N_THREADS];

/* Waits up to ms for a request's on_done (a callback runs without runner locks, so the runner may
 * already treat a request as ended a moment before its on_done is counted). */
static int wait_done(req_rec *q, int ms) {
    const double until = now_ms() + ms;
    while (!atomic_load(&q->n_done)) {
        if (now_ms() > until) return 0;
        sleep_us(200);
    }
    return 1;
}

static int expirable(const shadow *s) {
    return now_ms() - s->lb >= TTL_MS;
}

static const char *shared_name(int k, char *buf) {
    snprintf(buf, 32, "shared-%d", k);
    return buf;
}

/* Folds a finished pending request into the shadow history. */
static void settle(shadow *s) {
    req_rec *q = s->pending;
    if (!q || !atomic_load(&q->n_done)) return;
    s->pending = NULL;
    s->lb = q->t_submit;
    s->t_settled = now_ms();
    if (s->closed_busy) {
        s->closed_busy = 0;
        s->state = UNKNOWN;
        s->hist_known = 0;
        return;
    }
    s->state = PRESENT;
    if (!q->base_known || (!q->has_on_event && q->res.n_generated > 0) || q->n_events > MAX_GEN) {
        s->hist_known = 0;
        return;
    }
    int n = 0;
    if (!q->whole) {
        memcpy(s->hist, q->base, (size_t)q->n_base * sizeof(int32_t));
        n = q->n_base;
    }
    memcpy(s->hist + n, q->prompt, (size_t)q->n_prompt * sizeof(int32_t));
    n += q->n_prompt;
    for (int i = 0; i < q->n_events; i++) s->hist[n++] = q->gen[i];
    if (q->status == LLM_OK && q->res.finish == LLM_FINISH_EOS) s->hist[n++] = EOS_ID;
    s->n_hist = n;
    s->hist_known = 1;
}

/* The history of an own session must be exactly the shadow's. Retries BUSY briefly: the runner may
 * still be finishing the request whose on_done has just been counted. */
static void check_history(worker *w, shadow *s) {
    settle(s);
    size_t n = 0;
    llm_status st = LLM_ERR_BUSY;
    for (int tries = 0; tries < 2000; tries++) {
        st = llm_runner_session_history(g_runner, s->name, w->buf, N_CTX + 64, &n);
        if (st != LLM_ERR_BUSY || s->pending) break;
        sleep_us(500);
    }
    if (s->pending) {
        TU_CHECK(st == LLM_OK || st == LLM_ERR_BUSY || (st == LLM_ERR_NOT_FOUND && s->closed_busy),
                 "history of %s, busy with request %lld (done %d): %s", s->name,
                 (long long)atomic_load(&s->pending->id), atomic_load(&s->pending->n_done),
                 llm_status_name(st));
        return;
    }
    if (st == LLM_ERR_NOT_FOUND) {
        TU_CHECK(s->state != PRESENT || expirable(s),
                 "session %s vanished %.1f ms into its idle time (TTL %d ms, not closed)", s->name,
                 now_ms() - s->lb, TTL_MS);
        if (s->state == PRESENT) w->n_expired_seen++;
        s->state = ABSENT;
        return;
    }
    TU_CHECK(st == LLM_OK, "history of idle %s: %s", s->name, llm_status_name(st));
    if (st != LLM_OK) return;
    TU_CHECK(s->state != ABSENT, "session %s exists, but was never created (or was closed)", s->name);
    TU_CHECK(n <= N_CTX, "session %s: history of %zu tokens > n_ctx", s->name, n);
    if (s->state == PRESENT && s->hist_known) {
        int at = 0;
        while (at < (int)n && at < s->n_hist && w->buf[at] == s->hist[at]) at++;
        TU_CHECK((int)n == s->n_hist && at == s->n_hist,
                 "session %s: history of %zu tokens, expected %d; first difference at %d", s->name, n,
                 s->n_hist, at);
    }
    s->state = PRESENT;
    if (n <= N_CTX) {
        memcpy(s->hist, w->buf, n * sizeof(int32_t));
        s->n_hist = (int)n;
        s->hist_known = 1;
    }
}

/* ---- operations --------------------------------------------------------------------------------- */

static void random_tokens(tu_rng *rng, int32_t *p, int n) {
    for (int i = 0; i < n; i++) p[i] = (int32_t)tu_rng_below(rng, (uint32_t)g_vocab);
}

static req_rec *new_rec(void) {
    int i = atomic_fetch_add(&g_n_recs, 1);
    if (i >= g_n_recs_cap) {
        atomic_fetch_sub(&g_n_recs, 1);
        return NULL;
    }
    return &g_recs[i];
}

static req_rec *random_accepted(tu_rng *rng) {
    int n = atomic_load(&g_n_recs);
    if (n == 0) return NULL;
    req_rec *q = &g_recs[tu_rng_below(rng, (uint32_t)n)];
    return atomic_load(&q->id) > 0 ? q : NULL;
}

static void op_submit(worker *w) {
    tu_rng *rng = &w->rng;
    req_rec *q = new_rec();
    if (!q) return;
    q->thread = w->idx;
    const uint32_t kind = tu_rng_below(rng, 100);
    /* 0..4: longer than the context (refused); 5..7: fits the context, not the KV budget (refused);
     * 8..49: on a session; the rest plain */
    shadow *own = NULL;
    char shared[32];
    const char *session = NULL;
    q->max_tokens = 1 + (int)tu_rng_below(rng, MAX_GEN);
    if (kind < 5) {
        q->n_prompt = N_CTX - q->max_tokens + 2 + (int)tu_rng_below(rng, 8); /* n_ctx + 1 tokens fit */
    } else if (kind < 8) {
        const int total = KV_TOKENS + BLOCK + 1 + (int)tu_rng_below(rng, N_CTX - KV_TOKENS - BLOCK);
        q->n_prompt = total - q->max_tokens;
    } else {
        q->n_prompt = 1 + (int)tu_rng_below(rng, MAX_PROMPT);
    }
    random_tokens(rng, q->prompt, q->n_prompt);
    if (kind >= 8 && kind < 50) {
        q->whole = tu_rng_below(rng, 3) == 0;
        if (tu_rng_below(rng, 4) == 0) {
            session = shared_name((int)tu_rng_below(rng, N_SHARED), shared);
            if (q->whole && tu_rng_below(rng, 2)) { /* continue the current history (common prefix) */
                size_t n = 0;
                if (llm_runner_session_history(g_runner, session, w->buf, N_CTX + 64, &n) == LLM_OK &&
                    n <= N_CTX) {
                    int keep = (int)n - (int)tu_rng_below(rng, 4);
                    if (keep < 0) keep = 0;
                    int extra = 1 + (int)tu_rng_below(rng, 8);
                    if (keep + extra <= N_CTX) {
                        memcpy(q->prompt, w->buf, (size_t)keep * sizeof(int32_t));
                        random_tokens(rng, q->prompt + keep, extra);
                        q->n_prompt = keep + extra;
                    }
                }
            }
        } else {
            own = &w->own[tu_rng_below(rng, OWNED_PER_THREAD)];
            session = own->name;
            settle(own);
            if (q->whole && own->state == PRESENT && own->hist_known && tu_rng_below(rng, 3)) {
                int keep = own->n_hist - (int)tu_rng_below(rng, 4);
                if (keep < 0) keep = 0;
                int extra = 1 + (int)tu_rng_below(rng, 8);
                if (keep + extra <= N_CTX) {
                    memcpy(q->prompt, own->hist, (size_t)keep * sizeof(int32_t));
                    random_tokens(rng, q->prompt + keep, extra);
                    q->n_prompt = keep + extra;
                }
            }
        }
    }
    q->ignore_eos = (int)tu_rng_below(rng, 2);
    q->pull = tu_rng_below(rng, 5) == 0;
    q->has_on_event = !q->pull || tu_rng_below(rng, 2);
    q->has_on_done = !q->pull || own || tu_rng_below(rng, 4) != 0;
    if (q->has_on_event && tu_rng_below(rng, 6) == 0) q->stop_at = 1 + (int)tu_rng_below(rng, MAX_GEN);
    if (q->has_on_event && tu_rng_below(rng, 20) == 0) {
        q->cb_cancel = random_accepted(rng);
        q->cb_cancel_at = 1 + (int)tu_rng_below(rng, 4);
    }
    q->use_flag = tu_rng_below(rng, 10) == 0;

    llm_request rq;
    memset(&rq, 0, sizeof rq);
    rq.prompt = q->prompt;
    rq.n_prompt = (size_t)q->n_prompt;
    rq.session = session;
    rq.session_prompt = q->whole ? LLM_SESSION_WHOLE : LLM_SESSION_APPEND;
    rq.pull = q->pull;
    rq.gen = llm_generate_default_params();
    rq.gen.max_tokens = q->max_tokens;
    rq.gen.ignore_eos = q->ignore_eos;
    if (tu_rng_below(rng, 3) == 0) {
        rq.gen.sampling.temperature = 0;
    } else {
        rq.gen.sampling.temperature = 0.5f + (float)tu_rng_below(rng, 100) / 100.0f;
        rq.gen.sampling.top_k = (int32_t)tu_rng_below(rng, 50);
        rq.gen.sampling.seed = tu_rng_next(rng);
    }
    q->sampling = rq.gen.sampling;
    rq.gen.on_event = q->has_on_event ? on_event : NULL;
    rq.gen.user_data = q;
    rq.gen.cancel = q->use_flag ? &q->cancel_flag : NULL;
    rq.on_done = q->has_on_done ? on_done : NULL;

    /* what the submit must say, as far as this thread knows */
    int base_n = 0, base_known = 1;
    if (own) {
        if (own->pending) {
            base_known = 0;
        } else if (own->state == PRESENT) {
            base_known = own->hist_known && !expirable(own);
            base_n = own->n_hist;
        } else if (own->state == UNKNOWN) {
            base_known = 0;
        }
    }
    if (!own && session) base_known = 0;
    const int eff_prompt = q->n_prompt + (q->whole ? 0 : base_n);
    q->base_known = own && (q->whole || base_known);
    if (own && base_known && !q->whole) {
        q->base = malloc((size_t)(base_n + 1) * sizeof(int32_t));
        if (base_n) memcpy(q->base, own->hist, (size_t)base_n * sizeof(int32_t));
        q->n_base = base_n;
    }
    q->session_owned = own != NULL;
    q->on_session = session != NULL;
    q->t_submit = now_ms();

    char err[256] = "";
    llm_request_id id = 0;
    llm_status st = llm_runner_submit(g_runner, &rq, &id, err, sizeof err);
    /* the runner may free a session a moment after its request's on_done was counted: retry briefly */
    for (int tries = 0;
         st == LLM_ERR_BUSY && own && !own->pending && now_ms() - own->t_settled < 500 && tries < 1000;
         tries++) {
        sleep_us(500);
        st = llm_runner_submit(g_runner, &rq, &id, err, sizeof err);
    }
    w->n_submit++;
    if (st == LLM_OK) {
        TU_CHECK(id > 0, "accepted with id %lld", (long long)id);
        if (own && own->pending && !own->closed_busy) {
            TU_CHECK(wait_done(own->pending, 2000), "submit on busy session %s accepted", session);
            settle(own);
        }
        if (own && own->pending) { /* closed while busy, and gone since */
            wait_done(own->pending, 2000);
            settle(own);
        }
        if (base_known && (!session || own))
            TU_CHECK(eff_prompt + q->max_tokens <= N_CTX + 1,
                     "accepted %d + %d tokens > n_ctx %d (session %s)", eff_prompt, q->max_tokens, N_CTX,
                     session ? session : "-");
        if (!session)
            TU_CHECK(q->n_prompt + q->max_tokens <= KV_TOKENS + 1, "accepted %d + %d tokens > KV budget %d",
                     q->n_prompt, q->max_tokens, KV_TOKENS);
        q->accepted = 1;
        atomic_fetch_add(&g_accepted, 1);
        atomic_store(&q->id, id);
        if (own) {
            own->pending = q;
            own->closed_busy = 0;
            own->state = PRESENT;
        }
        if (q->pull) {
            if (w->n_pulls < (int)(sizeof w->pulls / sizeof w->pulls[0]))
                w->pulls[w->n_pulls++] = (int)(q - g_recs);
            else
                q->pull_abandoned = 1;
        }
        return;
    }
    TU_CHECK(id == 0, "refused request got id %lld", (long long)id);
    if (st == LLM_ERR_CONTEXT_FULL) {
        w->n_refused_ctx++;
        TU_CHECK(!base_known || eff_prompt + q->max_tokens > N_CTX + 1,
                 "refused as context full: %d + %d tokens, n_ctx %d (session %s): %s", eff_prompt,
                 q->max_tokens, N_CTX, session ? session : "-", err);
    } else if (st == LLM_ERR_KV_FULL) {
        w->n_refused_kv++;
        TU_CHECK(!base_known || eff_prompt + q->max_tokens > KV_TOKENS - BLOCK,
                 "refused as KV full: %d + %d tokens, budget %d (session %s): %s", eff_prompt, q->max_tokens,
                 KV_TOKENS, session ? session : "-", err);
    } else if (st == LLM_ERR_BUSY) {
        w->n_busy++;
        TU_CHECK(session && (!own || own->pending || own->state == UNKNOWN),
                 "BUSY for %s, which has no request: %s", session ? session : "(no session)", err);
    } else if (st == LLM_ERR_TOO_MANY_SEQUENCES) {
        /* max_sessions reached while the submit had to create the session */
        TU_CHECK(session && (!own || own->state != PRESENT || expirable(own)),
                 "TOO_MANY_SEQUENCES for existing session %s: %s", session ? session : "(none)", err);
    } else {
        TU_CHECK(0, "submit: %s: %s", llm_status_name(st), err);
    }
    free(q->base);
    q->base = NULL;
    /* a context-full refusal of a non-session request is certain: it must have been refused */
    if (!session) {
        if (kind < 5) TU_CHECK(st == LLM_ERR_CONTEXT_FULL, "over-long request: %s", llm_status_name(st));
        if (kind >= 5 && kind < 8)
            TU_CHECK(st == LLM_ERR_KV_FULL, "over-budget request: %s", llm_status_name(st));
    }
}

static void op_cancel(worker *w) {
    tu_rng *rng = &w->rng;
    int n = atomic_load(&g_n_recs);
    w->n_cancel++;
    if (n == 0 || tu_rng_below(rng, 20) == 0) {
        /* never issued */
        llm_status st = llm_runner_cancel(g_runner, (llm_request_id)(1000000000 + tu_rng_below(rng, 1000)));
        TU_CHECK(st == LLM_ERR_NOT_FOUND, "cancel of an unknown id: %s", llm_status_name(st));
        return;
    }
    /* mostly recent requests (likely live), sometimes any */
    int k = tu_rng_below(rng, 2) ? n - 1 - (int)tu_rng_below(rng, (uint32_t)(n < 16 ? n : 16))
                                 : (int)tu_rng_below(rng, (uint32_t)n);
    req_rec *q = &g_recs[k];
    llm_request_id id = atomic_load(&q->id);
    if (id <= 0) return;
    atomic_store(&q->cancel_attempted, 1);
    if (q->use_flag && tu_rng_below(rng, 2)) {
        q->cancel_flag = 1;
        return;
    }
    llm_status st = llm_runner_cancel(g_runner, id);
    TU_CHECK(st == LLM_OK || st == LLM_ERR_NOT_FOUND, "cancel %lld: %s", (long long)id, llm_status_name(st));
    if (st == LLM_ERR_NOT_FOUND && q->has_on_done && !q->pull)
        TU_CHECK(wait_done(q, 2000), "cancel %lld: NOT_FOUND, yet no on_done within 2 s", (long long)id);
}

static void op_session(worker *w) {
    tu_rng *rng = &w->rng;
    char err[256] = "", nbuf[32], sbuf[32];
    w->n_session_ops++;
    const uint32_t what = tu_rng_below(rng, 100);
    shadow *own = &w->own[tu_rng_below(rng, OWNED_PER_THREAD)];
    settle(own);
    const int use_shared = tu_rng_below(rng, 4) == 0;
    const char *name = use_shared ? shared_name((int)tu_rng_below(rng, N_SHARED), nbuf) : own->name;
    if (what < 20) { /* create */
        const double t0 = now_ms();
        llm_status st = llm_runner_session_create(g_runner, name, err, sizeof err);
        TU_CHECK(st == LLM_OK || st == LLM_ERR_EXISTS || st == LLM_ERR_TOO_MANY_SEQUENCES,
                 "create %s: %s: %s", name, llm_status_name(st), err);
        if (use_shared) return;
        if (st == LLM_OK) {
            TU_CHECK(own->state != PRESENT || (!own->pending && expirable(own)),
                     "create %s succeeded while it exists (%s, idle %.1f ms)", name,
                     own->pending ? "busy" : "idle", now_ms() - own->lb);
            own->state = PRESENT;
            own->hist_known = 1;
            own->n_hist = 0;
            own->lb = t0;
        } else if (st == LLM_ERR_EXISTS) {
            TU_CHECK(own->state != ABSENT, "create %s: EXISTS, but it was never created or was closed", name);
        } else {
            TU_CHECK(own->state != PRESENT || expirable(own), "create %s: TOO_MANY_SEQUENCES while it exists",
                     name);
        }
    } else if (what < 40) { /* fork: any source, into an own or shared name */
        const int src_kind = (int)tu_rng_below(rng, 3);
        shadow *src_own = NULL;
        const char *src;
        if (src_kind == 0) {
            src_own = &w->own[tu_rng_below(rng, OWNED_PER_THREAD)];
            settle(src_own);
            src = src_own->name;
        } else if (src_kind == 1) {
            src = shared_name((int)tu_rng_below(rng, N_SHARED), sbuf);
        } else {
            src = g_workers[tu_rng_below(rng, N_THREADS)].own[tu_rng_below(rng, OWNED_PER_THREAD)].name;
        }
        const double t0 = now_ms();
        llm_status st = llm_runner_session_fork(g_runner, src, name, err, sizeof err);
        TU_CHECK(st == LLM_OK || st == LLM_ERR_NOT_FOUND || st == LLM_ERR_EXISTS || st == LLM_ERR_BUSY ||
                     st == LLM_ERR_TOO_MANY_SEQUENCES || (st == LLM_ERR_INVALID_ARGUMENT && src == name),
                 "fork %s -> %s: %s: %s", src, name, llm_status_name(st), err);
        if (src_own && src_own != own) {
            if (st == LLM_ERR_NOT_FOUND)
                TU_CHECK(src_own->state != PRESENT || (!src_own->pending && expirable(src_own)),
                         "fork from %s: NOT_FOUND while it exists", src);
            if (st == LLM_ERR_BUSY)
                TU_CHECK(src_own->pending || src_own->state == UNKNOWN || now_ms() - src_own->t_settled < 500,
                         "fork from idle %s: BUSY", src);
            if (st == LLM_OK) {
                TU_CHECK(src_own->state != ABSENT, "fork from %s: OK, but it does not exist", src);
                TU_CHECK(!src_own->pending || wait_done(src_own->pending, 2000),
                         "fork from %s: OK while a request runs on it", src);
            }
        }
        if (use_shared || src_own == own) return;
        if (st == LLM_OK) {
            TU_CHECK(own->state != PRESENT || (!own->pending && expirable(own)),
                     "fork into %s succeeded while it exists", name);
            own->state = PRESENT;
            own->lb = t0;
            own->hist_known = src_own && src_own->state == PRESENT && src_own->hist_known &&
                              !src_own->pending && !expirable(src_own);
            if (own->hist_known) {
                memcpy(own->hist, src_own->hist, (size_t)src_own->n_hist * sizeof(int32_t));
                own->n_hist = src_own->n_hist;
            }
            if (!src_own) own->hist_known = 0;
        } else if (st == LLM_ERR_EXISTS) {
            TU_CHECK(own->state != ABSENT, "fork into %s: EXISTS, but it was never created", name);
        }
    } else if (what < 55) { /* close */
        req_rec *pend = use_shared ? NULL : own->pending;
        if (pend) atomic_store(&pend->cancel_attempted, 1);
        llm_status st = llm_runner_session_close(g_runner, name);
        TU_CHECK(st == LLM_OK || st == LLM_ERR_NOT_FOUND, "close %s: %s", name, llm_status_name(st));
        if (use_shared) {
            return;
        }
        if (st == LLM_ERR_NOT_FOUND) {
            TU_CHECK(own->state != PRESENT || (!own->pending && expirable(own)),
                     "close %s: NOT_FOUND while it exists", name);
            if (own->state == PRESENT) w->n_expired_seen++;
        } else {
            TU_CHECK(own->state != ABSENT, "close %s: OK, but it was never created", name);
        }
        if (own->pending) {
            own->closed_busy = 1;
            own->state = UNKNOWN;
        } else {
            own->state = ABSENT;
        }
        own->hist_known = 0;
    } else if (what < 75) { /* history */
        if (use_shared) {
            size_t n = 0;
            llm_status st = llm_runner_session_history(g_runner, name, w->buf, N_CTX + 64, &n);
            TU_CHECK(st == LLM_OK || st == LLM_ERR_NOT_FOUND || st == LLM_ERR_BUSY, "history %s: %s", name,
                     llm_status_name(st));
            if (st == LLM_OK) {
                TU_CHECK(n <= N_CTX, "history of %s: %zu tokens", name, n);
                for (size_t i = 0; i < n && i < N_CTX + 64; i++)
                    if (w->buf[i] < 0 || w->buf[i] >= g_vocab) {
                        TU_CHECK(0, "history of %s: token %d at %zu", name, w->buf[i], i);
                        break;
                    }
            }
            /* a small buffer: the length is still reported */
            size_t n2 = 0;
            st = llm_runner_session_history(g_runner, name, w->buf, 1, &n2);
            TU_CHECK(st == LLM_OK || st == LLM_ERR_NOT_FOUND || st == LLM_ERR_BUSY, "history %s, cap 1: %s",
                     name, llm_status_name(st));
        } else {
            check_history(w, own);
        }
    } else { /* list */
        llm_session_info info[MAX_SESSIONS + 4];
        size_t cap = tu_rng_below(rng, 2) ? MAX_SESSIONS + 4 : tu_rng_below(rng, 4), n = 0;
        llm_status st = llm_runner_session_list(g_runner, cap ? info : NULL, cap, &n);
        TU_CHECK(st == LLM_OK, "list: %s", llm_status_name(st));
        TU_CHECK(n <= MAX_SESSIONS, "%zu sessions open, max_sessions %d", n, MAX_SESSIONS);
        for (size_t i = 0; i < n && i < cap; i++) {
            const llm_session_info *si = &info[i];
            TU_CHECK(memchr(si->name, 0, sizeof si->name) && si->name[0], "list: bad name");
            /* while busy the history is the one before the request, the KV may be ahead of it */
            TU_CHECK(si->n_tokens >= 0 && si->n_tokens <= N_CTX && si->n_kv_tokens >= 0 &&
                         (si->busy || si->n_kv_tokens <= si->n_tokens),
                     "list %s: %d tokens, %d in KV (busy %d, idle %.1f ms)", si->name, si->n_tokens,
                     si->n_kv_tokens, si->busy, si->idle_ms);
            TU_CHECK(si->busy ? si->idle_ms == 0 : si->idle_ms >= 0, "list %s: busy %d idle %.1f ms",
                     si->name, si->busy, si->idle_ms);
            for (int k = 0; k < OWNED_PER_THREAD; k++) {
                shadow *s = &w->own[k];
                if (strcmp(si->name, s->name) != 0) continue;
                settle(s);
                TU_CHECK(s->state != ABSENT, "list shows %s, which was never created or was closed", s->name);
                if (s->state == PRESENT && s->hist_known && !s->pending && !si->busy)
                    TU_CHECK(si->n_tokens == s->n_hist, "list %s: %d tokens, expected %d", s->name,
                             si->n_tokens, s->n_hist);
                if (s->state == PRESENT && !s->pending && !si->busy)
                    TU_CHECK(si->idle_ms <= now_ms() - s->lb + 1.0, "list %s: idle %.1f ms > %.1f ms since",
                             s->name, si->idle_ms, now_ms() - s->lb);
            }
        }
    }
}

/* One pull call on a pull request of this thread; done ones are checked and dropped. */
static void pull_once(worker *w, int slot, int timeout_ms) {
    req_rec *q = &g_recs[w->pulls[slot]];
    llm_request_id id = atomic_load(&q->id);
    int32_t toks[8];
    char text[16];
    llm_pull p;
    memset(&p, 0, sizeof p);
    p.tokens = toks;
    p.tokens_cap = 1 + tu_rng_below(&w->rng, 8);
    if (tu_rng_below(&w->rng, 2)) {
        p.text = text;
        p.text_cap = sizeof text;
    }
    w->n_pull_calls++;
    llm_status st = llm_runner_pull(g_runner, id, timeout_ms, &p);
    TU_CHECK(st == LLM_OK,
             "pull %lld: %s (pulled %d so far; on_done %d: %s, finish %s, %d tokens; session %d/%d; "
             "cancel tried %d)",
             (long long)id, llm_status_name(st), q->n_pulled, atomic_load(&q->n_done),
             llm_status_name(q->status), llm_finish_reason_name(q->res.finish), q->res.n_generated,
             q->on_session, q->session_owned, atomic_load(&q->cancel_attempted));
    if (st != LLM_OK) {
        w->pulls[slot] = w->pulls[--w->n_pulls];
        q->pull_abandoned = 1;
        return;
    }
    TU_CHECK(p.n_tokens <= p.tokens_cap && p.text_len == 0,
             "pull %lld: %zu tokens (cap %zu), %zu bytes of text", (long long)id, p.n_tokens, p.tokens_cap,
             p.text_len);
    for (size_t i = 0; i < p.n_tokens && i < p.tokens_cap; i++) {
        if (q->n_pulled <= MAX_GEN) q->pulled[q->n_pulled] = toks[i];
        q->n_pulled++;
    }
    if (p.done) {
        q->pull_done = 1;
        q->pull_status = p.status;
        q->pull_res = p.result;
        w->pulls[slot] = w->pulls[--w->n_pulls];
        llm_pull again;
        memset(&again, 0, sizeof again);
        TU_CHECK(llm_runner_pull(g_runner, id, 0, &again) == LLM_ERR_NOT_FOUND, "pull %lld after done",
                 (long long)id);
    }
}

static void op_pull(worker *w) {
    if (w->n_pulls == 0) return;
    int slot = (int)tu_rng_below(&w->rng, (uint32_t)w->n_pulls);
    pull_once(w, slot, tu_rng_below(&w->rng, 3) ? 0 : 1 + (int)tu_rng_below(&w->rng, 3));
}

static void op_stats(void) {
    llm_runner_stats st;
    llm_runner_get_stats(g_runner, &st);
    TU_CHECK(st.running >= 0 && st.running <= MAX_RUNNING && st.queued >= 0, "stats: %d running, %d queued",
             st.running, st.queued);
    TU_CHECK(st.completed + st.cancelled + st.failed <= st.submitted,
             "stats: %llu + %llu + %llu > %llu submitted", (unsigned long long)st.completed,
             (unsigned long long)st.cancelled, (unsigned long long)st.failed,
             (unsigned long long)st.submitted);
    TU_CHECK(st.sessions >= 0 && st.sessions <= MAX_SESSIONS, "stats: %d sessions", st.sessions);
}

static void run_ops(worker *w) {
    while (w->n_ops > 0) {
        w->n_ops--;
        atomic_fetch_add(&g_ops_done, 1);
        const uint32_t r = tu_rng_below(&w->rng, 1000);
        if (r < 380) {
            op_submit(w);
        } else if (r < 560) {
            op_cancel(w);
        } else if (r < 800) {
            op_session(w);
        } else if (r < 900) {
            op_pull(w);
        } else if (r < 940) {
            op_stats();
        } else if (r < 995) {
            sleep_us((long)tu_rng_below(&w->rng, 1500));
        } else if (r < 998) {
            sleep_us((long)(TTL_MS * 1000 + tu_rng_below(&w->rng, TTL_MS * 1000))); /* let sessions expire */
        } else {
            llm_runner_wait_idle(g_runner);
        }
    }
}

static void *worker_main(void *arg) {
    run_ops(arg);
    return NULL;
}

/* ---- the end: everything accounted for ---------------------------------------------------------- */

static void check_request(const req_rec *q) {
    const long long id = (long long)atomic_load(&q->id);
    if (q->has_on_done) {
        TU_CHECK(atomic_load(&q->n_done) == 1, "request %lld: %d on_done calls", id, atomic_load(&q->n_done));
        if (atomic_load(&q->n_done) != 1) return;
        TU_CHECK(q->done_id == id, "request %lld: on_done with id %lld", id, (long long)q->done_id);
    } else {
        TU_CHECK(atomic_load(&q->n_done) == 0, "request %lld without on_done", id);
    }
    const int have = q->has_on_done || q->pull_done;
    if (!have) return;
    const llm_status status = q->has_on_done ? q->status : q->pull_status;
    const llm_generate_result *res = q->has_on_done ? &q->res : &q->pull_res;
    if (q->has_on_done && q->pull_done) {
        TU_CHECK(q->pull_status == q->status && q->pull_res.finish == q->res.finish &&
                     q->pull_res.n_generated == q->res.n_generated,
                 "request %lld: pull ended %s/%s/%d, on_done %s/%s/%d", id, llm_status_name(q->pull_status),
                 llm_finish_reason_name(q->pull_res.finish), q->pull_res.n_generated,
                 llm_status_name(q->status), llm_finish_reason_name(q->res.finish), q->res.n_generated);
    }
    const int needed = q->n_prompt + q->max_tokens + (q->session_owned && !q->whole ? q->n_base : 0);
    const int base_uncertain = q->on_session && !(q->session_owned && q->base_known && (q->whole || q->base));
    if (status == LLM_ERR_KV_FULL) {
        TU_CHECK(res->finish == LLM_FINISH_NONE, "request %lld: KV_FULL with finish %s", id,
                 llm_finish_reason_name(res->finish));
        TU_CHECK(needed > KV_TOKENS - BLOCK || base_uncertain,
                 "request %lld failed KV_FULL though it needs %d tokens of a %d budget: %s", id, needed,
                 KV_TOKENS, q->error);
        return;
    }
    TU_CHECK(status == LLM_OK, "request %lld: %s: %s", id, llm_status_name(status), q->error);
    if (status != LLM_OK) return;
    TU_CHECK(res->finish == LLM_FINISH_LENGTH || res->finish == LLM_FINISH_EOS ||
                 res->finish == LLM_FINISH_CANCELLED,
             "request %lld: finish %s", id, llm_finish_reason_name(res->finish));
    TU_CHECK(res->n_generated >= 0 && res->n_generated <= q->max_tokens, "request %lld: %d of max %d tokens",
             id, res->n_generated, q->max_tokens);
    if (res->finish == LLM_FINISH_LENGTH)
        TU_CHECK(res->n_generated == q->max_tokens, "request %lld: finish length after %d of %d tokens", id,
                 res->n_generated, q->max_tokens);
    if (res->finish == LLM_FINISH_EOS)
        TU_CHECK(!q->ignore_eos && res->n_generated < q->max_tokens,
                 "request %lld: EOS (ignore_eos %d) after %d", id, q->ignore_eos, res->n_generated);
    if (res->finish == LLM_FINISH_CANCELLED && !(q->on_session && !q->session_owned)) /* shared: any close */
        TU_CHECK(atomic_load(&q->cancel_attempted) || q->stop_hit,
                 "request %lld: cancelled, but nobody asked", id);
    if (q->stop_hit && q->stop_at < q->max_tokens)
        TU_CHECK(res->finish == LLM_FINISH_CANCELLED && q->n_events == q->stop_at,
                 "request %lld: on_event stopped it at %d, yet %s after %d events", id, q->stop_at,
                 llm_finish_reason_name(res->finish), q->n_events);
    if (q->has_on_event) {
        TU_CHECK(q->n_events == res->n_generated, "request %lld: %d events, n_generated %d", id, q->n_events,
                 res->n_generated);
        TU_CHECK(q->events_after_done == 0 && q->bad_tokens == 0 && q->eos_streamed == 0,
                 "request %lld: %d events after done, %d tokens out of range, %d EOS streamed", id,
                 q->events_after_done, q->bad_tokens, q->eos_streamed);
    }
    if (q->pull_done) {
        TU_CHECK(q->n_pulled == res->n_generated, "request %lld: %d tokens pulled, n_generated %d", id,
                 q->n_pulled, res->n_generated);
        for (int i = 0; i < q->n_pulled && i <= MAX_GEN; i++)
            if (q->pulled[i] < 0 || q->pulled[i] >= g_vocab) {
                TU_CHECK(0, "request %lld: pulled token %d", id, q->pulled[i]);
                break;
            }
        if (q->has_on_event)
            TU_CHECK(q->n_pulled == q->n_events &&
                         memcmp(q->pulled, q->gen,
                                (size_t)(q->n_events <= MAX_GEN ? q->n_events : MAX_GEN) * sizeof(int32_t)) ==
                             0,
                     "request %lld: pulled tokens differ from the streamed ones (%d vs %d)", id, q->n_pulled,
                     q->n_events);
    }
}

/* The streamed tokens must be what llm_generate gives alone for the same effective prompt (the session
 * history it continued plus its prompt) and sampling: batching, preemption, parking, prefix reuse and
 * copy-on-write forks change nothing. Run on the engine after llm_runner_free. */
typedef struct ref_out {
    int32_t tokens[MAX_GEN + 1];
    int n;
} ref_out;

static int ref_event(const llm_generate_event *ev, void *user) {
    ref_out *o = user;
    if (ev->token >= 0 && o->n <= MAX_GEN) o->tokens[o->n++] = ev->token;
    return 0;
}

static int check_against_alone(llm_engine *e, const req_rec *q) {
    if (!q->has_on_event || !q->has_on_done || q->status != LLM_OK || q->n_events == 0 ||
        q->n_events > MAX_GEN)
        return 0;
    if (q->on_session && !(q->session_owned && q->base_known)) return 0;
    static int32_t full[2 * N_CTX + 16];
    int n = 0;
    if (q->on_session && !q->whole) {
        memcpy(full, q->base, (size_t)q->n_base * sizeof(int32_t));
        n = q->n_base;
    }
    memcpy(full + n, q->prompt, (size_t)q->n_prompt * sizeof(int32_t));
    n += q->n_prompt;
    llm_seq_id seq;
    if (llm_seq_create(e, &seq) != LLM_OK) return 0;
    llm_generate_params gp = llm_generate_default_params();
    gp.sampling = q->sampling;
    gp.max_tokens = q->n_events;
    gp.ignore_eos = q->ignore_eos;
    ref_out o;
    o.n = 0;
    gp.on_event = ref_event;
    gp.user_data = &o;
    llm_generate_result res;
    llm_status st = llm_generate(e, seq, full, (size_t)n, &gp, &res);
    llm_seq_free(e, seq);
    TU_CHECK(st == LLM_OK, "reference of request %lld: %s", (long long)atomic_load(&q->id),
             llm_engine_last_error(e));
    int at = 0;
    while (at < o.n && at < q->n_events && o.tokens[at] == q->gen[at]) at++;
    TU_CHECK(o.n == q->n_events && at == o.n,
             "request %lld (%s%s, prompt %d of %d tokens, %s): %d tokens streamed, %d alone, first "
             "difference at %d",
             (long long)atomic_load(&q->id), q->on_session ? "session " : "plain",
             q->on_session ? (q->whole ? "WHOLE" : "APPEND") : "", q->n_prompt, n,
             q->sampling.temperature == 0 ? "greedy" : "sampled", q->n_events, o.n, at);
    return 1;
}

static llm_model *load_model(void) {
    const char *which = getenv("LLAMAC_PROPS_MODEL");
    if (which && strcmp(which, "tiny") == 0) {
        llm_model_params mp = llm_model_default_params();
        mp.n_threads = 1;
        llm_model *m = NULL;
        char err[256];
        llm_status st = llm_model_create_random("tiny", LLM_DTYPE_BF16, 7, &mp, &m, err, sizeof err);
        TU_CHECK(st == LLM_OK, "random tiny model: %s", err);
        return m;
    }
    char dir[1024];
    return tu_load_model(tu_fixture("llama_f32", dir, sizeof dir), 1);
}

int main(int argc, char **argv) {
    g_seed = argc > 1 ? strtoull(argv[1], NULL, 0) : tu_fresh_seed("test_runner_props");
    if (argc > 1)
        printf("test_runner_props: seed %llu (from the command line)\n", (unsigned long long)g_seed);
    const char *ops_env = getenv("LLAMAC_PROPS_OPS");
    if (ops_env && *ops_env) g_ops_total = atoi(ops_env);
    pthread_t wd;
    pthread_create(&wd, NULL, watchdog_main, NULL);
    const double t_start = now_ms();

    llm_model *m = load_model();
    TU_CHECK(m != NULL, "model");
    if (!m) return tu_finish("test_runner_props");
    llm_model_info mi;
    llm_model_get_info(m, &mi);
    g_vocab = mi.n_vocab;

    llm_engine_params ep = llm_engine_default_params();
    ep.n_ctx = N_CTX;
    ep.n_seq_max = N_SEQ_MAX;
    ep.kv_block_size = BLOCK;
    ep.kv_budget_tokens = KV_TOKENS;
    llm_engine *e = NULL;
    TU_CHECK(llm_engine_create(m, &ep, &e) == LLM_OK, "engine: %s", llm_model_last_error(m));
    llm_runner_params rp = llm_runner_default_params();
    rp.max_running = MAX_RUNNING;
    rp.step_token_budget = STEP_BUDGET;
    rp.max_sessions = MAX_SESSIONS;
    rp.session_ttl_ms = TTL_MS;
    if (e) TU_CHECK(llm_runner_create(e, &rp, &g_runner) == LLM_OK, "runner: %s", llm_engine_last_error(e));
    if (!g_runner) {
        llm_engine_free(e);
        llm_model_free(m);
        return tu_finish("test_runner_props");
    }

    g_n_recs_cap = g_ops_total + 16;
    g_recs = calloc((size_t)g_n_recs_cap, sizeof *g_recs);
    tu_rng master = {g_seed | 1};
    for (int t = 0; t < N_THREADS; t++) {
        worker *w = &g_workers[t];
        w->idx = t;
        w->rng.s = tu_rng_next(&master) | 1;
        w->n_ops = g_ops_total / N_THREADS + (t == 0 ? g_ops_total % N_THREADS : 0);
        for (int k = 0; k < OWNED_PER_THREAD; k++) {
            snprintf(w->own[k].name, sizeof w->own[k].name, "t%d-s%d", t, k);
            w->own[k].state = ABSENT;
            w->own[k].hist_known = 1;
        }
    }

    /* ---- the random operations, from three threads ---- */
    atomic_store(&g_phase, "random operations");
    pthread_t th[N_THREADS];
    for (int t = 1; t < N_THREADS; t++) pthread_create(&th[t], NULL, worker_main, &g_workers[t]);
    run_ops(&g_workers[0]);
    for (int t = 1; t < N_THREADS; t++) pthread_join(th[t], NULL);
    const double t_ops = now_ms();

    /* ---- the end: half the pull requests are pulled to the end, the others abandoned ---- */
    atomic_store(&g_phase, "cancel everything, wait_idle");
    const int n_recs = atomic_load(&g_n_recs);
    for (int i = 0; i < n_recs; i++) {
        req_rec *q = &g_recs[i];
        if (q->accepted && !atomic_load(&q->n_done)) {
            atomic_store(&q->cancel_attempted, 1);
            llm_status st = llm_runner_cancel(g_runner, atomic_load(&q->id));
            TU_CHECK(st == LLM_OK || st == LLM_ERR_NOT_FOUND, "final cancel: %s", llm_status_name(st));
        }
    }
    llm_runner_wait_idle(g_runner);
    llm_runner_stats st;
    llm_runner_get_stats(g_runner, &st);
    TU_CHECK(st.running == 0 && st.queued == 0, "idle runner: %d running, %d queued", st.running, st.queued);

    atomic_store(&g_phase, "final pulls");
    int n_abandoned = 0, n_pulled_done = 0;
    for (int t = 0; t < N_THREADS; t++) {
        worker *w = &g_workers[t];
        while (w->n_pulls > 0) {
            const int slot = w->n_pulls - 1;
            req_rec *q = &g_recs[w->pulls[slot]];
            if (tu_rng_below(&w->rng, 2)) {
                q->pull_abandoned = 1;
                w->n_pulls--;
                n_abandoned++;
                continue;
            }
            const double deadline = now_ms() + 10000;
            while (w->n_pulls > slot && now_ms() < deadline) pull_once(w, slot, 100);
            TU_CHECK(q->pull_done || q->pull_abandoned, "pull %lld never ended",
                     (long long)atomic_load(&q->id));
            if (w->n_pulls > slot) w->n_pulls--;
        }
    }

    /* every request: exactly one on_done, consistent results */
    uint64_t known_completed = 0, known_cancelled = 0, known_failed = 0, unknown = 0;
    for (int i = 0; i < n_recs; i++) {
        const req_rec *q = &g_recs[i];
        if (!q->accepted) {
            TU_CHECK(atomic_load(&q->n_done) == 0, "refused request got on_done");
            continue;
        }
        check_request(q);
        if (q->pull_done) n_pulled_done++;
        if (!q->has_on_done && !q->pull_done) {
            unknown++;
            continue;
        }
        const llm_status s = q->has_on_done ? q->status : q->pull_status;
        const llm_finish_reason f = q->has_on_done ? q->res.finish : q->pull_res.finish;
        if (s != LLM_OK)
            known_failed++;
        else if (f == LLM_FINISH_CANCELLED)
            known_cancelled++;
        else
            known_completed++;
    }

    /* ---- sessions: exact histories now that nothing runs, expiry, then close them all ---- */
    atomic_store(&g_phase, "sessions at the end");
    int n_sessions_seen = 0;
    for (int t = 0; t < N_THREADS; t++)
        for (int k = 0; k < OWNED_PER_THREAD; k++) {
            shadow *s = &g_workers[t].own[k];
            settle(s);
            TU_CHECK(!s->pending, "session %s: its request never ended", s->name);
            check_history(&g_workers[t], s);
            n_sessions_seen += s->state == PRESENT;
        }
    llm_runner_get_stats(g_runner, &st);
    const uint64_t expired_before = st.sessions_expired;
    {
        char err[256] = "";
        /* make room, then a session left alone for 4 TTLs must be gone (the idle runner expires it) */
        llm_session_info info[MAX_SESSIONS + 4];
        size_t n = 0;
        llm_runner_session_list(g_runner, info, MAX_SESSIONS + 4, &n);
        if (n >= MAX_SESSIONS) llm_runner_session_close(g_runner, info[0].name);
        TU_CHECK(llm_runner_session_create(g_runner, "ttl-probe", err, sizeof err) == LLM_OK,
                 "create ttl-probe: %s", err);
        const double t0 = now_ms();
        llm_status hs = LLM_OK;
        size_t hn = 0;
        while (now_ms() - t0 < 4 * TTL_MS + 2000) {
            sleep_us(TTL_MS * 1000);
            hs = llm_runner_session_history(g_runner, "ttl-probe", g_workers[0].buf, N_CTX + 64, &hn);
            if (hs == LLM_ERR_NOT_FOUND) break;
        }
        TU_CHECK(hs == LLM_ERR_NOT_FOUND, "an idle session outlived its %d ms TTL by 2 s", TTL_MS);
        TU_CHECK(now_ms() - t0 >= TTL_MS, "ttl-probe expired after %.1f ms < TTL %d", now_ms() - t0, TTL_MS);
        llm_runner_get_stats(g_runner, &st);
        TU_CHECK(st.sessions_expired > expired_before, "sessions_expired %llu did not count ttl-probe",
                 (unsigned long long)st.sessions_expired);
    }
    {
        llm_session_info info[MAX_SESSIONS + 4];
        size_t n = 0;
        TU_CHECK(llm_runner_session_list(g_runner, info, MAX_SESSIONS + 4, &n) == LLM_OK, "list");
        for (size_t i = 0; i < n && i < MAX_SESSIONS + 4; i++) {
            llm_status cs = llm_runner_session_close(g_runner, info[i].name);
            TU_CHECK(cs == LLM_OK || cs == LLM_ERR_NOT_FOUND, "close %s: %s", info[i].name,
                     llm_status_name(cs));
        }
        TU_CHECK(llm_runner_session_list(g_runner, NULL, 0, &n) == LLM_OK && n == 0,
                 "%zu sessions after closing all", n);
    }

    llm_runner_get_stats(g_runner, &st);
    TU_CHECK(st.submitted == (uint64_t)atomic_load(&g_accepted), "stats: %llu submitted, %lld accepted",
             (unsigned long long)st.submitted, (long long)atomic_load(&g_accepted));
    TU_CHECK(st.submitted == st.completed + st.cancelled + st.failed,
             "stats: submitted %llu != completed %llu + cancelled %llu + failed %llu",
             (unsigned long long)st.submitted, (unsigned long long)st.completed,
             (unsigned long long)st.cancelled, (unsigned long long)st.failed);
    TU_CHECK(
        st.completed >= known_completed && st.cancelled >= known_cancelled && st.failed >= known_failed &&
            (st.completed - known_completed) + (st.cancelled - known_cancelled) +
                    (st.failed - known_failed) ==
                unknown,
        "stats %llu/%llu/%llu vs callbacks %llu/%llu/%llu + %llu unobserved",
        (unsigned long long)st.completed, (unsigned long long)st.cancelled, (unsigned long long)st.failed,
        (unsigned long long)known_completed, (unsigned long long)known_cancelled,
        (unsigned long long)known_failed, (unsigned long long)unknown);
    TU_CHECK(st.sessions == 0 && st.running == 0 && st.queued == 0,
             "stats at the end: %d sessions, %d running, %d queued", st.sessions, st.running, st.queued);
    TU_CHECK(expired_before > 0, "no session expired during the random operations");

    int sum_submit = 0, sum_ctx = 0, sum_kv = 0, sum_busy = 0, sum_cancel = 0, sum_sess = 0, sum_exp = 0,
        sum_pull = 0;
    for (int t = 0; t < N_THREADS; t++) {
        const worker *w = &g_workers[t];
        sum_submit += w->n_submit, sum_ctx += w->n_refused_ctx, sum_kv += w->n_refused_kv,
            sum_busy += w->n_busy;
        sum_cancel += w->n_cancel, sum_sess += w->n_session_ops, sum_exp += w->n_expired_seen;
        sum_pull += w->n_pull_calls;
    }
    printf("%d operations in %.2f s: %d submits (%lld accepted; refused: %d context, %d KV, %d busy), %d "
           "cancels, "
           "%d session ops (%d expiries seen), %d pull calls (%d pulled to the end, %d abandoned)\n",
           g_ops_total, (t_ops - t_start) / 1e3, sum_submit, (long long)atomic_load(&g_accepted), sum_ctx,
           sum_kv, sum_busy, sum_cancel, sum_sess, sum_exp, sum_pull, n_pulled_done, n_abandoned);
    printf("runner: completed %llu, cancelled %llu, failed %llu, preempted %llu, steps %llu, prefill %llu, "
           "cached "
           "%llu, expired %llu, parked %llu; %d own sessions open before closing\n",
           (unsigned long long)st.completed, (unsigned long long)st.cancelled, (unsigned long long)st.failed,
           (unsigned long long)st.preempted, (unsigned long long)st.steps,
           (unsigned long long)st.prefill_tokens, (unsigned long long)st.cached_tokens,
           (unsigned long long)st.sessions_expired, (unsigned long long)st.sessions_parked, n_sessions_seen);

    /* ---- the engine is the caller's again: nothing leaked, refcounts and prefix cache sound ---- */
    atomic_store(&g_phase, "llm_runner_free");
    llm_runner_free(g_runner);
    g_runner = NULL;
    llm_engine_info info;
    llm_engine_get_info(e, &info);
    TU_CHECK(info.kv_blocks_used == 0 && info.n_seqs == 0,
             "after llm_runner_free: %d KV blocks used, %d sequences", info.kv_blocks_used, info.n_seqs);
    char msg[512] = "";
    TU_CHECK(llm_engine_debug_check(e, msg, sizeof msg) == 0, "engine check: %s", msg);
    atomic_store(&g_phase, "outputs against llm_generate alone");
    const double t_ref = now_ms();
    int n_ref = 0, n_ref_session = 0;
    tu_rng pick = {g_seed ^ 0x9e3779b97f4a7c15ull};
    for (int i = 0; i < n_recs; i++) {
        const req_rec *q = &g_recs[i];
        if (!q->accepted || (!q->on_session && tu_rng_below(&pick, 4) != 0)) continue; /* sessions: all */
        if (check_against_alone(e, q)) {
            n_ref++;
            n_ref_session += q->on_session;
        }
    }
    llm_engine_get_info(e, &info);
    TU_CHECK(info.kv_blocks_used == 0 && info.n_seqs == 0 && llm_engine_debug_check(e, msg, sizeof msg) == 0,
             "after the reference runs: %d blocks, %d sequences; %s", info.kv_blocks_used, info.n_seqs, msg);
    printf("%d outputs (%d on sessions) equal llm_generate alone (%.2f s)\n", n_ref, n_ref_session,
           (now_ms() - t_ref) / 1e3);
    printf("engine: %d blocks cached of %d, prefix hits %lld of %lld looked-up tokens; total %.2f s\n",
           info.kv_blocks_cached, info.kv_blocks_total, (long long)info.prefix_hit_tokens,
           (long long)info.prefix_lookup_tokens, (now_ms() - t_start) / 1e3);

    for (int i = 0; i < n_recs; i++) free(g_recs[i].base);
    free(g_recs);
    llm_engine_free(e);
    llm_model_free(m);
    atomic_store(&g_finished, 1);
    pthread_join(wd, NULL);
    return tu_finish("test_runner_props");
}
