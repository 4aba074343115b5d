/* The prefix cache: a prompt that shares full KV blocks with an earlier one computes only its suffix
 * (counted by the engine) and gets the logits of an uncached run; blocks shared by live sequences
 * stay correct through decode and truncation (copy-on-write); LRU eviction under a small budget leaks
 * nothing; ~2000 random operations keep every invariant; a forced hash collision never reuses the
 * wrong block. Tokens are fresh random ids each run (the seed is printed). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine_internal.h"
#include "test_util.h"

#define TOL 1e-6

static llm_model *g_model;
static size_t g_V;
static tu_rng g_rng;

static void random_tokens(int32_t *t, int n) {
    for (int i = 0; i < n; i++) t[i] = (int32_t)tu_rng_below(&g_rng, (uint32_t)g_V);
}

static llm_engine *new_engine(int32_t n_ctx, int32_t block_size, int64_t budget_tokens, int32_t n_seq) {
    llm_engine_params ep = llm_engine_default_params();
    ep.n_ctx = n_ctx;
    ep.kv_block_size = block_size;
    ep.kv_budget_tokens = budget_tokens;
    ep.n_seq_max = n_seq;
    llm_engine *e = NULL;
    TU_CHECK(llm_engine_create(g_model, &ep, &e) == LLM_OK, "engine: %s", llm_model_last_error(g_model));
    return e;
}

static void info_of(llm_engine *e, llm_engine_info *info) {
    llm_engine_get_info(e, info);
}

static void check_sound(llm_engine *e, const char *where) {
    char msg[256];
    const int ok = llm_engine_debug_check(e, msg, sizeof msg) == 0;
    TU_CHECK(ok, "%s: %s", where, msg);
}

/* Solo, uncached: prefill toks[0..n_prompt) (last-row logits into out[0]) then decode toks[n_prompt..n)
 * one by one (logits into out[1..]), on a fresh engine. */
static void solo(const int32_t *toks, int n_prompt, int n, int32_t block_size, float *out) {
    llm_engine *e = new_engine(256, block_size, 256, 1);
    if (!e) return;
    llm_seq_id s;
    llm_seq_create(e, &s);
    TU_CHECK(llm_prefill(e, s, toks, (size_t)n_prompt, LLM_LOGITS_LAST, out, g_V, NULL) == LLM_OK,
             "solo prefill: %s", llm_engine_last_error(e));
    for (int i = n_prompt; i < n; i++)
        TU_CHECK(llm_decode(e, &s, &toks[i], 1, out + (size_t)(i - n_prompt + 1) * g_V, g_V, NULL) == LLM_OK,
                 "solo decode: %s", llm_engine_last_error(e));
    llm_engine_info info;
    info_of(e, &info);
    TU_CHECK(info.prefix_hit_tokens == 0 && info.computed_tokens == (uint64_t)n,
             "the solo run computed everything");
    llm_engine_free(e);
}

/* ---- 1 and 2: a second request sharing a 100-token prefix ----------------------------------------- */

enum { SHARED = 100, OWN_A = 20, OWN_B = 30, STEPS = 8 };

