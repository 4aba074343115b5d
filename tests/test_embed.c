/* llm_embed: pooled, L2-normalised final hidden states.
 *
 * 1. Parity with HF transformers (tests/fixtures/embeddings/<model>.json, written by
 *    scripts/make_embedding_fixtures.py: model.model(ids).last_hidden_state in float64, mean- and
 *    last-pooled, L2-normalised): max |ours - HF| <= 1e-4 per component for every case and both poolings,
 *    with one forward pass per request and with passes of 7 rows. The check can fail: with the test-only
 *    query RoPE offset, or against the other pooling's vector, it does.
 * 2. Properties on fresh random tokens: unit norm; identical inputs give identical vectors; chunked
 *    (max_batch_tokens 7) equals unchunked bit for bit; the engine keeps its sequences, used blocks and
 *    a live sequence's next logits; the temporary sequence's full blocks stay cached, and LLM_POOL_LAST
 *    reuses them.
 * 3. Errors: each refusal with its status, out_len = n_embd, and the engine unchanged. */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "engine/engine_internal.h"
#include "test_util.h"

#define MAX_CASES  8
#define MAX_TOKENS 256
#define MAX_EMBD   256

typedef struct hf_case {
    int32_t tokens[MAX_TOKENS];
    int n_tokens;
    double vec[2][MAX_EMBD]; /* [LLM_POOL_MEAN / LLM_POOL_LAST][n_embd] */
} hf_case;

typedef struct hf_embeddings {
    char model[64];
    int n_embd;
    int n_cases;
    hf_case cases[MAX_CASES];
    char versions[160];
} hf_embeddings;

static int read_vec(const llm_json *arr, double *out, int n) {
    if (!llm_json_is_array(arr) || (int)llm_json_count(arr) != n) return -1;
    for (int i = 0; i < n; i++) {
        out[i] = llm_json_number(llm_json_value_at(arr, (size_t)i));
        if (!isfinite(out[i])) return -1;
    }
    return 0;
}

/* 0 on success. */
static int load_hf(const char *path, hf_embeddings *h) {
    memset(h, 0, sizeof *h);
    size_t len = 0;
    char *text = tu_read_file(path, &len);
    if (!text) return -1;
    llm_json_doc *doc = NULL;
    char err[256];
    int rc = -1;
    if (llm_json_parse(text, len, &doc, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", path, err);
        goto out;
    }
    const llm_json *root = llm_json_root(doc);
    int64_t v;
    const char *s = llm_json_string(llm_json_get(root, "model"), NULL);
    if (!s || llm_json_int64(llm_json_get(root, "n_embd"), &v) != 0 || v < 1 || v > MAX_EMBD) goto out;
    snprintf(h->model, sizeof h->model, "%s", s);
    h->n_embd = (int)v;
    const llm_json *ver = llm_json_get(root, "versions");
    const char *tv = llm_json_string(llm_json_get(ver, "torch"), NULL);
    const char *fv = llm_json_string(llm_json_get(ver, "transformers"), NULL);
    snprintf(h->versions, sizeof h->versions, "torch %s, transformers %s", tv ? tv : "?", fv ? fv : "?");
    const llm_json *cases = llm_json_get(root, "cases");
    if (!llm_json_is_array(cases) || llm_json_count(cases) == 0 || llm_json_count(cases) > MAX_CASES)
        goto out;
    h->n_cases = (int)llm_json_count(cases);
    for (int c = 0; c < h->n_cases; c++) {
        const llm_json *cj = llm_json_value_at(cases, (size_t)c);
        const llm_json *toks = llm_json_get(cj, "tokens");
        hf_case *hc = &h->cases[c];
        if (!llm_json_is_array(toks) || llm_json_count(toks) == 0 || llm_json_count(toks) > MAX_TOKENS)
            goto out;
        hc->n_tokens = (int)llm_json_count(toks);
        for (int i = 0; i < hc->n_tokens; i++) {
            if (llm_json_int64(llm_json_value_at(toks, (size_t)i), &v) != 0) goto out;
            hc->tokens[i] = (int32_t)v;
        }
        if (read_vec(llm_json_get(cj, "mean"), hc->vec[LLM_POOL_MEAN], h->n_embd) != 0 ||
            read_vec(llm_json_get(cj, "last"), hc->vec[LLM_POOL_LAST], h->n_embd) != 0)
            goto out;
    }
    rc = 0;
out:
    llm_json_doc_free(doc);
    free(text);
    return rc;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static double max_abs_diff(const float *a, const double *ref, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - ref[i]);
        if (!(d <= m)) m = d; /* NaN wins */
    }
    return m;
}

