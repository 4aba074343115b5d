/* Sampler statistics: draws against distributions computed here independently (double precision,
 * by sorting), with Pearson's chi-square test at the 0.999 level, and the exact kept sets of many
 * random configurations against a sorting reference. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sample/sampler_internal.h"
#include "test_util.h"

/* 0.999 quantiles of the chi-square distribution for 1..40 degrees of freedom, as in standard tables
 * (e.g. NIST/SEMATECH e-Handbook of Statistical Methods, 1.3.6.7.4, "Critical values of the
 * chi-square distribution"); recomputed to 8 digits with mpmath 1.3.0 as the root x of
 * gammainc(df/2, 0, x/2, regularized=True) = 0.999. */
static const double chi2_q999[41] = {
    0,         10.827566, 13.815511, 16.266236, 18.466827, 20.515006, 22.457744, 24.321886, 26.124482,
    27.877165, 29.588298, 31.264134, 32.909490, 34.528179, 36.123274, 37.697298, 39.252355, 40.790217,
    42.312396, 43.820196, 45.314747, 46.797038, 48.267942, 49.728232, 51.178598, 52.619656, 54.051962,
    55.476020, 56.892285, 58.301173, 59.703064, 61.098306, 62.487219, 63.870099, 65.247217, 66.618829,
    67.985168, 69.346452, 70.702887, 72.054663, 73.401958};

/* Pearson's statistic of counts[] against probabilities prob[] over n categories and `total` draws.
 * A category of probability 0 that was drawn makes it +inf. *df: categories with p > 0, minus 1.
 * Every category with p > 0 must expect at least 5 draws (the test's validity condition). */
static double chi_square(const int *counts, const double *prob, int n, int total, int *df) {
    double chi = 0;
    int cats = 0;
    for (int i = 0; i < n; i++) {
        if (prob[i] <= 0) {
            if (counts[i]) chi = INFINITY;
            continue;
        }
        const double e = prob[i] * total;
        TU_CHECK(e >= 5, "category %d expects %.2f draws (< 5): the test is badly designed", i, e);
        chi += (counts[i] - e) * (counts[i] - e) / e;
        cats++;
    }
    *df = cats - 1;
    return chi;
}

static int rejects(const int *counts, const double *prob, int n, int total, double *chi_out, int *df_out) {
    int df;
    const double chi = chi_square(counts, prob, n, total, &df);
    if (chi_out) *chi_out = chi;
    if (df_out) *df_out = df;
    if (df < 1 || df > 40) return chi == INFINITY ? 1 : -1;
    return chi > chi2_q999[df];
}

typedef struct ranked {
    double z;
    int id;
} ranked;

static int by_logit_then_id(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->z != y->z) return x->z > y->z ? -1 : 1;
    return x->id - y->id;
}

/* The sampling distribution of llamac.h computed directly: sort by (logit desc, id asc), weights
 * e^((l - lmax) / T) in double, top-k, top-p over the renormalized top-k (shortest prefix with
 * mass >= top_p), min-p against the largest weight; prob[] normalized over the kept tokens. */
static void reference_dist(const float *l, int n, double temp, int top_k, double top_p, double min_p,
                           double *prob) {
    ranked *r = malloc((size_t)n * sizeof *r);
    for (int i = 0; i < n; i++) r[i] = (ranked){l[i], i};
    qsort(r, (size_t)n, sizeof *r, by_logit_then_id);
    const int k = (top_k > 0 && top_k < n) ? top_k : n;
    double *w = malloc((size_t)n * sizeof *w);
    double sum_k = 0;
    for (int j = 0; j < k; j++) sum_k += w[j] = exp((r[j].z - r[0].z) / temp);
    int keep = k;
    if (top_p < 1) {
        double cum = 0;
        for (int j = 0; j < k; j++) {
            cum += w[j];
            if (cum >= top_p * sum_k) {
                keep = j + 1;
                break;
            }
        }
    }
    double total = 0;
    for (int i = 0; i < n; i++) prob[i] = 0;
    for (int j = 0; j < keep; j++)
        if (w[j] >= min_p * w[0]) total += prob[r[j].id] = w[j];
    for (int i = 0; i < n; i++) prob[i] /= total;
    free(r);
    free(w);
}

