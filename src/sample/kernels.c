/* Vocabulary-wide passes of the sampler (see kernels.h). Each loop body works on LLM_SMP_LANES
 * independent lanes so the compiler can map it to vector registers without reassociating anything;
 * target_clones compiles AVX-512 and AVX2 versions picked at load time by cpuid. */
#include "sample/kernels.h"

#include <math.h>

#define L LLM_SMP_LANES

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(LLM_NO_TARGET_CLONES)
#define SMP_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SMP_CLONES
#endif

/* Fixed-tree reduction of lane accumulators. */
static double reduce_sum(double *a) {
    for (int w = L / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++) a[l] += a[l + w];
    return a[0];
}

static int64_t first_bad(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (isnan(x[i]) || x[i] == INFINITY) return i;
    return -1;
}

/* Floats as signed integers with the same order (for all but NaN): integer max and compares are
 * what the vectorizer handles without -ffast-math (a float select "v > m ? v : m" is split into
 * branches it will not merge back). -0 orders just below +0, which compare equal as floats anyway. */
static inline int32_t order_key(float v) {
    int32_t b;
    memcpy(&b, &v, sizeof b);
    return b ^ ((b >> 31) & 0x7fffffff);
}

static inline float from_order_key(int32_t k) {
    const int32_t b = k ^ ((k >> 31) & 0x7fffffff);
    float v;
    memcpy(&v, &b, sizeof v);
    return v;
}

/* NaN or +inf (-inf is a valid logit: a banned token). */
static inline int32_t is_bad(float v) {
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    return ((b & 0x7fffffffu) > 0x7f800000u) | (b == 0x7f800000u);
}

SMP_CLONES
static float max_lanes(const float *restrict x, float *restrict dst, int64_t n, int *any_bad) {
    int32_t m[L], bad[L];
    for (int l = 0; l < L; l++) m[l] = order_key(-INFINITY), bad[l] = 0;
    int64_t i = 0;
    if (dst) {
        for (; i + L <= n; i += L)
            for (int l = 0; l < L; l++) {
                const float v = x[i + l];
                const int32_t k = order_key(v);
                dst[i + l] = v;
                m[l] = k > m[l] ? k : m[l];
                bad[l] |= is_bad(v);
            }
    } else {
        for (; i + L <= n; i += L)
            for (int l = 0; l < L; l++) {
                const float v = x[i + l];
                const int32_t k = order_key(v);
                m[l] = k > m[l] ? k : m[l];
                bad[l] |= is_bad(v);
            }
    }
    for (int l = 0; i + l < n; l++) {
        const float v = x[i + l];
        const int32_t k = order_key(v);
        if (dst) dst[i + l] = v;
        m[l] = k > m[l] ? k : m[l];
        bad[l] |= is_bad(v);
    }
    int32_t b = 0, best = m[0];
    for (int l = 0; l < L; l++) {
        b |= bad[l];
        best = m[l] > best ? m[l] : best;
    }
    *any_bad = b;
    return from_order_key(best);
}

float llm_smp_max(const float *x, int64_t n, int64_t *bad) {
    int any_bad;
    const float m = max_lanes(x, NULL, n, &any_bad);
    *bad = any_bad ? first_bad(x, n) : -1;
    return m;
}

float llm_smp_copy_max(const float *restrict x, float *restrict dst, int64_t n, int64_t *bad) {
    int any_bad;
    const float m = max_lanes(x, dst, n, &any_bad);
    *bad = any_bad ? first_bad(x, n) : -1;
    return m;
}

SMP_CLONES
int64_t llm_smp_first_equal(const float *x, int64_t n, float v) {
    enum { CHUNK = 64 };
    int64_t i = 0;
    for (; i + CHUNK <= n; i += CHUNK) {
        int32_t hits = 0; /* a counting loop vectorizes; an early exit per token would not */
        for (int l = 0; l < CHUNK; l++) hits += x[i + l] == v;
        if (hits) break;
    }
    for (; i < n; i++)
        if (x[i] == v) return i;
    return -1;
}

