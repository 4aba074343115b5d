/* Sampler: exact behaviour on small inputs worked out by hand (the arithmetic is in the comments),
 * log-probabilities against a direct double-precision computation, parameter validation, errors,
 * determinism. The statistical checks (chi-square, large vocabularies against a sorting reference)
 * are in test_sample_stats.c. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sample/kernels.h"
#include "test_util.h"

static llm_sampler *make(const llm_sampling_params *p, int32_t n_vocab) {
    char err[256];
    llm_sampler *s = NULL;
    llm_status st = llm_sampler_create(p, n_vocab, &s, err, sizeof err);
    TU_CHECK(st == LLM_OK && s, "llm_sampler_create: %s (%s)", llm_status_name(st), err);
    return s;
}

static int32_t sample1(llm_sampler *s, const float *logits, llm_sample_result *r) {
    llm_sample_result tmp;
    if (!r) r = &tmp;
    llm_status st = llm_sampler_sample(s, logits, r);
    TU_CHECK(st == LLM_OK, "sample: %s: %s", llm_status_name(st), llm_sampler_last_error(s));
    return st == LLM_OK ? r->token : -1;
}

/* The logprob a result reports for token t among its top[] entries (NAN if absent). */
static double top_lp(const llm_sample_result *r, int32_t t) {
    for (int i = 0; i < r->n_top; i++)
        if (r->top[i].token == t) return r->top[i].logprob;
    return NAN;
}

/* counts[t] of `draws` samples from the same logits. */
static void draw_counts(llm_sampler *s, const float *logits, int n, int draws, int *counts) {
    memset(counts, 0, (size_t)n * sizeof *counts);
    for (int i = 0; i < draws; i++) {
        int32_t t = sample1(s, logits, NULL);
        if (t >= 0 && t < n) counts[t]++;
    }
}

/* The draws' support must be exactly the tokens listed in `want` (-1 terminated). */
static void check_support(const char *what, llm_sampler *s, const float *logits, int n, int draws,
                          const int *want) {
    int *counts = malloc((size_t)n * sizeof *counts);
    char *in = calloc((size_t)n, 1);
    for (int i = 0; want[i] >= 0; i++) in[want[i]] = 1;
    draw_counts(s, logits, n, draws, counts);
    for (int t = 0; t < n; t++) {
        if (in[t])
            TU_CHECK(counts[t] > 0, "%s: token %d is in the kept set but never drawn", what, t);
        else
            TU_CHECK(counts[t] == 0, "%s: token %d drawn %d times but is outside the kept set", what, t,
                     counts[t]);
    }
    free(counts);
    free(in);
}

static void test_defaults(void) {
    llm_sampling_params p = llm_sampling_default_params();
    TU_CHECK(p.temperature == 1.0f && p.top_k == 0 && p.top_p == 1.0f && p.min_p == 0.0f, "defaults");
    TU_CHECK(p.repetition_penalty == 1.0f && p.presence_penalty == 0.0f && p.frequency_penalty == 0.0f,
             "penalty defaults");
    TU_CHECK(p.logit_bias == NULL && p.n_logit_bias == 0 && p.seed == 0 && p.top_logprobs == 0,
             "other defaults");
    llm_sampler *s = make(NULL, 10); /* NULL params = defaults */
    TU_CHECK(s && strcmp(llm_sampler_last_error(s), "") == 0, "no error yet");
    llm_sampler_free(s);
    llm_sampler_free(NULL);
    llm_sampler_reset(NULL);
}

static void test_greedy(void) {
    llm_sampling_params p = llm_sampling_default_params();
    p.temperature = 0.0f;
    p.top_k = 3; /* no part in greedy */
    p.top_p = 0.1f;
    p.top_logprobs = 5;
    /* argmax 2.25 at ids 1 and 3: the lower id wins. */
    const float a[5] = {0.5f, 2.25f, -1.0f, 2.25f, 1.0f};
    llm_sampler *s = make(&p, 5);
    llm_sample_result r;
    TU_CHECK(sample1(s, a, &r) == 1, "greedy tie -> lowest id, got %d", r.token);
    /* log-softmax by hand: sum e^l = e^0.5 + 2 e^2.25 + e^-1 + e^1
     *   = 1.6487213 + 18.9754716 + 0.3678794 + 2.7182818 = 23.7103542, ln = 3.1659118
     * logprob(1) = 2.25 - 3.1659118 = -0.9159118 */
    TU_CHECK(fabs(r.logprob - -0.9159118) < 2e-6, "greedy logprob %.8f", r.logprob);
    /* top: 2.25 (1), 2.25 (3), 1.0 (4), 0.5 (0), -1.0 (2) */
    const int order[5] = {1, 3, 4, 0, 2};
    TU_CHECK(r.n_top == 5, "n_top %d", r.n_top);
    for (int i = 0; i < 5; i++) {
        TU_CHECK(r.top[i].token == order[i], "top[%d] = %d, want %d", i, r.top[i].token, order[i]);
        TU_CHECK(fabs(r.top[i].logprob - (a[order[i]] - 3.1659118)) < 2e-6, "top[%d] logprob", i);
    }
    llm_sampler_free(s);

    /* -inf entries, and ties far apart in a vocabulary that is not a multiple of any chunk size */
    enum { N = 1037 };
    float *b = malloc(N * sizeof *b);
    for (int i = 0; i < N; i++) b[i] = (i % 3 == 0) ? -INFINITY : (float)(i % 17) * 0.125f;
    /* (i % 17) * 0.125 peaks at 2.0 for i % 17 == 16 and i % 3 != 0: i = 16 (16 % 3 = 1) */
    s = make(&p, N);
    TU_CHECK(sample1(s, b, NULL) == 16, "greedy 16");
    b[1036] = 7.0f;
    TU_CHECK(sample1(s, b, NULL) == 1036, "greedy at the last index");
    b[640] = 7.0f; /* a tie at a chunk boundary, lower id */
    TU_CHECK(sample1(s, b, NULL) == 640, "greedy tie 640 vs 1036");
    for (int i = 0; i < N; i++) b[i] = -INFINITY;
    b[999] = -1e30f;
    TU_CHECK(sample1(s, b, NULL) == 999, "the only finite logit");
    llm_sampler_free(s);
    free(b);

    /* A temperature so small that only the maximum has weight: draws are the argmax, and both
     * members of a tie at the maximum are drawn. */
    p = llm_sampling_default_params();
    p.temperature = 1e-30f;
    s = make(&p, 5);
    int counts[5];
    draw_counts(s, a, 5, 2000, counts);
    TU_CHECK(counts[1] + counts[3] == 2000 && counts[1] > 800 && counts[3] > 800, "T 1e-30: %d %d", counts[1],
             counts[3]);
    llm_sampler_free(s);
}

