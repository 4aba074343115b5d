/* The engine API's contract: two models and engines in one process, error paths that name what went
 * wrong and leave state untouched, block accounting, free(NULL) no-ops. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "test_util.h"

/* Two models (different families and dtypes) with their engines, used alternately, chunk by chunk;
 * each must still match its HF reference. */
static void two_models(void) {
    const char *names[2] = {"llama_f32", "qwen3_bf16"};
    llm_model *m[2] = {0};
    llm_engine *e[2] = {0};
    tu_reference ref[2];
    llm_seq_id s[2];
    float *out[2];
    for (int i = 0; i < 2; i++) {
        char dir[1024];
        tu_fixture(names[i], dir, sizeof dir);
        TU_CHECK(tu_load_reference(dir, &ref[i]) == 0, "reference of %s", names[i]);
        m[i] = tu_load_model(dir, 2);
        TU_CHECK(m[i] != NULL, "load %s", names[i]);
        if (!m[i]) return;
        TU_CHECK(llm_engine_create(m[i], NULL, &e[i]) == LLM_OK, "engine %s", names[i]);
        TU_CHECK(llm_seq_create(e[i], &s[i]) == LLM_OK, "seq");
        out[i] = malloc((size_t)ref[i].n_tokens * ref[i].n_vocab * sizeof(float));
    }
    /* feed both in chunks of 5 tokens, alternating models */
    for (int pos = 0; pos < 48; pos += 5) {
        for (int i = 0; i < 2; i++) {
            int n = ref[i].n_tokens - pos < 5 ? ref[i].n_tokens - pos : 5;
            if (n <= 0) continue;
            size_t V = (size_t)ref[i].n_vocab;
            TU_CHECK(llm_prefill(e[i], s[i], ref[i].tokens + pos, (size_t)n, LLM_LOGITS_ALL, out[i] + pos * V,
                                 (size_t)n * V, NULL) == LLM_OK,
                     "%s", llm_engine_last_error(e[i]));
        }
    }
    for (int i = 0; i < 2; i++) {
        double d = tu_rel_diff(out[i], ref[i].logits, (size_t)ref[i].n_tokens * ref[i].n_vocab);
        TU_CHECK(d <= 1e-4, "%s alongside another model: error %.3g", names[i], d);
        free(out[i]);
        tu_free_reference(&ref[i]);
        llm_engine_free(e[i]);
        llm_model_free(m[i]);
    }
}