static void shared_prefix(int keep_a_alive) {
    const char *what = keep_a_alive ? "A alive" : "A freed";
    int32_t ta[SHARED + OWN_A + STEPS], tb[SHARED + OWN_B + STEPS];
    random_tokens(ta, SHARED + OWN_A + STEPS);
    memcpy(tb, ta, SHARED * sizeof *tb);
    random_tokens(tb + SHARED, OWN_B + STEPS);
    const int na = SHARED + OWN_A, nb = SHARED + OWN_B;
    float *solo_a = malloc((STEPS + 1) * g_V * sizeof(float)),
          *solo_b = malloc((STEPS + 1) * g_V * sizeof(float));
    float *row = malloc(2 * g_V * sizeof(float));
    solo(ta, na, na + STEPS, 16, solo_a);
    solo(tb, nb, nb + STEPS, 16, solo_b);

    llm_engine *e = new_engine(256, 16, 512, 4);
    if (!e) return;
    llm_engine_info i0, i1;
    llm_seq_id a, b;
    llm_seq_create(e, &a);
    TU_CHECK(llm_prefill(e, a, ta, (size_t)na, LLM_LOGITS_LAST, row, g_V, NULL) == LLM_OK, "A: %s",
             llm_engine_last_error(e));
    TU_CHECK(tu_rel_diff(row, solo_a, g_V) <= TOL, "%s: A's logits", what);
    info_of(e, &i0);
    TU_CHECK(i0.computed_tokens == (uint64_t)na && i0.prefix_hit_tokens == 0,
             "%s: A computes all %d tokens (%llu)", what, na, (unsigned long long)i0.computed_tokens);
    if (!keep_a_alive) {
        llm_seq_free(e, a);
        info_of(e, &i0);
        TU_CHECK(i0.kv_blocks_used == 0 && i0.kv_blocks_cached == na / 16,
                 "%s: freed A leaves %d cached blocks: %d used, %d cached", what, na / 16, i0.kv_blocks_used,
                 i0.kv_blocks_cached);
    }
    llm_seq_create(e, &b);
    TU_CHECK(llm_prefill(e, b, tb, (size_t)nb, LLM_LOGITS_LAST, row, g_V, NULL) == LLM_OK, "B: %s",
             llm_engine_last_error(e));
    info_of(e, &i1);
    const uint64_t computed = i1.computed_tokens - i0.computed_tokens,
                   hit = i1.prefix_hit_tokens - i0.prefix_hit_tokens;
    TU_CHECK(computed == (uint64_t)(nb - 96) && hit == 96,
             "%s: B computed %llu tokens (want %d), skipped %llu (want 96)", what,
             (unsigned long long)computed, nb - 96, (unsigned long long)hit);
    TU_CHECK(i1.prefix_lookup_tokens - i0.prefix_lookup_tokens == (uint64_t)nb, "%s: lookup tokens", what);
    const double d = tu_rel_diff(row, solo_b, g_V);
    TU_CHECK(d <= TOL, "%s: B's logits differ from an uncached run by %.3g", what, d);
    printf("shared prefix (%s): B computed %llu of %d tokens; logits vs uncached: %s (%.3g)\n", what,
           (unsigned long long)computed, nb,
           memcmp(row, solo_b, g_V * sizeof(float)) == 0 ? "bit-identical" : "close", d);
    check_sound(e, what);
    if (keep_a_alive) {
        /* 6 blocks are shared: A holds 8 blocks, B 9, together 11 */
        TU_CHECK(i1.kv_blocks_used == 8 + 9 - 6, "%s: %d blocks used, want 11", what, i1.kv_blocks_used);
        /* decode both, in one batch, in alternating orders */
        for (int s = 0; s < STEPS; s++) {
            llm_seq_id ids[2] = {s % 2 ? b : a, s % 2 ? a : b};
            int32_t tk[2] = {s % 2 ? tb[nb + s] : ta[na + s], s % 2 ? ta[na + s] : tb[nb + s]};
            TU_CHECK(llm_decode(e, ids, tk, 2, row, 2 * g_V, NULL) == LLM_OK, "decode: %s",
                     llm_engine_last_error(e));
            const float *ra = row + (s % 2 ? g_V : 0), *rb = row + (s % 2 ? 0 : g_V);
            const double da = tu_rel_diff(ra, solo_a + (size_t)(s + 1) * g_V, g_V);
            const double db = tu_rel_diff(rb, solo_b + (size_t)(s + 1) * g_V, g_V);
            TU_CHECK(da <= TOL && db <= TOL, "%s: decode step %d: A %.3g, B %.3g", what, s, da, db);
            check_sound(e, "decode");
        }
        /* A truncates into a block it shares with B (positions 32..47) and writes there: A's block
         * is copied first, B must not notice */
        TU_CHECK(llm_seq_truncate(e, a, 40) == LLM_OK, "truncate");
        check_sound(e, "after truncate");
        int32_t ta2[40 + 12];
        memcpy(ta2, ta, 40 * sizeof *ta2);
        random_tokens(ta2 + 40, 12);
        float *solo_a2 = malloc(g_V * sizeof(float));
        solo(ta2, 52, 52, 16, solo_a2);
        TU_CHECK(llm_prefill(e, a, ta2 + 40, 12, LLM_LOGITS_LAST, row, g_V, NULL) == LLM_OK,
                 "A after truncate: %s", llm_engine_last_error(e));
        TU_CHECK(tu_rel_diff(row, solo_a2, g_V) <= TOL, "A's logits after truncating into a shared block");
        check_sound(e, "after copy-on-write");
        /* B re-runs its last step from scratch through truncate + decode: still its solo numbers */
        TU_CHECK(llm_seq_truncate(e, b, nb + STEPS - 1) == LLM_OK, "truncate B");
        TU_CHECK(llm_decode(e, &b, &tb[nb + STEPS - 1], 1, row, g_V, NULL) == LLM_OK, "B again");
        TU_CHECK(tu_rel_diff(row, solo_b + (size_t)STEPS * g_V, g_V) <= TOL, "B after A's copy-on-write");
        free(solo_a2);
        llm_seq_free(e, a);
    }
    llm_seq_free(e, b);
    info_of(e, &i1);
    TU_CHECK(i1.kv_blocks_used == 0 && i1.n_seqs == 0, "%s: %d blocks used at the end", what,
             i1.kv_blocks_used);
    check_sound(e, "end");

    /* A partial match: a prompt equal to B up to token 50 reuses exactly 3 blocks (48 tokens). */
    int32_t tc[SHARED + OWN_B];
    memcpy(tc, tb, sizeof tc);
    tc[50] = (tc[50] + 1) % (int32_t)g_V;
    info_of(e, &i0);
    llm_seq_id c;
    llm_seq_create(e, &c);
    TU_CHECK(llm_prefill(e, c, tc, (size_t)nb, LLM_LOGITS_LAST, row, g_V, NULL) == LLM_OK, "C");
    info_of(e, &i1);
    TU_CHECK(i1.prefix_hit_tokens - i0.prefix_hit_tokens == 48,
             "%s: a prompt diverging at token 50 skips %llu, want 48", what,
             (unsigned long long)(i1.prefix_hit_tokens - i0.prefix_hit_tokens));
    solo(tc, nb, nb, 16, solo_b);
    TU_CHECK(tu_rel_diff(row, solo_b, g_V) <= TOL, "C's logits");
    llm_seq_free(e, c);
    free(row);
    free(solo_a);
    free(solo_b);
    llm_engine_free(e);
}

