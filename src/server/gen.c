/* Generation jobs: runner callbacks in, JSON or SSE out (see gen.h). */
#include "server/gen.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the job ------------------------------------------------------------------------------------ */

gen_job *gen_job_new(llm_server *s, int n, int chat, struct MHD_Connection *conn) {
    gen_job *job = calloc(1, sizeof *job);
    if (!job) return NULL;
    job->choices = calloc((size_t)n, sizeof *job->choices);
    if (!job->choices) {
        free(job);
        return NULL;
    }
    job->srv = s;
    job->n = n;
    job->chat = chat;
    job->conn = conn;
    job->refs = 1;
    job->created = (int64_t)time(NULL);
    job->t_submit = now_s();
    http_new_id(job->id, sizeof job->id, chat ? "chatcmpl-" : "cmpl-");
    for (int i = 0; i < n; i++) job->choices[i].job = job, job->choices[i].index = i;
    pthread_mutex_init(&job->mu, NULL);
    pthread_cond_init(&job->cv, NULL);
    pthread_mutex_lock(&s->jobs_mu);
    job->reg_next = s->jobs;
    if (s->jobs) s->jobs->reg_prev = job;
    s->jobs = job;
    s->n_jobs++;
    pthread_mutex_unlock(&s->jobs_mu);
    return job;
}

static void job_free(gen_job *job) {
    llm_server *s = job->srv;
    pthread_mutex_lock(&s->jobs_mu);
    if (job->reg_prev)
        job->reg_prev->reg_next = job->reg_next;
    else
        s->jobs = job->reg_next;
    if (job->reg_next) job->reg_next->reg_prev = job->reg_prev;
    s->n_jobs--;
    pthread_cond_broadcast(&s->jobs_cv);
    pthread_mutex_unlock(&s->jobs_mu);
    for (int i = 0; i < job->n; i++) {
        gen_choice *c = &job->choices[i];
        llm_strbuf_free(&c->text);
        llm_strbuf_free(&c->content);
        llm_strbuf_free(&c->echo);
        free(c->recs);
        llm_tool_parser_free(c->parser);
        for (int k = 0; k < c->n_calls; k++)
            llm_strbuf_free(&c->calls[k].name), llm_strbuf_free(&c->calls[k].args);
        free(c->calls);
    }
    llm_strbuf_free(&job->sse);
    pthread_mutex_destroy(&job->mu);
    pthread_cond_destroy(&job->cv);
    free(job->choices);
    free(job);
}

static void unref(gen_job *job) {
    pthread_mutex_lock(&job->mu);
    const int last = --job->refs == 0;
    pthread_mutex_unlock(&job->mu);
    if (last) job_free(job);
}

void gen_release(gen_job *job) {
    if (job) unref(job);
}

/* runner thread */
static int on_event(const llm_generate_event *ev, void *user) {
    gen_choice *c = user;
    gen_job *job = c->job;
    const double t = now_s();
    pthread_mutex_lock(&job->mu);
    if (ev->text_len) llm_strbuf_append(&c->text, ev->text, ev->text_len);
    if (ev->token >= 0) {
        if (job->logprobs && ev->sample) {
            if (c->n_recs == c->cap_recs) {
                const size_t cap = c->cap_recs ? 2 * c->cap_recs : 32;
                tok_rec *p = realloc(c->recs, cap * sizeof *p);
                if (p) c->recs = p, c->cap_recs = cap;
            }
            if (c->n_recs < c->cap_recs) {
                tok_rec *r = &c->recs[c->n_recs++];
                r->token = ev->token;
                r->logprob = ev->sample->logprob;
                r->n_top = job->top_logprobs < ev->sample->n_top ? job->top_logprobs : ev->sample->n_top;
                memcpy(r->top, ev->sample->top, (size_t)r->n_top * sizeof r->top[0]);
            }
        }
        if (c->t_last == 0)
            srv_metrics_ttft(&job->srv->metrics, t - job->t_submit);
        else
            srv_metrics_itl(&job->srv->metrics, t - c->t_last);
        c->t_last = t;
    }
    pthread_cond_broadcast(&job->cv);
    pthread_mutex_unlock(&job->mu);
    return 0;
}

