/* Server lifecycle after the socket is bound: attaching a model, shutting down, freeing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/gen.h"

/* The text of a special token (for the template's bos_token / eos_token), "" if none. */
static char *special_text(llm_tokenizer *tok, llm_special_token which) {
    const int32_t id = llm_tokenizer_special_id(tok, which);
    char buf[256];
    size_t len = 0;
    if (id < 0 || llm_token_to_piece(tok, id, buf, sizeof buf, &len) != LLM_OK) return strdup("");
    return strndup(buf, len);
}

llm_status llm_server_attach(llm_server *s, llm_model *model, const char *dir, char *err, size_t err_cap) {
    llm_model_info mi;
    llm_model_get_info(model, &mi);
    s->model = model;
    s->n_vocab = mi.n_vocab;
    s->n_embd = mi.n_embd;
    llm_tokenizer_params tp = llm_tokenizer_default_params();
    tp.log_level = LLM_LOG_ERROR; /* the model's own tokenizer already reported its warnings */
    llm_status st = llm_tokenizer_load(dir, &tp, &s->tok, err, err_cap);
    if (st != LLM_OK) return st;
    s->bos_text = special_text(s->tok, LLM_SPECIAL_BOS);
    s->eos_text = special_text(s->tok, LLM_SPECIAL_EOS);
    const char *tmpl = llm_tokenizer_chat_template(s->tok);
    if (tmpl) {
        st = llm_chat_template_parse(tmpl, strlen(tmpl), &s->tmpl, err, err_cap);
        if (st != LLM_OK) return st;
        s->tool_format = llm_tool_format_for_template(tmpl);
    }
    llm_engine_params ep = llm_engine_default_params();
    ep.n_ctx = s->p.n_ctx;
    ep.n_seq_max = s->p.max_concurrency + 8; /* room for a few idle sessions */
    ep.kv_budget_tokens = s->p.kv_budget_tokens;
    ep.kv_budget_bytes = s->p.kv_budget_bytes;
    llm_engine_info info;
    if ((st = llm_engine_estimate(model, &ep, &info)) != LLM_OK) {
        snprintf(err, err_cap, "%s", llm_model_last_error(model));
        return st;
    }
    ep.n_ctx = info.n_ctx;
    if (!ep.kv_budget_tokens && !ep.kv_budget_bytes)
        ep.kv_budget_tokens = (int64_t)info.n_ctx * s->p.max_concurrency;
    if ((st = llm_engine_create(model, &ep, &s->engine)) != LLM_OK) {
        snprintf(err, err_cap, "%s", llm_model_last_error(model));
        return st;
    }
    s->n_ctx = ep.n_ctx;
    llm_runner_params rp = llm_runner_default_params();
    rp.max_running = s->p.max_concurrency;
    if ((st = llm_runner_create(s->engine, &rp, &s->runner)) != LLM_OK) {
        snprintf(err, err_cap, "%s", llm_engine_last_error(s->engine));
        return st;
    }
    llm_engine_params ee = llm_engine_default_params(); /* embeddings: one sequence at a time */
    ee.n_ctx = s->n_ctx;
    ee.n_seq_max = 1;
    if ((st = llm_engine_create(model, &ee, &s->embed_engine)) != LLM_OK) {
        snprintf(err, err_cap, "embeddings engine: %s", llm_model_last_error(model));
        return st;
    }
    atomic_store(&s->ready, 1);
    return LLM_OK;
}

/* Waits until no generation job is left or ms pass. */
static void wait_jobs(llm_server *s, int ms) {
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_mutex_lock(&s->jobs_mu);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        const double el = (double)(t.tv_sec - t0.tv_sec) * 1e3 + (double)(t.tv_nsec - t0.tv_nsec) * 1e-6;
        if (s->n_jobs == 0 || el >= ms) break;
        struct timespec w;
        clock_gettime(CLOCK_REALTIME, &w);
        w.tv_nsec += 20 * 1000000L;
        if (w.tv_nsec >= 1000000000L) w.tv_sec++, w.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&s->jobs_cv, &s->jobs_mu, &w);
    }
    pthread_mutex_unlock(&s->jobs_mu);
}

void llm_server_shutdown(llm_server *s, int deadline_ms) {
    if (!s || !s->mhd) return;
    atomic_store(&s->stopping, 1);
    const MHD_socket ls = MHD_quiesce_daemon(s->mhd); /* no new connections */
    if (ls != MHD_INVALID_SOCKET) close(ls);
    wait_jobs(s, deadline_ms); /* in-flight generations may finish until the deadline */
    if (s->runner) {
        gen_cancel_all(s);
        /* let the cancelled responses end properly (an error event and [DONE] on streams, a 503
         * otherwise) before the connections are closed: bounded, a stuck client cannot hold us */
        wait_jobs(s, 3000);
    }
    MHD_stop_daemon(s->mhd); /* joins the connection threads */
    s->mhd = NULL;
}

void llm_server_free(llm_server *s) {
    if (!s) return;
    llm_server_shutdown(s, 0);
    llm_runner_free(s->runner); /* every job's last on_done has run: nothing references the server */
    llm_engine_free(s->engine);
    llm_engine_free(s->embed_engine);
    llm_chat_template_free(s->tmpl);
    llm_tokenizer_free(s->tok);
    free(s->bos_text);
    free(s->eos_text);
    for (size_t i = 0; i < s->n_keys; i++) free(s->keys[i]);
    free(s->keys);
    srv_metrics_destroy(&s->metrics);
    pthread_mutex_destroy(&s->tok_mu);
    pthread_mutex_destroy(&s->embed_mu);
    pthread_mutex_destroy(&s->jobs_mu);
    pthread_cond_destroy(&s->jobs_cv);
    free(s);
}
