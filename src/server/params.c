/* Validation of the generation fields of chat and completions requests, and shared helpers. */
#include "server/params.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bad(http_req *rq, const char *param, const char *fmt, const char *detail) {
    http_send_error(rq, 400, "invalid_request_error", param, "invalid_value", 0, fmt, param, detail);
    return -1;
}

/* An optional number in [lo, hi]; absent or null keeps *out. */
static int opt_number(http_req *rq, const llm_json *body, const char *key, double lo, double hi,
                      double *out) {
    const llm_json *v = llm_json_get(body, key);
    if (!v || llm_json_is_null(v)) return 0;
    if (!llm_json_is_number(v))
        return bad(rq, key, "'%s' must be a number, not %s", llm_json_type_name(llm_json_type_of(v)));
    const double d = llm_json_number(v);
    if (!(d >= lo && d <= hi)) {
        char detail[96];
        snprintf(detail, sizeof detail, "%g is outside [%g, %g]", d, lo, hi);
        return bad(rq, key, "'%s': %s", detail);
    }
    *out = d;
    return 0;
}

static int opt_int(http_req *rq, const llm_json *body, const char *key, int64_t lo, int64_t hi,
                   int64_t *out) {
    const llm_json *v = llm_json_get(body, key);
    if (!v || llm_json_is_null(v)) return 0;
    int64_t x;
    if (!llm_json_is_number(v) || llm_json_int64(v, &x) != 0)
        return bad(rq, key, "'%s' must be an integer, not %s",
                   llm_json_is_number(v) ? "a fraction" : llm_json_type_name(llm_json_type_of(v)));
    if (x < lo || x > hi) {
        char detail[96];
        snprintf(detail, sizeof detail, "%lld is outside [%lld, %lld]", (long long)x, (long long)lo,
                 (long long)hi);
        return bad(rq, key, "'%s': %s", detail);
    }
    *out = x;
    return 0;
}

static int opt_bool(http_req *rq, const llm_json *body, const char *key, int *out) {
    const llm_json *v = llm_json_get(body, key);
    if (!v || llm_json_is_null(v)) return 0;
    if (llm_json_bool(v, out) != 0)
        return bad(rq, key, "'%s' must be a boolean, not %s", llm_json_type_name(llm_json_type_of(v)));
    return 0;
}

int srv_check_model(http_req *rq, const llm_json *body) {
    const llm_json *m = llm_json_get(body, "model");
    if (!m || llm_json_is_null(m)) return 0;
    size_t n;
    const char *name = llm_json_string(m, &n);
    if (!name)
        return bad(rq, "model", "'%s' must be a string, not %s", llm_json_type_name(llm_json_type_of(m)));
    if (strcmp(name, rq->srv->model_id) != 0) {
        http_send_error(rq, 404, "invalid_request_error", "model", "model_not_found", 0,
                        "the model '%s' does not exist; this server serves '%s'", name, rq->srv->model_id);
        return -1;
    }
    return 0;
}

int srv_check_capacity(http_req *rq) {
    llm_runner_stats st;
    llm_runner_get_stats(rq->srv->runner, &st);
    if (st.queued >= rq->srv->p.max_queue) {
        http_send_error(rq, 429, "rate_limit_error", NULL, "server_busy", 1,
                        "%d requests are waiting already; retry shortly", st.queued);
        return -1;
    }
    return 0;
}

static int parse_stop(http_req *rq, const llm_json *body, srv_gen_opts *o) {
    const llm_json *v = llm_json_get(body, "stop");
    if (!v || llm_json_is_null(v)) return 0;
    if (llm_json_is_string(v)) {
        const char *s = llm_json_string(v, NULL);
        if (!s[0]) return bad(rq, "stop", "'%s': %s", "an empty stop string matches nothing");
        o->stops[o->n_stop++] = s;
        return 0;
    }
    if (!llm_json_is_array(v))
        return bad(rq, "stop", "'%s' must be a string or an array of strings, not %s",
                   llm_json_type_name(llm_json_type_of(v)));
    if (llm_json_count(v) > SRV_MAX_STOP) return bad(rq, "stop", "'%s': %s", "at most 16 stop strings");
    for (size_t i = 0; i < llm_json_count(v); i++) {
        const char *s = llm_json_string(llm_json_value_at(v, i), NULL);
        if (!s) return bad(rq, "stop", "'%s': %s", "every item must be a string");
        if (!s[0]) return bad(rq, "stop", "'%s': %s", "an empty stop string matches nothing");
        o->stops[o->n_stop++] = s;
    }
    return 0;
}