static llm_sampler *make(const llm_sampling_params *p, int32_t n_vocab) {
    char err[256];
    llm_sampler *s = NULL;
    llm_status st = llm_sampler_create(p, n_vocab, &s, err, sizeof err);
    TU_CHECK(st == LLM_OK && s, "llm_sampler_create: %s (%s)", llm_status_name(st), err);
    return s;
}

static void draw_counts(const llm_sampling_params *p, const float *l, int n, int draws, int *counts) {
    llm_sampler *s = make(p, n);
    memset(counts, 0, (size_t)n * sizeof *counts);
    llm_sample_result r;
    for (int i = 0; i < draws && s; i++) {
        if (llm_sampler_sample(s, l, &r) != LLM_OK) {
            TU_CHECK(0, "sample failed: %s", llm_sampler_last_error(s));
            break;
        }
        counts[r.token]++;
    }
    llm_sampler_free(s);
}

/* Twelve logits; at T = 1 the probabilities by rank are
 *   token  2 (2.5) .27511   7 (2.2) .20380   4 (1.9) .15098  10 (1.5) .10121   0 (1.2) .07498
 *         11 (0.9) .05554   3 (0.7) .04547   8 (0.4) .03369   6 (0.0) .02258   1 (-0.3) .01673
 *          9 (-0.6) .01239  5 (-1.1) .00752
 * cumulative .27511 .47891 .62989 .73110 .80607 .86162 .90709 .94078 .96336 .98009 .99248 1 */
static const float twelve[12] = {1.2f, -0.3f, 2.5f, 0.7f, 1.9f, -1.1f, 0.0f, 2.2f, 0.4f, -0.6f, 1.5f, 0.9f};

enum { DRAWS = 200000 };

typedef struct setting {
    const char *name;
    float temp;
    int top_k;
    float top_p, min_p;
    int kept[13]; /* the hand-computed kept set, -1 terminated */
} setting;

static const setting settings[] = {
    /* all twelve at T = 0.7: probabilities e^(l / 0.7) / sum, from .36183 (token 2) to .00211 (token 5,
     * 422 expected draws) */
    {"temperature 0.7", 0.7f, 0, 1.0f, 0.0f, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, -1}},
    /* the five largest: 2, 7, 4, 10, 0 */
    {"top_k 5", 1.0f, 5, 1.0f, 0.0f, {0, 2, 4, 7, 10, -1}},
    /* cumulative .80607 >= .8 at the fifth: 2, 7, 4, 10, 0 */
    {"top_p 0.8", 1.0f, 0, 0.8f, 0.0f, {0, 2, 4, 7, 10, -1}},
    /* p >= 0.1 p_max <=> l >= 2.5 + ln 0.1 = 0.19741: 0, 2, 3, 4, 7, 8, 10, 11 */
    {"min_p 0.1", 1.0f, 0, 1.0f, 0.1f, {0, 2, 3, 4, 7, 8, 10, 11, -1}},
    /* T = 0.8, top_k 8 drops 6, 1, 9, 5; top_p 0.9 over the eight at T 0.8 keeps the first six
     * (weights e^((l - 2.5) / 0.8): 1, .6873, .4724, .2865, .1969, .1353, .1054, .0724; sum 2.9562;
     * cumulative / sum: .3383 .5708 .7305 .8275 .8941 .9398 -> six); min_p 0.15 then drops 11
     * (.1353 < .15): 2, 7, 4, 10, 0 */
    {"T 0.8 + top_k 8 + top_p 0.9 + min_p 0.15", 0.8f, 8, 0.9f, 0.15f, {0, 2, 4, 7, 10, -1}},
};