/* ---- 3: LRU eviction under a small budget ------------------------------------------------------ */

static void lru_eviction(void) {
    enum { BUDGET_BLOCKS = 6, N_PROMPTS = 24, STEM = 48 };
    llm_engine *e = new_engine(128, 16, BUDGET_BLOCKS * 16, 2);
    if (!e) return;
    int32_t stems[2][STEM];
    random_tokens(stems[0], STEM);
    random_tokens(stems[1], STEM);
    float *row = malloc(g_V * sizeof(float)), *ref = malloc(4 * g_V * sizeof(float));
    int32_t prev[96];
    int prev_n = 0;
    for (int p = 0; p < N_PROMPTS; p++) {
        int32_t t[96];
        const int n_prompt = 17 + (int)tu_rng_below(&g_rng, 60); /* 17..76: up to 5 blocks, + 3 decodes */
        random_tokens(t, n_prompt + 3);
        if (p % 3 == 0) { /* one prompt in three starts with a shared stem */
            const int k = (int)tu_rng_below(&g_rng, STEM + 1);
            memcpy(t, stems[(p / 3) % 2], (size_t)(k < n_prompt ? k : n_prompt) * sizeof *t);
        } else if (p % 3 == 1) { /* one repeats the previous prompt's first block(s): a sure hit */
            const int k = prev_n < 32 ? prev_n : 32;
            memcpy(t, prev, (size_t)(k < n_prompt ? k : n_prompt) * sizeof *t);
        }
        memcpy(prev, t, sizeof prev);
        prev_n = n_prompt;
        solo(t, n_prompt, n_prompt + 3, 16, ref);
        llm_seq_id s;
        llm_seq_create(e, &s);
        TU_CHECK(llm_prefill(e, s, t, (size_t)n_prompt, LLM_LOGITS_LAST, row, g_V, NULL) == LLM_OK,
                 "prompt %d: %s", p, llm_engine_last_error(e));
        TU_CHECK(tu_rel_diff(row, ref, g_V) <= TOL, "prompt %d (%d tokens): prefill logits", p, n_prompt);
        for (int i = 0; i < 3; i++) {
            TU_CHECK(llm_decode(e, &s, &t[n_prompt + i], 1, row, g_V, NULL) == LLM_OK, "decode: %s",
                     llm_engine_last_error(e));
            TU_CHECK(tu_rel_diff(row, ref + (size_t)(i + 1) * g_V, g_V) <= TOL, "prompt %d decode %d", p, i);
        }
        llm_seq_free(e, s);
        check_sound(e, "lru");
    }
    llm_engine_info info;
    info_of(e, &info);
    TU_CHECK(info.kv_blocks_used == 0 && info.kv_blocks_cached <= BUDGET_BLOCKS &&
                 info.kv_blocks_total == BUDGET_BLOCKS,
             "no leak: %d used, %d cached of %d", info.kv_blocks_used, info.kv_blocks_cached,
             info.kv_blocks_total);
    TU_CHECK(llm_engine_debug_evictions(e) > 0, "the budget forced evictions");
    TU_CHECK(info.prefix_hit_tokens >= 16 * (N_PROMPTS / 3), "repeated first blocks were reused: %llu tokens",
             (unsigned long long)info.prefix_hit_tokens);
    printf("LRU: %d prompts through %d blocks: %llu evictions, %llu of %llu looked-up tokens reused\n",
           N_PROMPTS, BUDGET_BLOCKS, (unsigned long long)llm_engine_debug_evictions(e),
           (unsigned long long)info.prefix_hit_tokens, (unsigned long long)info.prefix_lookup_tokens);
    free(row);
    free(ref);
    llm_engine_free(e);
}

