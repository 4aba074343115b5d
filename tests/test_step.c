/* llm_step, the one-forward-pass verb of a batching scheduler, on the demo model:
 *  - 18 sequences of mixed prompt lengths, driven together: each round ONE llm_step carries prefill
 *    chunks of random sizes for some and the next greedy token for the others; every logits row equals
 *    (within 1e-4 relative; the CPU kernels are batch invariant, so it is in fact exact) the same
 *    sequence run alone with llm_prefill + llm_decode, and the greedy tokens are the same;
 *  - a round is one forward pass while its rows fit max_batch_tokens, and ceil(rows / max) passes after;
 *  - a prompt equal to an earlier one reuses its full blocks (n_reused) with unchanged logits;
 *  - all or nothing: a bad item or an exhausted KV budget changes no sequence. */
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "test_util.h"

#define DEMO LLAMAC_SOURCE_DIR "/models/kjv-tiny"
/* Under ASan the kernels run ~50x slower: shorter prompts and generations, the same 18 sequences. */
#if defined(__SANITIZE_ADDRESS__)
#define MAXP 24
#define GEN  3
#else
#define MAXP 70
#define GEN  8
#endif
#define NSEQ 18
#define V    4096

typedef struct seq_run {
    int32_t prompt[MAXP];
    int n_prompt, fed, n_gen;
    int32_t gen[GEN + 1];
    float *logits; /* [GEN + 1][V]: after the prompt, then after each fed token */
    int n_logits;
    llm_seq_id id;
} seq_run;

static int argmax(const float *x) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static llm_engine *new_engine(llm_model *m, int32_t n_seq, int64_t budget, int32_t max_batch) {
    llm_engine_params ep = llm_engine_default_params();
    ep.n_ctx = 256;
    ep.n_seq_max = n_seq;
    ep.kv_block_size = 16;
    ep.kv_budget_tokens = budget;
    ep.max_batch_tokens = max_batch;
    llm_engine *e = NULL;
    TU_CHECK(llm_engine_create(m, &ep, &e) == LLM_OK, "engine: %s", llm_model_last_error(m));
    return e;
}

/* The reference: the sequence alone, prompt prefilled at once, then one decode per token. */
static void solo(llm_model *m, const seq_run *s, float *out) {
    llm_engine *e = new_engine(m, 1, 256, 256);
    if (!e) return;
    llm_seq_id id;
    llm_seq_create(e, &id);
    TU_CHECK(llm_prefill(e, id, s->prompt, (size_t)s->n_prompt, LLM_LOGITS_LAST, out, V, NULL) == LLM_OK,
             "%s", llm_engine_last_error(e));
    for (int g = 0; g < s->n_gen - 1 && g < GEN; g++)
        TU_CHECK(llm_decode(e, &id, &s->gen[g], 1, out + (size_t)(g + 1) * V, V, NULL) == LLM_OK, "%s",
                 llm_engine_last_error(e));
    llm_engine_free(e);
}