static int parse_bias(http_req *rq, const llm_json *body, srv_gen_opts *o) {
    const llm_json *v = llm_json_get(body, "logit_bias");
    if (!v || llm_json_is_null(v)) return 0;
    if (!llm_json_is_object(v))
        return bad(rq, "logit_bias", "'%s' must be an object of token id -> bias, not %s",
                   llm_json_type_name(llm_json_type_of(v)));
    const size_t n = llm_json_count(v);
    if (n > 1024) return bad(rq, "logit_bias", "'%s': %s", "at most 1024 entries");
    o->bias = calloc(n ? n : 1, sizeof *o->bias);
    if (!o->bias) return bad(rq, "logit_bias", "'%s': %s", "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *key = llm_json_key_at(v, i, NULL);
        char *end = NULL;
        const long id = strtol(key, &end, 10);
        if (!key[0] || *end || id < 0 || id >= rq->srv->n_vocab) {
            char detail[128];
            snprintf(detail, sizeof detail, "key '%.40s' is not a token id in [0, %d)", key,
                     rq->srv->n_vocab);
            return bad(rq, "logit_bias", "'%s': %s", detail);
        }
        const llm_json *b = llm_json_value_at(v, i);
        const double d = llm_json_number(b);
        if (!llm_json_is_number(b) || !(d >= -100 && d <= 100))
            return bad(rq, "logit_bias", "'%s': %s", "every bias must be a number in [-100, 100]");
        for (size_t k = 0; k < o->n_bias; k++)
            if (o->bias[k].token == (int32_t)id)
                return bad(rq, "logit_bias", "'%s': %s", "a token appears twice");
        o->bias[o->n_bias].token = (int32_t)id;
        o->bias[o->n_bias].bias = (float)d;
        o->n_bias++;
    }
    return 0;
}

