/* Prefill/decode equivalence: the logits of one prefill of n tokens equal those of prefill(k)
 * followed by n-k one-token decodes, for n in {1, 2, 15, 16, 17, 31, 32, 33, 100} (around the block
 * size of 16) and several k; and two sequences interleaved in one engine do not disturb each other.
 * Tokens are fresh random ids each run (the seed is printed). Tolerance 1e-5 relative. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "test_util.h"

#define MAX_N 100

/* logits[n][V] of one prefill of all n tokens */
static int prefill_all(llm_engine *e, const int32_t *toks, int n, float *out, size_t V) {
    llm_seq_id s;
    if (llm_seq_create(e, &s) != LLM_OK) return -1;
    llm_status st = llm_prefill(e, s, toks, (size_t)n, LLM_LOGITS_ALL, out, (size_t)n * V, NULL);
    llm_seq_free(e, s);
    return st == LLM_OK ? 0 : -1;
}

/* logits[n][V] from prefill(k) (all rows) then n-k decodes */
static int prefill_then_decode(llm_engine *e, const int32_t *toks, int n, int k, float *out, size_t V) {
    llm_seq_id s;
    if (llm_seq_create(e, &s) != LLM_OK) return -1;
    llm_status st = llm_prefill(e, s, toks, (size_t)k, LLM_LOGITS_ALL, out, (size_t)k * V, NULL);
    for (int i = k; i < n && st == LLM_OK; i++)
        st = llm_decode(e, &s, &toks[i], 1, out + (size_t)i * V, V, NULL);
    TU_CHECK(st != LLM_OK || llm_seq_length(e, s) == n, "sequence length %d after %d tokens",
             llm_seq_length(e, s), n);
    llm_seq_free(e, s);
    return st == LLM_OK ? 0 : -1;
}

