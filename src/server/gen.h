/* A generation job: the n runner requests behind one chat or completions call, the queue their
 * runner callbacks fill, and the two ways out — a JSON body when all are done, or an SSE stream.
 *
 * Lifetime: the job is referenced by each submitted request (until its on_done) and by the HTTP side
 * (until the response is built, or the stream's free callback); the last reference frees it. So a
 * client that disconnects never leaves a callback writing into freed memory. */
#ifndef LLM_SERVER_GEN_H
#define LLM_SERVER_GEN_H

#include "server/server_internal.h"

typedef struct tok_rec {
    int32_t token;
    float logprob;
    int32_t n_top;
    llm_token_logprob top[LLM_MAX_TOP_LOGPROBS];
} tok_rec;

typedef struct gen_tool_call {
    llm_strbuf name, args;
    char id[40];
} gen_tool_call;

typedef struct gen_choice {
    struct gen_job *job;
    int index;
    llm_request_id id; /* 0 when not submitted */
    /* filled by the runner thread, under job->mu */
    llm_strbuf text;
    size_t text_taken;
    tok_rec *recs;
    size_t n_recs, cap_recs, recs_taken;
    int done;
    llm_status status;
    llm_generate_result res;
    char error[256];
    double t_last;
    /* the HTTP side's */
    int prompt_index;        /* completions: which prompt */
    llm_tool_parser *parser; /* chat with tools */
    llm_strbuf content;      /* what the parser released as content */
    gen_tool_call *calls;
    int n_calls, cap_calls;
    int final_sent;
    llm_strbuf echo; /* completions with echo: the prompt text, sent first */
} gen_choice;

typedef struct gen_job {
    llm_server *srv;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    int n;
    gen_choice *choices;
    int chat; /* 1: chat.completion shapes, 0: text_completion */
    int stream, include_usage;
    int logprobs, top_logprobs;
    llm_tool_format tool_format; /* NONE: no tool parsing */
    char forced_prefix[512];     /* text the prompt forced the assistant to start with (tool_choice) */
    char id[64];
    int64_t created;
    int32_t n_prompt_total, n_cached_total;
    double t_submit;
    int cancelled; /* the client went away */
    struct MHD_Connection *conn;
    /* SSE */
    llm_strbuf sse;
    size_t sse_off;
    int sse_started, sse_finished;
    struct gen_job *reg_prev, *reg_next; /* the server's registry */
} gen_job;

/* A job of n choices (refs: the HTTP side). NULL on OOM. */
gen_job *gen_job_new(llm_server *s, int n, int chat, struct MHD_Connection *conn);
/* Submits choice i's request (callbacks wired; the job gains a reference). */
llm_status gen_submit(gen_job *job, int i, llm_request *rq, char *err, size_t err_cap);
/* The client went away: cancels every choice still running (idempotent; counted in the metrics). */
void gen_cancel(gen_job *job);
/* Cancels every choice still running for another reason (not counted as a client cancellation). */
void gen_abort(gen_job *job);
/* Drops the HTTP side's reference. */
void gen_release(gen_job *job);
/* Non-streamed: waits until every choice is done, or the client leaves (then cancels and returns -1). */
int gen_wait_all(gen_job *job);
/* The response body of a finished non-streamed job. */
void gen_build_response(gen_job *job, llm_strbuf *out);
/* The SSE reader and its free callback, for http_send_stream. */
ssize_t gen_sse_reader(void *cls, uint64_t pos, char *buf, size_t max);
void gen_sse_free(void *cls);
/* Cancels every job in flight (shutdown). */
void gen_cancel_all(llm_server *s);

#endif