static void test_logit_bias(void) {
    const float a[4] = {1.0f, 5.0f, 2.0f, 0.0f};
    llm_sampling_params p = llm_sampling_default_params();
    p.temperature = 0.0f;
    p.top_logprobs = 4;
    /* ban the argmax: z = {1, 5 - 100, 2, 0} -> 2 */
    llm_logit_bias ban[1] = {{1, -100.0f}};
    p.logit_bias = ban;
    p.n_logit_bias = 1;
    llm_sampler *s = make(&p, 4);
    llm_sample_result r;
    TU_CHECK(sample1(s, a, &r) == 2, "banned argmax");
    /* logprob(1) - logprob(2) = (5 - 100) - 2 = -97 */
    TU_CHECK(fabs(top_lp(&r, 1) - top_lp(&r, 2) - -97.0) < 1e-4, "banned logprob %g", top_lp(&r, 1));
    llm_sampler_free(s);

    /* force a token: z = {1, 5, 2, 100} -> 3 */
    llm_logit_bias force[2] = {{3, 100.0f}, {0, 0.5f}};
    p.logit_bias = force;
    p.n_logit_bias = 2;
    s = make(&p, 4);
    TU_CHECK(sample1(s, a, &r) == 3, "forced token");
    /* z = {1.5, 5, 2, 100}: logprob(0) - logprob(1) = 1.5 - 5 = -3.5 */
    TU_CHECK(fabs(top_lp(&r, 0) - top_lp(&r, 1) - -3.5) < 1e-5, "bias 0.5 on token 0");
    llm_sampler_free(s);

    /* Under sampling at T = 1: +100 on token 0 gives the others weight <= e^(5 - 101) ~ 2e-42 relative,
     * -100 on token 1 gives it e^-95 / e^2: neither other outcome can show up in 20000 draws. */
    p.temperature = 1.0f;
    p.seed = 11;
    llm_logit_bias force0[1] = {{0, 100.0f}};
    p.logit_bias = force0;
    p.n_logit_bias = 1;
    s = make(&p, 4);
    const int only0[] = {0, -1};
    check_support("bias +100", s, a, 4, 20000, only0);
    llm_sampler_free(s);
    p.logit_bias = ban;
    s = make(&p, 4);
    const int not1[] = {0, 2, 3, -1};
    check_support("bias -100", s, a, 4, 20000, not1);
    llm_sampler_free(s);

    /* the caller's array is copied at create */
    llm_logit_bias tmp[1] = {{2, 50.0f}};
    p.temperature = 0.0f;
    p.logit_bias = tmp;
    s = make(&p, 4);
    tmp[0].token = 1;
    tmp[0].bias = -100.0f;
    TU_CHECK(sample1(s, a, NULL) == 2, "bias copied at create");
    llm_sampler_free(s);
}

static void test_repetition_penalty(void) {
    /* HF semantics, penalty 2, prompt tokens 0, 1, 0, 0 (token 0 counts once):
     *   logits {2.0, -1.0, 0.5, 3.0, -0.25}
     *   z      {2.0 / 2 = 1.0, -1.0 * 2 = -2.0, 0.5, 3.0, -0.25}
     *   sum e^z = 2.7182818 + 0.1353353 + 1.6487213 + 20.0855369 + 0.7788008 = 25.3666761, ln = 3.2334363
     *   logprobs {-2.2334363, -5.2334363, -2.7334363, -0.2334363, -3.4834363} */
    const float a[5] = {2.0f, -1.0f, 0.5f, 3.0f, -0.25f};
    const double want[5] = {-2.2334363, -5.2334363, -2.7334363, -0.2334363, -3.4834363};
    llm_sampling_params p = llm_sampling_default_params();
    p.temperature = 0.0f;
    p.repetition_penalty = 2.0f;
    p.top_logprobs = 5;
    llm_sampler *s = make(&p, 5);
    const int32_t prompt[4] = {0, 1, 0, 0};
    for (int i = 0; i < 4; i++) TU_CHECK(llm_sampler_accept_prompt(s, prompt[i]) == LLM_OK, "accept");
    llm_sample_result r;
    TU_CHECK(sample1(s, a, &r) == 3, "rep: argmax 3");
    for (int t = 0; t < 5; t++)
        TU_CHECK(fabs(top_lp(&r, t) - want[t]) < 2e-6, "rep logprob %d: %g", t, top_lp(&r, t));
    TU_CHECK(fabs(r.logprob - want[3]) < 2e-6, "chosen logprob");
    /* 3 is now generated: z3 = 3.0 / 2 = 1.5, still above z0 = 1.0; and twice generated, still 1.5
     * (once per distinct token, not 3 / 4). */
    for (int k = 0; k < 2; k++) {
        TU_CHECK(sample1(s, a, &r) == 3, "rep: 3 again");
        TU_CHECK(fabs(top_lp(&r, 3) - top_lp(&r, 0) - 0.5) < 1e-5, "z3 - z0 = 1.5 - 1.0, got %g",
                 top_lp(&r, 3) - top_lp(&r, 0));
    }
    /* reset forgets the history: back to the raw logits, z3 - z0 = 1.0 */
    llm_sampler_reset(s);
    sample1(s, a, &r);
    TU_CHECK(fabs(top_lp(&r, 3) - top_lp(&r, 0) - 1.0) < 1e-5, "after reset");
    llm_sampler_free(s);

    /* penalty 0.5 favours repeats: 2.0 / 0.5 = 4.0 and -1.0 * 0.5 = -0.5; prompt {0, 1}:
     * z = {4.0, -0.5, 0.5, 3.0, -0.25} -> argmax 0; z1 - z4 = -0.25; a zero logit stays 0. */
    p.repetition_penalty = 0.5f;
    s = make(&p, 5);
    llm_sampler_accept_prompt(s, 0);
    llm_sampler_accept_prompt(s, 1);
    TU_CHECK(sample1(s, a, &r) == 0, "penalty 0.5 favours 0");
    TU_CHECK(fabs(top_lp(&r, 1) - top_lp(&r, 4) - -0.25) < 1e-5, "z1 - z4");
    const float zero[5] = {0.0f, -1.0f, -1.0f, -1.0f, -1.0f};
    sample1(s, zero, &r);
    /* z0 = 0 either way; z1 = -0.5; others -1 */
    TU_CHECK(fabs(top_lp(&r, 0) - top_lp(&r, 2) - 1.0) < 1e-5, "zero logit unchanged");
    llm_sampler_free(s);

    /* The penalty can lower the maximum of a large vocabulary: the sampler must find the new one.
     * 700 has 5.0 and is in the prompt: 5.0 / 2 = 2.5 < 4.0 at token 300. */
    enum { N = 1000 };
    float *b = malloc(N * sizeof *b);
    for (int i = 0; i < N; i++) b[i] = (float)((i * 7919) % 200) / 100.0f - 1.0f; /* in [-1, 1) */
    b[700] = 5.0f;
    b[300] = 4.0f;
    p.repetition_penalty = 2.0f;
    s = make(&p, N);
    llm_sampler_accept_prompt(s, 700);
    TU_CHECK(sample1(s, b, &r) == 300, "lowered max: got %d", r.token);
    TU_CHECK(fabs(top_lp(&r, 300) - top_lp(&r, 700) - 1.5) < 1e-5, "4.0 - 2.5");
    llm_sampler_free(s);

    /* A division by a tiny penalty overflows to +inf: clamped to FLT_MAX, still the argmax and a finite
     * log-probability (0: every other weight underflows). */
    p.repetition_penalty = 1e-30f;
    p.top_logprobs = 2;
    s = make(&p, N);
    b[5] = 1e10f;
    llm_sampler_accept_prompt(s, 5);
    TU_CHECK(sample1(s, b, &r) == 5, "overflowing penalty");
    TU_CHECK(r.logprob == 0.0f, "logprob of the clamped token %g", r.logprob);
    llm_sampler_free(s);
    free(b);
}