/* ---- 4: random operations ------------------------------------------------------------------------ */

/* Last-row logits of toks[0..n) computed in full (LLM_LOGITS_ALL never skips a row, so the reference
 * engine's own cache cannot serve it). */
static void full_last(llm_engine *ref, const int32_t *toks, int n, float *all, float *out) {
    llm_seq_id s;
    llm_seq_create(ref, &s);
    TU_CHECK(llm_prefill(ref, s, toks, (size_t)n, LLM_LOGITS_ALL, all, (size_t)n * g_V, NULL) == LLM_OK,
             "ref: %s", llm_engine_last_error(ref));
    memcpy(out, all + (size_t)(n - 1) * g_V, g_V * sizeof(float));
    llm_seq_free(ref, s);
}

static void random_ops(void) {
    enum { BS = 4, N_CTX = 64, N_SEQ = 4, BUDGET = 20 * BS, N_OPS = 2000, N_STEMS = 3, STEM = 40 };
    llm_engine *e = new_engine(N_CTX, BS, BUDGET, N_SEQ);
    llm_engine *ref = new_engine(N_CTX, BS, N_CTX, 1);
    if (!e || !ref) return;
    int32_t stems[N_STEMS][STEM];
    for (int i = 0; i < N_STEMS; i++) random_tokens(stems[i], STEM);
    llm_seq_id ids[N_SEQ];
    int n_live = 0;
    float *row = malloc(N_SEQ * g_V * sizeof(float)), *want = malloc(g_V * sizeof(float));
    float *all = malloc((size_t)N_CTX * g_V * sizeof(float));
    int32_t hist[N_CTX + 1];
    int counts[6] = {0}, kv_full = 0, compared = 0;
    const clock_t t0 = clock();
    const int failures_before = tu_failures; /* stop at the first failing operation: one clear report */
    for (int op = 0; op < N_OPS && tu_failures == failures_before; op++) {
        const int kind = (int)tu_rng_below(&g_rng, 10);
        if (kind == 0 || n_live == 0) { /* create */
            if (n_live < N_SEQ && llm_seq_create(e, &ids[n_live]) == LLM_OK) n_live++, counts[0]++;
        } else if (kind <= 3) { /* prefill */
            const int w = (int)tu_rng_below(&g_rng, (uint32_t)n_live);
            const int len = llm_seq_length(e, ids[w]);
            const int n = 1 + (int)tu_rng_below(&g_rng, 24);
            if (len + n > N_CTX) continue;
            int32_t t[24];
            random_tokens(t, n);
            /* mostly continue a stem, so blocks are found again */
            const int stem = (int)tu_rng_below(&g_rng, N_STEMS);
            for (int i = 0; i < n && len + i < STEM && tu_rng_below(&g_rng, 32) != 0; i++)
                t[i] = stems[stem][len + i];
            const llm_logits_mode mode = (llm_logits_mode)tu_rng_below(&g_rng, 3);
            llm_engine_info i0, i1;
            info_of(e, &i0);
            llm_status st = llm_prefill(e, ids[w], t, (size_t)n, mode, all, (size_t)N_CTX * g_V, NULL);
            info_of(e, &i1);
            if (st == LLM_ERR_KV_FULL) {
                kv_full++;
                TU_CHECK(llm_seq_length(e, ids[w]) == len && i1.computed_tokens == i0.computed_tokens,
                         "op %d: a refused prefill changed something", op);
            } else {
                TU_CHECK(st == LLM_OK, "op %d: prefill: %s", op, llm_engine_last_error(e));
                counts[1]++;
                TU_CHECK((i1.computed_tokens - i0.computed_tokens) +
                                 (i1.prefix_hit_tokens - i0.prefix_hit_tokens) ==
                             (uint64_t)n,
                         "op %d: computed + skipped != %d", op, n);
                if (mode == LLM_LOGITS_ALL)
                    TU_CHECK(i1.prefix_hit_tokens == i0.prefix_hit_tokens, "ALL skipped rows");
                if (mode != LLM_LOGITS_NONE && op % 6 == 0) {
                    memcpy(hist, llm_seq_tokens(e, ids[w]), (size_t)(len + n) * sizeof *hist);
                    memcpy(row, all + (mode == LLM_LOGITS_ALL ? (size_t)(n - 1) * g_V : 0),
                           g_V * sizeof(float));
                    full_last(ref, hist, len + n, all, want);
                    TU_CHECK(tu_rel_diff(row, want, g_V) <= 1e-5,
                             "op %d: prefill logits (%d + %d tokens, mode %d)", op, len, n, (int)mode);
                    compared++;
                }
            }
        } else if (kind <= 5) { /* decode a random subset */
            llm_seq_id batch[N_SEQ];
            int32_t tk[N_SEQ];
            int nb = 0;
            for (int i = 0; i < n_live; i++)
                if (tu_rng_below(&g_rng, 2) && llm_seq_length(e, ids[i]) < N_CTX) {
                    batch[nb] = ids[i];
                    const int len = llm_seq_length(e, ids[i]);
                    tk[nb++] =
                        len < STEM ? stems[i % N_STEMS][len] : (int32_t)tu_rng_below(&g_rng, (uint32_t)g_V);
                }
            if (nb == 0) continue;
            llm_status st = llm_decode(e, batch, tk, (size_t)nb, row, (size_t)nb * g_V, NULL);
            if (st == LLM_ERR_KV_FULL) {
                kv_full++;
            } else {
                TU_CHECK(st == LLM_OK, "op %d: decode: %s", op, llm_engine_last_error(e));
                counts[2]++;
                if (op % 6 == 0) {
                    const int j = (int)tu_rng_below(&g_rng, (uint32_t)nb);
                    const int len = llm_seq_length(e, batch[j]);
                    memcpy(hist, llm_seq_tokens(e, batch[j]), (size_t)len * sizeof *hist);
                    full_last(ref, hist, len, all, want);
                    TU_CHECK(tu_rel_diff(row + (size_t)j * g_V, want, g_V) <= 1e-5,
                             "op %d: decode logits at %d", op, len);
                    compared++;
                }
            }
        } else if (kind <= 7) { /* truncate */
            const int w = (int)tu_rng_below(&g_rng, (uint32_t)n_live);
            const int len = llm_seq_length(e, ids[w]);
            TU_CHECK(llm_seq_truncate(e, ids[w], (int32_t)tu_rng_below(&g_rng, (uint32_t)len + 1)) == LLM_OK,
                     "truncate");
            counts[3]++;
        } else { /* free */
            const int w = (int)tu_rng_below(&g_rng, (uint32_t)n_live);
            llm_seq_free(e, ids[w]);
            ids[w] = ids[--n_live];
            counts[4]++;
        }
        char msg[256];
        if (llm_engine_debug_check(e, msg, sizeof msg) != 0) TU_CHECK(0, "after op %d: %s", op, msg);
    }
    while (n_live > 0) llm_seq_free(e, ids[--n_live]);
    llm_engine_info info;
    info_of(e, &info);
    check_sound(e, "random ops end");
    TU_CHECK(info.kv_blocks_used == 0, "%d blocks leaked", info.kv_blocks_used);
    const double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    TU_CHECK(secs < 10, "random operations took %.1f s", secs);
    printf("random ops: %d creates, %d prefills, %d decodes, %d truncates, %d frees, %d refused (KV full); "
           "%d logits compared; %llu evictions; %llu of %llu tokens reused; %.2f s\n",
           counts[0], counts[1], counts[2], counts[3], counts[4], kv_full, compared,
           (unsigned long long)llm_engine_debug_evictions(e), (unsigned long long)info.prefix_hit_tokens,
           (unsigned long long)info.prefix_lookup_tokens, secs);
    TU_CHECK(info.prefix_hit_tokens > 0 && llm_engine_debug_evictions(e) > 0 && kv_full > 0,
             "the mix exercised hits, evictions and a full pool");
    free(row);
    free(want);
    free(all);
    llm_engine_free(e);
    llm_engine_free(ref);
}

