/* Parity with HF transformers: every fixture's logits at all positions, and its greedy continuation.
 *
 * The references were computed by transformers in float64 on the stored weights
 * (scripts/make_fixtures.py). Tolerance: max |ours - ref| <= 1e-4 * max(1, max |ref|).
 *
 * With --inject-rope-offset the engine's test-only switch rotates queries one position ahead of their
 * keys; the test then passes only if parity FAILS for every fixture (the check can catch a real bug).
 * A uniform shift of all positions would not do: RoPE scores depend only on relative positions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "test_util.h"

static int argmax(const float *row, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (row[i] > row[best]) best = i;
    return best;
}

/* Returns max |ours - ref| / max(1, max|ref|), or -1 on a failure to run. */
static double logits_error(llm_model *model, const tu_reference *ref, int rope_offset, int max_batch) {
    llm_engine_params ep = llm_engine_default_params();
    ep.n_ctx = ref->n_tokens + 8;
    ep.max_batch_tokens = max_batch;
    llm_engine *e = NULL;
    if (llm_engine_create(model, &ep, &e) != LLM_OK) {
        fprintf(stderr, "engine: %s\n", llm_model_last_error(model));
        return -1;
    }
    llm_engine_debug_set_query_rope_offset(e, rope_offset);
    const size_t n = (size_t)ref->n_tokens * (size_t)ref->n_vocab;
    float *logits = malloc(n * sizeof *logits);
    for (size_t i = 0; i < n; i++) logits[i] = NAN; /* poison: every element must be written */
    llm_seq_id seq;
    double err = -1;
    if (llm_seq_create(e, &seq) == LLM_OK &&
        llm_prefill(e, seq, ref->tokens, (size_t)ref->n_tokens, LLM_LOGITS_ALL, logits, n, NULL) == LLM_OK) {
        err = tu_rel_diff(logits, ref->logits, n);
    } else {
        fprintf(stderr, "prefill: %s\n", llm_engine_last_error(e));
    }
    free(logits);
    llm_engine_free(e);
    return err;
}

/* Greedy continuation through prefill + one-token decodes. Returns the number of matching tokens. */
static int greedy_match(llm_model *model, const tu_reference *ref) {
    llm_engine *e = NULL;
    if (llm_engine_create(model, NULL, &e) != LLM_OK) return -1;
    float *row = malloc((size_t)ref->n_vocab * sizeof *row);
    llm_seq_id seq;
    int matched = 0;
    if (llm_seq_create(e, &seq) == LLM_OK &&
        llm_prefill(e, seq, ref->greedy_prompt, (size_t)ref->n_prompt, LLM_LOGITS_LAST, row,
                    (size_t)ref->n_vocab, NULL) == LLM_OK) {
        for (int i = 0; i < ref->n_greedy; i++) {
            int32_t tok = argmax(row, ref->n_vocab);
            if (tok != ref->greedy[i]) {
                fprintf(stderr, "  greedy step %d: ours %d, HF %d\n", i, tok, ref->greedy[i]);
                break;
            }
            matched++;
            if (i + 1 < ref->n_greedy &&
                llm_decode(e, &seq, &tok, 1, row, (size_t)ref->n_vocab, NULL) != LLM_OK)
                break;
        }
    }
    free(row);
    llm_engine_free(e);
    return matched;
}

int main(int argc, char **argv) {
    const int inject = argc > 1 && strcmp(argv[1], "--inject-rope-offset") == 0;
    const char *name = inject ? "test_parity_detects_rope_bug" : "test_parity";
    const char *fixtures[64];
    int n_fix = tu_list_fixtures(fixtures, 64);
    TU_CHECK(n_fix >= 8, "expected at least 8 fixtures in %s, found %d", tu_fixtures_dir(), n_fix);
    for (int f = 0; f < n_fix; f++) {
        char dir[1024];
        tu_fixture(fixtures[f], dir, sizeof dir);
        tu_reference ref;
        if (tu_load_reference(dir, &ref) != 0) {
            TU_CHECK(0, "cannot read the reference of %s", fixtures[f]);
            continue;
        }
        /* odd thread counts and a small batch exercise uneven work splits and chunked prefill */
        const int threads = inject ? 2 : 1 + f % 3;
        llm_model *model = tu_load_model(dir, threads);
        if (!model) {
            TU_CHECK(0, "%s does not load", fixtures[f]);
            tu_free_reference(&ref);
            continue;
        }
        if (inject) {
            double err = logits_error(model, &ref, 1, 256);
            printf("%-20s query RoPE position +1: normalised error %.3g (must exceed 1e-4)\n", fixtures[f],
                   err);
            TU_CHECK(err > 1e-4, "%s: an off-by-one RoPE position went unnoticed (error %.3g)", fixtures[f],
                     err);
        } else {
            double err = logits_error(model, &ref, 0, 256);
            double err_chunked = logits_error(model, &ref, 0, 7);
            int matched = greedy_match(model, &ref);
            printf("%-20s threads %d  max|ours-ref|/max(1,max|ref|) = %.3g (chunked prefill %.3g)  greedy "
                   "%d/%d\n",
                   fixtures[f], threads, err, err_chunked, matched, ref.n_greedy);
            TU_CHECK(err >= 0 && err <= 1e-4, "%s: logits differ from HF: %.3g", fixtures[f], err);
            TU_CHECK(err_chunked >= 0 && err_chunked <= 1e-4, "%s: chunked-prefill logits differ: %.3g",
                     fixtures[f], err_chunked);
            TU_CHECK(matched == ref.n_greedy, "%s: greedy continuation matches HF for %d of %d tokens",
                     fixtures[f], matched, ref.n_greedy);
        }
        llm_model_free(model);
        tu_free_reference(&ref);
    }
    return tu_finish(name);
}