/* runner thread */
static void on_done(llm_request_id id, llm_status status, const llm_generate_result *res, const char *error,
                    void *user) {
    (void)id;
    gen_choice *c = user;
    gen_job *job = c->job;
    srv_metrics_tokens(&job->srv->metrics, (uint64_t)res->n_prompt_tokens, (uint64_t)res->n_generated,
                       (uint64_t)res->n_cached_tokens);
    pthread_mutex_lock(&job->mu);
    c->done = 1;
    c->status = status;
    c->res = *res;
    snprintf(c->error, sizeof c->error, "%s", error);
    pthread_cond_broadcast(&job->cv);
    const int last = --job->refs == 0;
    pthread_mutex_unlock(&job->mu);
    if (last) job_free(job);
}

llm_status gen_submit(gen_job *job, int i, llm_request *rq, char *err, size_t err_cap) {
    gen_choice *c = &job->choices[i];
    rq->gen.on_event = on_event;
    rq->gen.user_data = c;
    rq->on_done = on_done;
    pthread_mutex_lock(&job->mu);
    job->refs++; /* before the submit: on_done may come at once */
    pthread_mutex_unlock(&job->mu);
    llm_request_id id = 0;
    llm_status st = llm_runner_submit(job->srv->runner, rq, &id, err, err_cap);
    if (st != LLM_OK) {
        pthread_mutex_lock(&job->mu);
        job->refs--;
        c->done = 1;
        pthread_mutex_unlock(&job->mu);
        return st;
    }
    pthread_mutex_lock(&job->mu);
    c->id = id;
    pthread_mutex_unlock(&job->mu);
    return LLM_OK;
}

static void cancel_running(gen_job *job) {
    llm_request_id ids[64];
    int n = 0;
    pthread_mutex_lock(&job->mu);
    for (int i = 0; i < job->n && n < 64; i++)
        if (!job->choices[i].done && job->choices[i].id) ids[n++] = job->choices[i].id;
    pthread_mutex_unlock(&job->mu);
    for (int i = 0; i < n; i++) llm_runner_cancel(job->srv->runner, ids[i]);
}

void gen_abort(gen_job *job) {
    cancel_running(job);
}

void gen_cancel(gen_job *job) {
    pthread_mutex_lock(&job->mu);
    const int first = !job->cancelled;
    job->cancelled = 1;
    pthread_mutex_unlock(&job->mu);
    if (first) srv_metrics_cancelled(&job->srv->metrics);
    cancel_running(job);
}

void gen_cancel_all(llm_server *s) {
    /* pin the jobs (a job whose last reference is going is skipped: it is finishing anyway), then
     * cancel outside the registry lock */
    gen_job *pinned[1024];
    int np = 0;
    pthread_mutex_lock(&s->jobs_mu);
    for (gen_job *j = s->jobs; j && np < 1024; j = j->reg_next) {
        pthread_mutex_lock(&j->mu);
        if (j->refs > 0) j->refs++, pinned[np++] = j;
        pthread_mutex_unlock(&j->mu);
    }
    pthread_mutex_unlock(&s->jobs_mu);
    for (int i = 0; i < np; i++) cancel_running(pinned[i]);
    for (int i = 0; i < np; i++) unref(pinned[i]);
}

static int all_done(gen_job *job) {
    for (int i = 0; i < job->n; i++)
        if (!job->choices[i].done) return 0;
    return 1;
}

static void timed_wait(gen_job *job, int ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec += ts.tv_nsec / 1000000000L, ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&job->cv, &job->mu, &ts);
}