static void error_paths(void) {
    char dir[1024];
    llm_model *model = tu_load_model(tu_fixture("qwen2_f32", dir, sizeof dir), 1);
    TU_CHECK(model != NULL, "load");
    if (!model) return;
    llm_model_info mi;
    llm_model_get_info(model, &mi);
    const size_t V = (size_t)mi.n_vocab;
    TU_CHECK(mi.n_head == 4 && mi.n_head_kv == 2 && mi.has_qkv_bias && !mi.has_o_bias, "qwen2 info");
    TU_CHECK(strcmp(mi.family, "qwen2") == 0 && strcmp(mi.architecture, "Qwen2ForCausalLM") == 0, "names");

    /* bad engine parameters */
    llm_engine *e = NULL;
    llm_engine_params ep = llm_engine_default_params();
    ep.n_ctx = mi.n_ctx_train + 1;
    TU_CHECK(llm_engine_create(model, &ep, &e) == LLM_ERR_INVALID_ARGUMENT && e == NULL, "n_ctx too large");
    TU_CHECK(strstr(llm_model_last_error(model), "n_ctx") != NULL, "message names n_ctx: %s",
             llm_model_last_error(model));
    ep = llm_engine_default_params();
    ep.kv_block_size = 0;
    TU_CHECK(llm_engine_create(model, &ep, &e) == LLM_ERR_INVALID_ARGUMENT, "block size 0");
    /* the KV cache type: BF16 is for CUDA, other types do not exist; the default on the CPU is F32 */
    ep = llm_engine_default_params();
    ep.kv_dtype = LLM_DTYPE_BF16;
    TU_CHECK(llm_engine_create(model, &ep, &e) == LLM_ERR_UNSUPPORTED && e == NULL, "bf16 KV on the CPU");
    TU_CHECK(strstr(llm_model_last_error(model), "kv_dtype BF16") != NULL, "message: %s", llm_model_last_error(model));
    ep.kv_dtype = LLM_DTYPE_F16;
    TU_CHECK(llm_engine_create(model, &ep, &e) == LLM_ERR_INVALID_ARGUMENT && e == NULL, "f16 KV");
    ep = llm_engine_default_params();
    llm_engine_info ei;
    TU_CHECK(llm_engine_estimate(model, &ep, &ei) == LLM_OK && ei.kv_dtype == LLM_DTYPE_F32 &&
                 ei.kv_bytes % (2u * 4u * (uint64_t)mi.n_layer) == 0,
             "default KV on the CPU is F32 (%d)", (int)ei.kv_dtype);

    /* small engine: 40-token context, budget of 3 blocks of 16 */
    ep = llm_engine_default_params();
    ep.n_ctx = 40;
    ep.n_seq_max = 2;
    ep.kv_budget_tokens = 48;
    TU_CHECK(llm_engine_create(model, &ep, &e) == LLM_OK, "%s", llm_model_last_error(model));
    if (!e) {
        llm_model_free(model);
        return;
    }
    llm_engine_info info;
    llm_engine_get_info(e, &info);
    TU_CHECK(info.kv_blocks_total == 3 && info.kv_blocks_used == 0, "3 blocks, got %d", info.kv_blocks_total);

    float *logits = malloc(40 * V * sizeof(float));
    int32_t toks[40];
    tu_rng rng = {tu_fresh_seed("test_engine")};
    for (int i = 0; i < 40; i++) toks[i] = (int32_t)tu_rng_below(&rng, (uint32_t)V);

    llm_seq_id a, b, c;
    TU_CHECK(llm_seq_create(e, &a) == LLM_OK && llm_seq_create(e, &b) == LLM_OK, "two sequences");
    TU_CHECK(llm_seq_create(e, &c) == LLM_ERR_TOO_MANY_SEQUENCES, "third sequence refused");
    TU_CHECK(llm_prefill(e, 12345, toks, 3, LLM_LOGITS_NONE, NULL, 0, NULL) == LLM_ERR_INVALID_SEQUENCE,
             "bad id");

    /* token out of range: refused, nothing changes */
    int32_t bad[3] = {1, (int32_t)V, 2};
    TU_CHECK(llm_prefill(e, a, bad, 3, LLM_LOGITS_NONE, NULL, 0, NULL) == LLM_ERR_INVALID_ARGUMENT,
             "token >= vocab");
    TU_CHECK(strstr(llm_engine_last_error(e), "index 1") != NULL, "names the index: %s",
             llm_engine_last_error(e));
    TU_CHECK(llm_seq_length(e, a) == 0 && llm_engine_debug_seq_blocks(e, a) == 0,
             "unchanged after bad token");

    /* buffer too small reports the size needed */
    size_t need = 0;
    TU_CHECK(llm_prefill(e, a, toks, 5, LLM_LOGITS_ALL, logits, 5 * V - 1, &need) == LLM_ERR_BUFFER_TOO_SMALL,
             "small buffer");
    TU_CHECK(need == 5 * V, "needed %zu, reported %zu", 5 * V, need);
    TU_CHECK(llm_seq_length(e, a) == 0, "unchanged after small buffer");

    /* context full: 35 + 6 > 40 */
    TU_CHECK(llm_prefill(e, a, toks, 35, LLM_LOGITS_LAST, logits, V, NULL) == LLM_OK, "%s",
             llm_engine_last_error(e));
    TU_CHECK(llm_engine_debug_seq_blocks(e, a) == 3, "35 tokens take 3 blocks");
    TU_CHECK(llm_prefill(e, a, toks, 6, LLM_LOGITS_NONE, NULL, 0, NULL) == LLM_ERR_CONTEXT_FULL,
             "context full");
    TU_CHECK(strstr(llm_engine_last_error(e), "40") != NULL, "names the context: %s",
             llm_engine_last_error(e));
    TU_CHECK(llm_seq_length(e, a) == 35, "unchanged after context full");

    /* KV full: all 3 blocks belong to a */
    TU_CHECK(llm_prefill(e, b, toks, 2, LLM_LOGITS_NONE, NULL, 0, NULL) == LLM_ERR_KV_FULL, "kv full");
    TU_CHECK(llm_seq_length(e, b) == 0 && llm_engine_debug_seq_blocks(e, b) == 0,
             "b unchanged after kv full");
    llm_engine_get_info(e, &info);
    TU_CHECK(info.kv_blocks_used == 3, "3 used, got %d", info.kv_blocks_used);

    /* decode: duplicates refused, a full pool refuses atomically */
    llm_seq_id dup[2] = {a, a};
    int32_t tk[2] = {1, 2};
    TU_CHECK(llm_decode(e, dup, tk, 2, logits, 2 * V, NULL) == LLM_ERR_INVALID_ARGUMENT,
             "duplicate in batch");
    TU_CHECK(llm_seq_length(e, a) == 35, "a unchanged after duplicate batch");
    llm_seq_id ab[2] = {a, b};
    TU_CHECK(llm_decode(e, ab, tk, 2, logits, 2 * V, NULL) == LLM_ERR_KV_FULL, "b needs a block");
    TU_CHECK(llm_seq_length(e, a) == 35 && llm_seq_length(e, b) == 0, "batch is atomic");

    /* freeing returns the blocks; a stale id stays dead even when the slot is reused */
    llm_seq_free(e, a);
    llm_seq_free(e, a); /* second free of the same id: ignored */
    llm_engine_get_info(e, &info);
    TU_CHECK(info.kv_blocks_used == 0 && info.n_seqs == 1, "blocks back: %d used, %d seqs",
             info.kv_blocks_used, info.n_seqs);
    llm_seq_id a2;
    TU_CHECK(llm_seq_create(e, &a2) == LLM_OK && a2 != a, "fresh id");
    TU_CHECK(llm_seq_length(e, a) == -1, "stale id is unknown");
    TU_CHECK(llm_decode(e, &a, tk, 1, logits, V, NULL) == LLM_ERR_INVALID_SEQUENCE, "stale id refused");

    /* NULL handles */
    llm_engine_free(NULL);
    llm_model_free(NULL);
    llm_seq_free(NULL, 1);
    TU_CHECK(strcmp(llm_strerror(LLM_ERR_KV_FULL), "KV cache budget exhausted") == 0, "strerror");
    TU_CHECK(strcmp(llm_status_name(LLM_ERR_BAD_JSON), "LLM_ERR_BAD_JSON") == 0, "status name");
    TU_CHECK(strcmp(llm_strerror((llm_status)999), "unknown status") == 0, "unknown status");

    free(logits);
    llm_engine_free(e);

    /* memory limit at engine creation: weights fit, a huge KV budget does not */
    llm_model_params mp = llm_model_default_params();
    mp.memory_limit_bytes = mi.weight_bytes + (1u << 20);
    llm_model *tight = NULL;
    char err[512];
    TU_CHECK(llm_model_load(dir, &mp, &tight, err, sizeof err) == LLM_OK, "%s", err);
    if (tight) {
        ep = llm_engine_default_params();
        ep.kv_budget_tokens = 1 << 20;
        TU_CHECK(llm_engine_create(tight, &ep, &e) == LLM_ERR_MEMORY_LIMIT, "memory limit");
        TU_CHECK(strstr(llm_model_last_error(tight), "KV cache") != NULL, "names the KV cache: %s",
                 llm_model_last_error(tight));
        llm_engine_info est;
        TU_CHECK(llm_engine_estimate(tight, &ep, &est) == LLM_ERR_MEMORY_LIMIT, "estimate agrees");
        llm_model_free(tight);
    }
    llm_model_free(model);
}

int main(void) {
    two_models();
    error_paths();
    return tu_finish("test_engine");
}
