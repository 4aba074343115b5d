/* HTTP glue over libmicrohttpd: one thread per connection; a request's body is gathered (bounded),
 * authenticated, parsed as JSON and routed; responses are JSON or a server-sent event stream.
 *
 * Limits: body size (413, decided from Content-Length before reading when possible; a chunked body is
 * read to its end and dropped), time to receive a request (a connection idle that long, or whose body
 * takes longer in all, is closed without an answer: a response queued mid-upload is not delivered
 * reliably), header memory (MHD answers 431 itself), connections (MHD refuses beyond the limit). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "server/server_internal.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void http_new_id(char *out, size_t cap, const char *prefix) {
    /* unique enough for ids (not secrets): time, a counter and the address of the stack mixed */
    static atomic_ullong counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                 (atomic_fetch_add(&counter, 1) * 0x9e3779b97f4a7c15ull);
    uint64_t y = x * 0xbf58476d1ce4e5b9ull ^ (uint64_t)(uintptr_t)&ts;
    y ^= y >> 31;
    snprintf(out, cap, "%s%016llx%08x", prefix, (unsigned long long)(x * 0x94d049bb133111ebull ^ (x >> 29)),
             (unsigned)(y & 0xffffffffu));
}

/* ---- responses -------------------------------------------------------------------------------- */

