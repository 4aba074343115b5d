/* The sampler: logits -> next token, as declared in llamac.h ("Sampling").
 *
 * One call makes a few passes over the vocabulary and never sorts it:
 *   1. prepare: max of the logits and the NaN/+inf check; when logit_bias or penalties apply, the
 *      same pass copies the logits to scratch and only the few touched tokens are then changed;
 *   2. the log-softmax normalizer at temperature 1 (for the reported log-probabilities);
 *   3. greedy: the first token equal to the max. Otherwise truncate, then draw:
 *      - no top-k/top-p: every token (min-p as a mask); a pass of weights at the temperature keeps a
 *        sum per block of 256 tokens, the draw finds the block and recomputes only that block;
 *      - top-k: a bounded heap gives the k candidates, top-p and the draw work on that list;
 *      - top-p alone: passes that measure the mass above a few logit cuts narrow down where the
 *        nucleus ends (top_p_full), then either a short list or a block draw as above, keeping the
 *        tokens no worse than the nucleus' last.
 *   When the temperature is 1 and nothing truncates, 2 and the draw's pass are one pass.
 * Every weight comes from llm_smp_weight, so a weight recomputed later is bit-identical. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sample/kernels.h"
#include "sample/sampler_internal.h"

static void copy_message(const llm_error *e, char *err, size_t err_cap) {
    if (err && err_cap) snprintf(err, err_cap, "%s", e->msg);
}

llm_status llm_sampler_create(const llm_sampling_params *params, int32_t n_vocab, llm_sampler **out,
                              char *err, size_t err_cap) {
    llm_error e;
    llm_error_clear(&e);
    if (err && err_cap) err[0] = '\0';
    if (!out) {
        llm_fail(&e, LLM_ERR_INVALID_ARGUMENT, "llm_sampler_create: out is NULL");
        copy_message(&e, err, err_cap);
        return e.status;
    }
    *out = NULL;
    const llm_sampling_params p = params ? *params : llm_sampling_default_params();
    llm_status st = llm_smp_validate(&p, n_vocab, &e);
    if (st != LLM_OK) {
        copy_message(&e, err, err_cap);
        return st;
    }
    const size_t n = (size_t)n_vocab;
    llm_sampler *s = calloc(1, sizeof *s);
    if (s) {
        s->history = calloc(n, sizeof *s->history);
        s->seen_ids = malloc(n * sizeof *s->seen_ids);
        s->z = malloc(n * sizeof *s->z);
        s->cand = malloc(n * sizeof *s->cand);
        s->block_sums = malloc((n + LLM_SMP_BLOCK - 1) / LLM_SMP_BLOCK * sizeof *s->block_sums);
        if (p.n_logit_bias) s->bias = malloc(p.n_logit_bias * sizeof *s->bias);
    }
    if (!s || !s->history || !s->seen_ids || !s->z || !s->cand || !s->block_sums ||
        (p.n_logit_bias && !s->bias)) {
        llm_sampler_free(s);
        llm_fail(&e, LLM_ERR_OUT_OF_MEMORY,
                 "llm_sampler_create: out of memory for n_vocab %d (about %zu bytes)", (int)n_vocab, n * 20);
        copy_message(&e, err, err_cap);
        return e.status;
    }
    st = llm_smp_check_bias_repeats(p.logit_bias, p.n_logit_bias, s->history, &e);
    if (st != LLM_OK) {
        llm_sampler_free(s);
        copy_message(&e, err, err_cap);
        return st;
    }
    for (size_t i = 0; i < p.n_logit_bias; i++) s->bias[i] = p.logit_bias[i];
    s->params = p;
    s->params.logit_bias = s->bias;
    s->n_bias = p.n_logit_bias;
    s->n_vocab = n_vocab;
    llm_smp_rng_seed(&s->rng, p.seed);
    *out = s;
    return LLM_OK;
}

void llm_sampler_free(llm_sampler *s) {
    if (!s) return;
    free(s->history);
    free(s->seen_ids);
    free(s->z);
    free(s->cand);
    free(s->block_sums);
    free(s->bias);
    free(s);
}

const char *llm_sampler_last_error(const llm_sampler *s) {
    return s ? s->err.msg : "";
}

void llm_sampler_reset(llm_sampler *s) {
    if (!s) return;
    for (int32_t i = 0; i < s->n_seen; i++) s->history[s->seen_ids[i]] = 0;
    s->n_seen = 0;
    llm_smp_rng_seed(&s->rng, s->params.seed);
}

static void note_seen(llm_sampler *s, int32_t token, uint32_t before) {
    if (before == 0) s->seen_ids[s->n_seen++] = token;
}

llm_status llm_sampler_accept_prompt(llm_sampler *s, int32_t token) {
    if (!s) return LLM_ERR_INVALID_ARGUMENT;
    if (token < 0 || token >= s->n_vocab)
        return llm_fail(&s->err, LLM_ERR_INVALID_ARGUMENT,
                        "llm_sampler_accept_prompt: token %d is out of range [0, %d)", (int)token,
                        (int)s->n_vocab);
    const uint32_t h = s->history[token];
    s->history[token] = h | LLM_SMP_IN_PROMPT;
    note_seen(s, token, h);
    return LLM_OK;
}

static void record_generated(llm_sampler *s, int32_t token) {
    const uint32_t h = s->history[token];
    if ((h & LLM_SMP_GEN_MASK) != LLM_SMP_GEN_MASK) s->history[token] = h + 1;
    note_seen(s, token, h);
}

static int modifies_logits(const llm_sampler *s) {
    const llm_sampling_params *p = &s->params;
    return s->n_bias > 0 || (s->n_seen > 0 && (p->repetition_penalty != 1.0f || p->presence_penalty != 0.0f ||
                                               p->frequency_penalty != 0.0f));
}

/* s->z holds a copy of logits whose max is raw_max: applies logit_bias, then the repetition penalty,
 * then presence/frequency penalties to the tokens they touch, and returns the new max. */