/* ---- 5: hash collisions ---------------------------------------------------------------------------- */

static uint64_t constant_hash(uint64_t parent, const int32_t *tokens, int32_t n) {
    (void)parent, (void)tokens, (void)n;
    return 42;
}

static void collisions(void) {
    llm_engine *e = new_engine(256, 16, 256, 2);
    if (!e) return;
    TU_CHECK(llm_engine_debug_set_block_hash(e, constant_hash) == LLM_OK, "hash hook");
    enum { N = 60 };
    int32_t x[N], y[N], z[N];
    random_tokens(x, N);
    /* y: another first block, then x's blocks 1..: the same ids after a different prefix */
    memcpy(y, x, sizeof y);
    random_tokens(y, 16);
    /* z: x's first two blocks, then its own */
    memcpy(z, x, sizeof z);
    random_tokens(z + 32, N - 32);
    float *row = malloc(g_V * sizeof(float)), *ref = malloc(g_V * sizeof(float));
    llm_seq_id s;
    llm_engine_info i0, i1;
    llm_seq_create(e, &s);
    TU_CHECK(llm_prefill(e, s, x, N, LLM_LOGITS_NONE, NULL, 0, NULL) == LLM_OK, "x");
    llm_seq_free(e, s);
    TU_CHECK(llm_engine_debug_set_block_hash(e, NULL) == LLM_ERR_INVALID_ARGUMENT,
             "hook refused while registered");
    /* register y's first block alone: y then finds it, and must not continue into x's block 1, which
     * holds the same ids (and, here, the same hash) after another prefix */
    llm_seq_create(e, &s);
    TU_CHECK(llm_prefill(e, s, y, 17, LLM_LOGITS_NONE, NULL, 0, NULL) == LLM_OK, "y's first block");
    llm_seq_free(e, s);
    const int32_t *cases[3] = {y, x, z};
    const int want_hit[3] = {16, 48, 32};
    for (int c = 0; c < 3; c++) {
        info_of(e, &i0);
        llm_seq_create(e, &s);
        TU_CHECK(llm_prefill(e, s, cases[c], N, LLM_LOGITS_LAST, row, g_V, NULL) == LLM_OK, "case %d", c);
        info_of(e, &i1);
        TU_CHECK(i1.prefix_hit_tokens - i0.prefix_hit_tokens == (uint64_t)want_hit[c],
                 "collision case %d: %llu tokens reused, want %d", c,
                 (unsigned long long)(i1.prefix_hit_tokens - i0.prefix_hit_tokens), want_hit[c]);
        solo(cases[c], N, N, 16, ref);
        TU_CHECK(tu_rel_diff(row, ref, g_V) <= TOL, "collision case %d: logits", c);
        check_sound(e, "collisions");
        llm_seq_free(e, s);
    }
    free(row);
    free(ref);
    llm_engine_free(e);
}