static double norm_of(const float *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)v[i] * v[i];
    return sqrt(s);
}

static llm_engine *make_engine(llm_model *m, int32_t max_batch, int32_t n_seq_max, int64_t kv_tokens) {
    llm_engine_params ep = llm_engine_default_params();
    ep.max_batch_tokens = max_batch;
    if (n_seq_max) ep.n_seq_max = n_seq_max;
    ep.kv_budget_tokens = kv_tokens;
    llm_engine *e = NULL;
    if (llm_engine_create(m, &ep, &e) != LLM_OK) fprintf(stderr, "engine: %s\n", llm_model_last_error(m));
    return e;
}

/* Max |ours - HF| over every case and both poolings on one engine; -1 on a failed call. */
static double hf_error(llm_engine *e, const hf_embeddings *h, double *worst_norm_err) {
    double worst = 0;
    float out[MAX_EMBD];
    for (int c = 0; c < h->n_cases; c++)
        for (int p = 0; p < 2; p++) {
            for (int i = 0; i < MAX_EMBD; i++) out[i] = NAN; /* poison: every element must be written */
            size_t len = 0;
            llm_status st = llm_embed(e, h->cases[c].tokens, (size_t)h->cases[c].n_tokens, (llm_pooling)p,
                                      out, MAX_EMBD, &len);
            if (st != LLM_OK || len != (size_t)h->n_embd) {
                fprintf(stderr, "  %s case %d pooling %d: %s (%s), len %zu\n", h->model, c, p,
                        llm_status_name(st), llm_engine_last_error(e), len);
                return -1;
            }
            const double d = max_abs_diff(out, h->cases[c].vec[p], h->n_embd);
            if (!(d <= worst)) worst = d;
            const double ne = fabs(norm_of(out, h->n_embd) - 1.0);
            if (worst_norm_err && ne > *worst_norm_err) *worst_norm_err = ne;
        }
    return worst;
}

static void test_hf_parity(void) {
    char dir[1024];
    tu_fixture("embeddings", dir, sizeof dir);
    DIR *d = opendir(dir);
    if (!d) {
        printf("SKIP HF parity: %s is missing (generate it with scripts/make_embedding_fixtures.py)\n", dir);
        return;
    }
    const char *names[64];
    char storage[64][128];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < 64) {
        const size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json") != 0 || l - 5 >= sizeof storage[n]) continue;
        memcpy(storage[n], de->d_name, l - 5);
        storage[n][l - 5] = 0;
        names[n] = storage[n];
        n++;
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_name);
    const char *required[] = {"llama_f32", "qwen2_f32", "qwen3_bf16"};
    for (size_t r = 0; r < sizeof required / sizeof *required; r++) {
        int found = 0;
        for (int i = 0; i < n; i++) found |= strcmp(names[i], required[r]) == 0;
        TU_CHECK(found, "%s/%s.json is missing", dir, required[r]);
    }
    double overall = 0;
    for (int i = 0; i < n; i++) {
        char path[1200], mdir[1024];
        snprintf(path, sizeof path, "%s/%s.json", dir, names[i]);
        static hf_embeddings h;
        if (load_hf(path, &h) != 0) {
            TU_CHECK(0, "cannot read %s", path);
            continue;
        }
        TU_CHECK(strcmp(h.model, names[i]) == 0, "%s names model %s", path, h.model);
        tu_fixture(names[i], mdir, sizeof mdir);
        llm_model *m = tu_load_model(mdir, 1 + i % 3);
        if (!m) {
            TU_CHECK(0, "%s does not load", mdir);
            continue;
        }
        llm_model_info mi;
        llm_model_get_info(m, &mi);
        TU_CHECK(mi.n_embd == h.n_embd, "%s: n_embd %d, fixture %d", names[i], mi.n_embd, h.n_embd);
        llm_engine *e1 = make_engine(m, 256, 0, 0), *e7 = make_engine(m, 7, 0, 0);
        TU_CHECK(e1 && e7, "%s: engines", names[i]);
        if (e1 && e7 && mi.n_embd == h.n_embd) {
            double norm_err = 0;
            const double err1 = hf_error(e1, &h, &norm_err), err7 = hf_error(e7, &h, &norm_err);
            /* the same check must reject a query/key position off by one ... */
            llm_engine_debug_set_query_rope_offset(e7, 1);
            const double err_rope = hf_error(e7, &h, NULL);
            /* ... and the other pooling's vectors */
            double err_swap = INFINITY;
            {
                float out[MAX_EMBD];
                const hf_case *hc = &h.cases[h.n_cases - 1];
                if (llm_embed(e1, hc->tokens, (size_t)hc->n_tokens, LLM_POOL_MEAN, out, MAX_EMBD, NULL) ==
                    LLM_OK)
                    err_swap = max_abs_diff(out, hc->vec[LLM_POOL_LAST], h.n_embd);
            }
            printf("%-18s %d cases (%d..%d tokens) max|ours-HF| %.3g, passes of 7 rows %.3g, |norm-1| %.2g; "
                   "RoPE +1: %.3g, mean vs HF last: %.3g  [%s]\n",
                   names[i], h.n_cases, h.cases[0].n_tokens, h.cases[h.n_cases - 1].n_tokens, err1, err7,
                   norm_err, err_rope, err_swap, h.versions);
            TU_CHECK(err1 >= 0 && err1 <= 1e-4, "%s: embeddings differ from HF by %.3g", names[i], err1);
            TU_CHECK(err7 >= 0 && err7 <= 1e-4, "%s: chunked embeddings differ from HF by %.3g", names[i],
                     err7);
            TU_CHECK(norm_err <= 1e-6, "%s: embeddings are not unit vectors (|norm-1| %.3g)", names[i],
                     norm_err);
            TU_CHECK(err_rope > 1e-3, "%s: a RoPE off-by-one went unnoticed (%.3g)", names[i], err_rope);
            TU_CHECK(err_swap > 1e-2, "%s: mean and last pooling are indistinguishable (%.3g)", names[i],
                     err_swap);
            if (err1 > overall) overall = err1;
            if (err7 > overall) overall = err7;
        }
        llm_engine_free(e1);
        llm_engine_free(e7);
        llm_model_free(m);
    }
    printf("HF parity: %d models, max|ours-HF| %.3g\n", n, overall);
}