int gen_wait_all(gen_job *job) {
    for (;;) {
        pthread_mutex_lock(&job->mu);
        if (!all_done(job)) timed_wait(job, 50);
        const int done = all_done(job);
        pthread_mutex_unlock(&job->mu);
        if (done) return job->cancelled ? -1 : 0;
        if (!http_client_alive(job->conn)) {
            gen_cancel(job);
            pthread_mutex_lock(&job->mu);
            while (!all_done(job)) pthread_cond_wait(&job->cv, &job->mu);
            pthread_mutex_unlock(&job->mu);
            return -1;
        }
    }
}

/* ---- output pieces ------------------------------------------------------------------------------ */

static void json_str(llm_strbuf *o, const char *s, size_t n) {
    llm_json_escape(o, s, n);
}

static void bytes_array(llm_strbuf *o, const char *s, size_t n) {
    llm_strbuf_append_char(o, '[');
    for (size_t i = 0; i < n; i++) llm_strbuf_appendf(o, "%s%u", i ? "," : "", (unsigned char)s[i]);
    llm_strbuf_append_char(o, ']');
}

static void num(llm_strbuf *o, double v) {
    if (!isfinite(v)) v = v < 0 ? -9999.0 : 0.0; /* JSON has no -inf: a banned token's logprob */
    llm_strbuf_appendf(o, "%.9g", v);
}

/* chat logprobs: {"content":[{token, logprob, bytes, top_logprobs:[...]}]} for recs[from, to) */
static void chat_logprobs(llm_server *s, llm_strbuf *o, const tok_rec *recs, size_t n) {
    llm_strbuf t = LLM_STRBUF_INIT;
    llm_strbuf_append_str(o, "{\"content\":[");
    for (size_t i = 0; i < n; i++) {
        const tok_rec *r = &recs[i];
        llm_strbuf_clear(&t);
        srv_token_text(s, r->token, &t);
        llm_strbuf_append_str(o, i ? ",{\"token\":" : "{\"token\":");
        json_str(o, t.data ? t.data : "", t.len);
        llm_strbuf_append_str(o, ",\"logprob\":");
        num(o, r->logprob);
        llm_strbuf_append_str(o, ",\"bytes\":");
        bytes_array(o, t.data ? t.data : "", t.len);
        llm_strbuf_append_str(o, ",\"top_logprobs\":[");
        for (int k = 0; k < r->n_top; k++) {
            llm_strbuf_clear(&t);
            srv_token_text(s, r->top[k].token, &t);
            llm_strbuf_append_str(o, k ? ",{\"token\":" : "{\"token\":");
            json_str(o, t.data ? t.data : "", t.len);
            llm_strbuf_append_str(o, ",\"logprob\":");
            num(o, r->top[k].logprob);
            llm_strbuf_append_str(o, ",\"bytes\":");
            bytes_array(o, t.data ? t.data : "", t.len);
            llm_strbuf_append_char(o, '}');
        }
        llm_strbuf_append_str(o, "]}");
    }
    llm_strbuf_append_str(o, "]}");
    llm_strbuf_free(&t);
}

/* completions (legacy) logprobs: {"tokens","token_logprobs","top_logprobs","text_offset"} */
static void legacy_logprobs(llm_server *s, llm_strbuf *o, const tok_rec *recs, size_t n, size_t offset0) {
    llm_strbuf t = LLM_STRBUF_INIT;
    llm_strbuf_append_str(o, "{\"tokens\":[");
    size_t *offs = calloc(n ? n : 1, sizeof *offs);
    size_t off = offset0;
    for (size_t i = 0; i < n; i++) {
        llm_strbuf_clear(&t);
        srv_token_text(s, recs[i].token, &t);
        if (i) llm_strbuf_append_char(o, ',');
        json_str(o, t.data ? t.data : "", t.len);
        if (offs) offs[i] = off;
        off += t.len;
    }
    llm_strbuf_append_str(o, "],\"token_logprobs\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) llm_strbuf_append_char(o, ',');
        num(o, recs[i].logprob);
    }
    llm_strbuf_append_str(o, "],\"top_logprobs\":[");
    for (size_t i = 0; i < n; i++) {
        llm_strbuf_append_str(o, i ? ",{" : "{");
        for (int k = 0; k < recs[i].n_top; k++) {
            llm_strbuf_clear(&t);
            srv_token_text(s, recs[i].top[k].token, &t);
            if (k) llm_strbuf_append_char(o, ',');
            json_str(o, t.data ? t.data : "", t.len);
            llm_strbuf_append_char(o, ':');
            num(o, recs[i].top[k].logprob);
        }
        llm_strbuf_append_char(o, '}');
    }
    llm_strbuf_append_str(o, "],\"text_offset\":[");
    for (size_t i = 0; i < n; i++) llm_strbuf_appendf(o, "%s%zu", i ? "," : "", offs ? offs[i] : 0);
    llm_strbuf_append_str(o, "]}");
    free(offs);
    llm_strbuf_free(&t);
}