static void mixed_rounds(llm_model *m, tu_rng *rng) {
    const int32_t max_batch = MAXP < 64 ? 24 : 64;
    llm_engine *e = new_engine(m, NSEQ, NSEQ * 96, max_batch);
    if (!e) return;
    static seq_run s[NSEQ];
    for (int i = 0; i < NSEQ; i++) {
        memset(&s[i], 0, sizeof s[i]);
        s[i].n_prompt = 1 + (int)tu_rng_below(rng, MAXP);
        for (int j = 0; j < s[i].n_prompt; j++) s[i].prompt[j] = (int32_t)tu_rng_below(rng, V);
        s[i].logits = malloc((size_t)(GEN + 1) * V * sizeof(float));
        llm_seq_create(e, &s[i].id);
    }
    llm_step_item items[NSEQ];
    int owner[NSEQ];
    float *out = malloc((size_t)NSEQ * MAXP * V * sizeof(float));
    int rounds = 0, split_rounds = 0;
    for (;;) {
        int n = 0, rows = 0;
        for (int i = 0; i < NSEQ; i++) {
            seq_run *q = &s[i];
            if (q->n_gen >= GEN) continue;
            if (q->fed < q->n_prompt) { /* a prefill chunk of random size */
                int c = 1 + (int)tu_rng_below(rng, MAXP / 3);
                if (c > q->n_prompt - q->fed) c = q->n_prompt - q->fed;
                const int last = q->fed + c == q->n_prompt;
                items[n] = (llm_step_item){q->id, q->prompt + q->fed, c,
                                           last ? LLM_LOGITS_LAST : LLM_LOGITS_NONE, 0};
                rows += c;
            } else { /* the next greedy token */
                items[n] = (llm_step_item){q->id, &q->gen[q->n_gen - 1], 1, LLM_LOGITS_LAST, 0};
                rows += 1;
            }
            owner[n++] = i;
        }
        if (n == 0) break;
        const uint64_t passes0 = llm_engine_debug_forward_passes(e);
        size_t need = 0;
        llm_status st = llm_step(e, items, (size_t)n, out, (size_t)NSEQ * MAXP * V, &need);
        TU_CHECK(st == LLM_OK, "round %d: %s", rounds, llm_engine_last_error(e));
        if (st != LLM_OK) break;
        const uint64_t passes = llm_engine_debug_forward_passes(e) - passes0;
        TU_CHECK(passes == (uint64_t)((rows + max_batch - 1) / max_batch), "round %d: %d rows in %llu passes",
                 rounds, rows, (unsigned long long)passes);
        split_rounds += passes > 1;
        const float *lp = out;
        for (int k = 0; k < n; k++) {
            seq_run *q = &s[owner[k]];
            if (q->fed < q->n_prompt) q->fed += items[k].n_tokens;
            if (items[k].logits != LLM_LOGITS_LAST) continue;
            memcpy(q->logits + (size_t)q->n_logits++ * V, lp, V * sizeof(float));
            q->gen[q->n_gen++] = argmax(lp);
            lp += V;
        }
        TU_CHECK((size_t)(lp - out) * sizeof(float) == need * sizeof(float), "round %d: logits rows", rounds);
        rounds++;
    }
    printf("mixed rounds: %d sequences, %d rounds (%d split over several passes)\n", NSEQ, rounds,
           split_rounds);
    TU_CHECK(split_rounds > 0 && split_rounds < rounds, "some rounds fit one pass, some do not (%d of %d)",
             split_rounds, rounds);
    char msg[256];
    TU_CHECK(llm_engine_debug_check(e, msg, sizeof msg) == 0, "engine consistent: %s", msg);
    double worst = 0;
    float *ref = malloc((size_t)(GEN + 1) * V * sizeof(float));
    for (int i = 0; i < NSEQ; i++) {
        solo(m, &s[i], ref);
        for (int g = 0; g < s[i].n_logits; g++) {
            const double d = tu_rel_diff(s[i].logits + (size_t)g * V, ref + (size_t)g * V, V);
            if (d > worst) worst = d;
            TU_CHECK(d <= 1e-4, "sequence %d (prompt %d), logits row %d: relative difference %.3g", i,
                     s[i].n_prompt, g, d);
            TU_CHECK(argmax(ref + (size_t)g * V) == s[i].gen[g], "sequence %d: greedy token %d differs", i,
                     g);
        }
        free(s[i].logits);
    }
    printf("batched vs alone: worst relative logits difference %.3g over %d sequences\n", worst, NSEQ);
    free(ref);
    free(out);
    llm_engine_free(e);
}