static void check_model(const char *fixture, tu_rng *rng) {
    char dir[1024];
    llm_model *model = tu_load_model(tu_fixture(fixture, dir, sizeof dir), 2);
    if (!model) {
        TU_CHECK(0, "cannot load %s", fixture);
        return;
    }
    llm_model_info mi;
    llm_model_get_info(model, &mi);
    const size_t V = (size_t)mi.n_vocab;
    llm_engine_params ep = llm_engine_default_params();
    ep.n_ctx = 128;
    ep.n_seq_max = 4;
    ep.kv_budget_tokens = 4 * 128;
    llm_engine *e = NULL;
    TU_CHECK(llm_engine_create(model, &ep, &e) == LLM_OK, "%s", llm_model_last_error(model));
    if (!e) {
        llm_model_free(model);
        return;
    }
    float *whole = malloc(MAX_N * V * sizeof(float));
    float *split = malloc(MAX_N * V * sizeof(float));
    int32_t toks[MAX_N];
    static const int ns[] = {1, 2, 15, 16, 17, 31, 32, 33, 100};
    double worst = 0;
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
        const int n = ns[ni];
        for (int i = 0; i < n; i++) toks[i] = (int32_t)tu_rng_below(rng, (uint32_t)V);
        TU_CHECK(prefill_all(e, toks, n, whole, V) == 0, "%s: prefill of %d: %s", fixture, n,
                 llm_engine_last_error(e));
        const int ks[] = {1, n / 2, n - 1, n > 16 ? 16 : 1, n > 17 ? 17 : 1};
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            const int k = ks[ki] < 1 ? 1 : ks[ki];
            for (size_t i = 0; i < (size_t)n * V; i++) split[i] = NAN;
            TU_CHECK(prefill_then_decode(e, toks, n, k, split, V) == 0, "%s: n %d k %d: %s", fixture, n, k,
                     llm_engine_last_error(e));
            double d = tu_rel_diff(split, whole, (size_t)n * V);
            if (d > worst) worst = d;
            TU_CHECK(d <= 1e-5, "%s: n %d, k %d: prefill vs prefill+decode differ by %.3g", fixture, n, k, d);
        }
    }
    llm_engine_info info;
    llm_engine_get_info(e, &info);
    TU_CHECK(info.kv_blocks_used == 0 && info.n_seqs == 0,
             "%s: %d blocks / %d sequences left after freeing all", fixture, info.kv_blocks_used,
             info.n_seqs);

    /* Two sequences interleaved: A and B prefilled, then decoded together in one batch, alone, and in the
     * other order; each must match its solo run. */
    const int na = 37, nb = 21, steps = 20;
    int32_t ta[64], tb[64];
    for (int i = 0; i < na + steps; i++) ta[i] = (int32_t)tu_rng_below(rng, (uint32_t)V);
    for (int i = 0; i < nb + steps; i++) tb[i] = (int32_t)tu_rng_below(rng, (uint32_t)V);
    float *solo_a = malloc((size_t)(na + steps) * V * sizeof(float));
    float *solo_b = malloc((size_t)(nb + steps) * V * sizeof(float));
    TU_CHECK(prefill_all(e, ta, na + steps, solo_a, V) == 0, "solo A");
    TU_CHECK(prefill_all(e, tb, nb + steps, solo_b, V) == 0, "solo B");
    llm_seq_id a, b;
    llm_seq_create(e, &a);
    llm_seq_create(e, &b);
    float *row2 = malloc(2 * V * sizeof(float));
    TU_CHECK(llm_prefill(e, a, ta, (size_t)na, LLM_LOGITS_NONE, NULL, 0, NULL) == LLM_OK, "prefill A");
    TU_CHECK(llm_prefill(e, b, tb, (size_t)nb, LLM_LOGITS_LAST, row2, V, NULL) == LLM_OK, "prefill B");
    TU_CHECK(tu_rel_diff(row2, solo_b + (size_t)(nb - 1) * V, V) <= 1e-5, "B's last prefill row");
    for (int s = 0; s < steps; s++) {
        llm_seq_id ids[2];
        int32_t tk[2];
        const int mode = s % 3; /* 0: [A,B]  1: [B,A]  2: A alone then B alone */
        if (mode < 2) {
            ids[0] = mode == 0 ? a : b, ids[1] = mode == 0 ? b : a;
            tk[0] = mode == 0 ? ta[na + s] : tb[nb + s], tk[1] = mode == 0 ? tb[nb + s] : ta[na + s];
            TU_CHECK(llm_decode(e, ids, tk, 2, row2, 2 * V, NULL) == LLM_OK, "decode pair: %s",
                     llm_engine_last_error(e));
        } else {
            TU_CHECK(llm_decode(e, &a, &ta[na + s], 1, row2 + (mode == 2 ? 0 : V), V, NULL) == LLM_OK,
                     "decode A");
            TU_CHECK(llm_decode(e, &b, &tb[nb + s], 1, row2 + V, V, NULL) == LLM_OK, "decode B");
        }
        const float *ra = (mode == 1) ? row2 + V : row2;
        const float *rb = (mode == 1) ? row2 : row2 + V;
        double da = tu_rel_diff(ra, solo_a + (size_t)(na + s) * V, V);
        double db = tu_rel_diff(rb, solo_b + (size_t)(nb + s) * V, V);
        TU_CHECK(da <= 1e-5 && db <= 1e-5, "%s: interleaved step %d (mode %d): A %.3g, B %.3g", fixture, s,
                 mode, da, db);
    }
    llm_seq_free(e, a);
    llm_seq_free(e, b);
    printf("%-20s prefill/decode worst relative difference %.3g; interleaving checked\n", fixture, worst);
    free(row2);
    free(solo_a);
    free(solo_b);
    free(whole);
    free(split);
    llm_engine_free(e);
    llm_model_free(model);
}

int main(void) {
    tu_rng rng = {tu_fresh_seed("test_prefill_decode")};
    check_model("llama_f32", &rng);  /* GQA, untied */
    check_model("qwen2_bf16", &rng); /* MQA, q/k/v biases, bf16, tied */
    check_model("qwen3_f32", &rng);  /* q/k norms, head_dim != hidden/heads */
    return tu_finish("test_prefill_decode");
}