static const char *finish_name(const gen_choice *c) {
    if (c->n_calls > 0) return "tool_calls";
    switch (c->res.finish) {
    case LLM_FINISH_LENGTH:
        return "length";
    default:
        return "stop";
    }
}

static void usage(gen_job *job, llm_strbuf *o) {
    int64_t completion = 0, cached = 0;
    for (int i = 0; i < job->n; i++) completion += job->choices[i].res.n_generated;
    cached = job->n_cached_total;
    for (int i = 0; i < job->n; i++)
        cached = cached > job->choices[i].res.n_cached_tokens ? cached : job->choices[i].res.n_cached_tokens;
    llm_strbuf_appendf(o,
                       "{\"prompt_tokens\":%d,\"completion_tokens\":%lld,\"total_tokens\":%lld,"
                       "\"prompt_tokens_details\":{\"cached_tokens\":%lld}}",
                       job->n_prompt_total, (long long)completion,
                       (long long)(job->n_prompt_total + completion), (long long)cached);
}

static void head(gen_job *job, llm_strbuf *o, const char *object) {
    llm_server *s = job->srv;
    llm_strbuf_append_str(o, "{\"id\":");
    json_str(o, job->id, strlen(job->id));
    llm_strbuf_appendf(o, ",\"object\":\"%s\",\"created\":%lld,\"model\":", object, (long long)job->created);
    json_str(o, s->model_id, strlen(s->model_id));
    llm_strbuf_append_str(o, ",\"system_fingerprint\":");
    json_str(o, s->fingerprint, strlen(s->fingerprint));
}

/* ---- tool-call parsing (HTTP side) -------------------------------------------------------------- */

typedef struct emit_ctx {
    gen_job *job;
    gen_choice *c;
    llm_strbuf *sse; /* streaming: deltas are written here as chunks */
} emit_ctx;

static void chunk_open(gen_job *job, llm_strbuf *o, int index) {
    llm_strbuf_append_str(o, "data: ");
    head(job, o, job->chat ? "chat.completion.chunk" : "text_completion");
    llm_strbuf_appendf(o, ",\"choices\":[{\"index\":%d,", index);
}

static void chunk_close(gen_job *job, llm_strbuf *o, const char *finish) {
    if (finish)
        llm_strbuf_appendf(o, ",\"finish_reason\":\"%s\"}]", finish);
    else
        llm_strbuf_append_str(o, ",\"finish_reason\":null}]");
    if (job->include_usage) llm_strbuf_append_str(o, ",\"usage\":null");
    llm_strbuf_append_str(o, "}\n\n");
}

static void content_chunk(emit_ctx *x, const char *text, size_t len, const tok_rec *recs, size_t n_recs) {
    gen_job *job = x->job;
    llm_strbuf *o = x->sse;
    chunk_open(job, o, x->c->index);
    if (job->chat) {
        llm_strbuf_append_str(o, "\"delta\":{\"content\":");
        json_str(o, text, len);
        llm_strbuf_append_str(o, "},\"logprobs\":");
        if (n_recs)
            chat_logprobs(job->srv, o, recs, n_recs);
        else
            llm_strbuf_append_str(o, "null");
    } else {
        llm_strbuf_append_str(o, "\"text\":");
        json_str(o, text, len);
        llm_strbuf_append_str(o, ",\"logprobs\":");
        if (n_recs)
            legacy_logprobs(job->srv, o, recs, n_recs, 0);
        else
            llm_strbuf_append_str(o, "null");
    }
    chunk_close(job, o, NULL);
}

