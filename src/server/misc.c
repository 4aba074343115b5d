/* The smaller endpoints: models, health, metrics, tokenize, detokenize, apply-template, embeddings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/params.h"

static void model_object(llm_server *s, llm_strbuf *o) {
    llm_strbuf_append_str(o, "{\"id\":");
    llm_json_escape(o, s->model_id, strlen(s->model_id));
    llm_strbuf_appendf(o, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"llamac\"}",
                       (long long)s->created_unix);
}

enum MHD_Result srv_models(http_req *rq, const char *id) {
    llm_server *s = rq->srv;
    llm_strbuf o = LLM_STRBUF_INIT;
    if (id) {
        if (strcmp(id, s->model_id) != 0)
            return http_send_error(rq, 404, "invalid_request_error", "model", "model_not_found", 0,
                                   "the model '%s' does not exist; this server serves '%s'", id, s->model_id);
        model_object(s, &o);
        return http_send_json(rq, 200, &o);
    }
    llm_strbuf_append_str(&o, "{\"object\":\"list\",\"data\":[");
    model_object(s, &o);
    llm_strbuf_append_str(&o, "]}");
    return http_send_json(rq, 200, &o);
}

enum MHD_Result srv_health(http_req *rq) {
    llm_strbuf o = LLM_STRBUF_INIT;
    if (atomic_load(&rq->srv->stopping)) {
        llm_strbuf_append_str(&o, "{\"status\":\"stopping\"}");
        return http_send_json(rq, 503, &o);
    }
    if (!atomic_load(&rq->srv->ready)) {
        llm_strbuf_append_str(&o, "{\"status\":\"loading\"}");
        return http_send_json(rq, 503, &o);
    }
    llm_strbuf_append_str(&o, "{\"status\":\"ok\"}");
    return http_send_json(rq, 200, &o);
}

enum MHD_Result srv_metrics_page(http_req *rq) {
    llm_server *s = rq->srv;
    llm_runner_stats st;
    memset(&st, 0, sizeof st);
    const int have = atomic_load(&s->ready);
    if (have) llm_runner_get_stats(s->runner, &st);
    llm_strbuf o = LLM_STRBUF_INIT;
    /* this request is counted before rendering so that the page includes itself */
    srv_metrics_request(&s->metrics, SRV_EP_METRICS, 200);
    srv_metrics_render(&s->metrics, &st, have, &o);
    size_t len = 0;
    char *data = llm_strbuf_detach(&o, &len);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, data ? data : (char *)"", data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4");
    rq->responded = 1;
    enum MHD_Result r = MHD_queue_response(rq->conn, 200, resp);
    MHD_destroy_response(resp);
    return r;
}

enum MHD_Result srv_tokenize(http_req *rq, const llm_json *body) {
    const llm_json *c = llm_json_get(body, "content");
    size_t n;
    const char *text = llm_json_string(c, &n);
    if (!text)
        return http_send_error(rq, 400, "invalid_request_error", "content",
                               c ? "invalid_type" : "missing_field", 0, "'content' must be a string");
    int add_special = 0, parse_special = 1;
    const llm_json *as = llm_json_get(body, "add_special"), *ps = llm_json_get(body, "parse_special");
    if ((as && llm_json_bool(as, &add_special) != 0) || (ps && llm_json_bool(ps, &parse_special) != 0))
        return http_send_error(rq, 400, "invalid_request_error",
                               as && !llm_json_is_bool(as) ? "add_special" : "parse_special", "invalid_type",
                               0, "'add_special' and 'parse_special' must be booleans");
    int32_t *ids = NULL;
    size_t n_ids = 0;
    const unsigned flags =
        (add_special ? LLM_TOKENIZE_ADD_SPECIAL : 0) | (parse_special ? LLM_TOKENIZE_PARSE_SPECIAL : 0);
    if (srv_tokenize_text(rq, text, n, flags, "content", &ids, &n_ids) != 0) return MHD_YES;
    llm_strbuf o = LLM_STRBUF_INIT;
    llm_strbuf_append_str(&o, "{\"tokens\":[");
    for (size_t i = 0; i < n_ids; i++) llm_strbuf_appendf(&o, "%s%d", i ? "," : "", ids[i]);
    llm_strbuf_append_str(&o, "]}");
    free(ids);
    return http_send_json(rq, 200, &o);
}

