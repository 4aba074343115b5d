/* Passes over a whole vocabulary of logits, written for the vectorizer, and the exponential they use.
 *
 * Every pass accumulates in a fixed lane order (LLM_SMP_LANES lanes, reduced as a fixed tree), so its
 * result does not depend on the instruction set the compiler picked: the AVX-512, AVX2 and baseline
 * versions chosen at load time give bit-identical sums, and a sampler's draws depend only on its
 * seed and inputs. */
#ifndef LLM_SAMPLE_KERNELS_H
#define LLM_SAMPLE_KERNELS_H

#include <stdint.h>
#include <string.h>

#define LLM_SMP_LANES 16
/* Tokens per block of the draw over a whole vocabulary: the pass records one sum per block, the draw
 * finds the block, then recomputes the weights of that block only. */
#define LLM_SMP_BLOCK 256
/* Logit cuts measured by one pass of the nucleus search (llm_smp_exp_masses). */
#define LLM_SMP_NCUT 4

/* e^x for x <= 0 (x may be -inf, never NaN), within a few ulp of the exact value; exactly 1 at 0 and
 * exactly 0 below -87 (where e^x nears the subnormal range, < 1.7e-38), so a token whose logit is -inf
 * or hopelessly far below the maximum gets weight 0 and can never be drawn.
 * Plain float arithmetic without branches (selects only), so loops that call it vectorize; with
 * -ffp-contract=off the scalar and vector forms round identically.
 * Range reduction x = n ln2 + r (|r| <= ln2/2, ln2 split in a high part exact for |n| <= 128 and a
 * low part), e^r by its degree-7 Taylor polynomial (truncation error < 6e-9 relative), times 2^n built
 * from the exponent bits. */
static inline float llm_smp_exp(float x) {
    /* The clamp and the final zeroing compare bit patterns: for x <= 0 a larger pattern is a more
     * negative number (-inf the largest). Integer selects keep GCC from splitting the loop on a
     * float comparison, which would stop it from vectorizing. */
    const uint32_t lo_bits = 0xc2ae0000u; /* -87.0f */
    uint32_t xb;
    memcpy(&xb, &x, sizeof xb);
    const uint32_t keep = xb <= lo_bits ? 0xffffffffu : 0u;
    const uint32_t cb = xb < lo_bits ? xb : lo_bits;
    float xc;
    memcpy(&xc, &cb, sizeof xc);
    const float t = xc * 1.44269504088896341f;
    const float n = (t + 12582912.0f) - 12582912.0f; /* round to nearest: 1.5 * 2^23 */
    const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const uint32_t bits = (uint32_t)((int32_t)n + 127) << 23; /* n in [-126, 0] */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    const float y = p * scale;
    uint32_t yb;
    memcpy(&yb, &y, sizeof yb);
    yb &= keep;
    float out;
    memcpy(&out, &yb, sizeof out);
    return out;
}

/* The unnormalized probability of a logit at a temperature: e^((z - zmax) / temp), 1 for the maximum. */
static inline float llm_smp_weight(float z, float zmax, float temp) {
    return llm_smp_exp((z - zmax) / temp);
}

/* max of x[0..n) (n >= 1; -inf if all are). *bad receives the index of the first NaN or +inf, or -1. */
float llm_smp_max(const float *x, int64_t n, int64_t *bad);

/* As llm_smp_max, also copying x to dst. */
float llm_smp_copy_max(const float *restrict x, float *restrict dst, int64_t n, int64_t *bad);

/* The lowest index i with x[i] == v, or -1. */
int64_t llm_smp_first_equal(const float *x, int64_t n, float v);

/* Which tokens the draw keeps: weight q >= qmin (min-p), and no worse than the token (zb, idb) in the
 * better-order of select.h (the last token of a top-p nucleus; zb = -inf, idb = INT32_MAX keep all). */
typedef struct llm_smp_keep {
    float qmin;
    float zb;
    int32_t idb;
} llm_smp_keep;

static inline int llm_smp_kept(float z, int32_t id, float q, llm_smp_keep k) {
    return (q >= k.qmin) & ((z > k.zb) | ((z == k.zb) & (id <= k.idb)));
}

/* The sum (in double) of llm_smp_weight(z[i], zmax, temp) over z[0..n). */
double llm_smp_exp_sum(const float *z, int64_t n, float zmax, float temp);

/* One pass of weights q = llm_smp_weight(z, zmax, temp): *total receives the sum of all of them;
 * block_sums[b] the sum over block b (LLM_SMP_BLOCK tokens, the last one possibly shorter) of the
 * weights of the tokens kept (the others count 0 there). All sums in double. */
void llm_smp_exp_blocks(const float *z, int64_t n, float zmax, float temp, llm_smp_keep keep,
                        double *block_sums, double *total);

/* One pass of weights as above: *total the sum of all, mass[j] the sum of those with z >= zcut[j],
 * count[j] their number. */
void llm_smp_exp_masses(const float *z, int64_t n, float zmax, float temp, const float zcut[LLM_SMP_NCUT],
                        double *total, double mass[LLM_SMP_NCUT], int64_t count[LLM_SMP_NCUT]);

#endif
