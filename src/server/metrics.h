/* Prometheus metrics of the server: counters and histograms behind one mutex (a few updates per
 * token at most), rendered in the text exposition format. */
#ifndef LLM_SERVER_METRICS_H
#define LLM_SERVER_METRICS_H

#include <pthread.h>
#include <stdint.h>

#include "core/strbuf.h"
#include "llamac.h"

enum {
    SRV_EP_CHAT,
    SRV_EP_COMPLETIONS,
    SRV_EP_EMBEDDINGS,
    SRV_EP_MODELS,
    SRV_EP_TOKENIZE,
    SRV_EP_DETOKENIZE,
    SRV_EP_APPLY_TEMPLATE,
    SRV_EP_HEALTH,
    SRV_EP_METRICS,
    SRV_EP_OTHER, /* unknown routes share one label: clients cannot grow the label set */
    SRV_EP_COUNT
};

#define SRV_N_CODES   13
#define SRV_N_BUCKETS 14

typedef struct srv_histogram {
    uint64_t buckets[SRV_N_BUCKETS]; /* cumulative counts are computed when rendering */
    uint64_t count;
    double sum;
} srv_histogram;

typedef struct srv_metrics {
    pthread_mutex_t mu;
    uint64_t requests[SRV_EP_COUNT][SRV_N_CODES];
    uint64_t prompt_tokens, generated_tokens, cached_tokens;
    uint64_t cancellations; /* generations cancelled because the client went away */
    srv_histogram ttft, itl;
} srv_metrics;

void srv_metrics_init(srv_metrics *m);
void srv_metrics_destroy(srv_metrics *m);
const char *srv_endpoint_name(int ep);
void srv_metrics_request(srv_metrics *m, int ep, unsigned code);
void srv_metrics_tokens(srv_metrics *m, uint64_t prompt, uint64_t generated, uint64_t cached);
void srv_metrics_ttft(srv_metrics *m, double seconds);
void srv_metrics_itl(srv_metrics *m, double seconds);
void srv_metrics_cancelled(srv_metrics *m);
/* Everything, plus the runner's gauges (running, queued, KV blocks, prefix hits). */
void srv_metrics_render(srv_metrics *m, const llm_runner_stats *rs, int have_runner, llm_strbuf *out);

#endif
