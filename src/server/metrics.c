/* Prometheus text exposition of the server's counters, histograms and the runner's gauges. */
#include "server/metrics.h"

#include <string.h>

static const unsigned codes[SRV_N_CODES] = {200, 400, 401, 404, 405, 408, 409, 413, 429, 499, 500, 503, 0};
static const char *const ep_names[SRV_EP_COUNT] = {
    "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/tokenize",
    "/detokenize",          "/apply-template", "/health",        "/metrics",   "other"};
/* seconds; the last bucket is +Inf */
static const double bounds[SRV_N_BUCKETS - 1] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                 0.25,  0.5,    1,     2.5,  5,     10};

void srv_metrics_init(srv_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void srv_metrics_destroy(srv_metrics *m) {
    pthread_mutex_destroy(&m->mu);
}

const char *srv_endpoint_name(int ep) {
    return ep >= 0 && ep < SRV_EP_COUNT ? ep_names[ep] : "other";
}

static int code_index(unsigned code) {
    for (int i = 0; i < SRV_N_CODES - 1; i++)
        if (codes[i] == code) return i;
    return SRV_N_CODES - 1; /* any other code */
}

void srv_metrics_request(srv_metrics *m, int ep, unsigned code) {
    if (ep < 0 || ep >= SRV_EP_COUNT) ep = SRV_EP_OTHER;
    pthread_mutex_lock(&m->mu);
    m->requests[ep][code_index(code)]++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_tokens(srv_metrics *m, uint64_t prompt, uint64_t generated, uint64_t cached) {
    pthread_mutex_lock(&m->mu);
    m->prompt_tokens += prompt;
    m->generated_tokens += generated;
    m->cached_tokens += cached;
    pthread_mutex_unlock(&m->mu);
}

static void observe(srv_metrics *m, srv_histogram *h, double v) {
    int b = 0;
    while (b < SRV_N_BUCKETS - 1 && v > bounds[b]) b++;
    pthread_mutex_lock(&m->mu);
    h->buckets[b]++;
    h->count++;
    h->sum += v;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_ttft(srv_metrics *m, double seconds) {
    observe(m, &m->ttft, seconds);
}

void srv_metrics_itl(srv_metrics *m, double seconds) {
    observe(m, &m->itl, seconds);
}

void srv_metrics_cancelled(srv_metrics *m) {
    pthread_mutex_lock(&m->mu);
    m->cancellations++;
    pthread_mutex_unlock(&m->mu);
}

static void histogram(llm_strbuf *o, const char *name, const char *help, const srv_histogram *h) {
    llm_strbuf_appendf(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int b = 0; b < SRV_N_BUCKETS; b++) {
        cum += h->buckets[b];
        if (b < SRV_N_BUCKETS - 1)
            llm_strbuf_appendf(o, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[b], (unsigned long long)cum);
        else
            llm_strbuf_appendf(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    }
    llm_strbuf_appendf(o, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
}

static void counter(llm_strbuf *o, const char *name, const char *help, uint64_t v) {
    llm_strbuf_appendf(o, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
                       (unsigned long long)v);
}

static void gauge(llm_strbuf *o, const char *name, const char *help, long long v) {
    llm_strbuf_appendf(o, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name, help, name, name, v);
}

void srv_metrics_render(srv_metrics *m, const llm_runner_stats *rs, int have_runner, llm_strbuf *o) {
    pthread_mutex_lock(&m->mu);
    srv_metrics c = *m; /* a consistent snapshot, rendered without the lock */
    pthread_mutex_unlock(&m->mu);
    llm_strbuf_append_str(o, "# HELP llamac_requests_total HTTP requests by endpoint and status code.\n"
                             "# TYPE llamac_requests_total counter\n");
    for (int ep = 0; ep < SRV_EP_COUNT; ep++)
        for (int i = 0; i < SRV_N_CODES; i++) {
            if (!c.requests[ep][i]) continue;
            if (i < SRV_N_CODES - 1)
                llm_strbuf_appendf(o, "llamac_requests_total{endpoint=\"%s\",code=\"%u\"} %llu\n",
                                   ep_names[ep], codes[i], (unsigned long long)c.requests[ep][i]);
            else
                llm_strbuf_appendf(o, "llamac_requests_total{endpoint=\"%s\",code=\"other\"} %llu\n",
                                   ep_names[ep], (unsigned long long)c.requests[ep][i]);
        }
    counter(o, "llamac_prompt_tokens_total", "Prompt tokens of completed generations.", c.prompt_tokens);
    counter(o, "llamac_generated_tokens_total", "Tokens generated.", c.generated_tokens);
    counter(o, "llamac_cached_prompt_tokens_total",
            "Prompt tokens reused from a session or the prefix cache.", c.cached_tokens);
    counter(o, "llamac_cancellations_total", "Generations cancelled because the client disconnected.",
            c.cancellations);
    histogram(o, "llamac_time_to_first_token_seconds", "Time from request to first generated token.",
              &c.ttft);
    histogram(o, "llamac_inter_token_seconds", "Time between consecutive generated tokens of a request.",
              &c.itl);
    if (have_runner) {
        gauge(o, "llamac_requests_running", "Requests generating now.", rs->running);
        gauge(o, "llamac_requests_queued", "Requests waiting for admission.", rs->queued);
        gauge(o, "llamac_kv_blocks_total", "KV cache blocks.", rs->kv_blocks_total);
        gauge(o, "llamac_kv_blocks_used", "KV cache blocks referenced by sequences.", rs->kv_blocks_used);
        gauge(o, "llamac_kv_blocks_cached", "KV cache blocks holding reusable prefixes.",
              rs->kv_blocks_cached);
        gauge(o, "llamac_sessions", "Open sessions.", rs->sessions);
        counter(o, "llamac_prefix_cache_hit_tokens_total",
                "Prompt tokens whose KV came from the prefix cache.", rs->prefix_hit_tokens);
        counter(o, "llamac_preemptions_total", "Requests preempted when the KV budget ran out.",
                rs->preempted);
        counter(o, "llamac_runner_cancelled_total", "Requests that ended cancelled (any cause).",
                rs->cancelled);
    }
}