static void test_presence_frequency(void) {
    /* OpenAI semantics over generated tokens only: logit -= presence * (count > 0) + frequency * count.
     * presence 0.5, frequency 0.25; prompt token 1 (no effect on these); generated: 2, 2, 0 (forced by
     * steering logits with a 10-point lead, more than any penalty here).
     * Then on logits {1, 1, 1, 1}:
     *   token 0: count 1 -> 1 - 0.5 - 0.25 = 0.25
     *   token 1: prompt only -> 1.0
     *   token 2: count 2 -> 1 - 0.5 - 0.5 = 0.0
     *   token 3: 1.0
     * greedy: 1 and 3 tie at 1.0 -> 1. */
    llm_sampling_params p = llm_sampling_default_params();
    p.temperature = 0.0f;
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 0.25f;
    p.top_logprobs = 4;
    llm_sampler *s = make(&p, 4);
    llm_sampler_accept_prompt(s, 1);
    const float force2[4] = {0, 0, 10, 0}, force0[4] = {10, 0, 0, 0}, flat[4] = {1, 1, 1, 1};
    TU_CHECK(sample1(s, force2, NULL) == 2, "forced 2");
    TU_CHECK(sample1(s, force2, NULL) == 2, "forced 2 again");
    TU_CHECK(sample1(s, force0, NULL) == 0, "forced 0");
    llm_sample_result r;
    TU_CHECK(sample1(s, flat, &r) == 1, "presence/frequency greedy -> 1, got %d", r.token);
    TU_CHECK(fabs(top_lp(&r, 0) - top_lp(&r, 1) - -0.75) < 1e-5, "z0 - z1 = 0.25 - 1");
    TU_CHECK(fabs(top_lp(&r, 2) - top_lp(&r, 1) - -1.0) < 1e-5, "z2 - z1 = 0 - 1");
    TU_CHECK(fabs(top_lp(&r, 3) - top_lp(&r, 1)) < 1e-6, "z3 = z1");
    llm_sampler_free(s);

    /* With repetition penalty 2 as well, applied first (on every seen token, prompt included):
     *   token 0: 1 / 2 - 0.75 = -0.25;  token 1: 1 / 2 = 0.5;  token 2: 1 / 2 - 1.0 = -0.5;  token 3: 1.0 */
    p.repetition_penalty = 2.0f;
    s = make(&p, 4);
    llm_sampler_accept_prompt(s, 1);
    sample1(s, force2, NULL);
    sample1(s, force2, NULL);
    sample1(s, force0, NULL);
    TU_CHECK(sample1(s, flat, &r) == 3, "rep + presence/frequency -> 3");
    TU_CHECK(fabs(top_lp(&r, 0) - top_lp(&r, 3) - -1.25) < 1e-5, "z0 - z3");
    TU_CHECK(fabs(top_lp(&r, 1) - top_lp(&r, 3) - -0.5) < 1e-5, "z1 - z3");
    TU_CHECK(fabs(top_lp(&r, 2) - top_lp(&r, 3) - -1.5) < 1e-5, "z2 - z3");
    llm_sampler_free(s);

    /* Negative penalties encourage repeats: presence -1, frequency -0.5 after generating 2 once:
     * z2 = 1 + 1 + 0.5 = 2.5 vs 1 elsewhere. */
    p = llm_sampling_default_params();
    p.temperature = 0.0f;
    p.presence_penalty = -1.0f;
    p.frequency_penalty = -0.5f;
    p.top_logprobs = 4;
    s = make(&p, 4);
    sample1(s, force2, NULL);
    TU_CHECK(sample1(s, flat, &r) == 2, "negative penalties");
    TU_CHECK(fabs(top_lp(&r, 2) - top_lp(&r, 0) - 1.5) < 1e-5, "z2 - z0 = 2.5 - 1");
    llm_sampler_free(s);
}

/* p = {0.05, 0.40, 0.10, 0.25, 0.20} as logits ln p: by probability 1 (.40), 3 (.25), 4 (.20), 2 (.10),
 * 0 (.05). At T = 0.5 the weights are p^2 = {.0025, .16, .01, .0625, .04}, sum .275, normalized
 * {.00909, .58182, .03636, .22727, .14545}. */
static void five_logits(float *l) {
    const double p[5] = {0.05, 0.40, 0.10, 0.25, 0.20};
    for (int i = 0; i < 5; i++) l[i] = (float)log(p[i]);
}

static void support_case_n(const char *what, float temp, int top_k, float top_p, float min_p,
                           const float *logits, int n, const int *want, int draws) {
    llm_sampling_params p = llm_sampling_default_params();
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.seed = 1234;
    llm_sampler *s = make(&p, n);
    if (s) check_support(what, s, logits, n, draws, want);
    llm_sampler_free(s);
}

/* Small vocabularies: 20000 draws show every kept token (the rarest here has probability > 0.5%). */
static void support_case(const char *what, float temp, int top_k, float top_p, float min_p,
                         const float *logits, int n, const int *want) {
    support_case_n(what, temp, top_k, top_p, min_p, logits, n, want, 20000);
}