static float apply_bias_and_penalties(llm_sampler *s, const float *logits, float raw_max) {
    const llm_sampling_params *p = &s->params;
    float *z = s->z;
    for (size_t i = 0; i < s->n_bias; i++) z[s->bias[i].token] = logits[s->bias[i].token] + s->bias[i].bias;
    const float rp = p->repetition_penalty;
    for (int32_t i = 0; i < s->n_seen; i++) {
        const int32_t t = s->seen_ids[i];
        float v = z[t];
        /* HF RepetitionPenaltyLogitsProcessor, once per distinct token seen: dividing a positive logit
         * and multiplying a negative one, a penalty > 1 makes the token less likely whatever its sign. */
        if (rp != 1.0f) v = v > 0.0f ? v / rp : v * rp;
        const uint32_t gen = s->history[t] & LLM_SMP_GEN_MASK;
        if (gen > 0) v -= p->presence_penalty + p->frequency_penalty * (float)gen;
        z[t] = v;
    }
    /* Only a division by a tiny penalty can overflow; a logit of +inf would break the softmax. */
    float new_max = raw_max;
    int lost_max = 0;
    for (size_t i = 0; i < s->n_bias + (size_t)s->n_seen; i++) {
        const int32_t t = i < s->n_bias ? s->bias[i].token : s->seen_ids[i - s->n_bias];
        if (z[t] > FLT_MAX) z[t] = FLT_MAX;
        if (z[t] > new_max) new_max = z[t];
        if (logits[t] == raw_max && z[t] < raw_max) lost_max = 1;
    }
    if (lost_max) {
        int64_t bad;
        new_max = llm_smp_max(z, s->n_vocab, &bad);
    }
    return new_max;
}

/* Within block [start, end) of the full-vocabulary draw: the first kept token whose running weight
 * sum (from cum) exceeds target, else (rounding) the last kept token there with positive weight. */
static int32_t draw_in_block(const float *z, int64_t start, int64_t end, float zmax, float temp,
                             llm_smp_keep keep, double cum, double target) {
    int64_t last = -1;
    for (int64_t i = start; i < end; i++) {
        const float q = llm_smp_weight(z[i], zmax, temp);
        if (!llm_smp_kept(z[i], (int32_t)i, q, keep) || q == 0.0f) continue;
        cum += (double)q;
        last = i;
        if (cum > target) return (int32_t)i;
    }
    return (int32_t)last;
}

