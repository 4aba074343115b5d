/* llm_model_create_random (what `llama-cli bench --random-weights` runs on): the presets have the
 * parameter counts of the real checkpoints, the memory limit is checked before anything is allocated,
 * the weights depend on the seed and not on the thread count, a forward pass gives finite logits, and
 * progress is reported (for file loads too). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "model/model_internal.h"
#include "test_util.h"

/* Parameter counts of the Hugging Face checkpoints (their safetensors totals, tied embeddings once):
 * meta-llama/Llama-3.2-1B, Qwen/Qwen3-0.6B, meta-llama/Meta-Llama-3-8B. */
static const struct {
    const char *preset;
    uint64_t params;
} real_counts[] = {
    {"llama-3.2-1b", 1235814400ull},
    {"qwen3-0.6b", 596049920ull},
    {"llama-3-8b", 8030261248ull},
};

static long max_rss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* With a tiny memory limit every preset is refused with LLM_ERR_MEMORY_LIMIT before its weights are
 * allocated; the message states the exact bytes, i.e. the shape's parameter count x 4 in F32. */
static void memory_limit_first(void) {
    for (size_t i = 0; i < sizeof real_counts / sizeof real_counts[0]; i++) {
        llm_model_params mp = llm_model_default_params();
        mp.memory_limit_bytes = 1 << 20;
        llm_model *m = (llm_model *)&mp; /* must be overwritten with NULL */
        char err[512];
        const long rss0 = max_rss_kb();
        llm_status st =
            llm_model_create_random(real_counts[i].preset, LLM_DTYPE_F32, 1, &mp, &m, err, sizeof err);
        TU_CHECK(st == LLM_ERR_MEMORY_LIMIT, "%s f32 with a 1 MiB limit: %s (%s)", real_counts[i].preset,
                 llm_status_name(st), err);
        TU_CHECK(m == NULL, "%s: *out not NULL on failure", real_counts[i].preset);
        TU_CHECK(max_rss_kb() - rss0 < 64 * 1024, "%s: peak RSS grew by %ld KiB before the refusal",
                 real_counts[i].preset, max_rss_kb() - rss0);
        const char *needs = strstr(err, "needs ");
        unsigned long long bytes = needs ? strtoull(needs + 6, NULL, 10) : 0;
        TU_CHECK(bytes == 4 * real_counts[i].params,
                 "%s: %llu bytes of F32 weights, expected 4 x %llu params: %s", real_counts[i].preset, bytes,
                 (unsigned long long)real_counts[i].params, err);
    }
    /* the 8B in bf16 (16 GB) passes a limit of 17 GB in the check; not built here (too big for a test) */
}

static void bad_arguments(void) {
    llm_model *m = NULL;
    char err[512];
    llm_status st = llm_model_create_random("llama-7", LLM_DTYPE_BF16, 1, NULL, &m, err, sizeof err);
    TU_CHECK(st == LLM_ERR_INVALID_ARGUMENT && m == NULL, "unknown preset: %s", llm_status_name(st));
    TU_CHECK(strstr(err, "llama-7") && strstr(err, "llama-3.2-1b") && strstr(err, "qwen3-0.6b") &&
                 strstr(err, "llama-3-8b"),
             "unknown preset message should name it and list the presets: %s", err);
    st = llm_model_create_random(NULL, LLM_DTYPE_BF16, 1, NULL, &m, err, sizeof err);
    TU_CHECK(st == LLM_ERR_INVALID_ARGUMENT && m == NULL, "NULL preset: %s", llm_status_name(st));
    st = llm_model_create_random("tiny", LLM_DTYPE_COUNT, 1, NULL, &m, err, sizeof err);
    TU_CHECK(st == LLM_ERR_INVALID_ARGUMENT && strstr(err, "dtype"), "bad dtype: %s %s", llm_status_name(st),
             err);
    llm_model_params mp = llm_model_default_params();
    mp.n_threads = -3;
    st = llm_model_create_random("tiny", LLM_DTYPE_BF16, 1, &mp, &m, err, sizeof err);
    TU_CHECK(st == LLM_ERR_INVALID_ARGUMENT && strstr(err, "n_threads"), "bad n_threads: %s", err);
    TU_CHECK(llm_model_create_random("tiny", LLM_DTYPE_BF16, 1, NULL, NULL, err, sizeof err) ==
                 LLM_ERR_INVALID_ARGUMENT,
             "NULL out");
    TU_CHECK(llm_model_random_preset(0) && strcmp(llm_model_random_preset(0), "llama-3.2-1b") == 0 &&
                 llm_model_random_preset(2) && strcmp(llm_model_random_preset(2), "llama-3-8b") == 0 &&
                 llm_model_random_preset(3) == NULL,
             "preset list");
}