static void test_top_k(void) {
    /* logits {1.0, 3.0, 2.0, 2.0, 0.0, 2.5, -1.0, 2.0}: by logit 3.0 (1), 2.5 (5), then 2.0 at 2, 3, 7. */
    const float a[8] = {1.0f, 3.0f, 2.0f, 2.0f, 0.0f, 2.5f, -1.0f, 2.0f};
    const int k1[] = {1, -1}, k3[] = {1, 5, 2, -1}, k4[] = {1, 5, 2, 3, -1},
              all[] = {0, 1, 2, 3, 4, 5, 6, 7, -1};
    support_case("top_k 1", 1.0f, 1, 1.0f, 0.0f, a, 8, k1);
    support_case("top_k 3 (tie at 2.0 -> lowest id 2)", 1.0f, 3, 1.0f, 0.0f, a, 8, k3);
    support_case("top_k 4", 1.0f, 4, 1.0f, 0.0f, a, 8, k4);
    support_case("top_k 8 = n", 1.0f, 8, 1.0f, 0.0f, a, 8, all);
    support_case("top_k 100 > n", 1.0f, 100, 1.0f, 0.0f, a, 8, all);

    /* a larger vocabulary: everything at -1 except 19999: 5, 3: 4, 10000: 4, 64: 3, 63: 3.
     * top_k 4 -> 19999, 3, 10000, then 63 (the lower id of the tie at 3). T = 2 so all four show. */
    enum { N = 20000 };
    float *b = malloc(N * sizeof *b);
    for (int i = 0; i < N; i++) b[i] = -1.0f;
    b[19999] = 5.0f, b[3] = 4.0f, b[10000] = 4.0f, b[64] = 3.0f, b[63] = 3.0f;
    const int big4[] = {3, 63, 10000, 19999, -1};
    support_case_n("top_k 4 of 20000", 2.0f, 4, 1.0f, 0.0f, b, N, big4, 2000);
    /* three equal maxima far apart (5, 100, 200; the rest -1): top_k 2 keeps the two lowest ids even
     * though 200 comes when the heap's worst already equals it */
    for (int i = 0; i < N; i++) b[i] = -1.0f;
    b[5] = b[100] = b[200] = 3.0f;
    const int two[] = {5, 100, -1};
    support_case_n("top_k 2 of three equal maxima", 1.0f, 2, 1.0f, 0.0f, b, N, two, 2000);
    free(b);
}

static void test_top_p(void) {
    float l[5];
    five_logits(l);
    /* T = 1: cumulative .40, .65, .85, .95, 1.0 */
    const int p1[] = {1, -1}, p13[] = {1, 3, -1}, p134[] = {1, 3, 4, -1}, p1342[] = {1, 3, 4, 2, -1};
    support_case("top_p 0.3: .40 >= .3", 1.0f, 0, 0.3f, 0.0f, l, 5, p1);
    support_case("top_p 0.6: .65 >= .6", 1.0f, 0, 0.6f, 0.0f, l, 5, p13);
    support_case("top_p 0.8: .85 >= .8", 1.0f, 0, 0.8f, 0.0f, l, 5, p134);
    support_case("top_p 0.9: .95 >= .9", 1.0f, 0, 0.9f, 0.0f, l, 5, p1342);
    /* T = 0.5: cumulative .58182, .80909 >= .8 -> {1, 3}; .95454 >= .95 -> {1, 3, 4} */
    support_case("T 0.5 top_p 0.8", 0.5f, 0, 0.8f, 0.0f, l, 5, p13);
    support_case("T 0.5 top_p 0.95", 0.5f, 0, 0.95f, 0.0f, l, 5, p134);
    /* top-k 3 first, then top-p over the renormalized {.40, .25, .20} / .85 = {.4706, .2941, .2353}:
     * cumulative .4706, .7647 >= .75 -> {1, 3} (without renormalizing, .65 < .75 would keep 4 too). */
    support_case("top_k 3 + top_p 0.75", 1.0f, 3, 0.75f, 0.0f, l, 5, p13);

    /* ties: four equal logits, each .25; top_p 0.5: .25, .50 >= .5 -> the two lowest ids (the sums of
     * weights 1 + 1 against 0.5 * 4 are exact) */
    const float eq[4] = {0.7f, 0.7f, 0.7f, 0.7f};
    const int e01[] = {0, 1, -1}, e012[] = {0, 1, 2, -1};
    support_case("top_p 0.5 over ties", 1.0f, 0, 0.5f, 0.0f, eq, 4, e01);
    support_case("top_p 0.51 over ties", 1.0f, 0, 0.51f, 0.0f, eq, 4, e012);
    /* the same four after top_k 4 of five (the fifth lower): the top-k candidates come in heap order,
     * the sums are still exact: 1 + 1 >= 0.5 * 4 */
    const float eq5[5] = {0.7f, 0.7f, 0.7f, 0.7f, -3.0f};
    support_case("top_k 4 + top_p 0.5 over ties", 1.0f, 4, 0.5f, 0.0f, eq5, 5, e01);

    /* A larger vocabulary with ten tokens at 0 (ids below) and the rest at -inf (weight exactly 0):
     * top_p 0.5 -> the five lowest ids of the ten: 5 / 10 >= 0.5. */
    enum { N = 9000 };
    float *b = malloc(N * sizeof *b);
    const int ten[10] = {7, 500, 1234, 2000, 3333, 4000, 4700, 5200, 5900, 8999};
    for (int i = 0; i < N; i++) b[i] = -INFINITY;
    for (int i = 0; i < 10; i++) b[ten[i]] = 0.0f;
    const int first5[] = {7, 500, 1234, 2000, 3333, -1};
    support_case_n("top_p 0.5, ten tokens in 9000", 1.0f, 0, 0.5f, 0.0f, b, N, first5, 2000);
    /* The same with the rest at -30 instead: their mass 8990 e^-30 = 8.4e-10 counts, so 5 tokens carry
     * 5 / (10 + 8.4e-10) < 0.5 and the nucleus needs a sixth: 4000. */
    for (int i = 0; i < N; i++)
        if (b[i] == -INFINITY) b[i] = -30.0f;
    const int first6[] = {7, 500, 1234, 2000, 3333, 4000, -1};
    support_case_n("top_p 0.5 with a tail", 1.0f, 0, 0.5f, 0.0f, b, N, first6, 2000);

    /* 9000 equal logits (more than the sampler puts in one list at first): top_p 0.5 -> exactly ids
     * [0, 4500) (weights 1, total 9000, target 4500: exact). Drawn uniformly over them. */
    enum { M = 9000 };
    for (int i = 0; i < M; i++) b[i] = 1.5f;
    llm_sampling_params p = llm_sampling_default_params();
    p.top_p = 0.5f;
    p.seed = 99;
    llm_sampler *s = make(&p, M);
    int bins[10] = {0}, outside = 0;
    for (int i = 0; i < 4000; i++) {
        int32_t t = sample1(s, b, NULL);
        if (t < 0 || t >= 4500)
            outside++;
        else
            bins[t / 450]++;
    }
    TU_CHECK(outside == 0, "%d draws outside [0, 4500)", outside);
    /* ten bins of 450 ids, 400 expected each; chi-square df 9, 0.999 quantile 27.877 */
    double chi = 0;
    for (int i = 0; i < 10; i++) chi += (bins[i] - 400.0) * (bins[i] - 400.0) / 400.0;
    TU_CHECK(chi < 27.877, "uniform over the nucleus: chi-square %g", chi);
    llm_sampler_free(s);
    free(b);
}