/* A draw over the whole vocabulary, after llm_smp_exp_blocks(z, n, zmax, temp, keep) filled the
 * block sums: u picks a point of the kept mass, the block sums find its block, that block alone is
 * recomputed. */
static int32_t draw_full(const llm_sampler *s, const float *z, float zmax, float temp, llm_smp_keep keep,
                         double u) {
    const int64_t n = s->n_vocab, nb = (n + LLM_SMP_BLOCK - 1) / LLM_SMP_BLOCK;
    const double *bs = s->block_sums;
    double total = 0.0;
    for (int64_t b = 0; b < nb; b++) total += bs[b];
    const double target = u * total;
    double cum = 0.0;
    int64_t last = -1;
    for (int64_t b = 0; b < nb; b++) {
        if (!(bs[b] > 0.0)) continue;
        last = b;
        if (cum + bs[b] > target) {
            const int64_t end = (b + 1) * LLM_SMP_BLOCK < n ? (b + 1) * LLM_SMP_BLOCK : n;
            const int32_t t = draw_in_block(z, b * LLM_SMP_BLOCK, end, zmax, temp, keep, cum, target);
            if (t >= 0) return t;
        }
        cum += bs[b];
    }
    /* Rounding left target at or past the last sum: the last kept token with positive weight. The
     * best token is always kept (weight 1 >= min_p), so there is one. */
    const int64_t end = (last + 1) * LLM_SMP_BLOCK < n ? (last + 1) * LLM_SMP_BLOCK : n;
    return draw_in_block(z, last * LLM_SMP_BLOCK, end, zmax, temp, keep, 0.0, INFINITY);
}

/* A draw among candidates c[0..m) (holding the best token), keeping those with weight >= qmin. */
static int32_t draw_list(const llm_smp_cand *c, int32_t m, float zmax, float temp, float qmin, double u) {
    double total = 0.0;
    for (int32_t j = 0; j < m; j++) {
        const float q = llm_smp_weight(c[j].z, zmax, temp);
        if (q >= qmin) total += (double)q;
    }
    const double target = u * total;
    double cum = 0.0;
    int32_t last = -1;
    for (int32_t j = 0; j < m; j++) {
        const float q = llm_smp_weight(c[j].z, zmax, temp);
        if (q < qmin || q == 0.0f) continue;
        cum += (double)q;
        last = j;
        if (cum > target) return c[j].id;
    }
    return c[last].id;
}

/* What the draw chooses from: candidates list[0..m) whose weight is >= keep.qmin, or, when list is
 * NULL, every token of the vocabulary that keep admits. */
typedef struct kept_set {
    const llm_smp_cand *list;
    int32_t m;
    llm_smp_keep keep;
} kept_set;

/* Top-p over the whole vocabulary without sorting it.
 *
 * The nucleus is a prefix of the better-order, and so is {z >= cut} for any cut. A pass measures the
 * mass and count above a few cuts; the band [lo, hi) between the lowest cut whose mass is too small
 * (hi: every token above it is in the nucleus) and the highest whose mass suffices (lo: the nucleus
 * ends at or above it) holds the nucleus' last token. Further passes narrow the band until it or
 * everything above lo is small; then a heap over those tokens, popped best first, finds where the
 * nucleus ends. A small nucleus (most steps of a real model) ends after the first pass with a short
 * list; a wide one costs a few passes and a draw over the vocabulary that keeps the tokens no worse
 * than the nucleus' last. Thousands of equal logits at the boundary leave a band no cut can split:
 * the heap over it is still exact (and skipped when the band is one tie, already in id order). */
#define NUCLEUS_SMALL      4096
#define NUCLEUS_MAX_PASSES 6

