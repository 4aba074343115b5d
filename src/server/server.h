/* The OpenAI-compatible HTTP server: what `llama-cli serve` and the tests drive.
 *
 *   llm_server_create      binds and serves at once (/health says 503 "loading" until a model is attached)
 *   llm_server_attach      gives it a loaded model: engines + runner are created, /health turns 200
 *   llm_server_shutdown    stops accepting, lets in-flight requests finish until a deadline, cancels the rest
 *   llm_server_free        frees everything (the model stays the caller's)
 *
 * Threads: libmicrohttpd runs one thread per connection; generation runs on the runner's thread; the
 * HTTP threads only render templates, tokenize (under a lock), submit, and wait for their requests'
 * output. Nothing here prints: diagnostics go to the log callback. */
#ifndef LLM_SERVER_SERVER_H
#define LLM_SERVER_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "llamac.h"

typedef struct llm_server llm_server;

typedef struct llm_server_params {
    const char *host;            /* address to bind; default "127.0.0.1" */
    int port;                    /* 0 = any free port (see llm_server_port); default 8080 */
    const char *const *api_keys; /* Bearer keys accepted; none = no authentication */
    size_t n_api_keys;
    int open_health_metrics;  /* 1: /health and /metrics need no key */
    int32_t max_concurrency;  /* requests generating at once (the runner's max_running); default 16 */
    int32_t max_queue;        /* requests waiting beyond that before 429; default 256 */
    int32_t n_ctx;            /* context per request; 0 = min(model's, 4096) */
    int64_t kv_budget_tokens; /* 0 and kv_budget_bytes 0: n_ctx * max_concurrency */
    uint64_t kv_budget_bytes;
    size_t max_body_bytes;     /* default 8 MiB; larger bodies get 413 */
    int32_t max_messages;      /* per chat request; default 4096 */
    int32_t request_timeout_s; /* to receive a whole request (headers and body); default 30 */
    int32_t n_max;             /* largest n (choices) per request; default 16 */
    const char *model_id;      /* the name clients use; default "llamac" */
    llm_log_fn log_fn;
    void *log_user;
} llm_server_params;

llm_server_params llm_server_default_params(void);

/* Binds host:port and starts serving. err: one-line message on failure. */
llm_status llm_server_create(const llm_server_params *params, llm_server **out, char *err, size_t err_cap);

/* The port bound (useful with port 0). */
int llm_server_port(const llm_server *s);

/* Serves model from now on (borrowed: must outlive the server); dir is its directory (the server loads
 * a tokenizer of its own from it). Creates the generation engine and its runner, and a small engine
 * for embeddings. */
llm_status llm_server_attach(llm_server *s, llm_model *model, const char *dir, char *err, size_t err_cap);

/* Stops accepting connections; requests in flight may finish for deadline_ms, then are cancelled.
 * Returns once every connection is closed. */
void llm_server_shutdown(llm_server *s, int deadline_ms);

/* Shuts down (deadline 0) if still running and frees. NULL is a no-op. */
void llm_server_free(llm_server *s);

#endif