static enum MHD_Result queue(http_req *rq, unsigned status, struct MHD_Response *resp) {
    if (!resp) return MHD_NO;
    rq->responded = 1;
    srv_metrics_request(&rq->srv->metrics, rq->endpoint, status);
    enum MHD_Result r = MHD_queue_response(rq->conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

enum MHD_Result http_send_json(http_req *rq, unsigned status, llm_strbuf *body) {
    if (body->oom) {
        llm_strbuf_free(body);
        return http_send_error(rq, 500, "server_error", NULL, NULL, 0, "out of memory building the response");
    }
    size_t len = 0;
    char *data = llm_strbuf_detach(body, &len);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, data ? data : (char *)"", data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    return queue(rq, status, resp);
}

enum MHD_Result http_send_error(http_req *rq, unsigned status, const char *type, const char *param,
                                const char *code, int retry_after_s, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    llm_strbuf b = LLM_STRBUF_INIT;
    llm_strbuf_append_str(&b, "{\"error\":{\"message\":");
    llm_json_escape(&b, msg, strlen(msg));
    llm_strbuf_append_str(&b, ",\"type\":");
    llm_json_escape(&b, type, strlen(type));
    llm_strbuf_append_str(&b, ",\"param\":");
    if (param)
        llm_json_escape(&b, param, strlen(param));
    else
        llm_strbuf_append_str(&b, "null");
    llm_strbuf_append_str(&b, ",\"code\":");
    if (code)
        llm_json_escape(&b, code, strlen(code));
    else
        llm_strbuf_append_str(&b, "null");
    llm_strbuf_append_str(&b, "}}");
    size_t len = 0;
    char *data = llm_strbuf_detach(&b, &len);
    if (!data) return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    if (retry_after_s > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", retry_after_s);
        MHD_add_response_header(resp, "Retry-After", ra);
    }
    return queue(rq, status, resp);
}

enum MHD_Result http_send_stream(http_req *rq, MHD_ContentReaderCallback reader, void *cls,
                                 MHD_ContentReaderFreeCallback free_cb) {
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, reader, cls, free_cb);
    if (!resp) {
        free_cb(cls);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    return queue(rq, 200, resp);
}

int http_client_alive(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    struct pollfd pfd = {ci->connect_fd, POLLIN | POLLRDHUP, 0};
    if (poll(&pfd, 1, 0) <= 0) return 1; /* nothing to read: still there */
    if (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return 0;
    char c;
    ssize_t n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
}

/* ---- routing ------------------------------------------------------------------------------------ */

static int endpoint_of(const char *url) {
    if (strcmp(url, "/v1/chat/completions") == 0) return SRV_EP_CHAT;
    if (strcmp(url, "/v1/completions") == 0) return SRV_EP_COMPLETIONS;
    if (strcmp(url, "/v1/embeddings") == 0) return SRV_EP_EMBEDDINGS;
    if (strcmp(url, "/v1/models") == 0 || strncmp(url, "/v1/models/", 11) == 0) return SRV_EP_MODELS;
    if (strcmp(url, "/tokenize") == 0) return SRV_EP_TOKENIZE;
    if (strcmp(url, "/detokenize") == 0) return SRV_EP_DETOKENIZE;
    if (strcmp(url, "/apply-template") == 0) return SRV_EP_APPLY_TEMPLATE;
    if (strcmp(url, "/health") == 0) return SRV_EP_HEALTH;
    if (strcmp(url, "/metrics") == 0) return SRV_EP_METRICS;
    return SRV_EP_OTHER;
}

static int is_post(int ep) {
    return ep == SRV_EP_CHAT || ep == SRV_EP_COMPLETIONS || ep == SRV_EP_EMBEDDINGS ||
           ep == SRV_EP_TOKENIZE || ep == SRV_EP_DETOKENIZE || ep == SRV_EP_APPLY_TEMPLATE;
}

/* Constant-time over the key lengths: the time does not depend on where a guess first differs. */
static int key_matches(const char *given, size_t n, const char *key) {
    const size_t k = strlen(key);
    unsigned diff = (unsigned)(n ^ k);
    for (size_t i = 0; i < k; i++) diff |= (unsigned char)key[i] ^ (unsigned char)(i < n ? given[i] : 0);
    return diff == 0;
}

static int authorized(http_req *rq) {
    llm_server *s = rq->srv;
    if (!s->n_keys) return 1;
    if (s->p.open_health_metrics && (rq->endpoint == SRV_EP_HEALTH || rq->endpoint == SRV_EP_METRICS))
        return 1;
    const char *h = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return 0;
    const char *tok = h + 7;
    while (*tok == ' ') tok++;
    const size_t n = strlen(tok);
    int ok = 0;
    for (size_t i = 0; i < s->n_keys; i++) ok |= key_matches(tok, n, s->keys[i]); /* every key, always */
    return ok;
}

static enum MHD_Result dispatch(http_req *rq) {
    llm_server *s = rq->srv;
    const int ep = rq->endpoint;
    if (ep == SRV_EP_OTHER)
        return http_send_error(rq, 404, "invalid_request_error", NULL, "not_found", 0, "no route %s %s",
                               rq->method, rq->url);
    if (!authorized(rq))
        return http_send_error(rq, 401, "invalid_request_error", NULL, "invalid_api_key", 0,
                               "missing or invalid API key (send Authorization: Bearer <key>)");
    const int post = is_post(ep);
    if ((post && strcmp(rq->method, "POST") != 0) || (!post && strcmp(rq->method, "GET") != 0)) {
        return http_send_error(rq, 405, "invalid_request_error", NULL, "method_not_allowed", 0,
                               "%s %s is not allowed; use %s", rq->method, rq->url, post ? "POST" : "GET");
    }
    if (ep == SRV_EP_HEALTH) return srv_health(rq);
    if (ep == SRV_EP_METRICS) return srv_metrics_page(rq);
    if (atomic_load(&s->stopping))
        return http_send_error(rq, 503, "server_error", NULL, "shutting_down", 1,
                               "the server is shutting down");
    if (!atomic_load(&s->ready))
        return http_send_error(rq, 503, "server_error", NULL, "loading", 1, "the model is still loading");
    if (ep == SRV_EP_MODELS)
        return srv_models(rq, strncmp(rq->url, "/v1/models/", 11) == 0 ? rq->url + 11 : NULL);
    if (rq->too_large)
        return http_send_error(rq, 413, "invalid_request_error", NULL, "body_too_large", 0,
                               "request body larger than %zu bytes", s->p.max_body_bytes);
    llm_json_doc *doc = NULL;
    char jerr[256];
    if (llm_json_parse(rq->body.data ? rq->body.data : "", rq->body.len, &doc, jerr, sizeof jerr) != 0)
        return http_send_error(rq, 400, "invalid_request_error", NULL, "invalid_json", 0,
                               "invalid JSON body: %s", jerr);
    const llm_json *root = llm_json_root(doc);
    enum MHD_Result r;
    if (llm_json_type_of(root) != LLM_JSON_OBJECT)
        r = http_send_error(rq, 400, "invalid_request_error", NULL, "invalid_type", 0,
                            "the request body must be a JSON object");
    else if (ep == SRV_EP_CHAT)
        r = srv_chat_completions(rq, root);
    else if (ep == SRV_EP_COMPLETIONS)
        r = srv_completions(rq, root);
    else if (ep == SRV_EP_EMBEDDINGS)
        r = srv_embeddings(rq, root);
    else if (ep == SRV_EP_TOKENIZE)
        r = srv_tokenize(rq, root);
    else if (ep == SRV_EP_DETOKENIZE)
        r = srv_detokenize(rq, root);
    else
        r = srv_apply_template(rq, root);
    llm_json_doc_free(doc);
    return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    llm_server *s = cls;
    http_req *rq = *con_cls;
    if (!rq) { /* first call: headers only */
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        rq->srv = s;
        rq->conn = conn;
        rq->method = method;
        rq->url = url;
        rq->endpoint = endpoint_of(url);
        rq->t_start = now_s();
        *con_cls = rq;
        /* a declared length over the limit is refused before the body is read (and before any
         * "100 Continue"): only a response queued on this first call is sent reliably mid-upload */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->p.max_body_bytes) {
            rq->too_large = 1;
            return http_send_error(rq, 413, "invalid_request_error", NULL, "body_too_large", 0,
                                   "request body of %s bytes; at most %zu are accepted", cl,
                                   s->p.max_body_bytes);
        }
        return MHD_YES;
    }
    if (rq->responded) { /* an early response was queued: drop the rest */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (now_s() - rq->t_start > s->p.request_timeout_s)
            return MHD_NO; /* too slow: close the connection */
        /* a chunked body that grows past the limit is read to its end and dropped, then refused */
        if (!rq->too_large && rq->body.len + *upload_data_size > s->p.max_body_bytes) {
            rq->too_large = 1;
            llm_strbuf_free(&rq->body);
        }
        if (!rq->too_large) llm_strbuf_append(&rq->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rq->body.oom) return http_send_error(rq, 500, "server_error", NULL, NULL, 0, "out of memory");
    if (rq->too_large && rq->endpoint != SRV_EP_OTHER)
        return http_send_error(rq, 413, "invalid_request_error", NULL, "body_too_large", 0,
                               "request body larger than %zu bytes", s->p.max_body_bytes);
    return dispatch(rq);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)conn, (void)toe;
    http_req *rq = *con_cls;
    if (!rq) return;
    llm_strbuf_free(&rq->body);
    free(rq);
    *con_cls = NULL;
}

/* ---- lifecycle ---------------------------------------------------------------------------------- */

llm_server_params llm_server_default_params(void) {
    llm_server_params p;
    memset(&p, 0, sizeof p);
    p.host = "127.0.0.1";
    p.port = 8080;
    p.max_concurrency = 16;
    p.max_queue = 256;
    p.max_body_bytes = 8u << 20;
    p.max_messages = 4096;
    p.request_timeout_s = 30;
    p.n_max = 16;
    p.model_id = "llamac";
    return p;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    llm_server *s = cls;
    if (!s->p.log_fn) return;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = '\0';
    /* MHD reports every connection a client dropped or that we closed on purpose (a cancelled
     * stream): routine for a server, so below warning level */
    s->p.log_fn(LLM_LOG_INFO, msg, s->p.log_user);
}

llm_status llm_server_create(const llm_server_params *params, llm_server **out, char *err, size_t err_cap) {
    *out = NULL;
    llm_server *s = calloc(1, sizeof *s);
    if (!s) return snprintf(err, err_cap, "out of memory"), LLM_ERR_OUT_OF_MEMORY;
    s->p = params ? *params : llm_server_default_params();
    const llm_server_params d = llm_server_default_params();
    if (!s->p.host) s->p.host = d.host;
    if (s->p.max_concurrency <= 0) s->p.max_concurrency = d.max_concurrency;
    if (s->p.max_queue <= 0) s->p.max_queue = d.max_queue;
    if (!s->p.max_body_bytes) s->p.max_body_bytes = d.max_body_bytes;
    if (s->p.max_messages <= 0) s->p.max_messages = d.max_messages;
    if (s->p.request_timeout_s <= 0) s->p.request_timeout_s = d.request_timeout_s;
    if (s->p.n_max <= 0) s->p.n_max = d.n_max;
    snprintf(s->host, sizeof s->host, "%s", s->p.host);
    snprintf(s->model_id, sizeof s->model_id, "%s", s->p.model_id ? s->p.model_id : d.model_id);
    s->p.host = s->host;
    s->p.model_id = s->model_id;
    s->created_unix = (int64_t)time(NULL);
    snprintf(s->fingerprint, sizeof s->fingerprint, "llamac-%d.%d.%d", LLAMAC_VERSION_MAJOR,
             LLAMAC_VERSION_MINOR, LLAMAC_VERSION_PATCH);
    srv_metrics_init(&s->metrics);
    pthread_mutex_init(&s->tok_mu, NULL);
    pthread_mutex_init(&s->embed_mu, NULL);
    pthread_mutex_init(&s->jobs_mu, NULL);
    pthread_cond_init(&s->jobs_cv, NULL);
    if (s->p.n_api_keys) {
        s->keys = calloc(s->p.n_api_keys, sizeof *s->keys);
        for (size_t i = 0; s->keys && i < s->p.n_api_keys; i++) s->keys[i] = strdup(s->p.api_keys[i]);
        s->n_keys = s->p.n_api_keys;
    }

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG;
    socklen_t slen;
    if (inet_pton(AF_INET, s->host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)s->p.port);
        slen = sizeof *v4;
    } else if (inet_pton(AF_INET6, s->host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)s->p.port);
        flags |= MHD_USE_IPv6;
        slen = sizeof *v6;
    } else {
        snprintf(err, err_cap, "--host %s is not a numeric IPv4 or IPv6 address", s->host);
        llm_server_free(s);
        return LLM_ERR_INVALID_ARGUMENT;
    }
    (void)slen;
    s->mhd = MHD_start_daemon(
        flags, (uint16_t)s->p.port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->p.request_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)1024, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_END);
    if (!s->mhd) {
        snprintf(err, err_cap, "cannot listen on %s:%d: %s", s->host, s->p.port, strerror(errno));
        llm_server_free(s);
        return LLM_ERR_IO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->p.port;
    *out = s;
    return LLM_OK;
}

int llm_server_port(const llm_server *s) {
    return s->port;
}