static void same_state(llm_engine *e, const llm_engine_info *before, const char *what) {
    llm_engine_info now;
    llm_engine_get_info(e, &now);
    TU_CHECK(now.n_seqs == before->n_seqs, "%s: %d live sequences, %d before", what, now.n_seqs,
             before->n_seqs);
    TU_CHECK(now.kv_blocks_used == before->kv_blocks_used, "%s: %d used blocks, %d before", what,
             now.kv_blocks_used, before->kv_blocks_used);
    char msg[256];
    TU_CHECK(llm_engine_debug_check(e, msg, sizeof msg) == 0, "%s: engine inconsistent: %s", what, msg);
}

static void random_tokens(tu_rng *rng, int32_t *t, int n, int32_t V) {
    for (int i = 0; i < n; i++) t[i] = (int32_t)tu_rng_below(rng, (uint32_t)V);
}

static void test_properties(llm_model *m, tu_rng *rng) {
    llm_model_info mi;
    llm_model_get_info(m, &mi);
    const int D = mi.n_embd;
    const int32_t V = mi.n_vocab;
    llm_engine *e = make_engine(m, 256, 0, 0), *ec = make_engine(m, 7, 0, 0);
    TU_CHECK(e && ec && D <= MAX_EMBD, "engines");
    if (!e || !ec || D > MAX_EMBD) goto out;
    llm_engine_info info;
    llm_engine_get_info(e, &info);
    TU_CHECK(info.max_batch_tokens == 256 && info.n_ctx >= 200, "engine: batch %d, n_ctx %d",
             info.max_batch_tokens, info.n_ctx);

    int32_t toks[MAX_TOKENS];
    float a[MAX_EMBD], b[MAX_EMBD], c[MAX_EMBD];
    const int lengths[] = {1, 2, 15, 16, 17, 100, 200};
    for (size_t li = 0; li < sizeof lengths / sizeof *lengths; li++) {
        const int n = lengths[li];
        random_tokens(rng, toks, n, V);
        for (int p = 0; p < 2; p++) {
            llm_engine_get_info(e, &info);
            const uint64_t passes_before = llm_engine_debug_forward_passes(ec);
            llm_status s1 = llm_embed(e, toks, (size_t)n, (llm_pooling)p, a, MAX_EMBD, NULL);
            llm_status s2 = llm_embed(e, toks, (size_t)n, (llm_pooling)p, b, MAX_EMBD, NULL);
            llm_status s3 = llm_embed(ec, toks, (size_t)n, (llm_pooling)p, c, MAX_EMBD, NULL);
            const uint64_t passes = llm_engine_debug_forward_passes(ec) - passes_before;
            TU_CHECK(s1 == LLM_OK && s2 == LLM_OK && s3 == LLM_OK, "n %d pooling %d: %s / %s / %s (%s)", n, p,
                     llm_status_name(s1), llm_status_name(s2), llm_status_name(s3), llm_engine_last_error(e));
            if (s1 != LLM_OK || s2 != LLM_OK || s3 != LLM_OK) continue;
            TU_CHECK(fabs(norm_of(a, D) - 1.0) <= 1e-6, "n %d pooling %d: norm %.9f", n, p, norm_of(a, D));
            TU_CHECK(memcmp(a, b, (size_t)D * sizeof *a) == 0, "n %d pooling %d: a repeated call differs", n,
                     p);
            TU_CHECK(memcmp(a, c, (size_t)D * sizeof *a) == 0,
                     "n %d pooling %d: passes of 7 rows differ from one pass", n, p);
            /* MEAN computes every row, in ceil(n/7) passes; LAST may reuse cached blocks */
            if (p == LLM_POOL_MEAN)
                TU_CHECK(passes == (uint64_t)(n + 6) / 7, "n %d: %llu forward passes, %d expected", n,
                         (unsigned long long)passes, (n + 6) / 7);
            same_state(e, &info, "after embedding");
            if (n == 1) {
                /* one token: LAST and MEAN are the same row */
                float l[MAX_EMBD];
                TU_CHECK(llm_embed(e, toks, 1, p == 0 ? LLM_POOL_LAST : LLM_POOL_MEAN, l, MAX_EMBD, NULL) ==
                                 LLM_OK &&
                             memcmp(l, a, (size_t)D * sizeof *a) == 0,
                         "one token: mean and last pooling differ");
            }
        }
    }

    /* n_tokens == n_ctx is allowed */
    llm_engine_get_info(e, &info);
    {
        int32_t *full = malloc((size_t)info.n_ctx * sizeof *full);
        random_tokens(rng, full, info.n_ctx, V);
        TU_CHECK(llm_embed(e, full, (size_t)info.n_ctx, LLM_POOL_MEAN, a, MAX_EMBD, NULL) == LLM_OK,
                 "n_ctx tokens: %s", llm_engine_last_error(e));
        free(full);
    }

    /* Prefix cache: on a fresh engine, the temporary sequence leaves its full blocks cached, nothing
     * used; a LAST embedding of the same tokens then reuses them (and gives the same vector). */
    llm_engine *f = make_engine(m, 256, 0, 0);
    if (f) {
        random_tokens(rng, toks, 40, V);
        TU_CHECK(llm_embed(f, toks, 40, LLM_POOL_LAST, a, MAX_EMBD, NULL) == LLM_OK, "prefix: first");
        llm_engine_info fi;
        llm_engine_get_info(f, &fi);
        TU_CHECK(fi.kv_blocks_used == 0 && fi.kv_blocks_cached == 40 / fi.kv_block_size && fi.n_seqs == 0,
                 "after one embedding: used %d, cached %d (expected 0, %d), live %d", fi.kv_blocks_used,
                 fi.kv_blocks_cached, 40 / fi.kv_block_size, fi.n_seqs);
        TU_CHECK(llm_embed(f, toks, 40, LLM_POOL_LAST, b, MAX_EMBD, NULL) == LLM_OK, "prefix: second");
        llm_engine_info fi2;
        llm_engine_get_info(f, &fi2);
        TU_CHECK(fi2.prefix_hit_tokens - fi.prefix_hit_tokens ==
                     (uint64_t)(40 / fi.kv_block_size) * fi.kv_block_size,
                 "LAST pooling reused %llu tokens of the cached prefix",
                 (unsigned long long)(fi2.prefix_hit_tokens - fi.prefix_hit_tokens));
        TU_CHECK(memcmp(a, b, (size_t)D * sizeof *a) == 0, "a vector from cached blocks differs");
        llm_engine_free(f);
    }

    /* A live sequence is untouched: its next logits equal those of an engine that never embedded. */
    {
        int32_t prompt[30], emb[90], next = 0;
        random_tokens(rng, prompt, 30, V);
        random_tokens(rng, emb, 90, V);
        next = (int32_t)tu_rng_below(rng, (uint32_t)V);
        float *la = malloc((size_t)V * sizeof *la), *lb = malloc((size_t)V * sizeof *lb);
        llm_engine *x = make_engine(m, 16, 0, 0), *y = make_engine(m, 16, 0, 0);
        llm_seq_id sx = 0, sy = 0;
        int ok = x && y && la && lb && llm_seq_create(x, &sx) == LLM_OK && llm_seq_create(y, &sy) == LLM_OK &&
                 llm_prefill(x, sx, prompt, 30, LLM_LOGITS_NONE, NULL, 0, NULL) == LLM_OK &&
                 llm_prefill(y, sy, prompt, 30, LLM_LOGITS_NONE, NULL, 0, NULL) == LLM_OK;
        TU_CHECK(ok, "live-sequence setup");
        if (ok) {
            llm_engine_info xi;
            llm_engine_get_info(x, &xi);
            TU_CHECK(llm_embed(x, emb, 90, LLM_POOL_MEAN, a, MAX_EMBD, NULL) == LLM_OK,
                     "embed beside a sequence");
            TU_CHECK(llm_embed(x, prompt, 30, LLM_POOL_LAST, a, MAX_EMBD, NULL) == LLM_OK,
                     "embed the live sequence's own prefix");
            same_state(x, &xi, "beside a live sequence");
            TU_CHECK(llm_seq_length(x, sx) == 30 && memcmp(llm_seq_tokens(x, sx), prompt, sizeof prompt) == 0,
                     "the live sequence changed");
            TU_CHECK(llm_decode(x, &sx, &next, 1, la, (size_t)V, NULL) == LLM_OK &&
                         llm_decode(y, &sy, &next, 1, lb, (size_t)V, NULL) == LLM_OK &&
                         memcmp(la, lb, (size_t)V * sizeof *la) == 0,
                     "a live sequence's logits changed after embeddings");
        }
        llm_engine_free(x);
        llm_engine_free(y);
        free(la);
        free(lb);
    }
out:
    llm_engine_free(e);
    llm_engine_free(ec);
}

