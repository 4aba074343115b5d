/* Named sessions of a runner: a conversation's token history, and the sequence that caches its KV.
 *
 * The history is the truth; the sequence is only a cache of it. That is what keeps every operation
 * simple and safe: parking a session (freeing its sequence under memory pressure) loses nothing but
 * time, and a request reconciles whatever sequence it gets with its tokens by their common prefix.
 *
 * Engine work (freeing or forking a session's sequence) happens on the runner thread only: calls
 * from other threads post it and wait for the loop to run llm_runner_sessions_service (a ticket
 * counter, ctl_posted / ctl_done); calls from the runner thread itself (callbacks) run it at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/engine_internal.h"
#include "engine/runner_internal.h"

static llm_status check_name(const char *name, char *err, size_t cap) {
    if (!name || !name[0])
        return llm_runner_put_err(err, cap, LLM_ERR_INVALID_ARGUMENT, "a session needs a name");
    const size_t n = strnlen(name, LLM_SESSION_NAME_MAX);
    if (n >= LLM_SESSION_NAME_MAX)
        return llm_runner_put_err(err, cap, LLM_ERR_INVALID_ARGUMENT, "session name longer than %d bytes",
                                  LLM_SESSION_NAME_MAX - 1);
    return LLM_OK;
}

runner_session *llm_runner_session_find(llm_runner *r, const char *name) {
    for (runner_session *s = r->sessions; s; s = s->next)
        if (strcmp(s->name, name) == 0) return s;
    return NULL;
}

runner_session *llm_runner_session_new(llm_runner *r, const char *name, llm_status *st, char *err,
                                       size_t cap) {
    if ((*st = check_name(name, err, cap)) != LLM_OK) return NULL;
    if (r->n_sessions >= r->p.max_sessions) {
        *st = llm_runner_put_err(err, cap, LLM_ERR_TOO_MANY_SEQUENCES,
                                 "%d sessions are open, the runner's max_sessions", r->n_sessions);
        return NULL;
    }
    runner_session *s = calloc(1, sizeof *s);
    if (!s) {
        *st = llm_runner_put_err(err, cap, LLM_ERR_OUT_OF_MEMORY, "out of memory");
        return NULL;
    }
    memcpy(s->name, name, strlen(name) + 1);
    s->last_used = llm_runner_now(r);
    runner_session **tail = &r->sessions;
    while (*tail) tail = &(*tail)->next;
    *tail = s;
    r->n_sessions++;
    return s;
}

static void unlink_session(llm_runner *r, runner_session *s) {
    for (runner_session **p = &r->sessions; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            r->n_sessions--;
            break;
        }
    for (runner_session *o = r->sessions; o; o = o->next)
        if (o->fork_of == s) o->fork_of = NULL; /* its fork stays parked: the history is all it needs */
    s->next = NULL;
}

static void session_free(runner_session *s) {
    free(s->toks);
    free(s);
}

/* Runs the posted engine work now (runner thread) or waits for the runner thread to. (mu) */
static void run_ctl(llm_runner *r) {
    if (pthread_equal(pthread_self(), r->thread)) {
        llm_runner_sessions_service(r);
        return;
    }
    const uint64_t ticket = ++r->ctl_posted;
    pthread_cond_signal(&r->work);
    while (r->ctl_done < ticket) pthread_cond_wait(&r->ctl_cv, &r->mu);
}

static int32_t common_prefix(const int32_t *a, int32_t na, const int32_t *b, int32_t nb) {
    int32_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i;
}

/* Gives dst a sequence sharing src's blocks, cut to the prefix it shares with dst's history. */
static void do_fork(llm_runner *r, runner_session *dst, const runner_session *src) {
    if (!src->seq || dst->seq) return;
    llm_seq_id seq = 0;
    llm_status st = llm_seq_fork(r->engine, src->seq, &seq);
    if (st == LLM_ERR_TOO_MANY_SEQUENCES && llm_runner_session_park_one(r, src))
        st = llm_seq_fork(r->engine, src->seq, &seq);
    if (st != LLM_OK) return; /* stays parked: correct, only slower */
    const int32_t keep =
        common_prefix(llm_seq_tokens(r->engine, seq), llm_seq_length(r->engine, seq), dst->toks, dst->n_toks);
    llm_seq_truncate(r->engine, seq, keep);
    dst->seq = seq;
    dst->n_kv = keep;
}