typedef struct progress_log {
    int calls, decreased;
    float first, last;
} progress_log;

static void on_progress(float f, void *user) {
    progress_log *p = user;
    if (p->calls == 0) p->first = f;
    if (p->calls > 0 && f < p->last) p->decreased = 1;
    p->last = f;
    p->calls++;
}

static llm_model *make_tiny(llm_dtype dtype, uint64_t seed, int threads, progress_log *plog) {
    llm_model_params mp = llm_model_default_params();
    mp.n_threads = threads;
    if (plog) {
        mp.progress_fn = on_progress;
        mp.progress_user_data = plog;
    }
    llm_model *m = NULL;
    char err[512];
    llm_status st = llm_model_create_random("tiny", dtype, seed, &mp, &m, err, sizeof err);
    TU_CHECK(st == LLM_OK && m, "tiny %s: %s (%s)", llm_dtype_name(dtype), llm_status_name(st), err);
    return m;
}

static void check_progress(const char *what, const progress_log *p) {
    TU_CHECK(p->calls >= 2 && p->first == 0.0f && p->last == 1.0f && !p->decreased,
             "%s progress: %d calls, first %g, last %g, decreased %d", what, p->calls, p->first, p->last,
             p->decreased);
}

/* The same seed gives the same bytes with 1 or 3 threads; another seed gives other bytes. */
static void determinism(uint64_t seed) {
    llm_model *a = make_tiny(LLM_DTYPE_BF16, seed, 1, NULL), *b = make_tiny(LLM_DTYPE_BF16, seed, 3, NULL),
              *c = make_tiny(LLM_DTYPE_BF16, seed + 1, 2, NULL);
    if (a && b && c) {
        TU_CHECK(a->weight_block_bytes == b->weight_block_bytes &&
                     memcmp(a->weight_block, b->weight_block, a->weight_block_bytes) == 0,
                 "seed %llu: weights differ between 1 and 3 fill threads", (unsigned long long)seed);
        TU_CHECK(memcmp(a->weight_block, c->weight_block, a->weight_block_bytes) != 0,
                 "seeds %llu and +1 agree", (unsigned long long)seed);
        /* norms are 1 + U(-0.1, 0.1), matrices U(-sqrt(3/fan_in), +) */
        const llm_tensor *norm = &a->w.layers[0].attn_norm, *wq = &a->w.layers[0].wq;
        double lo = 9, hi = -9, maxabs = 0, sum2 = 0;
        for (int64_t i = 0; i < norm->cols; i++) {
            uint32_t bits = (uint32_t)((const uint16_t *)norm->data)[i] << 16;
            float v;
            memcpy(&v, &bits, 4);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        TU_CHECK(lo >= 0.89 && hi <= 1.11 && hi - lo > 0.1, "norm weights in [%g, %g]", lo, hi);
        const int64_t n = wq->rows * wq->cols;
        for (int64_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)((const uint16_t *)wq->data)[i] << 16;
            float v;
            memcpy(&v, &bits, 4);
            maxabs = fabs(v) > maxabs ? fabs(v) : maxabs;
            sum2 += (double)v * v;
        }
        const double bound = sqrt(3.0 / (double)wq->cols), var = sum2 / (double)n;
        TU_CHECK(maxabs <= bound * 1.01 && fabs(var - 1.0 / (double)wq->cols) < 0.05 / (double)wq->cols,
                 "q_proj: max |w| %g (bound %g), variance %g (expected %g)", maxabs, bound, var,
                 1.0 / wq->cols);
        TU_CHECK(strcmp(wq->name, "model.layers.0.self_attn.q_proj.weight") == 0, "tensor name '%s'",
                 wq->name);
    }
    llm_model_free(a);
    llm_model_free(b);
    llm_model_free(c);
}