#define EXPECT_ERR(eng, call, status, fragment)                                                              \
    do {                                                                                                     \
        llm_engine_info before_;                                                                             \
        llm_engine_get_info(eng, &before_);                                                                  \
        llm_status st_ = (call);                                                                             \
        TU_CHECK(st_ == (status), "%s: got %s, expected %s (%s)", #call, llm_status_name(st_),               \
                 llm_status_name(status), llm_engine_last_error(eng));                                       \
        TU_CHECK(strstr(llm_engine_last_error(eng), fragment) != NULL, "%s: message \"%s\" lacks \"%s\"",    \
                 #call, llm_engine_last_error(eng), fragment);                                               \
        same_state(eng, &before_, #call);                                                                    \
    } while (0)

static void test_errors(llm_model *m, tu_rng *rng) {
    llm_model_info mi;
    llm_model_get_info(m, &mi);
    const int D = mi.n_embd;
    const int32_t V = mi.n_vocab;
    int32_t toks[MAX_TOKENS + 1];
    random_tokens(rng, toks, MAX_TOKENS + 1, V);
    float out[MAX_EMBD];
    size_t len = 0;

    llm_engine *e = make_engine(m, 32, 3, 0);
    if (!e) {
        TU_CHECK(0, "engine");
        return;
    }
    llm_engine_info info;
    llm_engine_get_info(e, &info);
    llm_seq_id live = 0;
    TU_CHECK(llm_seq_create(e, &live) == LLM_OK &&
                 llm_prefill(e, live, toks, 20, LLM_LOGITS_NONE, NULL, 0, NULL) == LLM_OK,
             "live sequence");

    EXPECT_ERR(e, llm_embed(e, toks, 0, LLM_POOL_MEAN, out, MAX_EMBD, &len), LLM_ERR_INVALID_ARGUMENT,
               "at least one token");
    TU_CHECK(len == (size_t)D, "out_len %zu on n_tokens 0", len);
    EXPECT_ERR(e, llm_embed(e, NULL, 3, LLM_POOL_MEAN, out, MAX_EMBD, NULL), LLM_ERR_INVALID_ARGUMENT,
               "at least one token");
    EXPECT_ERR(e, llm_embed(e, toks, 3, (llm_pooling)7, out, MAX_EMBD, NULL), LLM_ERR_INVALID_ARGUMENT,
               "pooling 7");
    int32_t bad[5];
    memcpy(bad, toks, sizeof bad);
    bad[3] = V;
    EXPECT_ERR(e, llm_embed(e, bad, 5, LLM_POOL_MEAN, out, MAX_EMBD, NULL), LLM_ERR_INVALID_ARGUMENT,
               "index 3");
    bad[3] = -1;
    EXPECT_ERR(e, llm_embed(e, bad, 5, LLM_POOL_LAST, out, MAX_EMBD, NULL), LLM_ERR_INVALID_ARGUMENT,
               "outside the vocabulary");
    len = 0;
    EXPECT_ERR(e, llm_embed(e, toks, 5, LLM_POOL_MEAN, out, (size_t)D - 1, &len), LLM_ERR_BUFFER_TOO_SMALL,
               "needed");
    TU_CHECK(len == (size_t)D, "BUFFER_TOO_SMALL reports %zu, n_embd is %d", len, D);
    len = 0;
    EXPECT_ERR(e, llm_embed(e, toks, 5, LLM_POOL_LAST, NULL, 0, &len), LLM_ERR_BUFFER_TOO_SMALL, "needed");
    TU_CHECK(len == (size_t)D, "BUFFER_TOO_SMALL (NULL out) reports %zu", len);
    EXPECT_ERR(e, llm_embed(e, toks, (size_t)info.n_ctx + 1, LLM_POOL_MEAN, out, MAX_EMBD, NULL),
               LLM_ERR_CONTEXT_FULL, "exceed the context");
    EXPECT_ERR(e, llm_embed(e, toks, SIZE_MAX, LLM_POOL_MEAN, out, MAX_EMBD, NULL), LLM_ERR_CONTEXT_FULL,
               "exceed the context");
    TU_CHECK(llm_embed(NULL, toks, 5, LLM_POOL_MEAN, out, MAX_EMBD, NULL) == LLM_ERR_INVALID_ARGUMENT,
             "NULL engine");

    /* KV: the live sequence holds 2 of the blocks; n_ctx tokens need every block */
    TU_CHECK(info.kv_blocks_total * info.kv_block_size == info.n_ctx, "default budget = n_ctx");
    EXPECT_ERR(e, llm_embed(e, toks, (size_t)info.n_ctx, LLM_POOL_MEAN, out, MAX_EMBD, NULL), LLM_ERR_KV_FULL,
               "free or cached");
    TU_CHECK(llm_embed(e, toks, (size_t)info.n_ctx - 2 * (size_t)info.kv_block_size, LLM_POOL_MEAN, out,
                       MAX_EMBD, NULL) == LLM_OK,
             "what the free blocks hold fits: %s", llm_engine_last_error(e));

    /* sequence slots: 3, one live; fill the other two */
    llm_seq_id s2 = 0, s3 = 0;
    TU_CHECK(llm_seq_create(e, &s2) == LLM_OK && llm_seq_create(e, &s3) == LLM_OK, "slots");
    EXPECT_ERR(e, llm_embed(e, toks, 5, LLM_POOL_MEAN, out, MAX_EMBD, NULL), LLM_ERR_TOO_MANY_SEQUENCES,
               "sequence slots");
    llm_seq_free(e, s3);
    TU_CHECK(llm_embed(e, toks, 5, LLM_POOL_MEAN, out, MAX_EMBD, NULL) == LLM_OK, "a slot is free again: %s",
             llm_engine_last_error(e));
    llm_engine_free(e);

    /* a KV budget smaller than the context */
    llm_engine *small = make_engine(m, 32, 0, 48);
    if (small) {
        EXPECT_ERR(small, llm_embed(small, toks, 49, LLM_POOL_LAST, out, MAX_EMBD, NULL), LLM_ERR_KV_FULL,
                   "4 blocks");
        TU_CHECK(llm_embed(small, toks, 48, LLM_POOL_LAST, out, MAX_EMBD, NULL) == LLM_OK,
                 "48 tokens fit: %s", llm_engine_last_error(small));
        llm_engine_free(small);
    }
}

int main(void) {
    test_hf_parity();
    tu_rng rng = {tu_fresh_seed("test_embed") | 1};
    const char *models[] = {"llama_f32", "qwen3_bf16"};
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        char dir[1024];
        llm_model *m = tu_load_model(tu_fixture(models[i], dir, sizeof dir), 2);
        TU_CHECK(m != NULL, "%s does not load", models[i]);
        if (!m) continue;
        test_properties(m, &rng);
        test_errors(m, &rng);
        llm_model_free(m);
    }
    return tu_finish("test_embed");
}