static void test_small_vocabulary(void) {
    double prob[12], wrong[12];
    int counts[12];
    for (size_t c = 0; c < sizeof settings / sizeof settings[0]; c++) {
        const setting *st = &settings[c];
        reference_dist(twelve, 12, st->temp, st->top_k, st->top_p, st->min_p, prob);
        /* the reference agrees with the hand-computed kept set */
        char in[12] = {0};
        for (int i = 0; st->kept[i] >= 0; i++) in[st->kept[i]] = 1;
        for (int t = 0; t < 12; t++)
            TU_CHECK((prob[t] > 0) == in[t], "%s: reference keeps token %d: %d, by hand %d", st->name, t,
                     prob[t] > 0, in[t]);
        llm_sampling_params p = llm_sampling_default_params();
        p.temperature = st->temp;
        p.top_k = st->top_k;
        p.top_p = st->top_p;
        p.min_p = st->min_p;
        p.seed = 20240601 + c;
        draw_counts(&p, twelve, 12, DRAWS, counts);
        double chi;
        int df;
        TU_CHECK(rejects(counts, prob, 12, DRAWS, &chi, &df) == 0, "%s: chi-square %.2f > %.2f (df %d)",
                 st->name, chi, df >= 1 && df <= 40 ? chi2_q999[df] : NAN, df);
        printf("  %-42s chi-square %6.2f, df %2d, 0.999 quantile %.2f\n", st->name, chi, df,
               df >= 1 && df <= 40 ? chi2_q999[df] : NAN);

        /* The test can fail: the same draws against distributions that are slightly wrong. */
        if (c == 0) {
            /* temperature 0.75 instead of 0.7 */
            reference_dist(twelve, 12, 0.75, 0, 1.0, 0.0, wrong);
            TU_CHECK(rejects(counts, wrong, 12, DRAWS, &chi, &df) == 1, "T 0.75 not rejected (chi %.2f)",
                     chi);
            printf("    wrong distribution (T 0.75): chi-square %.1f -> rejected\n", chi);
            /* two tokens' probabilities swapped (.05649 and .03680) */
            memcpy(wrong, prob, sizeof wrong);
            wrong[0] = prob[11], wrong[11] = prob[0];
            TU_CHECK(rejects(counts, wrong, 12, DRAWS, &chi, &df) == 1, "swap not rejected (chi %.2f)", chi);
            printf("    wrong distribution (swap): chi-square %.1f -> rejected\n", chi);
            /* 1% of the mass moved from the most to the least likely token */
            memcpy(wrong, prob, sizeof wrong);
            wrong[2] -= 0.01, wrong[5] += 0.01;
            TU_CHECK(rejects(counts, wrong, 12, DRAWS, &chi, &df) == 1, "1%% shift not rejected (chi %.2f)",
                     chi);
            printf("    wrong distribution (1%% shift): chi-square %.1f -> rejected\n", chi);
        }
        if (c == 1) {
            /* top_k 6 would also keep token 11 */
            reference_dist(twelve, 12, 1.0, 6, 1.0, 0.0, wrong);
            TU_CHECK(rejects(counts, wrong, 12, DRAWS, &chi, &df) == 1, "top_k 6 not rejected (chi %.2f)",
                     chi);
            printf("    wrong distribution (top_k 6): chi-square %.1f -> rejected\n", chi);
        }
        if (c == 2) {
            /* top_p 0.85 would also keep token 11 (cumulative .86162) */
            reference_dist(twelve, 12, 1.0, 0, 0.85, 0.0, wrong);
            TU_CHECK(rejects(counts, wrong, 12, DRAWS, &chi, &df) == 1, "top_p 0.85 not rejected (chi %.2f)",
                     chi);
            printf("    wrong distribution (top_p 0.85): chi-square %.1f -> rejected\n", chi);
        }
    }
}

/* Fixed vocabularies of 2000 and 8000 logits (fixed seed: the test is deterministic), draws binned by
 * id into 25 ranges (which straddle the sampler's 256-token blocks), against the reference. */