static kept_set top_p_full(llm_sampler *s, const float *z, float zmax, double *norm) {
    const llm_sampling_params *p = &s->params;
    const int32_t n = s->n_vocab;
    const float temp = p->temperature;
    static const float first_nats[LLM_SMP_NCUT] = {2.0f, 5.0f, 10.0f, 20.0f};
    float cut[LLM_SMP_NCUT];
    double total, mass[LLM_SMP_NCUT];
    int64_t count[LLM_SMP_NCUT];
    for (int j = 0; j < LLM_SMP_NCUT; j++) cut[j] = zmax - temp * first_nats[j];
    llm_smp_exp_masses(z, n, zmax, temp, cut, &total, mass, count);
    if (temp == 1.0f) *norm = total; /* the log-softmax normalizer comes for free */
    const double target = (double)p->top_p * total;
    /* The margin covers the different summation orders of the passes and of the heap walk. */
    const double need = target * (1.0 + 1e-9);
    float lo = -INFINITY, hi = INFINITY;
    double hi_mass = 0.0;
    int64_t lo_count = n, hi_count = 0;
    for (int pass = 0;; pass++) {
        const int64_t band_before = lo_count - hi_count;
        /* cuts come in decreasing order, so masses and counts increase */
        for (int j = 0; j < LLM_SMP_NCUT; j++) {
            if (!(cut[j] > lo && cut[j] < hi)) continue;
            if (mass[j] >= need) {
                lo = cut[j];
                lo_count = count[j];
                break;
            }
            hi = cut[j];
            hi_mass = mass[j];
            hi_count = count[j];
        }
        if (lo_count <= NUCLEUS_SMALL) {
            const int32_t m = llm_smp_collect_range(z, n, lo, INFINITY, s->cand);
            return (kept_set){s->cand, llm_smp_nucleus(s->cand, m, zmax, temp, target), {p->min_p, 0, 0}};
        }
        if (lo_count - hi_count <= NUCLEUS_SMALL || lo == -INFINITY || pass == NUCLEUS_MAX_PASSES ||
            (pass > 0 && lo_count - hi_count >= band_before))
            break;
        const float top = hi == INFINITY ? zmax : hi;
        for (int j = 0; j < LLM_SMP_NCUT; j++)
            cut[j] = top - (top - lo) * (float)(j + 1) / (float)(LLM_SMP_NCUT + 1);
        double unused;
        llm_smp_exp_masses(z, n, zmax, temp, cut, &unused, mass, count);
    }
    const int32_t m = llm_smp_collect_range(z, n, lo, hi, s->cand);
    const int32_t r = llm_smp_nucleus(s->cand, m, zmax, temp, target - hi_mass);
    return (kept_set){NULL, 0, {p->min_p, s->cand[r - 1].z, s->cand[r - 1].id}};
}

/* The tokens a draw at temperature > 0 chooses from: top-k, then top-p, then min-p. Sets *norm (the
 * normalizer at temperature 1) when a pass it made already computed it. */
static kept_set truncate(llm_sampler *s, const float *z, float zmax, double *norm) {
    const llm_sampling_params *p = &s->params;
    const int32_t n = s->n_vocab;
    const float temp = p->temperature;
    if (p->top_k > 0 && p->top_k < n) {
        llm_smp_cand *c = s->cand;
        int32_t m = llm_smp_select_top(z, n, p->top_k, c);
        if (p->top_p < 1.0f) {
            double total = 0.0;
            for (int32_t j = 0; j < m; j++) total += (double)llm_smp_weight(c[j].z, zmax, temp);
            m = llm_smp_nucleus(c, m, zmax, temp, (double)p->top_p * total);
        }
        return (kept_set){c, m, {p->min_p, 0, 0}};
    }
    if (p->top_p < 1.0f) return top_p_full(s, z, zmax, norm);
    return (kept_set){NULL, 0, {p->min_p, -INFINITY, INT32_MAX}};
}

static int32_t draw(llm_sampler *s, const kept_set *k, const float *z, float zmax, double u) {
    const float temp = s->params.temperature;
    if (k->list) return draw_list(k->list, k->m, zmax, temp, k->keep.qmin, u);
    double unused;
    llm_smp_exp_blocks(z, s->n_vocab, zmax, temp, k->keep, s->block_sums, &unused);
    return draw_full(s, z, zmax, temp, k->keep, u);
}

