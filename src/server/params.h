/* Request fields shared by /v1/chat/completions and /v1/completions: validated, with OpenAI's error
 * shape naming the offending param on failure. */
#ifndef LLM_SERVER_PARAMS_H
#define LLM_SERVER_PARAMS_H

#include "server/server_internal.h"

#define SRV_MAX_STOP 16

typedef struct srv_gen_opts {
    llm_generate_params gen;
    int32_t max_tokens; /* 0: not given (up to the context) */
    int n;
    int stream, include_usage;
    int logprobs, top_logprobs;
    const char *session; /* borrowed from the request JSON */
    const char *stops[SRV_MAX_STOP];
    size_t n_stop;
    llm_logit_bias *bias;
    size_t n_bias;
    int echo; /* completions */
} srv_gen_opts;

/* Parses the sampling / output fields. -1: a 400 was sent. */
int srv_parse_gen(http_req *rq, const llm_json *body, int chat, srv_gen_opts *o);
void srv_gen_opts_free(srv_gen_opts *o);

/* "model": must be absent or name the served model (404 otherwise, as OpenAI does). -1: sent. */
int srv_check_model(http_req *rq, const llm_json *body);

/* Writes a parsed value back as JSON; numbers keep their source text (1 stays an int, 1.0 a float). */
void srv_json_write(llm_strbuf *o, const llm_json *v, const char *src, size_t src_len);

/* 429 when the runner's queue is full; -1: sent. */
int srv_check_capacity(http_req *rq);

#endif