void llm_runner_sessions_service(llm_runner *r) {
    for (int32_t i = 0; i < r->n_seqs_to_free; i++) llm_seq_free(r->engine, r->seqs_to_free[i]);
    r->n_seqs_to_free = 0;
    for (runner_session *s = r->sessions; s; s = s->next)
        if (s->fork_of) {
            do_fork(r, s, s->fork_of);
            s->fork_of = NULL;
        }
    if (r->p.session_ttl_ms > 0) {
        const double now = llm_runner_now(r);
        for (runner_session *s = r->sessions, *nx; s; s = nx) {
            nx = s->next;
            if (s->req || now - s->last_used < (double)r->p.session_ttl_ms) continue;
            unlink_session(r, s);
            if (s->seq) llm_seq_free(r->engine, s->seq);
            session_free(s);
            r->stats.sessions_expired++;
        }
    }
    llm_runner_refresh_kv_stats(r);
    r->ctl_done = r->ctl_posted;
    pthread_cond_broadcast(&r->ctl_cv);
}

int llm_runner_session_park_one(llm_runner *r, const runner_session *keep) {
    runner_session *lru = NULL;
    for (runner_session *s = r->sessions; s; s = s->next)
        if (s->seq && s != keep && (!lru || s->last_used < lru->last_used)) lru = s;
    if (!lru) return 0;
    llm_seq_free(r->engine, lru->seq); /* its full blocks stay in the prefix cache until evicted */
    lru->seq = 0;
    lru->n_kv = 0;
    r->stats.sessions_parked++;
    return 1;
}

double llm_runner_sessions_next_expiry(const llm_runner *r) {
    if (r->p.session_ttl_ms <= 0) return -1;
    double next = -1;
    const double now = llm_runner_now(r);
    for (const runner_session *s = r->sessions; s; s = s->next) {
        if (s->req) continue;
        double left = s->last_used + (double)r->p.session_ttl_ms - now;
        if (left < 0) left = 0;
        if (next < 0 || left < next) next = left;
    }
    return next;
}

void llm_runner_session_release(llm_runner *r, runner_session *s, runner_req *q) {
    /* the request's tokens become the history: its buffer has room for the final sampled token, since
     * toks holds at most n_prompt + max_tokens - 1 tokens when one is pending */
    if (q->tail_tok >= 0 && q->n_toks < q->cap_toks && q->n_toks < r->n_ctx)
        q->toks[q->n_toks++] = q->tail_tok;
    int32_t *old = s->toks;
    s->toks = q->toks, s->n_toks = q->n_toks, s->cap_toks = q->cap_toks;
    q->toks = old, q->n_toks = 0, q->cap_toks = 0;
    if (q->seq) {
        LLM_ASSERT(!s->seq && "a running request holds its session's sequence");
        s->seq = q->seq;
        q->seq = 0;
    }
    if (s->seq) { /* the KV keeps only what the history still holds (a WHOLE request may shorten it) */
        const int32_t keep = common_prefix(llm_seq_tokens(r->engine, s->seq),
                                           llm_seq_length(r->engine, s->seq), s->toks, s->n_toks);
        llm_seq_truncate(r->engine, s->seq, keep);
        s->n_kv = keep;
    } else {
        s->n_kv = 0;
    }
    s->req = NULL;
    q->session = NULL;
    s->last_used = llm_runner_now(r);
    if (s->closing) { /* closed while busy: already unlinked */
        if (s->seq) llm_seq_free(r->engine, s->seq);
        session_free(s);
    }
}

void llm_runner_session_discard(llm_runner *r, runner_session *s) {
    unlink_session(r, s);
    session_free(s);
}

void llm_runner_sessions_free(llm_runner *r) {
    for (runner_session *s = r->sessions, *nx; s; s = nx) {
        nx = s->next;
        if (s->seq) llm_seq_free(r->engine, s->seq);
        session_free(s);
    }
    r->sessions = NULL;
    r->n_sessions = 0;
    for (int32_t i = 0; i < r->n_seqs_to_free; i++) llm_seq_free(r->engine, r->seqs_to_free[i]);
    r->n_seqs_to_free = 0;
}

/* ---- public API -------------------------------------------------------------------------------- */

llm_status llm_runner_session_create(llm_runner *r, const char *name, char *err, size_t err_cap) {
    if (err && err_cap) err[0] = '\0';
    if (!r) return llm_runner_put_err(err, err_cap, LLM_ERR_INVALID_ARGUMENT, "runner is NULL");
    llm_status st = check_name(name, err, err_cap);
    if (st != LLM_OK) return st;
    pthread_mutex_lock(&r->mu);
    if (llm_runner_session_find(r, name))
        st = llm_runner_put_err(err, err_cap, LLM_ERR_EXISTS, "session \"%s\" already exists", name);
    else
        llm_runner_session_new(r, name, &st, err, err_cap);
    pthread_mutex_unlock(&r->mu);
    return st;
}