/* The logits after bias and penalties (*z: the caller's or the scratch copy) and their max. */
static llm_status prepare(llm_sampler *s, const float *logits, const float **z, float *zmax) {
    const int32_t n = s->n_vocab;
    int64_t bad;
    const int copy = modifies_logits(s);
    if (copy) {
        *zmax = llm_smp_copy_max(logits, s->z, n, &bad);
        if (bad < 0) *zmax = apply_bias_and_penalties(s, logits, *zmax);
        *z = s->z;
    } else {
        *zmax = llm_smp_max(logits, n, &bad);
        *z = logits;
    }
    if (bad >= 0)
        return llm_fail(&s->err, LLM_ERR_INVALID_ARGUMENT,
                        "llm_sampler_sample: logits[%lld] is %s (logits must be finite or -inf)",
                        (long long)bad, isnan(logits[bad]) ? "NaN" : "+inf");
    if (*zmax == -INFINITY)
        return llm_fail(&s->err, LLM_ERR_INVALID_ARGUMENT,
                        "llm_sampler_sample: every logit is -inf%s: no token can be chosen",
                        copy ? " after logit_bias and penalties" : "");
    return LLM_OK;
}

static int truncates(const llm_sampler *s) {
    const llm_sampling_params *p = &s->params;
    return (p->top_k > 0 && p->top_k < s->n_vocab) || p->top_p < 1.0f;
}

llm_status llm_sampler_sample(llm_sampler *s, const float *logits, llm_sample_result *out) {
    if (!s) return LLM_ERR_INVALID_ARGUMENT;
    if (!logits || !out)
        return llm_fail(&s->err, LLM_ERR_INVALID_ARGUMENT, "llm_sampler_sample: %s is NULL",
                        !logits ? "logits" : "out");
    const llm_sampling_params *p = &s->params;
    const int32_t n = s->n_vocab;
    const float *z;
    float zmax;
    const llm_status st = prepare(s, logits, &z, &zmax);
    if (st != LLM_OK) return st;

    const float temp = p->temperature;
    double norm = -1.0; /* sum of e^(z - zmax) (>= 1): the log-softmax is z - zmax - log(norm) */
    int32_t token;
    if (temp == 1.0f && !truncates(s)) {
        /* one pass gives both the normalizer and the block sums of the draw */
        const llm_smp_keep keep = {p->min_p, -INFINITY, INT32_MAX};
        llm_smp_exp_blocks(z, n, zmax, 1.0f, keep, s->block_sums, &norm);
        token = draw_full(s, z, zmax, 1.0f, keep, llm_smp_rng_uniform(&s->rng));
    } else if (temp == 0.0f) {
        token = (int32_t)llm_smp_first_equal(z, n, zmax);
    } else {
        const kept_set k = truncate(s, z, zmax, &norm);
        token = draw(s, &k, z, zmax, llm_smp_rng_uniform(&s->rng));
    }
    if (norm < 0.0) norm = llm_smp_exp_sum(z, n, zmax, 1.0f);

    const double log_norm = (double)zmax + log(norm);
    out->token = token;
    out->logprob = (float)((double)z[token] - log_norm);
    const int32_t n_top = p->top_logprobs < n ? p->top_logprobs : n;
    out->n_top = n_top;
    if (n_top > 0) {
        llm_smp_cand top[LLM_MAX_TOP_LOGPROBS];
        llm_smp_select_top(z, n, n_top, top);
        llm_smp_sort_best_first(top, n_top);
        for (int32_t j = 0; j < n_top; j++) {
            out->top[j].token = top[j].id;
            out->top[j].logprob = (float)((double)top[j].z - log_norm);
        }
    }
    record_generated(s, token);
    return LLM_OK;
}

llm_status llm_smp_kept_mask(llm_sampler *s, const float *logits, uint8_t *mask) {
    const int32_t n = s->n_vocab;
    const float *z;
    float zmax;
    const llm_status st = prepare(s, logits, &z, &zmax);
    if (st != LLM_OK) return st;
    memset(mask, 0, (size_t)n);
    const float temp = s->params.temperature;
    if (temp == 0.0f) {
        mask[llm_smp_first_equal(z, n, zmax)] = 1;
        return LLM_OK;
    }
    double unused;
    const kept_set k = truncate(s, z, zmax, &unused);
    if (k.list) {
        for (int32_t j = 0; j < k.m; j++) {
            const float q = llm_smp_weight(k.list[j].z, zmax, temp);
            mask[k.list[j].id] = q >= k.keep.qmin && q > 0.0f;
        }
    } else {
        for (int32_t i = 0; i < n; i++) {
            const float q = llm_smp_weight(z[i], zmax, temp);
            mask[i] = llm_smp_kept(z[i], i, q, k.keep) && q > 0.0f;
        }
    }
    return LLM_OK;
}