static void on_tool_event(const llm_tool_event *ev, void *user) {
    emit_ctx *x = user;
    gen_choice *c = x->c;
    gen_job *job = x->job;
    switch (ev->kind) {
    case LLM_TOOL_EV_CONTENT:
        llm_strbuf_append(&c->content, ev->text, ev->len);
        if (x->sse && ev->len) content_chunk(x, ev->text, ev->len, NULL, 0);
        break;
    case LLM_TOOL_EV_CALL_BEGIN: {
        if (c->n_calls == c->cap_calls) {
            const int cap = c->cap_calls ? 2 * c->cap_calls : 4;
            gen_tool_call *p = realloc(c->calls, (size_t)cap * sizeof *p);
            if (!p) return;
            c->calls = p, c->cap_calls = cap;
        }
        gen_tool_call *tc = &c->calls[c->n_calls++];
        memset(tc, 0, sizeof *tc);
        http_new_id(tc->id, sizeof tc->id, "call_");
        llm_strbuf_append(&tc->name, ev->text, ev->len);
        if (x->sse) {
            llm_strbuf *o = x->sse;
            chunk_open(job, o, c->index);
            llm_strbuf_appendf(o,
                               "\"delta\":{\"tool_calls\":[{\"index\":%d,\"id\":\"%s\",\"type\":\"function\","
                               "\"function\":{\"name\":",
                               c->n_calls - 1, tc->id);
            json_str(o, ev->text, ev->len);
            llm_strbuf_append_str(o, ",\"arguments\":\"\"}}]},\"logprobs\":null");
            chunk_close(job, o, NULL);
        }
        break;
    }
    case LLM_TOOL_EV_ARGS:
        if (c->n_calls == 0) return;
        llm_strbuf_append(&c->calls[c->n_calls - 1].args, ev->text, ev->len);
        if (x->sse && ev->len) {
            llm_strbuf *o = x->sse;
            chunk_open(job, o, c->index);
            llm_strbuf_appendf(
                o, "\"delta\":{\"tool_calls\":[{\"index\":%d,\"function\":{\"arguments\":", c->n_calls - 1);
            json_str(o, ev->text, ev->len);
            llm_strbuf_append_str(o, "}}]},\"logprobs\":null");
            chunk_close(job, o, NULL);
        }
        break;
    case LLM_TOOL_EV_CALL_END:
        break;
    }
}

/* Feeds generated text through the tool parser (chat with tools) or straight to content. */
static void consume(gen_job *job, gen_choice *c, const char *text, size_t len, llm_strbuf *sse,
                    const tok_rec *recs, size_t n_recs) {
    emit_ctx x = {job, c, sse};
    if (c->parser) {
        llm_tool_parser_feed(c->parser, text, len, on_tool_event, &x);
        if (sse && n_recs) { /* logprobs travel in a chunk of their own when a parser holds text */
            chunk_open(job, sse, c->index);
            llm_strbuf_append_str(sse, "\"delta\":{},\"logprobs\":");
            chat_logprobs(job->srv, sse, recs, n_recs);
            chunk_close(job, sse, NULL);
        }
        return;
    }
    llm_strbuf_append(&c->content, text, len);
    if (sse && (len || n_recs)) content_chunk(&x, text, len, recs, n_recs);
}

static void finish_parser(gen_job *job, gen_choice *c, llm_strbuf *sse) {
    if (!c->parser) return;
    emit_ctx x = {job, c, sse};
    llm_tool_parser_finish(c->parser, on_tool_event, &x);
}

/* ---- non-streamed response ---------------------------------------------------------------------- */

