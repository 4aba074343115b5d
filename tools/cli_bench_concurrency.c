/* llama-cli bench --concurrency 1,8,32,64: C requests at once through the continuous-batching runner,
 * for each level C: aggregate generated tokens per second, time to first token and inter-token
 * latency percentiles. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_bench_concurrency.h"

typedef struct req_track {
    double last_ms; /* time of the previous token event (0 before the first) */
    double *gaps;   /* shared array of inter-token gaps */
    size_t *n_gaps;
    size_t gaps_cap;
    double ttft_ms;
    double first_ms; /* time of the first token event */
    double *times;   /* shared array of every token's arrival time */
    size_t *n_times;
    int done;
    llm_status status;
} req_track;

static int on_event(const llm_generate_event *ev, void *user) {
    req_track *t = user;
    if (ev->token < 0) return 0;
    const double now = cli_now_ms();
    /* the runner thread makes every callback, one at a time: no lock needed for the shared array */
    if (t->last_ms > 0 && *t->n_gaps < t->gaps_cap) t->gaps[(*t->n_gaps)++] = now - t->last_ms;
    if (t->last_ms == 0) t->first_ms = now;
    if (*t->n_times < t->gaps_cap) t->times[(*t->n_times)++] = now;
    t->last_ms = now;
    return 0;
}

static void on_done(llm_request_id id, llm_status status, const llm_generate_result *r, const char *err,
                    void *user) {
    (void)id;
    (void)err;
    req_track *t = user;
    t->status = status;
    t->ttft_ms = r ? r->ttft_ms : 0;
    t->done = 1;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[n]. */
static double percentile(const double *v, size_t n, double p) {
    if (!n) return 0;
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return v[rank - 1];
}

int cli_parse_levels(const char *s, int *levels, int cap) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 1024 || n >= cap || (*end && *end != ',')) return -1;
        levels[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    return n;
}