SMP_CLONES
double llm_smp_exp_sum(const float *z, int64_t n, float zmax, float temp) {
    double all[L];
    for (int l = 0; l < L; l++) all[l] = 0.0;
    int64_t i = 0;
    for (; i + L <= n; i += L)
        for (int l = 0; l < L; l++) all[l] += (double)llm_smp_weight(z[i + l], zmax, temp);
    for (int l = 0; i + l < n; l++) all[l] += (double)llm_smp_weight(z[i + l], zmax, temp);
    return reduce_sum(all);
}

SMP_CLONES
void llm_smp_exp_blocks(const float *z, int64_t n, float zmax, float temp, llm_smp_keep keep,
                        double *block_sums, double *total) {
    const float qmin = keep.qmin, zb = keep.zb;
    const int32_t idb = keep.idb;
    double all[L];
    for (int l = 0; l < L; l++) all[l] = 0.0;
    int64_t b = 0;
    for (int64_t start = 0; start < n; start += LLM_SMP_BLOCK, b++) {
        const int64_t end = start + LLM_SMP_BLOCK < n ? start + LLM_SMP_BLOCK : n;
        double kept[L];
        for (int l = 0; l < L; l++) kept[l] = 0.0;
        int64_t i = start;
        for (; i + L <= end; i += L)
            for (int l = 0; l < L; l++) {
                const float v = z[i + l];
                const float q = llm_smp_weight(v, zmax, temp);
                const int32_t id = (int32_t)(i + l);
                all[l] += (double)q;
                /* q * 0 or q * 1: exact, and no float select to split the loop */
                kept[l] += (double)(q * (float)((q >= qmin) & ((v > zb) | ((v == zb) & (id <= idb)))));
            }
        for (int l = 0; i + l < end; l++) {
            const float v = z[i + l];
            const float q = llm_smp_weight(v, zmax, temp);
            all[l] += (double)q;
            kept[l] += (double)(llm_smp_kept(v, (int32_t)(i + l), q, keep) ? q : 0.0f);
        }
        block_sums[b] = reduce_sum(kept);
    }
    *total = reduce_sum(all);
}

SMP_CLONES
void llm_smp_exp_masses(const float *z, int64_t n, float zmax, float temp, const float zcut[LLM_SMP_NCUT],
                        double *total, double mass[LLM_SMP_NCUT], int64_t count[LLM_SMP_NCUT]) {
    float cut[LLM_SMP_NCUT];
    double all[L], m[LLM_SMP_NCUT][L];
    int32_t c[LLM_SMP_NCUT][L];
    for (int j = 0; j < LLM_SMP_NCUT; j++) cut[j] = zcut[j];
    for (int l = 0; l < L; l++) {
        all[l] = 0.0;
        for (int j = 0; j < LLM_SMP_NCUT; j++) m[j][l] = 0.0, c[j][l] = 0;
    }
    int64_t i = 0;
    for (; i + L <= n; i += L)
        for (int l = 0; l < L; l++) {
            const float v = z[i + l];
            const float q = llm_smp_weight(v, zmax, temp);
            all[l] += (double)q;
            for (int j = 0; j < LLM_SMP_NCUT; j++) {
                const int32_t in = v >= cut[j];
                m[j][l] += (double)(q * (float)in);
                c[j][l] += in;
            }
        }
    for (int l = 0; i + l < n; l++) {
        const float v = z[i + l];
        const float q = llm_smp_weight(v, zmax, temp);
        all[l] += (double)q;
        for (int j = 0; j < LLM_SMP_NCUT; j++) {
            const int32_t in = v >= cut[j];
            m[j][l] += (double)(q * (float)in);
            c[j][l] += in;
        }
    }
    *total = reduce_sum(all);
    for (int j = 0; j < LLM_SMP_NCUT; j++) {
        mass[j] = reduce_sum(m[j]);
        count[j] = 0;
        for (int l = 0; l < L; l++) count[j] += c[j][l];
    }
}