static void test_min_p(void) {
    float l[5];
    five_logits(l);
    /* T = 1, p_max = .40 */
    const int m1[] = {1, -1}, m13[] = {1, 3, -1}, m134[] = {1, 3, 4, -1}, m1342[] = {1, 3, 4, 2, -1};
    support_case("min_p 0.55: p >= .22", 1.0f, 0, 1.0f, 0.55f, l, 5, m13);
    support_case("min_p 0.3: p >= .12", 1.0f, 0, 1.0f, 0.3f, l, 5, m134);
    support_case("min_p 0.2: p >= .08", 1.0f, 0, 1.0f, 0.2f, l, 5, m1342);
    support_case("min_p 1: the max only", 1.0f, 0, 1.0f, 1.0f, l, 5, m1);
    /* after temperature: T = 0.5, p_max .58182, min_p 0.3 -> p >= .17455: 4 (.14545) is out */
    support_case("T 0.5 min_p 0.3", 0.5f, 0, 1.0f, 0.3f, l, 5, m13);
    /* after top-p: top_p 0.9 keeps {1, 3, 4, 2}; min_p 0.3 drops 2 (.10 < .12) */
    support_case("top_p 0.9 + min_p 0.3", 1.0f, 0, 0.9f, 0.3f, l, 5, m134);
    /* with top-k: top_k 4 keeps {1, 3, 4, 2}; min_p 0.55 keeps {1, 3}; min_p 1 the max alone (its
     * weight equals the threshold exactly: kept) */
    support_case("top_k 4 + min_p 0.55", 1.0f, 4, 1.0f, 0.55f, l, 5, m13);
    support_case("top_k 3 + min_p 1", 1.0f, 3, 1.0f, 1.0f, l, 5, m1);
    support_case("top_p 0.9 + min_p 1", 1.0f, 0, 0.9f, 1.0f, l, 5, m1);
}

static void test_banned_never_drawn(void) {
    /* -inf logits are never drawn, even at a high temperature that flattens everything else */
    enum { N = 777 };
    float *b = malloc(N * sizeof *b);
    int want[N + 1], k = 0;
    for (int i = 0; i < N; i++) {
        b[i] = (i % 5 == 0) ? (float)(i % 7) : -INFINITY;
        if (i % 5 == 0) want[k++] = i;
    }
    want[k] = -1;
    llm_sampling_params p = llm_sampling_default_params();
    p.temperature = 50.0f;
    p.seed = 3;
    llm_sampler *s = make(&p, N);
    check_support("-inf banned", s, b, N, 40000, want);
    llm_sampler_free(s);
    free(b);
}

/* Expected logits after bias and penalties, by the formulas of llamac.h. Float arithmetic, as the
 * logits are floats: near-equal tokens must rank exactly as the sampler ranks them. */
typedef struct ref_state {
    int n;
    int *gen; /* times generated */
    char *in_prompt;
} ref_state;

static void ref_logits(const ref_state *st, const llm_sampling_params *p, const float *logits, double *z) {
    float *v = malloc((size_t)st->n * sizeof *v);
    for (int i = 0; i < st->n; i++) v[i] = logits[i];
    for (size_t j = 0; j < p->n_logit_bias; j++) v[p->logit_bias[j].token] += p->logit_bias[j].bias;
    for (int i = 0; i < st->n; i++) {
        if (st->in_prompt[i] || st->gen[i])
            v[i] = v[i] > 0 ? v[i] / p->repetition_penalty : v[i] * p->repetition_penalty;
        if (st->gen[i]) v[i] -= p->presence_penalty + p->frequency_penalty * (float)st->gen[i];
        z[i] = v[i];
    }
    free(v);
}