static int blank(const llm_strbuf *b) {
    for (size_t i = 0; i < b->len; i++)
        if (b->data[i] != ' ' && b->data[i] != '\n' && b->data[i] != '\t' && b->data[i] != '\r') return 0;
    return 1;
}

void gen_build_response(gen_job *job, llm_strbuf *o) {
    for (int i = 0; i < job->n; i++) { /* every choice is done: its text is final */
        gen_choice *c = &job->choices[i];
        if (c->parser && job->forced_prefix[0])
            consume(job, c, job->forced_prefix, strlen(job->forced_prefix), NULL, NULL, 0);
        consume(job, c, c->text.data ? c->text.data : "", c->text.len, NULL, NULL, 0);
        finish_parser(job, c, NULL);
    }
    head(job, o, job->chat ? "chat.completion" : "text_completion");
    llm_strbuf_append_str(o, ",\"choices\":[");
    for (int i = 0; i < job->n; i++) {
        gen_choice *c = &job->choices[i];
        if (i) llm_strbuf_append_char(o, ',');
        if (job->chat) {
            llm_strbuf_appendf(o, "{\"index\":%d,\"message\":{\"role\":\"assistant\",\"content\":", i);
            if (c->n_calls && blank(&c->content))
                llm_strbuf_append_str(o, "null");
            else
                json_str(o, c->content.data ? c->content.data : "", c->content.len);
            if (c->n_calls) {
                llm_strbuf_append_str(o, ",\"tool_calls\":[");
                for (int k = 0; k < c->n_calls; k++) {
                    const gen_tool_call *tc = &c->calls[k];
                    llm_strbuf_appendf(o, "%s{\"id\":\"%s\",\"type\":\"function\",\"function\":{\"name\":",
                                       k ? "," : "", tc->id);
                    json_str(o, tc->name.data ? tc->name.data : "", tc->name.len);
                    llm_strbuf_append_str(o, ",\"arguments\":");
                    json_str(o, tc->args.data ? tc->args.data : "{}", tc->args.data ? tc->args.len : 2);
                    llm_strbuf_append_str(o, "}}");
                }
                llm_strbuf_append_char(o, ']');
            }
            llm_strbuf_append_str(o, "},\"logprobs\":");
            if (job->logprobs)
                chat_logprobs(job->srv, o, c->recs, c->n_recs);
            else
                llm_strbuf_append_str(o, "null");
        } else {
            llm_strbuf_append_str(o, "{\"text\":");
            llm_strbuf both = LLM_STRBUF_INIT;
            llm_strbuf_append(&both, c->echo.data ? c->echo.data : "", c->echo.len);
            llm_strbuf_append(&both, c->content.data ? c->content.data : "", c->content.len);
            json_str(o, both.data ? both.data : "", both.len);
            llm_strbuf_free(&both);
            llm_strbuf_appendf(o, ",\"index\":%d,\"logprobs\":", i);
            if (job->logprobs)
                legacy_logprobs(job->srv, o, c->recs, c->n_recs, c->echo.len);
            else
                llm_strbuf_append_str(o, "null");
        }
        llm_strbuf_appendf(o, ",\"finish_reason\":\"%s\"}", finish_name(c));
    }
    llm_strbuf_append_str(o, "],\"usage\":");
    usage(job, o);
    llm_strbuf_append_char(o, '}');
}

/* ---- SSE ------------------------------------------------------------------------------------------ */

/* Turns whatever the choices produced since the last call into chunks in job->sse. Returns 1 if it
 * wrote anything. The job's lock is held only to take the new output. */
