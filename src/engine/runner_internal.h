/* The runner's state, shared by runner.c (loop, admission, the step), runner_session.c (named
 * sessions) and runner_pull.c (results by pull).
 *
 * Threads. Fields marked (mu) are guarded by the runner mutex; fields marked (rt) belong to the runner
 * thread (the engine too: every engine call happens on it, or with the mutex held by a caller the
 * runner thread is waiting on — see ctl below). Callbacks run with the mutex released. */
#ifndef LLM_ENGINE_RUNNER_INTERNAL_H
#define LLM_ENGINE_RUNNER_INTERNAL_H

#include <pthread.h>

#include "core/strbuf.h"
#include "engine/gen_text.h"
#include "llamac.h"

typedef struct runner_session runner_session;
typedef struct pull_box pull_box;

typedef struct runner_req {
    llm_request_id id;
    int32_t *toks; /* (rt) the session history it starts from + prompt + tokens sampled so far */
    int32_t n_toks, cap_toks;
    int32_t n_prompt; /* history + prompt: the context the request was given */
    int32_t n_done;   /* (rt) of toks in the sequence */
    int32_t tail_tok; /* (rt) the last sampled token when it ended the request (never fed), or -1 */
    llm_seq_id seq;   /* (rt) 0 while queued */
    llm_generate_params gen;
    char **stops;         /* owned copies of gen.stop */
    llm_logit_bias *bias; /* owned copy of gen.sampling.logit_bias */
    llm_request_done_fn on_done;
    runner_session *session; /* (mu) the session it runs on, or NULL */
    pull_box *box;           /* the pull record, or NULL */
    llm_sampler *sampler;    /* (rt) created at first admission */
    llm_gen_text text;
    int text_ready;
    int cancel_requested;     /* (mu) */
    llm_finish_reason finish; /* (rt) NONE while generating */
    llm_status status;
    char error[256];
    llm_generate_result res;
    double t_submit, t_admit, t_first;
    int got_logits;                 /* the prompt's logits were reached once */
    struct runner_req *prev, *next; /* (mu) queue links */
} runner_req;

/* A named session. The history is authoritative; seq is a cache of it (0 when parked). */
struct runner_session {
    char name[LLM_SESSION_NAME_MAX];
    int32_t *toks; /* (mu) history */
    int32_t n_toks, cap_toks;
    llm_seq_id seq;          /* (rt) its sequence while idle (a running request holds it meanwhile) */
    int32_t n_kv;            /* (mu) tokens of seq, for listing */
    runner_req *req;         /* (mu) the request queued or running on it */
    runner_session *fork_of; /* (mu) pending: share this session's blocks (see ctl) */
    int closing;             /* (mu) closed while busy: goes when its request ends */
    double last_used;        /* (mu) runner clock, ms */
    runner_session *next;    /* (mu) the open sessions, in creation order */
};

/* A pull request's output not yet taken. Lives in the runner's list until a pull returns done. */
struct pull_box {
    llm_request_id id;
    llm_strbuf text;
    size_t text_off; /* bytes of text already taken */
    int32_t *toks;
    size_t n_toks, cap_toks, toks_off;
    int done, oom;
    llm_status status;
    llm_generate_result result;
    char error[256];
    pull_box *next;
};

struct llm_runner {
    llm_engine *engine;
    llm_model *model;
    llm_runner_params p;
    int32_t n_ctx, n_vocab, block_size, blocks_total, max_batch_tokens;

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work;   /* the loop waits on it for requests, control work or a session's expiry */
    pthread_cond_t idle;   /* wait_idle waits on it */
    pthread_cond_t ctl_cv; /* session calls wait on it for the runner thread to do their engine work */
    pthread_cond_t pull_cv;
    int shutdown;                /* (mu) */
    llm_request_id next_id;      /* (mu) */
    runner_req *q_head, *q_tail; /* (mu) queued, admission order */
    runner_req **running;        /* (mu) [max_running], admission order */
    int32_t n_running;
    int64_t n_live; /* (mu) accepted and not yet past on_done */
    llm_runner_stats stats;

    /* sessions (mu) */
    runner_session *sessions;
    int32_t n_sessions;
    llm_seq_id *seqs_to_free; /* [max_sessions]: of closed sessions, freed by the runner thread */
    int32_t n_seqs_to_free;
    uint64_t ctl_posted, ctl_done; /* control work asked for / done: tickets for the waiters */
    double clock_offset_ms;        /* test hook: added to the monotonic clock */

    pull_box *boxes; /* (mu) */

    /* (rt) */
    float *logits;         /* [max_running * n_vocab] */
    llm_step_item *items;  /* [max_running] */
    runner_req **item_req; /* [max_running] */
    /* the step's draws, [max_running] each */
    size_t n_draw;
    runner_req **draw_req;
    const float **draw_logits;
    llm_sample_result *draw_res;
    llm_status *draw_st;
    struct llm_threadpool *sample_pool; /* GPU engines: the host's cores draw rows in parallel */
};

/* Writes a message into an optional caller buffer (err may be NULL) and returns st. */
llm_status llm_runner_put_err(char *err, size_t cap, llm_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The runner clock (monotonic ms, plus the test offset). (mu) */
double llm_runner_now(const llm_runner *r);

/* (mu, rt) Copies the engine's KV accounting into the stats. */
void llm_runner_refresh_kv_stats(llm_runner *r);

/* (mu) Asks the runner thread to cancel q (a request of a session being closed). */
void llm_runner_cancel_req(llm_runner *r, runner_req *q);

/* sessions (runner_session.c) */
runner_session *llm_runner_session_find(llm_runner *r, const char *name); /* (mu) */
/* (mu) Creates an empty session; NULL with err filled when it cannot. */
runner_session *llm_runner_session_new(llm_runner *r, const char *name, llm_status *st, char *err,
                                       size_t cap);
/* (mu, rt) The engine work asked for by other threads: forks, sequences of closed sessions; expiry. */
void llm_runner_sessions_service(llm_runner *r);
/* (mu) Removes a session just created that holds nothing (its submit was refused). */
void llm_runner_session_discard(llm_runner *r, runner_session *s);
/* (mu, rt) Parks the least recently used idle session holding a sequence, other than keep.
 * Returns 1 if one was parked. */
int llm_runner_session_park_one(llm_runner *r, const runner_session *keep);
/* (mu) Milliseconds until the next idle session expires (-1: none will). */
double llm_runner_sessions_next_expiry(const llm_runner *r);
/* (mu, rt) A request on s ended: takes its tokens as the history and its sequence. */
void llm_runner_session_release(llm_runner *r, runner_session *s, runner_req *q);
/* After join: frees every session and its sequence. */
void llm_runner_sessions_free(llm_runner *r);

/* pull (runner_pull.c) */
pull_box *llm_runner_box_new(llm_runner *r, llm_request_id id); /* (mu) */
/* (rt, takes mu) Appends output; token < 0 for text alone. */
void llm_runner_box_push(llm_runner *r, pull_box *b, int32_t token, const char *text, size_t len);
/* (rt, takes mu) The request ended. */
void llm_runner_box_finish(llm_runner *r, pull_box *b, llm_status st, const llm_generate_result *res,
                           const char *error);
void llm_runner_boxes_free(llm_runner *r); /* after join */

#endif