static void test_larger_vocabulary(void) {
    enum { NMAX = 8000, BINS = 25 };
    float *l = malloc(NMAX * sizeof *l), *flat = malloc(NMAX * sizeof *flat);
    double *prob = malloc(NMAX * sizeof *prob);
    int *counts = malloc(NMAX * sizeof *counts);
    tu_rng rng = {0x5a3b1e};
    for (int i = 0; i < NMAX; i++) {
        l[i] = (float)((double)tu_rng_below(&rng, 1000001) / 1e5 - 5.0); /* [-5, 5] */
        flat[i] = (float)((double)tu_rng_below(&rng, 1000001) / 2e6);    /* [0, 0.5] */
    }
    struct {
        const char *name;
        const float *logits;
        int n, draws;
        float temp, top_p, min_p;
    } cases[] = {
        {"2000 tokens, T 1 (one pass)", l, 2000, 8000, 1.0f, 1.0f, 0.0f},
        {"2000 tokens, T 0.8 + min_p 0.02", l, 2000, 8000, 0.8f, 1.0f, 0.02f},
        {"2000 tokens, top_p 0.95 + min_p 0.5, T 0.3", l, 2000, 8000, 0.3f, 0.95f, 0.5f},
        /* more than the sampler lists at once: the band search and a draw over the vocabulary */
        {"8000 near-equal logits, top_p 0.7, T 1.2", flat, 8000, 3000, 1.2f, 0.7f, 0.0f},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int n = cases[c].n;
        reference_dist(cases[c].logits, n, cases[c].temp, 0, cases[c].top_p, cases[c].min_p, prob);
        llm_sampling_params p = llm_sampling_default_params();
        p.temperature = cases[c].temp;
        p.top_p = cases[c].top_p;
        p.min_p = cases[c].min_p;
        p.seed = 777 + c;
        draw_counts(&p, cases[c].logits, n, cases[c].draws, counts);
        int bin_counts[BINS] = {0}, outside = 0;
        double bin_prob[BINS] = {0};
        for (int i = 0; i < n; i++) {
            bin_counts[i * BINS / n] += counts[i];
            bin_prob[i * BINS / n] += prob[i];
            if (prob[i] == 0 && counts[i]) outside++;
        }
        TU_CHECK(outside == 0, "%s: %d tokens outside the kept set drawn", cases[c].name, outside);
        double chi;
        int df;
        TU_CHECK(rejects(bin_counts, bin_prob, BINS, cases[c].draws, &chi, &df) == 0,
                 "%s: chi-square %.2f (df %d)", cases[c].name, chi, df);
        printf("  %-44s chi-square %6.2f, df %2d, 0.999 quantile %.2f\n", cases[c].name, chi, df,
               df >= 1 && df <= 40 ? chi2_q999[df] : NAN);
    }
    free(l);
    free(flat);
    free(prob);
    free(counts);
}

/* Exact kept sets: random vocabularies and settings, the sampler's set (llm_smp_kept_mask) against
 * the reference's. Tokens whose fate is within rounding (a top-p sum or min-p ratio within 1e-6 of its
 * threshold; float exp has ~1e-7 relative error) or whose probability is below 1e-35 (the sampler's
 * weights are 0 past e^-87) are not compared. */