llm_status llm_runner_session_fork(llm_runner *r, const char *src, const char *dst, char *err,
                                   size_t err_cap) {
    if (err && err_cap) err[0] = '\0';
    if (!r) return llm_runner_put_err(err, err_cap, LLM_ERR_INVALID_ARGUMENT, "runner is NULL");
    llm_status st = check_name(src, err, err_cap);
    if (st == LLM_OK) st = check_name(dst, err, err_cap);
    if (st != LLM_OK) return st;
    pthread_mutex_lock(&r->mu);
    runner_session *s = llm_runner_session_find(r, src), *d = NULL;
    if (!s)
        st = llm_runner_put_err(err, err_cap, LLM_ERR_NOT_FOUND, "no session \"%s\"", src);
    else if (s->req)
        st = llm_runner_put_err(err, err_cap, LLM_ERR_BUSY, "session \"%s\" has request %lld in progress",
                                src, (long long)s->req->id);
    else if (llm_runner_session_find(r, dst))
        st = llm_runner_put_err(err, err_cap, LLM_ERR_EXISTS, "session \"%s\" already exists", dst);
    else
        d = llm_runner_session_new(r, dst, &st, err, err_cap);
    if (d && s->n_toks) {
        d->toks = malloc((size_t)s->n_toks * sizeof *d->toks);
        if (!d->toks) {
            unlink_session(r, d);
            session_free(d);
            d = NULL;
            st = llm_runner_put_err(err, err_cap, LLM_ERR_OUT_OF_MEMORY, "out of memory");
        } else {
            memcpy(d->toks, s->toks, (size_t)s->n_toks * sizeof *d->toks);
            d->n_toks = d->cap_toks = s->n_toks;
        }
    }
    if (d) {
        d->fork_of = s;
        run_ctl(r);
    }
    pthread_mutex_unlock(&r->mu);
    return st;
}

llm_status llm_runner_session_close(llm_runner *r, const char *name) {
    if (!r || !name) return LLM_ERR_INVALID_ARGUMENT;
    pthread_mutex_lock(&r->mu);
    runner_session *s = llm_runner_session_find(r, name);
    llm_status st = s ? LLM_OK : LLM_ERR_NOT_FOUND;
    if (s) {
        unlink_session(r, s);
        if (s->req) { /* goes when its request ends (llm_runner_session_release) */
            s->closing = 1;
            llm_runner_cancel_req(r, s->req);
        } else {
            if (s->seq) {
                while (r->n_seqs_to_free == r->p.max_sessions) run_ctl(r); /* drained by the runner */
                r->seqs_to_free[r->n_seqs_to_free++] = s->seq;
            }
            session_free(s);
            run_ctl(r);
        }
    }
    pthread_mutex_unlock(&r->mu);
    return st;
}

llm_status llm_runner_session_list(llm_runner *r, llm_session_info *out, size_t cap, size_t *n) {
    if (!r || !n || (!out && cap)) return LLM_ERR_INVALID_ARGUMENT;
    pthread_mutex_lock(&r->mu);
    const double now = llm_runner_now(r);
    size_t i = 0;
    for (const runner_session *s = r->sessions; s; s = s->next, i++) {
        if (i >= cap) continue;
        llm_session_info *o = &out[i];
        memcpy(o->name, s->name, sizeof o->name);
        o->n_tokens = s->n_toks;
        o->n_kv_tokens = s->seq ? s->n_kv : 0;
        o->busy = s->req != NULL;
        o->idle_ms = s->req ? 0 : now - s->last_used;
    }
    *n = i;
    pthread_mutex_unlock(&r->mu);
    return LLM_OK;
}

llm_status llm_runner_session_history(llm_runner *r, const char *name, int32_t *tokens, size_t cap,
                                      size_t *n) {
    if (!r || !name || !n || (!tokens && cap)) return LLM_ERR_INVALID_ARGUMENT;
    pthread_mutex_lock(&r->mu);
    const runner_session *s = llm_runner_session_find(r, name);
    llm_status st = !s ? LLM_ERR_NOT_FOUND : s->req ? LLM_ERR_BUSY : LLM_OK;
    if (st == LLM_OK) {
        *n = (size_t)s->n_toks;
        const size_t k = (size_t)s->n_toks < cap ? (size_t)s->n_toks : cap;
        if (k) memcpy(tokens, s->toks, k * sizeof *tokens);
    }
    pthread_mutex_unlock(&r->mu);
    return st;
}
