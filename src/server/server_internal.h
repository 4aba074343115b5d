/* The server's shared state and the helpers its endpoint files use. */
#ifndef LLM_SERVER_INTERNAL_H
#define LLM_SERVER_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

#include "core/json.h"
#include "core/strbuf.h"
#include "server/metrics.h"
#include "server/server.h"
#include "server/tool_calls.h"

struct llm_server {
    llm_server_params p;
    char host[64];
    char model_id[128];
    char **keys;
    size_t n_keys;
    struct MHD_Daemon *mhd;
    int port;
    atomic_int ready;    /* a model is attached */
    atomic_int stopping; /* shutdown began: new requests get 503 */
    int64_t created_unix;
    char fingerprint[48];

    /* set by llm_server_attach, read-only after (ready orders it) */
    llm_model *model;
    llm_engine *engine;
    llm_runner *runner;
    int32_t n_ctx, n_vocab, n_embd;
    llm_chat_template *tmpl; /* immutable: any thread may render it */
    llm_tool_format tool_format;
    char *bos_text, *eos_text;
    pthread_mutex_t tok_mu; /* the server's own tokenizer is used by one thread at a time */
    llm_tokenizer *tok;
    pthread_mutex_t embed_mu; /* the embeddings engine too */
    llm_engine *embed_engine;

    srv_metrics metrics;

    pthread_mutex_t jobs_mu; /* generation jobs in flight, so that shutdown can cancel them */
    pthread_cond_t jobs_cv;
    struct gen_job *jobs;
    int64_t n_jobs;
};

/* One HTTP request, from its first byte to the end of its response. */
typedef struct http_req {
    llm_server *srv;
    struct MHD_Connection *conn;
    const char *method;
    const char *url;
    int endpoint; /* SRV_EP_* for metrics */
    llm_strbuf body;
    int too_large;
    double t_start;
    int responded;
} http_req;

/* ---- responses (http.c) ---- */

/* Queues a JSON body with status (body is taken and cleared). Returns MHD_YES/MHD_NO. */
enum MHD_Result http_send_json(http_req *rq, unsigned status, llm_strbuf *body);
/* An OpenAI-shaped error: {"error":{"message","type","param","code"}}. param and code may be NULL.
 * retry_after_s > 0 adds a Retry-After header. */
enum MHD_Result http_send_error(http_req *rq, unsigned status, const char *type, const char *param,
                                const char *code, int retry_after_s, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* Starts a text/event-stream response fed by reader (MHD's content reader contract; it may block). */
enum MHD_Result http_send_stream(http_req *rq, MHD_ContentReaderCallback reader, void *cls,
                                 MHD_ContentReaderFreeCallback free_cb);
/* 1 while the client's socket is open (a peek: nothing is consumed). */
int http_client_alive(struct MHD_Connection *conn);
/* A short random id: prefix + 24 hex digits. */
void http_new_id(char *out, size_t cap, const char *prefix);

/* ---- endpoints ---- */
enum MHD_Result srv_chat_completions(http_req *rq, const llm_json *body);
enum MHD_Result srv_completions(http_req *rq, const llm_json *body);
enum MHD_Result srv_embeddings(http_req *rq, const llm_json *body);
enum MHD_Result srv_tokenize(http_req *rq, const llm_json *body);
enum MHD_Result srv_detokenize(http_req *rq, const llm_json *body);
enum MHD_Result srv_apply_template(http_req *rq, const llm_json *body);
enum MHD_Result srv_models(http_req *rq, const char *id);
enum MHD_Result srv_health(http_req *rq);
enum MHD_Result srv_metrics_page(http_req *rq);

/* ---- shared helpers (requests.c) ---- */

/* Renders the chat template over messages (a JSON array, validated) and tools (array or NULL; only the
 * function named only_tool when that is set) with a generation prompt, plus an optional forced
 * assistant prefix appended. *out: malloc'd. On error, a
 * 400 has been sent and -1 returned. */
int srv_render_chat(http_req *rq, const llm_json *messages, const llm_json *tools, const char *only_tool,
                    const char *prefix, char **out, size_t *out_len);
/* Tokenizes text under the tokenizer lock (flags LLM_TOKENIZE_*); *ids malloc'd. -1 with a 400/500
 * sent on failure. */
int srv_tokenize_text(http_req *rq, const char *text, size_t len, unsigned flags, const char *param,
                      int32_t **ids, size_t *n_ids);
/* The text of one token (decoded alone) into sb. */
void srv_token_text(llm_server *s, int32_t id, llm_strbuf *sb);

#endif