static void test_kept_sets(void) {
    const uint64_t seed = tu_fresh_seed("test_sample_stats kept sets");
    tu_rng rng = {seed};
    enum { NMAX = 40000 };
    float *l = malloc(NMAX * sizeof *l);
    ranked *r = malloc(NMAX * sizeof *r);
    double *w = malloc(NMAX * sizeof *w);
    uint8_t *mask = malloc(NMAX), *want = malloc(NMAX), *either = malloc(NMAX);
    for (int iter = 0; iter < 80; iter++) {
        /* every fourth: a large vocabulary, nearly flat, with a wide top-p: the band search */
        const int big = iter % 4 == 3;
        const int n = big ? 10000 + (int)tu_rng_below(&rng, NMAX - 10000) : 1 + (int)tu_rng_below(&rng, 6000);
        const int shape = big ? 1 : (int)tu_rng_below(&rng, 4);
        for (int i = 0; i < n; i++) {
            double v = (double)tu_rng_below(&rng, 1000001) / 1e6; /* [0, 1] */
            switch (shape) {
            case 0:
                v = v * 20 - 10;
                break; /* wide */
            case 1:
                v = v * 0.3;
                break; /* nearly flat: wide nuclei */
            case 2:
                v = floor(v * 8) * 0.5;
                break; /* many exact ties */
            default:
                v = (i % 97 == 0) ? 8 + v : v * 4 - 2;
                break; /* a few peaks */
            }
            l[i] = (float)v;
        }
        if (tu_rng_below(&rng, 4) == 0) l[tu_rng_below(&rng, n)] = -INFINITY;
        llm_sampling_params p = llm_sampling_default_params();
        const int tk = (int)tu_rng_below(&rng, 4);
        p.temperature = tk == 0 ? 0.0f : (float)(0.2 + (double)tu_rng_below(&rng, 1800) / 1000.0);
        /* each truncation alone, then all together, in turn */
        const int which = big ? 1 : iter % 4 == 2 ? 3 : iter % 3;
        if (which == 0 || which == 3) p.top_k = 1 + (int)tu_rng_below(&rng, (uint32_t)n + 50);
        if (which == 1 || which == 3) p.top_p = (float)(0.01 + (double)tu_rng_below(&rng, 990) / 1000.0);
        if (which == 2 || which == 3) p.min_p = (float)((double)tu_rng_below(&rng, 300) / 1000.0);
        if (big && p.temperature == 0.0f) p.temperature = 1.0f;
        llm_sampler *s = make(&p, n);
        if (!s) break;
        TU_CHECK(llm_smp_kept_mask(s, l, mask) == LLM_OK, "kept mask");
        llm_sampler_free(s);

        /* the reference */
        for (int i = 0; i < n; i++) r[i] = (ranked){l[i], i};
        qsort(r, (size_t)n, sizeof *r, by_logit_then_id);
        memset(want, 0, (size_t)n);
        memset(either, 0, (size_t)n);
        if (p.temperature == 0.0f) {
            want[r[0].id] = 1;
        } else {
            const int k = (p.top_k > 0 && p.top_k < n) ? p.top_k : n;
            double sum = 0;
            for (int j = 0; j < k; j++) sum += w[j] = exp((r[j].z - r[0].z) / p.temperature);
            int keep = k;
            if (p.top_p < 1.0f) {
                const double target = (double)p.top_p * sum, eps = 1e-6 * sum;
                double cum = 0, before = 0;
                for (int j = 0; j < k; j++) {
                    before = cum;
                    cum += w[j];
                    if (cum >= target) {
                        keep = j + 1;
                        break;
                    }
                }
                if (target - before < eps) either[r[keep - 1].id] = 1;      /* fewer might do */
                if (cum - target < eps && keep < k) either[r[keep].id] = 1; /* one more might be needed */
            }
            for (int j = 0; j < keep; j++) {
                want[r[j].id] = w[j] >= p.min_p;
                if (fabs(w[j] - p.min_p) <= 1e-6 * p.min_p) either[r[j].id] = 1;
                if ((r[j].z - r[0].z) / p.temperature < -80) either[r[j].id] = 1;
            }
        }
        int wrong = 0, first = -1;
        for (int i = 0; i < n; i++)
            if (!either[i] && mask[i] != want[i]) {
                if (first < 0) first = i;
                wrong++;
            }
        TU_CHECK(wrong == 0,
                 "iter %d (n %d shape %d T %g top_k %d top_p %g min_p %g): %d tokens differ, first %d "
                 "(sampler %d, "
                 "reference %d) (seed %llu)",
                 iter, n, shape, p.temperature, p.top_k, p.top_p, p.min_p, wrong, first,
                 first >= 0 ? mask[first] : 0, first >= 0 ? want[first] : 0, (unsigned long long)seed);
    }
    free(l);
    free(r);
    free(w);
    free(mask);
    free(want);
    free(either);
}

int main(void) {
    test_small_vocabulary();
    test_larger_vocabulary();
    test_kept_sets();
    return tu_finish("test_sample_stats");
}
