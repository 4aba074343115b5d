/* Results by pull: a request submitted with pull = 1 has a box where the runner thread appends its
 * tokens and text; llm_runner_pull takes them out from any thread, and the box goes once its final
 * state has been taken. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/runner_internal.h"

pull_box *llm_runner_box_new(llm_runner *r, llm_request_id id) {
    pull_box *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->id = id;
    b->next = r->boxes;
    r->boxes = b;
    return b;
}

static void box_free(pull_box *b) {
    llm_strbuf_free(&b->text);
    free(b->toks);
    free(b);
}

void llm_runner_box_push(llm_runner *r, pull_box *b, int32_t token, const char *text, size_t len) {
    pthread_mutex_lock(&r->mu);
    if (token >= 0 && !b->oom) {
        if (b->n_toks == b->cap_toks) {
            const size_t cap = b->cap_toks ? 2 * b->cap_toks : 64;
            int32_t *p = realloc(b->toks, cap * sizeof *p);
            if (p)
                b->toks = p, b->cap_toks = cap;
            else
                b->oom = 1;
        }
        if (!b->oom) b->toks[b->n_toks++] = token;
    }
    if (len && llm_strbuf_append(&b->text, text, len) != 0) b->oom = 1;
    pthread_cond_broadcast(&r->pull_cv);
    pthread_mutex_unlock(&r->mu);
}

void llm_runner_box_finish(llm_runner *r, pull_box *b, llm_status st, const llm_generate_result *res,
                           const char *error) {
    pthread_mutex_lock(&r->mu);
    b->done = 1;
    b->status = st;
    b->result = *res;
    snprintf(b->error, sizeof b->error, "%s", error);
    if (st == LLM_OK && b->oom) { /* output was lost: the consumer must know */
        b->status = LLM_ERR_OUT_OF_MEMORY;
        snprintf(b->error, sizeof b->error, "request %lld: out of memory keeping its output for pull",
                 (long long)b->id);
    }
    pthread_cond_broadcast(&r->pull_cv);
    pthread_mutex_unlock(&r->mu);
}

void llm_runner_boxes_free(llm_runner *r) {
    for (pull_box *b = r->boxes, *nx; b; b = nx) {
        nx = b->next;
        box_free(b);
    }
    r->boxes = NULL;
}

/* Output not yet taken, counting only what the caller wants (a NULL buffer discards its kind). */
static int box_pending(const pull_box *b, const llm_pull *p) {
    return (p->tokens && b->toks_off < b->n_toks) || (p->text && b->text_off < b->text.len);
}

static void discard_unwanted(pull_box *b, const llm_pull *p) {
    if (!p->tokens) b->toks_off = b->n_toks;
    if (!p->text) b->text_off = b->text.len;
}

llm_status llm_runner_pull(llm_runner *r, llm_request_id id, int timeout_ms, llm_pull *p) {
    /* a text buffer holds at least one UTF-8 character and the NUL, so a pull always makes progress */
    if (!r || !p || (p->text && p->text_cap < 5) || (p->tokens_cap && !p->tokens))
        return LLM_ERR_INVALID_ARGUMENT;
    p->text_len = p->n_tokens = 0;
    p->done = 0;
    if (p->text) p->text[0] = '\0';
    pthread_mutex_lock(&r->mu);
    pull_box **link = &r->boxes;
    while (*link && (*link)->id != id) link = &(*link)->next;
    pull_box *b = *link;
    if (!b) {
        pthread_mutex_unlock(&r->mu);
        return LLM_ERR_NOT_FOUND;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline); /* pull_cv waits on the monotonic clock */
    if (timeout_ms > 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) deadline.tv_sec++, deadline.tv_nsec -= 1000000000L;
    }
    discard_unwanted(b, p);
    while (!box_pending(b, p) && !b->done && timeout_ms != 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&r->pull_cv, &r->mu);
        else if (pthread_cond_timedwait(&r->pull_cv, &r->mu, &deadline) != 0)
            break;
        discard_unwanted(b, p);
    }
    if (p->tokens) {
        size_t n = b->n_toks - b->toks_off;
        if (n > p->tokens_cap) n = p->tokens_cap;
        if (n) memcpy(p->tokens, b->toks + b->toks_off, n * sizeof *p->tokens);
        b->toks_off += n;
        p->n_tokens = n;
    }
    if (p->text) {
        const size_t avail = b->text.len - b->text_off;
        size_t take = avail < p->text_cap - 1 ? avail : p->text_cap - 1;
        /* never split a UTF-8 character: back off to the start of the one that does not fit */
        while (take > 0 && take < avail && ((unsigned char)b->text.data[b->text_off + take] & 0xC0) == 0x80)
            take--;
        if (take) memcpy(p->text, b->text.data + b->text_off, take);
        p->text[take] = '\0';
        b->text_off += take;
        p->text_len = take;
    }
    /* what is taken is forgotten, so a long stream does not accumulate */
    if (b->toks_off == b->n_toks) b->toks_off = b->n_toks = 0;
    if (b->text_off == b->text.len) {
        llm_strbuf_clear(&b->text);
        b->text_off = 0;
    }
    if (b->done && b->n_toks == 0 && b->text.len == 0) {
        p->done = 1;
        p->status = b->status;
        p->result = b->result;
        memcpy(p->error, b->error, sizeof p->error);
        /* the list may have changed while we waited (boxes are pushed at its head): find b again */
        for (link = &r->boxes; *link != b; link = &(*link)->next) {
        }
        *link = b->next;
        box_free(b);
    }
    pthread_mutex_unlock(&r->mu);
    return LLM_OK;
}