/* ---- lookups that extend a sequence at a block boundary; chaining through a duplicate --------- */

static uint64_t hits_of(llm_engine *e) {
    llm_engine_info info;
    info_of(e, &info);
    return info.prefix_hit_tokens;
}

static void extend_and_duplicates(void) {
    enum { N = 64, M = N + 16 + 1 };
    llm_engine *e = new_engine(256, 16, 256, 3);
    if (!e) return;
    int32_t t[M];
    random_tokens(t, M);
    float *row = malloc(g_V * sizeof(float)), *ref = malloc((M - N + 1) * g_V * sizeof(float));
    llm_seq_id a, b, c, d;
    llm_seq_create(e, &a);
    TU_CHECK(llm_prefill(e, a, t, N, LLM_LOGITS_NONE, NULL, 0, NULL) == LLM_OK, "a");
    llm_seq_free(e, a);
    /* b: 32 tokens (reuses block 0; block 1 holds the last token, so it is computed), then 33 more from
     * the boundary at 32: blocks 2 and 3 are reused, the 65th token computed */
    llm_seq_create(e, &b);
    uint64_t h0 = hits_of(e);
    TU_CHECK(llm_prefill(e, b, t, 32, LLM_LOGITS_NONE, NULL, 0, NULL) == LLM_OK, "b first part");
    TU_CHECK(hits_of(e) - h0 == 16, "b's first 32 tokens reuse one block, got %llu tokens",
             (unsigned long long)(hits_of(e) - h0));
    h0 = hits_of(e);
    TU_CHECK(llm_prefill(e, b, t + 32, 33, LLM_LOGITS_LAST, row, g_V, NULL) == LLM_OK, "b extended");
    TU_CHECK(hits_of(e) - h0 == 32, "extending at a block boundary reuses 2 blocks, got %llu tokens",
             (unsigned long long)(hits_of(e) - h0));
    solo(t, 65, 65, 16, ref);
    TU_CHECK(tu_rel_diff(row, ref, g_V) <= TOL, "b's logits after extending from the cache");
    llm_seq_free(e, b);
    /* c: exactly a's 64 tokens: the last block is recomputed (its last token must be) as a duplicate
     * of a's block 3; then 16 decodes fill block 4, registered after a's block 3 */
    llm_seq_create(e, &c);
    h0 = hits_of(e);
    TU_CHECK(llm_prefill(e, c, t, N, LLM_LOGITS_LAST, row, g_V, NULL) == LLM_OK, "c");
    TU_CHECK(hits_of(e) - h0 == 48, "a cached 64-token prompt reuses 3 blocks, got %llu tokens",
             (unsigned long long)(hits_of(e) - h0));
    solo(t, N, M, 16, ref);
    TU_CHECK(tu_rel_diff(row, ref, g_V) <= TOL, "c's logits");
    for (int i = N; i < N + 16; i++) {
        TU_CHECK(llm_decode(e, &c, &t[i], 1, row, g_V, NULL) == LLM_OK, "c decode");
        TU_CHECK(tu_rel_diff(row, ref + (size_t)(i - N + 1) * g_V, g_V) <= TOL, "c decode %d", i - N);
    }
    check_sound(e, "duplicates");
    llm_seq_free(e, c);
    /* d: the 81-token history: all 5 full blocks are found, through a's block 3 */
    llm_seq_create(e, &d);
    h0 = hits_of(e);
    TU_CHECK(llm_prefill(e, d, t, M, LLM_LOGITS_LAST, row, g_V, NULL) == LLM_OK, "d");
    TU_CHECK(hits_of(e) - h0 == 80, "d reuses 5 blocks, got %llu tokens",
             (unsigned long long)(hits_of(e) - h0));
    solo(t, M, M, 16, ref);
    TU_CHECK(tu_rel_diff(row, ref, g_V) <= TOL, "d's logits");
    llm_seq_free(e, d);
    check_sound(e, "extend end");
    free(row);
    free(ref);
    llm_engine_free(e);
}

int main(void) {
    g_rng.s = tu_fresh_seed("test_prefix_cache");
    char dir[1024];
    g_model = tu_load_model(tu_fixture("llama_f32", dir, sizeof dir), 2);
    TU_CHECK(g_model != NULL, "load llama_f32");
    if (!g_model) return tu_finish("test_prefix_cache");
    llm_model_info mi;
    llm_model_get_info(g_model, &mi);
    g_V = (size_t)mi.n_vocab;
    shared_prefix(0);
    shared_prefix(1);
    lru_eviction();
    random_ops();
    collisions();
    extend_and_duplicates();
    llm_model_free(g_model);
    return tu_finish("test_prefix_cache");
}