static void prefix_reuse_and_atomicity(llm_model *m, tu_rng *rng) {
    llm_engine *e = new_engine(m, 4, 6 * 16, 256); /* 6 blocks of 16 */
    if (!e) return;
    int32_t p[48], bad[3] = {1, V, 2};
    for (int i = 0; i < 48; i++) p[i] = (int32_t)tu_rng_below(rng, V);
    llm_seq_id a, b, c;
    llm_seq_create(e, &a);
    llm_seq_create(e, &b);
    llm_seq_create(e, &c);
    static float la[V], lb[V];
    llm_step_item it = {a, p, 48, LLM_LOGITS_LAST, 0};
    TU_CHECK(llm_step(e, &it, 1, la, V, NULL) == LLM_OK && it.n_reused == 0, "first prompt computed");
    /* b: the same 48 tokens reuse the 2 full blocks whose last token is not the prompt's last */
    llm_step_item two[2] = {{b, p, 48, LLM_LOGITS_LAST, 0}, {a, p, 1, LLM_LOGITS_NONE, 0}};
    TU_CHECK(llm_step(e, two, 2, lb, V, NULL) == LLM_OK, "%s", llm_engine_last_error(e));
    TU_CHECK(two[0].n_reused == 32, "reused %d tokens, 32 expected", two[0].n_reused);
    TU_CHECK(memcmp(la, lb, sizeof la) == 0, "logits of the cached run equal the computed one");
    /* a bad item anywhere: nothing changes */
    const int32_t len_a = llm_seq_length(e, a), len_b = llm_seq_length(e, b);
    llm_step_item mixed[3] = {
        {c, p, 40, LLM_LOGITS_LAST, 0}, {a, p, 2, LLM_LOGITS_NONE, 0}, {b, bad, 3, LLM_LOGITS_NONE, 0}};
    TU_CHECK(llm_step(e, mixed, 3, lb, V, NULL) == LLM_ERR_INVALID_ARGUMENT, "bad token refused");
    TU_CHECK(llm_seq_length(e, a) == len_a && llm_seq_length(e, b) == len_b && llm_seq_length(e, c) == 0,
             "nothing changed after a bad item");
    llm_step_item dup[2] = {{a, p, 1, LLM_LOGITS_NONE, 0}, {a, p, 1, LLM_LOGITS_NONE, 0}};
    TU_CHECK(llm_step(e, dup, 2, NULL, 0, NULL) == LLM_ERR_INVALID_ARGUMENT, "a sequence twice refused");
    /* KV full: c would reuse 2 cached blocks, then needs more than the pool has; nothing changes */
    llm_engine_info i0, i1;
    llm_engine_get_info(e, &i0);
    llm_step_item big[2] = {{c, p, 48, LLM_LOGITS_LAST, 0}, {a, p, 40, LLM_LOGITS_NONE, 0}};
    TU_CHECK(llm_step(e, big, 2, lb, V, NULL) == LLM_ERR_KV_FULL, "KV full");
    llm_engine_get_info(e, &i1);
    TU_CHECK(i1.kv_blocks_used == i0.kv_blocks_used && i1.computed_tokens == i0.computed_tokens &&
                 llm_seq_length(e, c) == 0 && llm_seq_length(e, a) == len_a && big[0].n_reused == 0,
             "nothing changed after KV full (used %d -> %d)", i0.kv_blocks_used, i1.kv_blocks_used);
    char msg[256];
    TU_CHECK(llm_engine_debug_check(e, msg, sizeof msg) == 0, "engine consistent: %s", msg);
    /* fork shares every block; writing into the shared partial block copies it */
    llm_seq_id f;
    llm_engine_get_info(e, &i0);
    TU_CHECK(llm_seq_fork(e, a, &f) == LLM_OK, "fork: %s", llm_engine_last_error(e));
    llm_engine_get_info(e, &i1);
    TU_CHECK(i1.kv_blocks_used == i0.kv_blocks_used && llm_seq_length(e, f) == llm_seq_length(e, a),
             "a fork takes no block (%d -> %d)", i0.kv_blocks_used, i1.kv_blocks_used);
    llm_seq_free(e, b);
    llm_step_item grow[2] = {{f, p, 1, LLM_LOGITS_LAST, 0}, {a, p + 1, 1, LLM_LOGITS_LAST, 0}};
    static float two_rows[2 * V];
    TU_CHECK(llm_step(e, grow, 2, two_rows, 2 * V, NULL) == LLM_OK, "%s", llm_engine_last_error(e));
    TU_CHECK(llm_engine_debug_check(e, msg, sizeof msg) == 0, "after copy-on-write: %s", msg);
    TU_CHECK(llm_seq_tokens(e, f)[len_a] == p[0] && llm_seq_tokens(e, a)[len_a] == p[1],
             "histories diverged");
    llm_seq_free(e, a);
    llm_seq_free(e, c);
    llm_seq_free(e, f);
    llm_engine_get_info(e, &i1);
    TU_CHECK(i1.kv_blocks_used == 0 && i1.n_seqs == 0, "all blocks back: %d used", i1.kv_blocks_used);
    llm_engine_free(e);
}

int main(void) {
    tu_rng rng = {tu_fresh_seed("test_step") | 1};
    llm_model *m = tu_load_model(DEMO, 1);
    TU_CHECK(m != NULL, "demo model loads");
    if (m) {
        mixed_rounds(m, &rng);
        prefix_reuse_and_atomicity(m, &rng);
    }
    llm_model_free(m);
    return tu_finish("test_step");
}