static void test_logprobs_reference(void) {
    /* Fresh random logits (with -inf entries and a tie at the top), bias and penalties; every reported
     * log-probability against log-softmax computed here in double from the raw numbers; the top list
     * against a selection by (z desc, id asc) done here. Temperature and truncation must not change
     * them. */
    uint64_t seed = tu_fresh_seed("test_sample logprobs");
    tu_rng rng = {seed};
    enum { N = 3000 };
    float *logits = malloc(N * sizeof *logits);
    double *z = malloc(N * sizeof *z);
    llm_logit_bias bias[3] = {{17, 3.5f}, {2999, -100.0f}, {1234, 0.25f}};
    llm_sampling_params p = llm_sampling_default_params();
    p.temperature = 0.6f;
    p.top_k = 5;
    p.top_p = 0.9f;
    p.min_p = 0.05f;
    p.repetition_penalty = 1.3f;
    p.presence_penalty = 0.4f;
    p.frequency_penalty = 0.3f;
    p.logit_bias = bias;
    p.n_logit_bias = 3;
    p.top_logprobs = 20;
    p.seed = seed;
    llm_sampler *s = make(&p, N);
    ref_state st = {N, calloc(N, sizeof(int)), calloc(N, 1)};
    for (int i = 0; i < 50; i++) {
        int32_t t = (int32_t)tu_rng_below(&rng, N);
        llm_sampler_accept_prompt(s, t);
        st.in_prompt[t] = 1;
    }
    for (int step = 0; step < 40; step++) {
        for (int i = 0; i < N; i++) logits[i] = (float)((double)tu_rng_below(&rng, 2000001) / 1e5 - 10.0);
        for (int i = 0; i < 30; i++) logits[tu_rng_below(&rng, N)] = -INFINITY;
        int top = 0;
        for (int i = 1; i < N; i++)
            if (logits[i] > logits[top]) top = i;
        const int twin = (top + 1 + (int)tu_rng_below(&rng, N - 1)) % N;
        logits[twin] = logits[top]; /* a tie: reported in id order */
        ref_logits(&st, &p, logits, z);
        double zmax = -INFINITY;
        for (int i = 0; i < N; i++) zmax = z[i] > zmax ? z[i] : zmax;
        double sum = 0;
        for (int i = 0; i < N; i++) sum += exp(z[i] - zmax);
        const double lse = zmax + log(sum);
        llm_sample_result r;
        int32_t t = sample1(s, logits, &r);
        if (t < 0) break;
        TU_CHECK(fabs(r.logprob - (z[t] - lse)) < 2e-5, "step %d: logprob %.7f vs %.7f (seed %llu)", step,
                 r.logprob, z[t] - lse, (unsigned long long)seed);
        TU_CHECK(r.n_top == 20, "n_top");
        /* the 20 best by (z desc, id asc), selected by repeated scans */
        char *taken = calloc(N, 1);
        for (int j = 0; j < 20; j++) {
            int b = -1;
            for (int i = 0; i < N; i++)
                if (!taken[i] && (b < 0 || z[i] > z[b])) b = i;
            taken[b] = 1;
            TU_CHECK(r.top[j].token == b, "step %d top[%d]: %d vs %d (seed %llu)", step, j, r.top[j].token, b,
                     (unsigned long long)seed);
            TU_CHECK(fabs(r.top[j].logprob - (z[b] - lse)) < 2e-5, "step %d top[%d] logprob", step, j);
        }
        free(taken);
        /* the chosen token is among the top 5 (top_k) */
        int rank = 0;
        for (int i = 0; i < N; i++) rank += z[i] > z[t] || (z[i] == z[t] && i < t);
        TU_CHECK(rank < 5, "step %d: chosen token has rank %d, top_k 5", step, rank);
        st.gen[t]++;
    }
    llm_sampler_free(s);

    /* The normalizer also comes out of other passes (temperature 1 with top-p or min-p, other
     * temperatures): the same log-softmax whatever the settings, here on the raw logits. */
    double zmax = -INFINITY, sum = 0;
    for (int i = 0; i < N; i++) zmax = logits[i] > zmax ? logits[i] : zmax;
    for (int i = 0; i < N; i++) sum += exp(logits[i] - zmax);
    const struct {
        float temp, top_p, min_p;
        int top_k;
    } variants[] = {{1.0f, 0.9f, 0, 0}, {1.0f, 1.0f, 0.05f, 0}, {1.0f, 1.0f, 0, 0}, {0.5f, 0.9f, 0, 0},
                    {2.0f, 1.0f, 0, 0}, {1.0f, 1.0f, 0, 10},    {0.0f, 1.0f, 0, 0}, {1.0f, 0.3f, 0.2f, 7}};
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        llm_sampling_params q = llm_sampling_default_params();
        q.temperature = variants[v].temp;
        q.top_p = variants[v].top_p;
        q.min_p = variants[v].min_p;
        q.top_k = variants[v].top_k;
        q.top_logprobs = 1;
        q.seed = seed + v;
        s = make(&q, N);
        llm_sample_result r;
        const int32_t t = sample1(s, logits, &r);
        if (t >= 0) {
            const double want = logits[t] - zmax - log(sum);
            TU_CHECK(fabs(r.logprob - want) < 2e-5, "variant %zu: logprob %.7f vs %.7f", v, r.logprob, want);
            TU_CHECK(fabs(r.top[0].logprob - (zmax - zmax - log(sum))) < 2e-5, "variant %zu: top logprob", v);
        }
        llm_sampler_free(s);
    }
    free(st.gen);
    free(st.in_prompt);
    free(logits);
    free(z);

    /* top_logprobs beyond n_vocab: n_top = n_vocab */
    p = llm_sampling_default_params();
    p.top_logprobs = 20;
    s = make(&p, 3);
    const float three[3] = {0.0f, 1.0f, -1.0f};
    llm_sample_result r;
    sample1(s, three, &r);
    TU_CHECK(r.n_top == 3 && r.top[0].token == 1 && r.top[1].token == 0 && r.top[2].token == 2, "n_top 3");
    sum = exp(0.0) + exp(1.0) + exp(-1.0);
    TU_CHECK(fabs(r.top[2].logprob - (-1.0 - log(sum))) < 1e-6, "logprob of 2");
    llm_sampler_free(s);
}

static void check_invalid(const char *what, const llm_sampling_params *p, int32_t n_vocab, const char *name,
                          const char *range) {
    char err[256] = "untouched";
    llm_sampler *s = (llm_sampler *)&err; /* must be reset to NULL */
    llm_status st = llm_sampler_create(p, n_vocab, &s, err, sizeof err);
    TU_CHECK(st == LLM_ERR_INVALID_ARGUMENT, "%s: status %s", what, llm_status_name(st));
    TU_CHECK(s == NULL, "%s: out not NULL on failure", what);
    TU_CHECK(strstr(err, name) != NULL, "%s: message '%s' does not name %s", what, err, name);
    TU_CHECK(strstr(err, range) != NULL, "%s: message '%s' does not give the range %s", what, err, range);
    if (st == LLM_OK) llm_sampler_free(s);
}