/* An array of token ids from a JSON array; -1 with a 400 sent. */
static int id_array(http_req *rq, const llm_json *v, const char *param, int32_t **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    if (!llm_json_is_array(v)) {
        http_send_error(rq, 400, "invalid_request_error", param, v ? "invalid_type" : "missing_field", 0,
                        "'%s' must be an array of token ids", param);
        return -1;
    }
    const size_t n = llm_json_count(v);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) {
        http_send_error(rq, 500, "server_error", NULL, NULL, 0, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t id;
        if (llm_json_int64(llm_json_value_at(v, i), &id) != 0 || id < 0 || id >= rq->srv->n_vocab) {
            free(ids);
            http_send_error(rq, 400, "invalid_request_error", param, "invalid_value", 0,
                            "'%s[%zu]' is not a token id in [0, %d)", param, i, rq->srv->n_vocab);
            return -1;
        }
        ids[i] = (int32_t)id;
    }
    *out = ids;
    *n_out = n;
    return 0;
}

enum MHD_Result srv_detokenize(http_req *rq, const llm_json *body) {
    llm_server *s = rq->srv;
    int32_t *ids;
    size_t n;
    if (id_array(rq, llm_json_get(body, "tokens"), "tokens", &ids, &n) != 0) return MHD_YES;
    size_t len = 0;
    pthread_mutex_lock(&s->tok_mu);
    llm_status st = llm_detokenize(s->tok, ids, n, 0, NULL, 0, &len);
    char *text = st == LLM_OK || st == LLM_ERR_BUFFER_TOO_SMALL ? malloc(len + 1) : NULL;
    if (text) st = llm_detokenize(s->tok, ids, n, 0, text, len + 1, &len);
    pthread_mutex_unlock(&s->tok_mu);
    free(ids);
    if (!text || st != LLM_OK) {
        free(text);
        return http_send_error(rq, 500, "server_error", NULL, NULL, 0, "detokenizing failed: %s",
                               llm_strerror(st));
    }
    llm_strbuf o = LLM_STRBUF_INIT;
    llm_strbuf_append_str(&o, "{\"content\":");
    llm_json_escape(&o, text, len);
    llm_strbuf_append_char(&o, '}');
    free(text);
    return http_send_json(rq, 200, &o);
}

enum MHD_Result srv_apply_template(http_req *rq, const llm_json *body) {
    const llm_json *messages = llm_json_get(body, "messages");
    if (!llm_json_is_array(messages) || llm_json_count(messages) == 0)
        return http_send_error(rq, 400, "invalid_request_error", "messages",
                               messages ? "invalid_type" : "missing_field", 0,
                               "'messages' must be a non-empty array");
    const llm_json *tools = llm_json_get(body, "tools");
    if (tools && !llm_json_is_array(tools)) tools = NULL;
    char *text = NULL;
    size_t len = 0;
    if (srv_render_chat(rq, messages, tools, NULL, NULL, &text, &len) != 0) return MHD_YES;
    llm_strbuf o = LLM_STRBUF_INIT;
    llm_strbuf_append_str(&o, "{\"prompt\":");
    llm_json_escape(&o, text, len);
    llm_strbuf_append_char(&o, '}');
    free(text);
    return http_send_json(rq, 200, &o);
}

/* base64 of the float32 little-endian bytes, as OpenAI's encoding_format "base64" */
static void base64(llm_strbuf *o, const unsigned char *p, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        const unsigned v =
            (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        char q[4] = {tab[v >> 18 & 63], tab[v >> 12 & 63], i + 1 < n ? tab[v >> 6 & 63] : '=',
                     i + 2 < n ? tab[v & 63] : '='};
        llm_strbuf_append(o, q, 4);
    }
}