int cli_bench_concurrency(llm_model *model, const llm_model_info *mi, const char *name, const int *levels,
                          int n_levels, int prompt, int gen, uint64_t seed, int json) {
    if (!json) {
        printf(
            "model      %s (%s, %.3f B params), %d threads, prompt %d + %d generated tokens per request\n\n",
            name, mi->architecture, mi->n_params / 1e9, mi->n_threads, prompt, gen);
        printf("%11s %16s %12s %12s %11s %11s %15s\n", "concurrency", "aggregate tok/s", "ttft p50 ms",
               "ttft p99 ms", "itl p50 ms", "itl p99 ms", "decode tok/s");
    }
    uint64_t rng = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int li = 0; li < n_levels; li++) {
        const int C = levels[li];
        llm_engine_params ep = llm_engine_default_params();
        ep.n_ctx = prompt + gen;
        ep.n_seq_max = C;
        ep.kv_budget_tokens = (int64_t)C * (prompt + gen);
        /* a GPU prefills thousands of rows per pass at full speed; 256 keeps CPU steps short */
        if (mi->backend == LLM_BACKEND_CUDA) ep.max_batch_tokens = 2048;
        llm_engine *engine = NULL;
        if (llm_engine_create(model, &ep, &engine) != LLM_OK)
            return cli_error("bench: %s", llm_model_last_error(model));
        llm_runner_params rp = llm_runner_default_params();
        rp.max_running = C;
        llm_runner *runner = NULL;
        if (llm_runner_create(engine, &rp, &runner) != LLM_OK) {
            cli_error("bench: %s", llm_engine_last_error(engine));
            llm_engine_free(engine);
            return 1;
        }
        const size_t gaps_cap = (size_t)C * (size_t)gen;
        double *gaps = malloc(gaps_cap * sizeof *gaps), *ttft = malloc((size_t)C * sizeof *ttft),
               *times = malloc(gaps_cap * sizeof *times);
        size_t n_times = 0;
        int32_t *prompts = malloc((size_t)C * (size_t)prompt * sizeof *prompts);
        req_track *tracks = calloc((size_t)C, sizeof *tracks);
        size_t n_gaps = 0;
        int rc = 0;
        if (!gaps || !ttft || !times || !prompts || !tracks) rc = cli_error("out of memory");
        for (size_t i = 0; rc == 0 && i < (size_t)C * (size_t)prompt; i++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            prompts[i] = (int32_t)(rng % (uint64_t)mi->n_vocab);
        }
        const double t0 = cli_now_ms();
        for (int r = 0; rc == 0 && r < C; r++) {
            tracks[r] = (req_track){.gaps = gaps,
                                    .n_gaps = &n_gaps,
                                    .gaps_cap = gaps_cap,
                                    .times = times,
                                    .n_times = &n_times,
                                    .status = LLM_OK};
            llm_request req = {.prompt = prompts + (size_t)r * prompt,
                               .n_prompt = (size_t)prompt,
                               .gen = llm_generate_default_params(),
                               .on_done = on_done};
            req.gen.sampling.temperature = 0;
            req.gen.max_tokens = gen;
            req.gen.ignore_eos = 1; /* every request generates exactly gen tokens */
            req.gen.on_event = on_event;
            req.gen.user_data = &tracks[r];
            char err[512];
            if (llm_runner_submit(runner, &req, NULL, err, sizeof err) != LLM_OK)
                rc = cli_error("bench: %s", err);
        }
        llm_runner_wait_idle(runner);
        const double t_end = cli_now_ms(), wall_s = (t_end - t0) / 1e3;
        llm_runner_stats stats;
        llm_runner_get_stats(runner, &stats);
        llm_runner_free(runner);
        llm_engine_free(engine);
        for (int r = 0; rc == 0 && r < C; r++) {
            if (tracks[r].status != LLM_OK)
                rc = cli_error("bench: a request failed (%s)", llm_status_name(tracks[r].status));
            ttft[r] = tracks[r].ttft_ms;
        }
        if (rc == 0) {
            qsort(ttft, (size_t)C, sizeof *ttft, cmp_double);
            qsort(gaps, n_gaps, sizeof *gaps, cmp_double);
            const double generated = (double)C * gen, agg = generated / wall_s;
            const double t50 = percentile(ttft, (size_t)C, 50), t99 = percentile(ttft, (size_t)C, 99);
            const double i50 = percentile(gaps, n_gaps, 50), i99 = percentile(gaps, n_gaps, 99);
            /* decode phase: from the moment every request has its first token (all prompts are in),
             * tokens arriving per second: the steady batch-C decode rate, without the prefill */
            double t_all = 0;
            for (int r = 0; r < C; r++)
                if (tracks[r].first_ms > t_all) t_all = tracks[r].first_ms;
            size_t n_after = 0;
            for (size_t i = 0; i < n_times; i++) n_after += times[i] > t_all;
            const double dec = t_end > t_all && n_after ? (double)n_after / ((t_end - t_all) / 1e3) : 0.0;
            if (json)
                printf(
                    "{\"concurrency\":%d,\"requests\":%d,\"prompt_tokens\":%d,\"gen_tokens\":%d,\"wall_s\":%."
                    "3f,"
                    "\"aggregate_tok_s\":%.3f,\"ttft_p50_ms\":%.3f,\"ttft_p99_ms\":%.3f,\"itl_p50_ms\":%.3f,"
                    "\"itl_p99_ms\":%.3f,\"steps\":%llu,\"mean_decode_batch\":%.2f,\"preempted\":%llu,"
                    "\"threads\":%d,\"decode_tok_s\":%.3f}\n",
                    C, C, prompt, gen, wall_s, agg, t50, t99, i50, i99, (unsigned long long)stats.steps,
                    stats.decode_calls ? (double)stats.decode_tokens / (double)stats.decode_calls : 0.0,
                    (unsigned long long)stats.preempted, mi->n_threads, dec);
            else
                printf("%11d %16.2f %12.1f %12.1f %11.2f %11.2f %15.2f\n", C, agg, t50, t99, i50, i99, dec);
            fflush(stdout);
        }
        free(gaps);
        free(times);
        free(ttft);
        free(prompts);
        free(tracks);
        if (rc) return rc;
    }
    if (!json)
        printf(
            "\neach level: C requests submitted at once, greedy, EOS ignored; aggregate = C x %d tokens / "
            "wall "
            "time;\nttft from submission; itl = gaps between a request's consecutive tokens; decode = tokens "
            "per second once every request has its first token\n",
            gen);
    return 0;
}