static void test_invalid_params(void) {
    const llm_sampling_params d = llm_sampling_default_params();
    llm_sampling_params p;
#define BAD(field, value, name, range)                                                                       \
    do {                                                                                                     \
        p = d;                                                                                               \
        p.field = value;                                                                                     \
        check_invalid(#field " = " #value, &p, 100, name, range);                                            \
    } while (0)
    BAD(temperature, -0.1f, "temperature", ">= 0");
    BAD(temperature, NAN, "temperature", ">= 0");
    BAD(temperature, INFINITY, "temperature", ">= 0");
    BAD(top_k, -1, "top_k", ">= 0");
    BAD(top_p, 0.0f, "top_p", "(0, 1]");
    BAD(top_p, 1.01f, "top_p", "(0, 1]");
    BAD(top_p, -0.5f, "top_p", "(0, 1]");
    BAD(top_p, NAN, "top_p", "(0, 1]");
    BAD(min_p, -0.01f, "min_p", "[0, 1]");
    BAD(min_p, 1.5f, "min_p", "[0, 1]");
    BAD(min_p, NAN, "min_p", "[0, 1]");
    BAD(repetition_penalty, 0.0f, "repetition_penalty", "> 0");
    BAD(repetition_penalty, -1.0f, "repetition_penalty", "> 0");
    BAD(repetition_penalty, NAN, "repetition_penalty", "> 0");
    BAD(repetition_penalty, INFINITY, "repetition_penalty", "> 0");
    BAD(presence_penalty, 2.5f, "presence_penalty", "[-2, 2]");
    BAD(presence_penalty, -2.01f, "presence_penalty", "[-2, 2]");
    BAD(presence_penalty, NAN, "presence_penalty", "[-2, 2]");
    BAD(frequency_penalty, -3.0f, "frequency_penalty", "[-2, 2]");
    BAD(frequency_penalty, NAN, "frequency_penalty", "[-2, 2]");
    BAD(top_logprobs, -1, "top_logprobs", "[0, 20]");
    BAD(top_logprobs, 21, "top_logprobs", "[0, 20]");
#undef BAD
    llm_logit_bias b[2] = {{5, 1.0f}, {100, 1.0f}};
    p = d;
    p.logit_bias = b;
    p.n_logit_bias = 2;
    check_invalid("bias token n_vocab", &p, 100, "logit_bias[1].token", "[0, 100)");
    b[1].token = -1;
    check_invalid("bias token -1", &p, 100, "logit_bias[1].token", "[0, 100)");
    b[1].token = 6;
    b[1].bias = 100.5f;
    check_invalid("bias 100.5", &p, 100, "logit_bias[1].bias", "[-100, 100]");
    b[1].bias = -INFINITY;
    check_invalid("bias -inf", &p, 100, "logit_bias[1].bias", "[-100, 100]");
    b[1].bias = NAN;
    check_invalid("bias NaN", &p, 100, "logit_bias[1].bias", "[-100, 100]");
    b[1].bias = 2.0f;
    b[1].token = 5;
    check_invalid("bias token repeated", &p, 100, "logit_bias[1].token", "logit_bias[0]");
    p.logit_bias = NULL;
    check_invalid("bias NULL", &p, 100, "logit_bias", "n_logit_bias = 2");
    p = d;
    check_invalid("n_vocab 0", &p, 0, "n_vocab", ">= 1");
    check_invalid("n_vocab -5", &p, -5, "n_vocab", ">= 1");

    /* the boundaries themselves are valid */
    p = d;
    p.temperature = 0.0f;
    p.top_p = 1.0f;
    p.min_p = 1.0f;
    p.repetition_penalty = 1e-30f;
    p.presence_penalty = -2.0f;
    p.frequency_penalty = 2.0f;
    p.top_logprobs = 20;
    p.top_k = 1000000;
    llm_logit_bias edge[2] = {{0, -100.0f}, {99, 100.0f}};
    p.logit_bias = edge;
    p.n_logit_bias = 2;
    llm_sampler *s = make(&p, 100);
    llm_sampler_free(s);
    p.top_p = 1e-7f;
    p.min_p = 0.0f;
    p.presence_penalty = 2.0f;
    p.frequency_penalty = -2.0f;
    s = make(&p, 100);
    llm_sampler_free(s);

    /* no err buffer, no out */
    p = d;
    p.top_k = -1;
    TU_CHECK(llm_sampler_create(&p, 10, &s, NULL, 0) == LLM_ERR_INVALID_ARGUMENT, "err NULL");
    char err[128];
    TU_CHECK(llm_sampler_create(NULL, 10, NULL, err, sizeof err) == LLM_ERR_INVALID_ARGUMENT &&
                 strstr(err, "out"),
             "out NULL");
    /* a short err buffer is truncated and terminated */
    char tiny[8];
    memset(tiny, 'x', sizeof tiny);
    llm_sampler_create(&p, 10, &s, tiny, sizeof tiny);
    TU_CHECK(memchr(tiny, '\0', sizeof tiny) != NULL, "short err buffer terminated");
}

static void test_sample_errors(void) {
    enum { N = 40 };
    float a[N];
    for (int i = 0; i < N; i++) a[i] = (float)(i % 9) * 0.3f;
    llm_sampling_params p = llm_sampling_default_params();
    p.seed = 5;
    llm_sampler *s = make(&p, N), *twin = make(&p, N);
    llm_sample_result r;
    a[7] = NAN;
    TU_CHECK(llm_sampler_sample(s, a, &r) == LLM_ERR_INVALID_ARGUMENT, "NaN logit");
    TU_CHECK(strstr(llm_sampler_last_error(s), "logits[7]") && strstr(llm_sampler_last_error(s), "NaN"),
             "msg: %s", llm_sampler_last_error(s));
    a[7] = 0.0f;
    a[33] = INFINITY;
    TU_CHECK(llm_sampler_sample(s, a, &r) == LLM_ERR_INVALID_ARGUMENT, "+inf logit");
    TU_CHECK(strstr(llm_sampler_last_error(s), "logits[33]") && strstr(llm_sampler_last_error(s), "+inf"),
             "msg: %s", llm_sampler_last_error(s));
    a[33] = 0.0f;
    float none[N];
    for (int i = 0; i < N; i++) none[i] = -INFINITY;
    TU_CHECK(llm_sampler_sample(s, none, &r) == LLM_ERR_INVALID_ARGUMENT, "all -inf");
    TU_CHECK(strstr(llm_sampler_last_error(s), "-inf") != NULL, "msg: %s", llm_sampler_last_error(s));
    TU_CHECK(llm_sampler_accept_prompt(s, N) == LLM_ERR_INVALID_ARGUMENT, "prompt token out of range");
    TU_CHECK(strstr(llm_sampler_last_error(s), "40") != NULL, "msg: %s", llm_sampler_last_error(s));
    TU_CHECK(llm_sampler_accept_prompt(s, -1) == LLM_ERR_INVALID_ARGUMENT, "prompt token -1");
    TU_CHECK(llm_sampler_sample(s, NULL, &r) == LLM_ERR_INVALID_ARGUMENT, "logits NULL");
    TU_CHECK(llm_sampler_sample(s, a, NULL) == LLM_ERR_INVALID_ARGUMENT, "out NULL");
    TU_CHECK(llm_sampler_sample(NULL, a, &r) == LLM_ERR_INVALID_ARGUMENT, "sampler NULL");
    TU_CHECK(llm_sampler_accept_prompt(NULL, 0) == LLM_ERR_INVALID_ARGUMENT, "sampler NULL");
    /* the failed calls drew nothing and recorded nothing: the next 100 draws match the twin's */
    int same = 1;
    for (int i = 0; i < 100; i++) same &= sample1(s, a, NULL) == sample1(twin, a, NULL);
    TU_CHECK(same, "errors left the random stream untouched");
    /* the message of the last error stays after successful calls */
    TU_CHECK(strstr(llm_sampler_last_error(s), "NULL") != NULL, "last error kept: %s",
             llm_sampler_last_error(s));
    llm_sampler_free(s);
    llm_sampler_free(twin);

    /* bias that pushes the only finite logit to -inf is impossible (bias is finite), but all -inf
     * input stays an error with bias present */
    llm_logit_bias b[1] = {{3, 100.0f}};
    p.logit_bias = b;
    p.n_logit_bias = 1;
    s = make(&p, N);
    TU_CHECK(llm_sampler_sample(s, none, &r) == LLM_ERR_INVALID_ARGUMENT, "all -inf with bias");
    TU_CHECK(strstr(llm_sampler_last_error(s), "after logit_bias") != NULL, "msg: %s",
             llm_sampler_last_error(s));
    llm_sampler_free(s);
}

static void test_determinism(void) {
    /* Two samplers with the same seed give the same 10000 tokens on the same (fresh random, changing)
     * logits, whatever else runs in between; another seed gives a different sequence; reset replays. */
    uint64_t seed = tu_fresh_seed("test_sample determinism");
    tu_rng rng = {seed};
    enum { N = 512, STEPS = 10000 };
    float *logits = malloc((size_t)N * sizeof *logits);
    int32_t *seq_a = malloc(STEPS * sizeof *seq_a), *seq_b = malloc(STEPS * sizeof *seq_b),
            *seq_c = malloc(STEPS * sizeof *seq_c);
    llm_logit_bias bias[2] = {{3, 2.0f}, {400, -5.0f}};
    llm_sampling_params p = llm_sampling_default_params();
    p.temperature = 0.9f;
    p.top_k = 200;
    p.top_p = 0.97f;
    p.min_p = 0.01f;
    p.repetition_penalty = 1.1f;
    p.presence_penalty = 0.3f;
    p.frequency_penalty = 0.02f;
    p.logit_bias = bias;
    p.n_logit_bias = 2;
    p.seed = seed ^ 0x5eed;
    llm_sampler *a = make(&p, N), *b = make(&p, N);
    llm_sampling_params q = p;
    q.seed = p.seed + 1;
    llm_sampler *c = make(&q, N);
    q.seed = 77;
    q.top_k = 0;
    llm_sampler *noise = make(&q, N); /* unrelated activity in between */
    for (int i = 0; i < 20; i++) {
        llm_sampler_accept_prompt(a, i * 3);
        llm_sampler_accept_prompt(b, i * 3);
        llm_sampler_accept_prompt(c, i * 3);
    }
    float *saved = malloc((size_t)N * 64 * sizeof *saved); /* the first 64 steps' logits, for the replay */
    for (int step = 0; step < STEPS; step++) {
        for (int i = 0; i < N; i++) logits[i] = (float)((double)tu_rng_below(&rng, 100001) / 2e4 - 2.5);
        if (step < 64) memcpy(saved + (size_t)step * N, logits, N * sizeof *logits);
        seq_a[step] = sample1(a, logits, NULL);
        sample1(noise, logits, NULL);
        seq_b[step] = sample1(b, logits, NULL);
        seq_c[step] = sample1(c, logits, NULL);
    }
    int diff_ab = 0, diff_ac = 0;
    for (int i = 0; i < STEPS; i++) diff_ab += seq_a[i] != seq_b[i], diff_ac += seq_a[i] != seq_c[i];
    TU_CHECK(diff_ab == 0, "same seed: %d of %d tokens differ (seed %llu)", diff_ab, STEPS,
             (unsigned long long)seed);
    /* with ~100 plausible tokens per step, another stream agrees on few steps */
    TU_CHECK(diff_ac > STEPS / 2, "different seeds: only %d of %d tokens differ", diff_ac, STEPS);
    /* reset: history and random stream from the start */
    llm_sampler_reset(a);
    for (int i = 0; i < 20; i++) llm_sampler_accept_prompt(a, i * 3);
    int replay = 0;
    for (int step = 0; step < 64; step++) replay += sample1(a, saved + (size_t)step * N, NULL) == seq_b[step];
    TU_CHECK(replay == 64, "reset replays: %d of 64", replay);
    /* seed 0 is a valid seed, different from seed 1 */
    llm_sampling_params z = llm_sampling_default_params();
    llm_sampler *s0 = make(&z, N);
    z.seed = 1;
    llm_sampler *s1 = make(&z, N);
    int d01 = 0;
    for (int i = 0; i < 200; i++) d01 += sample1(s0, logits, NULL) != sample1(s1, logits, NULL);
    TU_CHECK(d01 > 100, "seed 0 vs 1: %d of 200 differ", d01);
    llm_sampler_free(s0);
    llm_sampler_free(s1);
    llm_sampler_free(a);
    llm_sampler_free(b);
    llm_sampler_free(c);
    llm_sampler_free(noise);
    free(saved);
    free(logits);
    free(seq_a);
    free(seq_b);
    free(seq_c);
}

static void test_exp(void) {
    /* the sampler's exponential against libm's double exp over its whole range */
    TU_CHECK(llm_smp_exp(0.0f) == 1.0f && llm_smp_exp(-0.0f) == 1.0f, "e^0 = 1 exactly");
    TU_CHECK(llm_smp_exp(-INFINITY) == 0.0f && llm_smp_exp(-87.5f) == 0.0f && llm_smp_exp(-1e30f) == 0.0f,
             "0 below -87");
    double worst = 0;
    float worst_x = 0;
    for (float x = -87.0f; x <= 0.0f; x += 0.000731f) {
        const double want = exp((double)x), got = llm_smp_exp(x);
        const double rel = fabs(got - want) / want;
        if (rel > worst) worst = rel, worst_x = x;
    }
    TU_CHECK(worst < 4e-7, "exp relative error %g at %g", worst, worst_x);
    /* monotone enough for weights: e^x never exceeds 1 for x <= 0 */
    for (float x = -1e-3f; x < 0.0f; x += 1e-6f) TU_CHECK(llm_smp_exp(x) <= 1.0f, "e^%g > 1", x);
}

int main(void) {
    test_defaults();
    test_exp();
    test_greedy();
    test_logit_bias();
    test_repetition_penalty();
    test_presence_frequency();
    test_top_k();
    test_top_p();
    test_min_p();
    test_banned_never_drawn();
    test_logprobs_reference();
    test_invalid_params();
    test_sample_errors();
    test_determinism();
    return tu_finish("test_sample");
}