/* A forward pass over random tokens gives finite, non-constant logits of order 1. */
static void forward(llm_dtype dtype, uint64_t seed) {
    progress_log plog = {0};
    llm_model *m = make_tiny(dtype, seed, 2, &plog);
    if (!m) return;
    check_progress("random fill", &plog);
    llm_model_info mi;
    llm_model_get_info(m, &mi);
    /* tiny: V 65536, D 512, 2 layers, 8 heads of 64, 4 KV heads, FFN 1536, tied */
    const uint64_t D = 512, V = 65536, F = 1536, KVD = 256;
    const uint64_t expect = V * D + 2 * (2 * D + D * D + 2 * KVD * D + D * D + 3 * F * D) + D;
    const uint64_t esize = dtype == LLM_DTYPE_F32 ? 4 : 2;
    TU_CHECK(mi.n_params == expect && mi.weight_bytes == expect * esize &&
                 mi.bytes_by_dtype[dtype] == mi.weight_bytes,
             "tiny %s: %llu params, %llu bytes; expected %llu params", llm_dtype_name(dtype),
             (unsigned long long)mi.n_params, (unsigned long long)mi.weight_bytes,
             (unsigned long long)expect);
    TU_CHECK(strcmp(mi.architecture, "LlamaForCausalLM") == 0 && mi.tied_embeddings &&
                 mi.n_tensors == 1 + 2 * 9 + 1,
             "tiny info: %s, tied %d, %llu tensors", mi.architecture, mi.tied_embeddings,
             (unsigned long long)mi.n_tensors);
    TU_CHECK(llm_model_tokenizer(m) == NULL, "a random model has no tokenizer");
    llm_engine_params ep = llm_engine_default_params();
    ep.n_ctx = 64;
    ep.n_seq_max = 2;
    llm_engine *e = NULL;
    TU_CHECK(llm_engine_create(m, &ep, &e) == LLM_OK, "engine: %s", llm_model_last_error(m));
    if (e) {
        tu_rng rng = {seed};
        int32_t toks[24];
        for (int i = 0; i < 24; i++) toks[i] = (int32_t)tu_rng_below(&rng, (uint32_t)mi.n_vocab);
        float *logits = malloc(24 * V * sizeof *logits);
        llm_seq_id seq;
        llm_status st = llm_seq_create(e, &seq);
        if (st == LLM_OK) st = llm_prefill(e, seq, toks, 24, LLM_LOGITS_ALL, logits, 24 * V, NULL);
        TU_CHECK(st == LLM_OK, "prefill: %s", llm_engine_last_error(e));
        if (st == LLM_OK) {
            int finite = 1;
            double lo = 1e30, hi = -1e30;
            for (size_t i = 0; i < 24 * V; i++) {
                finite &= isfinite(logits[i]) != 0;
                lo = logits[i] < lo ? logits[i] : lo;
                hi = logits[i] > hi ? logits[i] : hi;
            }
            TU_CHECK(finite && hi - lo > 0.5 && hi < 100 && lo > -100, "%s logits: finite %d, range [%g, %g]",
                     llm_dtype_name(dtype), finite, lo, hi);
            /* the next token decoded equals the last prefill row's prediction, run again as a decode */
            float *row = malloc(V * sizeof *row);
            llm_seq_id s2;
            st = llm_seq_create(e, &s2);
            if (st == LLM_OK) st = llm_prefill(e, s2, toks, 23, LLM_LOGITS_NONE, NULL, 0, NULL);
            if (st == LLM_OK) st = llm_decode(e, &s2, &toks[23], 1, row, V, NULL);
            TU_CHECK(st == LLM_OK && tu_rel_diff(row, logits + 23 * V, V) <= 1e-5,
                     "decode vs prefill row: %s", llm_engine_last_error(e));
            free(row);
        }
        free(logits);
    }
    llm_engine_free(e);
    llm_model_free(m);
}

/* File loads report progress too (validation, then reading the weights through once). */
static void file_progress(void) {
    char dir[1024];
    tu_fixture("llama_f32", dir, sizeof dir);
    progress_log plog = {0};
    llm_model_params mp = llm_model_default_params();
    mp.progress_fn = on_progress;
    mp.progress_user_data = &plog;
    llm_model *m = NULL;
    char err[512];
    llm_status st = llm_model_load(dir, &mp, &m, err, sizeof err);
    TU_CHECK(st == LLM_OK, "load %s: %s", dir, err);
    check_progress("file load", &plog);
    llm_model_free(m);
    /* a failing load ends without reporting 1 */
    plog = (progress_log){0};
    st = llm_model_load("/nonexistent/dir", &mp, &m, err, sizeof err);
    TU_CHECK(st != LLM_OK && plog.last < 1.0f, "failed load reported %d calls, last %g", plog.calls,
             plog.last);
}

int main(void) {
    const uint64_t seed = tu_fresh_seed("test_bench_random_model");
    memory_limit_first();
    bad_arguments();
    determinism(seed);
    forward(LLM_DTYPE_BF16, seed);
    forward(LLM_DTYPE_F16, seed ^ 1);
    forward(LLM_DTYPE_F32, seed ^ 2);
    file_progress();
    return tu_finish("test_bench_random_model");
}