int srv_parse_gen(http_req *rq, const llm_json *body, int chat, srv_gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->gen = llm_generate_default_params();
    o->n = 1;
    llm_sampling_params *sp = &o->gen.sampling;
    double temperature = 1, top_p = 1, min_p = 0, fp = 0, pp = 0, rp = 1;
    int64_t top_k = 0, seed = -1, n = 1, max_tokens = 0, top_logprobs = 0;
    if (opt_number(rq, body, "temperature", 0, 2, &temperature) ||
        opt_number(rq, body, "top_p", 0, 1, &top_p) || opt_number(rq, body, "min_p", 0, 1, &min_p) ||
        opt_number(rq, body, "frequency_penalty", -2, 2, &fp) ||
        opt_number(rq, body, "presence_penalty", -2, 2, &pp) ||
        opt_number(rq, body, "repetition_penalty", 0.01, 100, &rp) ||
        opt_int(rq, body, "top_k", 0, 1 << 30, &top_k) ||
        opt_int(rq, body, "seed", INT64_MIN, INT64_MAX, &seed) ||
        opt_int(rq, body, "n", 1, rq->srv->p.n_max, &n) || opt_bool(rq, body, "stream", &o->stream) ||
        opt_int(rq, body, "max_tokens", 1, 1 << 30, &max_tokens) ||
        (chat && opt_int(rq, body, "max_completion_tokens", 1, 1 << 30, &max_tokens)) ||
        parse_stop(rq, body, o) || parse_bias(rq, body, o))
        return -1;
    if (top_p == 0) return bad(rq, "top_p", "'%s': %s", "must be greater than 0");
    if (chat) {
        if (opt_bool(rq, body, "logprobs", &o->logprobs) ||
            opt_int(rq, body, "top_logprobs", 0, 20, &top_logprobs))
            return -1;
        if (top_logprobs && !o->logprobs)
            return bad(rq, "top_logprobs", "'%s': %s", "needs logprobs set to true");
    } else {
        int64_t lp = -1;
        if (opt_int(rq, body, "logprobs", 0, 5, &lp) || opt_bool(rq, body, "echo", &o->echo)) return -1;
        if (lp >= 0) o->logprobs = 1, top_logprobs = lp;
    }
    const llm_json *so = llm_json_get(body, "stream_options");
    if (so && !llm_json_is_null(so)) {
        if (!llm_json_is_object(so))
            return bad(rq, "stream_options", "'%s' must be an object, not %s", "another type");
        if (opt_bool(rq, so, "include_usage", &o->include_usage)) return -1;
        if (!o->stream) return bad(rq, "stream_options", "'%s': %s", "only allowed when stream is true");
    }
    const llm_json *sid = llm_json_get(body, "session_id");
    if (sid && !llm_json_is_null(sid)) {
        size_t len = 0;
        o->session = llm_json_string(sid, &len);
        if (!o->session || len == 0 || len >= LLM_SESSION_NAME_MAX || memchr(o->session, 0, len))
            return bad(rq, "session_id", "'%s': %s", "must be a string of 1 to 63 bytes");
        if (n > 1) return bad(rq, "session_id", "'%s': %s", "cannot be combined with n > 1");
    }
    sp->temperature = (float)temperature;
    sp->top_p = (float)top_p;
    sp->min_p = (float)min_p;
    sp->top_k = (int32_t)top_k;
    sp->frequency_penalty = (float)fp;
    sp->presence_penalty = (float)pp;
    sp->repetition_penalty = (float)rp;
    const llm_json *seed_v = llm_json_get(body, "seed");
    sp->seed = (uint64_t)seed;                 /* OpenAI seeds may be negative: the bits are the seed */
    if (!seed_v || llm_json_is_null(seed_v)) { /* no seed: a fresh one per request */
        char id[40];
        http_new_id(id, sizeof id, "");
        sp->seed = strtoull(id + 8, NULL, 16);
    }
    sp->logit_bias = o->bias;
    sp->n_logit_bias = o->n_bias;
    sp->top_logprobs = (int32_t)top_logprobs;
    o->top_logprobs = (int)top_logprobs;
    o->n = (int)n;
    o->max_tokens = (int32_t)max_tokens;
    o->gen.stop = o->stops;
    o->gen.n_stop = o->n_stop;
    return 0;
}

void srv_gen_opts_free(srv_gen_opts *o) {
    free(o->bias);
    o->bias = NULL;
}

void srv_json_write(llm_strbuf *o, const llm_json *v, const char *src, size_t src_len) {
    switch (llm_json_type_of(v)) {
    case LLM_JSON_NULL:
        llm_strbuf_append_str(o, "null");
        break;
    case LLM_JSON_TRUE:
        llm_strbuf_append_str(o, "true");
        break;
    case LLM_JSON_FALSE:
        llm_strbuf_append_str(o, "false");
        break;
    case LLM_JSON_NUMBER: {
        size_t a = llm_json_offset(v), b = a;
        while (b < src_len && strchr("+-0123456789.eE", src[b])) b++;
        llm_strbuf_append(o, src + a, b - a);
        break;
    }
    case LLM_JSON_STRING: {
        size_t n;
        const char *s = llm_json_string(v, &n);
        llm_json_escape(o, s, n);
        break;
    }
    case LLM_JSON_ARRAY:
        llm_strbuf_append_char(o, '[');
        for (size_t i = 0; i < llm_json_count(v); i++) {
            if (i) llm_strbuf_append_char(o, ',');
            srv_json_write(o, llm_json_value_at(v, i), src, src_len);
        }
        llm_strbuf_append_char(o, ']');
        break;
    case LLM_JSON_OBJECT:
        llm_strbuf_append_char(o, '{');
        for (size_t i = 0; i < llm_json_count(v); i++) {
            size_t kn;
            const char *k = llm_json_key_at(v, i, &kn);
            if (i) llm_strbuf_append_char(o, ',');
            llm_json_escape(o, k, kn);
            llm_strbuf_append_char(o, ':');
            srv_json_write(o, llm_json_value_at(v, i), src, src_len);
        }
        llm_strbuf_append_char(o, '}');
        break;
    default:
        llm_strbuf_append_str(o, "null");
        break;
    }
}