enum MHD_Result srv_embeddings(http_req *rq, const llm_json *body) {
    llm_server *s = rq->srv;
    if (srv_check_model(rq, body)) return MHD_YES;
    const llm_json *input = llm_json_get(body, "input");
    if (!input)
        return http_send_error(rq, 400, "invalid_request_error", "input", "missing_field", 0,
                               "'input' is required");
    int b64 = 0;
    const llm_json *fmt = llm_json_get(body, "encoding_format");
    if (fmt && !llm_json_is_null(fmt)) {
        const char *f = llm_json_string(fmt, NULL);
        if (!f || (strcmp(f, "float") != 0 && strcmp(f, "base64") != 0))
            return http_send_error(rq, 400, "invalid_request_error", "encoding_format", "invalid_value", 0,
                                   "'encoding_format' must be \"float\" or \"base64\"");
        b64 = strcmp(f, "base64") == 0;
    }
    const llm_json *dims = llm_json_get(body, "dimensions");
    if (dims && !llm_json_is_null(dims))
        return http_send_error(rq, 400, "invalid_request_error", "dimensions", "unsupported_field", 0,
                               "'dimensions' is not supported: the model's embeddings have %d", s->n_embd);
    /* input: a string, strings, ids, or arrays of ids */
    size_t n_in = 1;
    int kind;
    if (llm_json_is_string(input)) {
        kind = 0;
    } else if (llm_json_is_array(input) && llm_json_count(input) > 0) {
        const llm_json *f = llm_json_value_at(input, 0);
        kind = llm_json_is_string(f) ? 1 : llm_json_is_number(f) ? 2 : llm_json_is_array(f) ? 3 : -1;
        n_in = kind == 2 ? 1 : llm_json_count(input);
    } else {
        kind = -1;
    }
    if (kind < 0 || n_in > 2048)
        return http_send_error(rq, 400, "invalid_request_error", "input", "invalid_type", 0,
                               "'input' must be a string, an array of up to 2048 strings, or token ids");
    float *vec = malloc((size_t)s->n_embd * sizeof *vec);
    llm_strbuf o = LLM_STRBUF_INIT;
    llm_strbuf_append_str(&o, "{\"object\":\"list\",\"data\":[");
    int64_t total = 0;
    enum MHD_Result r = MHD_YES;
    int ok = vec != NULL;
    if (!ok) r = http_send_error(rq, 500, "server_error", NULL, NULL, 0, "out of memory");
    for (size_t i = 0; ok && i < n_in; i++) {
        char param[32];
        snprintf(param, sizeof param, kind == 0 || kind == 2 ? "input" : "input[%zu]", i);
        const llm_json *item = kind == 0 || kind == 2 ? input : llm_json_value_at(input, i);
        int32_t *ids = NULL;
        size_t n = 0;
        if (kind <= 1) {
            size_t len;
            const char *t = llm_json_string(item, &len);
            if (!t) {
                r = http_send_error(rq, 400, "invalid_request_error", param, "invalid_type", 0,
                                    "'%s' must be a string", param);
                ok = 0;
                break;
            }
            if (srv_tokenize_text(rq, t, len, LLM_TOKENIZE_ADD_SPECIAL | LLM_TOKENIZE_PARSE_SPECIAL, param,
                                  &ids, &n) != 0) {
                ok = 0;
                break;
            }
        } else if (id_array(rq, item, param, &ids, &n) != 0) {
            ok = 0;
            break;
        }
        if (n == 0 || n > (size_t)s->n_ctx) {
            free(ids);
            r = http_send_error(rq, 400, "invalid_request_error", param,
                                n ? "context_length_exceeded" : "invalid_value", 0,
                                "'%s' has %zu tokens; between 1 and %d are accepted", param, n, s->n_ctx);
            ok = 0;
            break;
        }
        size_t len = 0;
        pthread_mutex_lock(&s->embed_mu);
        llm_status st = llm_embed(s->embed_engine, ids, n, LLM_POOL_MEAN, vec, (size_t)s->n_embd, &len);
        char msg[256];
        snprintf(msg, sizeof msg, "%s", st == LLM_OK ? "" : llm_engine_last_error(s->embed_engine));
        pthread_mutex_unlock(&s->embed_mu);
        free(ids);
        if (st != LLM_OK) {
            r = http_send_error(rq, 500, "server_error", NULL, NULL, 0, "embedding failed: %s", msg);
            ok = 0;
            break;
        }
        total += (int64_t)n;
        llm_strbuf_appendf(&o, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", i ? "," : "", i);
        if (b64) {
            llm_strbuf_append_char(&o, '"');
            base64(&o, (const unsigned char *)vec,
                   len * sizeof *vec); /* little-endian hosts only: x86-64, arm64 */
            llm_strbuf_append_char(&o, '"');
        } else {
            llm_strbuf_append_char(&o, '[');
            for (size_t k = 0; k < len; k++) llm_strbuf_appendf(&o, "%s%.9g", k ? "," : "", vec[k]);
            llm_strbuf_append_char(&o, ']');
        }
        llm_strbuf_append_char(&o, '}');
    }
    free(vec);
    if (!ok) {
        llm_strbuf_free(&o);
        return r;
    }
    llm_strbuf_append_str(&o, "],\"model\":");
    llm_json_escape(&o, s->model_id, strlen(s->model_id));
    llm_strbuf_appendf(&o, ",\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}", (long long)total,
                       (long long)total);
    return http_send_json(rq, 200, &o);
}