static int pump(gen_job *job) {
    llm_strbuf *o = &job->sse;
    const size_t before = o->len;
    if (!job->sse_started) {
        job->sse_started = 1;
        for (int i = 0; i < job->n; i++) {
            gen_choice *c = &job->choices[i];
            emit_ctx x = {job, c, o};
            if (job->chat) {
                chunk_open(job, o, i);
                llm_strbuf_append_str(
                    o, "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null");
                chunk_close(job, o, NULL);
                if (c->parser && job->forced_prefix[0])
                    llm_tool_parser_feed(c->parser, job->forced_prefix, strlen(job->forced_prefix),
                                         on_tool_event, &x);
            } else if (c->echo.len) {
                content_chunk(&x, c->echo.data, c->echo.len, NULL, 0);
            }
        }
    }
    int n_final = 0;
    for (int i = 0; i < job->n; i++) {
        gen_choice *c = &job->choices[i];
        if (c->final_sent) {
            n_final++;
            continue;
        }
        pthread_mutex_lock(&job->mu);
        const size_t tl = c->text.len - c->text_taken;
        char *text = tl ? malloc(tl) : NULL;
        if (text) memcpy(text, c->text.data + c->text_taken, tl);
        c->text_taken += text ? tl : 0;
        const size_t nr = c->n_recs - c->recs_taken;
        tok_rec *recs = nr ? malloc(nr * sizeof *recs) : NULL;
        if (recs) memcpy(recs, c->recs + c->recs_taken, nr * sizeof *recs);
        c->recs_taken += recs ? nr : 0;
        const int done = c->done && c->text_taken == c->text.len;
        pthread_mutex_unlock(&job->mu);
        if (text || recs) consume(job, c, text ? text : "", text ? tl : 0, o, recs, recs ? nr : 0);
        free(text);
        free(recs);
        if (done) {
            finish_parser(job, c, o);
            if (c->status != LLM_OK || (c->res.finish == LLM_FINISH_CANCELLED && !job->cancelled)) {
                llm_strbuf_append_str(o, "data: {\"error\":{\"message\":");
                const char *m =
                    c->status != LLM_OK ? c->error : "the request was cancelled (server shutting down)";
                json_str(o, m, strlen(m));
                llm_strbuf_append_str(o, ",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n");
            } else {
                chunk_open(job, o, i);
                llm_strbuf_append_str(o, job->chat ? "\"delta\":{},\"logprobs\":null"
                                                   : "\"text\":\"\",\"logprobs\":null");
                chunk_close(job, o, finish_name(c));
            }
            c->final_sent = 1;
            n_final++;
        }
    }
    if (n_final == job->n && !job->sse_finished) {
        if (job->include_usage) {
            llm_strbuf_append_str(o, "data: ");
            head(job, o, job->chat ? "chat.completion.chunk" : "text_completion");
            llm_strbuf_append_str(o, ",\"choices\":[],\"usage\":");
            usage(job, o);
            llm_strbuf_append_str(o, "}\n\n");
        }
        llm_strbuf_append_str(o, "data: [DONE]\n\n");
        job->sse_finished = 1;
    }
    return o->len > before;
}

ssize_t gen_sse_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    gen_job *job = cls;
    for (;;) {
        if (job->sse_off < job->sse.len) {
            size_t n = job->sse.len - job->sse_off;
            if (n > max) n = max;
            memcpy(buf, job->sse.data + job->sse_off, n);
            job->sse_off += n;
            if (job->sse_off == job->sse.len) { /* all sent: reuse the buffer */
                llm_strbuf_clear(&job->sse);
                job->sse_off = 0;
            }
            return (ssize_t)n;
        }
        if (job->sse_finished) return MHD_CONTENT_READER_END_OF_STREAM;
        if (job->sse.oom) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (pump(job)) continue;
        pthread_mutex_lock(&job->mu);
        int fresh = 0;
        for (int i = 0; i < job->n && !fresh; i++) {
            const gen_choice *c = &job->choices[i];
            fresh = !c->final_sent && (c->text.len > c->text_taken || c->n_recs > c->recs_taken || c->done);
        }
        if (!fresh) timed_wait(job, 50);
        pthread_mutex_unlock(&job->mu);
        if (!fresh && !http_client_alive(job->conn)) {
            gen_cancel(job);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

void gen_sse_free(void *cls) {
    gen_job *job = cls;
    if (!job->sse_finished) gen_cancel(job); /* the client left before the end */
    gen_release(job);
}
