/* The fast CPU kernels (every level this machine runs) against the reference kernels (REF), on fresh
 * random inputs at odd shapes:
 *  - every fast op within its documented error bound of REF, relative to the magnitude of what it sums;
 *  - the fused ops (matmul_multi, matmul_swiglu) == the plain ops they fuse, bit for bit;
 *  - matmul batch invariance per level: T rows together == the same rows one at a time, bit for bit,
 *    also across the T > max_tokens chunking and K cut into blocks, and 1 thread == 2 threads bit for bit;
 *  - the bounds are tight enough to catch a wrong kernel: one wrong chunk of one row must break them;
 *  - an unsupported forced level is refused with a message naming it; REF is the default of tests;
 *  - the fastest level gives the same 64 greedy tokens as REF on the bundled demo model (bf16).
 *
 * Error bounds (|fast - ref| <= bound · S, S = Σ|w_i x_i| of the element, or the row's magnitude):
 *  - matmul, f32 activations (f32/f16 weights; bf16 without AVX512_BF16): (K/lanes + 8) · 2^-23 — both
 *    results are f32 sums of K exact-or-once-rounded products in different orders;
 *  - matmul, bf16-rounded activations (AVX512_BF16): 2^-8 — each activation moves by <= 2^-9 relative;
 *  - matmul, Q8_0 / Q4_K weights (8-bit activations): 2^-6 · Σ|w| · max|x| (see test_matmul_quant);
 *  - RMSNorm, SwiGLU, attention: 2^-17 of the row's largest output (f32 vs double sums, a polynomial exp
 *    of ~1 ulp against libm's). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/half.h"
#include "core/quant.h"
#include "test_util.h"

#define DEMO LLAMAC_SOURCE_DIR "/models/kjv-tiny"

static tu_rng rng;

static float frand(void) { /* uniform in [-1, 1), never all zero */
    return (float)((double)(tu_rng_next(&rng) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static llm_backend *make(int level, int threads, int max_row, int max_tokens) {
    llm_backend_config bc = {
        .n_threads = threads, .max_row = max_row, .max_tokens = max_tokens, .cpu_level = level};
    return llm_backend_cpu_create(&bc);
}

/* A random weight matrix [m][k] of dtype (values exactly representable in it) and its f32 copy. */
static void *make_weights(llm_dtype dt, int64_t m, int64_t k, float *wf) {
    const size_t n = (size_t)(m * k);
    if (llm_dtype_is_quant(dt)) { /* quantized rows; wf gets what they dequantize to */
        const size_t rb = llm_dtype_row_bytes(dt, k);
        char *w = malloc(rb * (size_t)m);
        for (size_t i = 0; i < n; i++) wf[i] = frand();
        for (int64_t r = 0; r < m; r++) {
            llm_quantize_row(dt, wf + (size_t)r * k, w + (size_t)r * rb, k);
            llm_dequant_row(dt, w + (size_t)r * rb, wf + (size_t)r * k, k);
        }
        return w;
    }
    void *w = malloc(n * (dt == LLM_DTYPE_F32 ? 4 : 2));
    for (size_t i = 0; i < n; i++) {
        const float v = frand();
        if (dt == LLM_DTYPE_F32) {
            ((float *)w)[i] = wf[i] = v;
        } else if (dt == LLM_DTYPE_BF16) {
            ((uint16_t *)w)[i] = llm_f32_to_bf16(v);
            wf[i] = llm_bf16_to_f32(((uint16_t *)w)[i]);
        } else {
            ((uint16_t *)w)[i] = llm_f32_to_f16(v);
            wf[i] = llm_f16_to_f32(((uint16_t *)w)[i]);
        }
    }
    return w;
}

/* max over elements of |a - b| / S (S = Σ|w x| of the element, computed in double). */
static double matmul_err(const float *a, const float *b, const float *wf, const float *x, int64_t m,
                         int64_t k, int n) {
    double worst = 0;
    for (int t = 0; t < n; t++)
        for (int64_t r = 0; r < m; r++) {
            double s = 0;
            for (int64_t i = 0; i < k; i++) s += fabs((double)wf[r * k + i] * x[(size_t)t * k + i]);
            const double e = fabs((double)a[(size_t)t * m + r] - b[(size_t)t * m + r]) / (s > 0 ? s : 1);
            if (!(e <= worst)) worst = e; /* NaN wins */
        }
    return worst;
}

static double matmul_bound(const llm_backend *be, llm_dtype dt, int64_t k) {
    const llm_gemm_kernel *kern = &((const llm_backend_cpu *)be)->kern.gemm[dt];
    if (kern->act_bf16) return ldexp(1.0, -8);
    return ((double)k / kern->lanes + 8) * ldexp(1.0, -23);
}

static const char *const dt_names[] = {"f32", "f16", "bf16", "q8_0", "q4_k"};

static void test_matmul(llm_backend *ref, llm_backend *fast, llm_backend *fast1, int level) {
    /* {M, K, T}: odd sizes, K not a multiple of any vector width or block, T across token tiles and
     * chunks (max_tokens is 64: T = 70 takes two passes of the bf16 activation buffer at K = 1100) */
    static const int shapes[][3] = {{1, 1, 1},     {5, 3, 2},      {13, 33, 1},    {37, 67, 5},
                                    {64, 1024, 9}, {100, 257, 17}, {29, 1100, 70}, {70, 2049, 3},
                                    {16, 96, 13},  {4, 4096, 1}};
    for (int dt = LLM_DTYPE_F32; dt <= LLM_DTYPE_BF16; dt++) {
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int64_t m = shapes[si][0], k = shapes[si][1];
            const int n = shapes[si][2];
            float *wf = malloc((size_t)(m * k) * sizeof *wf);
            void *wd = make_weights((llm_dtype)dt, m, k, wf);
            float *x = malloc((size_t)n * k * sizeof *x), *bias = malloc((size_t)m * sizeof *bias);
            for (size_t i = 0; i < (size_t)n * k; i++) x[i] = frand() * 2.0f;
            for (int64_t i = 0; i < m; i++) bias[i] = frand();
            const llm_tensor w = {wd, (llm_dtype)dt, m, k, "w"}, b = {bias, LLM_DTYPE_F32, 1, m, "b"};
            const int with_bias = si % 2;
            float *o_ref = malloc((size_t)n * m * 4), *o_fast = malloc((size_t)n * m * 4);
            float *o_one = malloc((size_t)n * m * 4), *o_thr = malloc((size_t)n * m * 4);
            ref->ops->matmul(ref, o_ref, x, &w, with_bias ? &b : NULL, n);
            fast->ops->matmul(fast, o_fast, x, &w, with_bias ? &b : NULL, n);
            if (with_bias) /* the bound is on the dot; the bias is added exactly once in both */
                for (int t = 0; t < n; t++)
                    for (int64_t r = 0; r < m; r++) {
                        o_ref[(size_t)t * m + r] -= bias[r];
                        o_fast[(size_t)t * m + r] -= bias[r];
                    }
            const double err = matmul_err(o_fast, o_ref, wf, x, m, k, n), bound = matmul_bound(fast, dt, k);
            TU_CHECK(err <= bound, "level %s %s matmul M=%lld K=%lld T=%d: error %.3g > bound %.3g",
                     llm_cpu_level_name(level), dt_names[dt], (long long)m, (long long)k, n, err, bound);
            /* batch invariance: each row alone (decode) == the batch (prefill), bit for bit */
            fast->ops->matmul(fast, o_fast, x, &w, with_bias ? &b : NULL, n);
            for (int t = 0; t < n; t++)
                fast->ops->matmul(fast, o_one + (size_t)t * m, x + (size_t)t * k, &w, with_bias ? &b : NULL,
                                  1);
            TU_CHECK(memcmp(o_fast, o_one, (size_t)n * m * 4) == 0,
                     "level %s %s matmul M=%lld K=%lld T=%d: batched != one row at a time",
                     llm_cpu_level_name(level), dt_names[dt], (long long)m, (long long)k, n);
            if (n > 2) { /* and a batch that starts mid-way */
                fast->ops->matmul(fast, o_one, x + k, &w, with_bias ? &b : NULL, n - 2);
                TU_CHECK(memcmp(o_fast + m, o_one, (size_t)(n - 2) * m * 4) == 0,
                         "level %s %s matmul T=%d: rows 1..T-2 as a batch differ", llm_cpu_level_name(level),
                         dt_names[dt], n);
            }
            /* K cut into blocks (the accumulators go through memory between them): the same bits */
            ((llm_backend_cpu *)fast)->kblock = 64;
            fast->ops->matmul(fast, o_one, x, &w, with_bias ? &b : NULL, n);
            ((llm_backend_cpu *)fast)->kblock = LLM_CPU_KBLOCK;
            TU_CHECK(memcmp(o_fast, o_one, (size_t)n * m * 4) == 0,
                     "level %s %s matmul M=%lld K=%lld T=%d: K blocks of 64 change the result",
                     llm_cpu_level_name(level), dt_names[dt], (long long)m, (long long)k, n);
            /* one thread == two threads */
            fast1->ops->matmul(fast1, o_thr, x, &w, with_bias ? &b : NULL, n);
            TU_CHECK(memcmp(o_fast, o_thr, (size_t)n * m * 4) == 0,
                     "level %s %s matmul M=%lld K=%lld T=%d: 1 thread != 2 threads",
                     llm_cpu_level_name(level), dt_names[dt], (long long)m, (long long)k, n);
            /* the test of the test: a kernel that got one chunk of one row wrong must break the bound.
             * Here: 32 weights of the last row whose products with token 0 are positive flip sign, so the
             * element moves by 2·Σ of 32 of its |w x| terms (>= 16/K of S, 4x the loosest bound). */
            if (k >= 16 && m >= 2) {
                for (int64_t i = 0, flipped = 0; i < k && flipped < 32; i++) {
                    const size_t at = (size_t)((m - 1) * k + i);
                    if (wf[at] * x[i] <= 0) continue;
                    flipped++;
                    if (dt == LLM_DTYPE_F32)
                        ((float *)wd)[at] = -((float *)wd)[at];
                    else
                        ((uint16_t *)wd)[at] ^= 0x8000;
                }
                fast->ops->matmul(fast, o_fast, x, &w, NULL, n); /* o_ref holds the dot without bias */
                const double bad = matmul_err(o_fast, o_ref, wf, x, m, k, n);
                TU_CHECK(bad > bound,
                         "level %s %s matmul M=%lld K=%lld: a wrong chunk went unnoticed (%.3g <= %.3g)",
                         llm_cpu_level_name(level), dt_names[dt], (long long)m, (long long)k, bad, bound);
            }
            free(o_ref), free(o_fast), free(o_one), free(o_thr), free(x), free(bias), free(wd), free(wf);
        }
    }
}

/* Quantized weights (Q8_0, Q4_K): REF dequantizes and runs the f32 dot; the fast levels quantize each
 * activation row (8-bit blocks) and dot in integers. Bound: |fast - ref| <= 2^-6 · Σ_i |w_i| · max|x|
 * (activation quants are off by <= 1/254 of their block's max; the rest is f32 rounding). */
static void test_matmul_quant(llm_backend *ref, llm_backend *fast, llm_backend *fast1, int level) {
    static const int shapes[][3] = {{3, 256, 1}, {37, 512, 5}, {64, 2048, 9}, {21, 768, 70}};
    static const llm_dtype qt[] = {LLM_DTYPE_Q8_0, LLM_DTYPE_Q4_K};
    for (size_t q = 0; q < 2; q++) {
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int64_t m = shapes[si][0], k = shapes[si][1];
            const int n = shapes[si][2];
            const size_t rb = llm_dtype_row_bytes(qt[q], k);
            char *wq = malloc(rb * (size_t)m);
            float *row = malloc((size_t)k * 4), *wf = malloc((size_t)(m * k) * 4);
            for (int64_t r = 0; r < m; r++) {
                for (int64_t i = 0; i < k; i++) row[i] = frand();
                llm_quantize_row(qt[q], row, wq + (size_t)r * rb, k);
                llm_dequant_row(qt[q], wq + (size_t)r * rb, wf + (size_t)r * k, k);
            }
            float *x = malloc((size_t)n * k * 4);
            for (size_t i = 0; i < (size_t)n * k; i++) x[i] = frand() * 2.0f;
            const llm_tensor w = {wq, qt[q], m, k, "wq"};
            float *a = malloc((size_t)n * m * 4), *b = malloc((size_t)n * m * 4),
                  *c = malloc((size_t)n * m * 4);
            ref->ops->matmul(ref, a, x, &w, NULL, n);
            fast->ops->matmul(fast, b, x, &w, NULL, n);
            double worst = 0;
            for (int t = 0; t < n; t++) {
                double xmax = 0;
                for (int64_t i = 0; i < k; i++) xmax = fmax(xmax, fabs((double)x[(size_t)t * k + i]));
                for (int64_t r = 0; r < m; r++) {
                    double sw = 0;
                    for (int64_t i = 0; i < k; i++) sw += fabs((double)wf[r * k + i]);
                    const double e = fabs((double)b[(size_t)t * m + r] - a[(size_t)t * m + r]) / (sw * xmax);
                    if (!(e <= worst)) worst = e;
                }
            }
            const double bound = ldexp(1.0, -6);
            TU_CHECK(worst <= bound, "level %s %s matmul M=%lld K=%lld T=%d: %.3g > %.3g",
                     llm_cpu_level_name(level), llm_dtype_name(qt[q]), (long long)m, (long long)k, n, worst,
                     bound);
            for (int t = 0; t < n; t++)
                fast->ops->matmul(fast, c + (size_t)t * m, x + (size_t)t * k, &w, NULL, 1);
            TU_CHECK(memcmp(b, c, (size_t)n * m * 4) == 0, "level %s %s matmul T=%d: batched != alone",
                     llm_cpu_level_name(level), llm_dtype_name(qt[q]), n);
            fast1->ops->matmul(fast1, c, x, &w, NULL, n);
            TU_CHECK(memcmp(b, c, (size_t)n * m * 4) == 0, "level %s %s matmul T=%d: 1 thread != 2",
                     llm_cpu_level_name(level), llm_dtype_name(qt[q]), n);
            free(wq), free(row), free(wf), free(x), free(a), free(b), free(c);
        }
    }
}

/* The fused ops (q/k/v in one pass; gate, up and SwiGLU in one pass) == the plain ops, bit for bit; for
 * the quantized dtypes too (their fused forms share one quantized activation and one dispatch). */
static void test_fused(llm_backend *fast, int level) {
    static const int shapes[][3] = {{40, 67, 1}, {100, 1100, 13}, {33, 256, 70}}; /* M, K, T */
    static const int qshapes[][3] = {{40, 256, 1}, {100, 512, 13}, {33, 768, 70}, {181, 256, 6}};
    for (int dt = LLM_DTYPE_F32; dt <= LLM_DTYPE_Q4_K; dt++)
        for (size_t si = 0; si < (dt <= LLM_DTYPE_BF16 ? 3u : 4u); si++) {
            const int quant = dt > LLM_DTYPE_BF16;
            const int64_t m = quant ? qshapes[si][0] : shapes[si][0],
                          k = quant ? qshapes[si][1] : shapes[si][1];
            const int n = quant ? qshapes[si][2] : shapes[si][2];
            const int64_t rows[3] = {m, m / 2 + 1, 7};
            void *wd[3];
            float *wf = malloc((size_t)(m * k) * 4), *x = malloc((size_t)n * k * 4),
                  *bias = malloc((size_t)m * 4);
            for (size_t i = 0; i < (size_t)n * k; i++) x[i] = frand();
            for (int64_t i = 0; i < m; i++) bias[i] = frand();
            llm_tensor w[3], b = {bias, LLM_DTYPE_F32, 1, m, "b"};
            float *o[3], *f[3];
            for (int j = 0; j < 3; j++) {
                wd[j] = make_weights((llm_dtype)dt, rows[j], k, wf);
                w[j] = (llm_tensor){wd[j], (llm_dtype)dt, rows[j], k, "w"};
                o[j] = malloc((size_t)n * rows[j] * 4);
                f[j] = malloc((size_t)n * rows[j] * 4);
            }
            const llm_tensor *ws[3] = {&w[0], &w[1], &w[2]}, *bs[3] = {&b, NULL, NULL};
            for (int j = 0; j < 3; j++) fast->ops->matmul(fast, o[j], x, ws[j], bs[j], n);
            fast->ops->matmul_multi(fast, 3, f, x, ws, bs, n);
            for (int j = 0; j < 3; j++)
                TU_CHECK(memcmp(o[j], f[j], (size_t)n * rows[j] * 4) == 0,
                         "level %s %s matmul_multi[%d] T=%d differs", llm_cpu_level_name(level), dt_names[dt],
                         j, n);
            /* gate = w[0], up = a second matrix of the same shape */
            void *ud = make_weights((llm_dtype)dt, m, k, wf);
            const llm_tensor up = {ud, (llm_dtype)dt, m, k, "up"};
            float *g = malloc((size_t)n * m * 4), *u = malloc((size_t)n * m * 4),
                  *s = malloc((size_t)n * m * 4);
            fast->ops->matmul(fast, g, x, &w[0], &b, n);
            fast->ops->matmul(fast, u, x, &up, NULL, n);
            fast->ops->swiglu(fast, g, g, u, (size_t)n * m);
            fast->ops->matmul_swiglu(fast, f[0], s, x, &w[0], &b, &up, NULL, n);
            TU_CHECK(memcmp(g, f[0], (size_t)n * m * 4) == 0, "level %s %s matmul_swiglu T=%d differs",
                     llm_cpu_level_name(level), dt_names[dt], n);
            for (int j = 0; j < 3; j++) free(wd[j]), free(o[j]), free(f[j]);
            free(ud), free(g), free(u), free(s), free(wf), free(x), free(bias);
        }
}

/* max |a - b| over n, relative to max(|b|, tiny) */
static double rel_err(const float *a, const float *b, size_t n) {
    double mx = 1e-30, e = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs((double)b[i]));
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - b[i]) / mx;
        if (!(d <= e)) e = d;
    }
    return e;
}

static void test_rows(llm_backend *ref, llm_backend *fast, int level) {
    const double bound = ldexp(1.0, -17);
    static const int dims[] = {1, 7, 16, 64, 100, 1023, 2048};
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        const int d = dims[di], rows = 3;
        const size_t n = (size_t)rows * d;
        float *x = malloc(n * 4), *y = malloc(n * 4), *x2 = malloc(n * 4), *a = malloc(n * 4),
              *b = malloc(n * 4);
        uint16_t *wb = malloc((size_t)d * 2);
        for (size_t i = 0; i < n; i++) x[i] = frand() * 3.0f, y[i] = frand();
        for (int i = 0; i < d; i++) wb[i] = llm_f32_to_bf16(1.0f + 0.1f * frand());
        const llm_tensor w = {wb, LLM_DTYPE_BF16, 1, d, "norm"};
        ref->ops->rmsnorm(ref, a, x, &w, rows, d, 1e-5f);
        fast->ops->rmsnorm(fast, b, x, &w, rows, d, 1e-5f);
        double e = rel_err(b, a, n);
        TU_CHECK(e <= bound, "level %s rmsnorm D=%d: %.3g > %.3g", llm_cpu_level_name(level), d, e, bound);
        memcpy(x2, x, n * 4);
        ref->ops->add_rmsnorm(ref, a, x, y, &w, rows, d, 1e-5f);
        fast->ops->add_rmsnorm(fast, b, x2, y, &w, rows, d, 1e-5f);
        TU_CHECK(memcmp(x, x2, n * 4) == 0, "level %s add_rmsnorm D=%d: residual differs",
                 llm_cpu_level_name(level), d);
        e = rel_err(b, a, n);
        TU_CHECK(e <= bound, "level %s add_rmsnorm D=%d: %.3g > %.3g", llm_cpu_level_name(level), d, e,
                 bound);
        /* SwiGLU, over arguments from -20 to 20 (exp's range reduction at work) */
        for (size_t i = 0; i < n; i++) x[i] = frand() * 20.0f;
        ref->ops->swiglu(ref, a, x, y, n);
        fast->ops->swiglu(fast, b, x, y, n);
        double worst = 0;
        for (size_t i = 0; i < n; i++) { /* relative to the element: silu is smooth, no cancellation */
            const double r = fabs((double)b[i] - a[i]) / fmax(fabs((double)a[i]), 1e-30);
            if (!(r <= worst)) worst = r;
        }
        TU_CHECK(worst <= bound, "level %s swiglu N=%zu: %.3g > %.3g", llm_cpu_level_name(level), n, worst,
                 bound);
        free(x), free(y), free(x2), free(a), free(b), free(wb);
    }
    /* the large-N path runs on both threads */
    const size_t big = 3 * LLM_CPU_PARALLEL_MIN + 5;
    float *g = malloc(big * 4), *u = malloc(big * 4), *a = malloc(big * 4), *b = malloc(big * 4);
    for (size_t i = 0; i < big; i++) g[i] = frand() * 8.0f, u[i] = frand();
    ref->ops->swiglu(ref, a, g, u, big);
    fast->ops->swiglu(fast, b, g, u, big);
    const double e = rel_err(b, a, big);
    TU_CHECK(e <= bound, "level %s swiglu N=%zu: %.3g", llm_cpu_level_name(level), big, e);
    free(g), free(u), free(a), free(b);
}

/* Two sequences over a shuffled block pool: one decoding at a long context, one prefilling a chunk. */
static void test_attention(llm_backend *ref, llm_backend *fast, int level) {
    static const int shapes[][4] = {
        {4, 2, 64, 16}, {6, 3, 80, 8}, {2, 1, 128, 16}, {3, 3, 7, 5}}; /* h, hkv, hd, bs */
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int nh = shapes[si][0], nkv = shapes[si][1], hd = shapes[si][2], bs = shapes[si][3];
        const int past0 = 300 + (int)tu_rng_below(&rng, 50), rows1 = 9, past1 = 21;
        const int blocks0 = (past0 + 1 + bs - 1) / bs, blocks1 = (past1 + rows1 + bs - 1) / bs;
        const int nblocks = blocks0 + blocks1;
        const size_t kvn = (size_t)nblocks * nkv * bs * hd;
        float *k = malloc(kvn * 4), *v = malloc(kvn * 4);
        for (size_t i = 0; i < kvn; i++) k[i] = frand() * 2.0f, v[i] = frand();
        int32_t *perm = malloc((size_t)nblocks * sizeof *perm);
        for (int i = 0; i < nblocks; i++) perm[i] = i;
        for (int i = nblocks - 1; i > 0; i--) {
            int j = (int)tu_rng_below(&rng, (uint32_t)i + 1), t = perm[i];
            perm[i] = perm[j], perm[j] = t;
        }
        const llm_kv_view kv = {k, v, nkv, hd, bs, LLM_DTYPE_F32};
        const int T = 1 + rows1;
        llm_batch_seq seqs[2] = {{0, 1, past0, perm}, {1, rows1, past1, perm + blocks0}};
        int32_t tokens[16] = {0}, pos[16];
        pos[0] = past0;
        for (int r = 0; r < rows1; r++) pos[1 + r] = past1 + r;
        const llm_batch batch = {T, tokens, pos, 2, seqs};
        const size_t qn = (size_t)T * nh * hd;
        float *q = malloc(qn * 4), *a = malloc(qn * 4), *b = malloc(qn * 4);
        for (size_t i = 0; i < qn; i++) q[i] = frand();
        const float scale = 1.0f / sqrtf((float)hd);
        ref->ops->attention(ref, a, q, &kv, &batch, nh, scale);
        fast->ops->attention(fast, b, q, &kv, &batch, nh, scale);
        const double e = rel_err(b, a, qn), bound = ldexp(1.0, -17);
        TU_CHECK(e <= bound, "level %s attention h=%d kv=%d hd=%d bs=%d: %.3g > %.3g",
                 llm_cpu_level_name(level), nh, nkv, hd, bs, e, bound);
        /* the same rows one sequence at a time: bit for bit */
        const llm_batch alone = {T - 1, tokens + 1, pos + 1, 1,
                                 (llm_batch_seq[]){{0, rows1, past1, perm + blocks0}}};
        fast->ops->attention(fast, a, q + (size_t)nh * hd, &kv, &alone, nh, scale);
        TU_CHECK(memcmp(a, b + (size_t)nh * hd, (size_t)rows1 * nh * hd * 4) == 0,
                 "level %s attention: a sequence alone != in the batch", llm_cpu_level_name(level));
        free(k), free(v), free(perm), free(q), free(a), free(b);
    }
}

/* The ops the fast levels share with REF (embed, RoPE, KV write, add, row gather): bit for bit. */
static void test_shared_ops(llm_backend *ref, llm_backend *fast, int level) {
    const int d = 40, v = 9, n = 5;
    uint16_t table[9 * 40];
    for (int i = 0; i < v * d; i++) table[i] = llm_f32_to_bf16(frand());
    const llm_tensor t = {table, LLM_DTYPE_BF16, v, d, "embd"};
    const int32_t ids[5] = {3, 0, 8, 3, 5};
    float a[5 * 40], b[5 * 40];
    ref->ops->embed(ref, a, &t, ids, n);
    fast->ops->embed(fast, b, &t, ids, n);
    TU_CHECK(memcmp(a, b, sizeof a) == 0, "level %s embed differs", llm_cpu_level_name(level));
    float cs[5 * 4], sn[5 * 4], invf[4] = {1.0f, 0.1f, 0.01f, 0.001f};
    const int32_t pos[5] = {0, 7, 100, 5000, 3};
    fast->ops->rope_table(fast, cs, sn, pos, n, invf, 4);
    ref->ops->rope(ref, a, n, 5, 8, cs, sn, 0);
    fast->ops->rope(fast, b, n, 5, 8, cs, sn, 0);
    TU_CHECK(memcmp(a, b, sizeof a) == 0, "level %s rope differs", llm_cpu_level_name(level));
    const int32_t rows[3] = {4, 1, 1};
    float ga[3 * 40], gb[3 * 40];
    ref->ops->get_rows(ref, ga, a, rows, 3, d);
    fast->ops->get_rows(fast, gb, b, rows, 3, d);
    TU_CHECK(memcmp(ga, gb, sizeof ga) == 0, "level %s get_rows differs", llm_cpu_level_name(level));
}

typedef struct {
    int32_t *tokens;
    int n, cap;
} collected;

static int collect(const llm_generate_event *ev, void *user) {
    collected *c = user;
    if (ev->token >= 0 && c->n < c->cap) c->tokens[c->n++] = ev->token;
    return 0;
}

/* Greedy continuation of a prompt on the demo model (bf16 weights), n_out tokens, at the given kernels. */
static int greedy(llm_cpu_kernels kernels, int32_t *out, int n_out) {
    llm_model_params mp = llm_model_default_params();
    mp.backend = LLM_BACKEND_CPU;
    mp.cpu_kernels = kernels;
    mp.n_threads = 2;
    llm_model *m = NULL;
    char err[512];
    if (llm_model_load(DEMO, &mp, &m, err, sizeof err) != LLM_OK) {
        fprintf(stderr, "cannot load the demo model: %s\n", err);
        return -1;
    }
    llm_engine_params ep = llm_engine_default_params();
    ep.n_ctx = 256;
    ep.n_seq_max = 1;
    llm_engine *e = NULL;
    llm_seq_id s;
    collected c = {out, 0, n_out};
    llm_generate_params gp = llm_generate_default_params();
    gp.sampling.temperature = 0;
    gp.max_tokens = n_out;
    gp.ignore_eos = 1;
    gp.on_event = collect;
    gp.user_data = &c;
    llm_generate_result res;
    static const char text[] = "And God said, Let there be light: and there was";
    int32_t prompt[64];
    size_t np = 0;
    int rc = -1;
    llm_tokenizer *tok = llm_model_tokenizer(m);
    if (tok && llm_tokenize(tok, text, strlen(text), 0, prompt, 64, &np) == LLM_OK &&
        llm_engine_create(m, &ep, &e) == LLM_OK && llm_seq_create(e, &s) == LLM_OK &&
        llm_generate(e, s, prompt, np, &gp, &res) == LLM_OK && c.n == n_out)
        rc = 0;
    llm_engine_free(e);
    llm_model_free(m);
    return rc;
}

static void test_demo_greedy(void) {
    const llm_cpu_kernels best = llm_cpu_kernels_resolve(LLM_CPU_KERNELS_AUTO, NULL, 0);
    int32_t a[64], b[64];
    const int ra = greedy(LLM_CPU_KERNELS_REF, a, 64), rb = greedy(best, b, 64);
    TU_CHECK(ra == 0 && rb == 0, "greedy runs failed (ref %d, %s %d)", ra, llm_cpu_kernels_name(best), rb);
    if (ra || rb) return;
    int same = 0;
    while (same < 64 && a[same] == b[same]) same++;
    printf("demo model: %s kernels give %d of 64 greedy tokens of the reference\n",
           llm_cpu_kernels_name(best), same);
    TU_CHECK(same == 64, "%s kernels diverge from the reference at greedy token %d",
             llm_cpu_kernels_name(best), same);
}

static void test_selection(void) {
    llm_cpu_features f;
    llm_cpu_features_detect(&f);
    char why[192];
    TU_CHECK(llm_cpu_kernels_resolve(LLM_CPU_KERNELS_REF, why, sizeof why) == LLM_CPU_KERNELS_REF, "ref");
    TU_CHECK(llm_cpu_kernels_resolve(LLM_CPU_KERNELS_AUTO, why, sizeof why) ==
                 (llm_cpu_kernels)(llm_cpu_best_level(&f) + 1),
             "auto is the best level");
    TU_CHECK(llm_cpu_kernels_resolve((llm_cpu_kernels)42, why, sizeof why) == LLM_CPU_KERNELS_AUTO &&
                 strstr(why, "42"),
             "unknown value: %s", why);
    /* a level this CPU lacks: the engine refuses it, naming the level and the missing features */
    for (int l = LLM_CPU_LEVEL_AVX2; l < LLM_CPU_LEVEL_COUNT; l++) {
        if (llm_cpu_level_supported(&f, (llm_cpu_level)l)) continue;
        const llm_cpu_kernels k = (llm_cpu_kernels)(l + 1);
        TU_CHECK(llm_cpu_kernels_resolve(k, why, sizeof why) == LLM_CPU_KERNELS_AUTO &&
                     strstr(why, llm_cpu_level_name(l)),
                 "unsupported %s: '%s'", llm_cpu_level_name(l), why);
        llm_backend_config bc = {.n_threads = 1, .max_row = 8, .cpu_level = l};
        TU_CHECK(llm_backend_cpu_create(&bc) == NULL, "the backend refuses %s", llm_cpu_level_name(l));
        llm_model_params mp = llm_model_default_params();
        mp.backend = LLM_BACKEND_CPU;
        mp.cpu_kernels = k;
        llm_model *m = NULL;
        if (llm_model_load(DEMO, &mp, &m, why, sizeof why) == LLM_OK) {
            llm_engine *e = NULL;
            TU_CHECK(llm_engine_create(m, NULL, &e) == LLM_ERR_UNSUPPORTED, "engine with %s",
                     llm_cpu_level_name(l));
            const char *msg = llm_model_last_error(m);
            TU_CHECK(strstr(msg, llm_cpu_level_name(l)) != NULL, "message names the level: '%s'", msg);
            printf("refused as expected: %s\n", msg);
            llm_engine_free(e);
            llm_model_free(m);
        }
    }
    /* a value outside the enum: the engine refuses it (the path a level this CPU lacks takes, with
     * LLM_ERR_UNSUPPORTED, on older CPUs: see above) */
    {
        llm_model_params mp = llm_model_default_params();
        mp.backend = LLM_BACKEND_CPU;
        mp.cpu_kernels = (llm_cpu_kernels)42;
        llm_model *m = NULL;
        TU_CHECK(llm_model_load(DEMO, &mp, &m, why, sizeof why) == LLM_OK, "%s", why);
        if (m) {
            llm_engine *e = NULL;
            TU_CHECK(llm_engine_create(m, NULL, &e) == LLM_ERR_INVALID_ARGUMENT && e == NULL,
                     "cpu kernels 42");
            TU_CHECK(strstr(llm_model_last_error(m), "cpu kernels 42") != NULL, "message: '%s'",
                     llm_model_last_error(m));
            llm_model_free(m);
        }
    }
    /* the tests' models run on REF unless LLAMAC_TEST_CPU_KERNELS says otherwise */
    const char *env = getenv("LLAMAC_TEST_CPU_KERNELS");
    if (!env) {
        llm_model *m = tu_load_model(DEMO, 1);
        TU_CHECK(m != NULL, "demo model");
        if (m) {
            llm_engine *e = NULL;
            TU_CHECK(llm_engine_create(m, NULL, &e) == LLM_OK, "engine");
            if (e) {
                llm_engine_free(e);
            }
            llm_model_free(m);
        }
    }
}

int main(void) {
    rng.s = tu_fresh_seed("test_cpu_kernels");
    llm_cpu_features f;
    llm_cpu_features_detect(&f);
    const int max_row = 4200, max_tokens = 64;
    llm_backend *ref = make(LLM_CPU_LEVEL_REF, 2, max_row, max_tokens);
    TU_CHECK(ref && llm_backend_cpu_level(ref) == LLM_CPU_LEVEL_REF, "reference backend");
    int tested = 0;
    for (int l = LLM_CPU_LEVEL_PORTABLE; ref && l < LLM_CPU_LEVEL_COUNT; l++) {
        if (!llm_cpu_level_supported(&f, (llm_cpu_level)l)) {
            printf("level %s: not supported by this CPU, skipped\n", llm_cpu_level_name(l));
            continue;
        }
        llm_backend *fast = make(l, 2, max_row, max_tokens), *fast1 = make(l, 1, max_row, max_tokens);
        TU_CHECK(fast && fast1 && llm_backend_cpu_level(fast) == (llm_cpu_level)l, "level %s backend",
                 llm_cpu_level_name(l));
        if (fast && fast1) {
            test_matmul(ref, fast, fast1, l);
            test_matmul_quant(ref, fast, fast1, l);
            test_fused(fast, l);
            test_rows(ref, fast, l);
            test_attention(ref, fast, l);
            test_shared_ops(ref, fast, l);
            char msg[256];
            TU_CHECK(fast->ops->status(fast, msg, sizeof msg) == LLM_OK, "level %s status: %s",
                     llm_cpu_level_name(l), msg);
            tested++;
            printf("level %s: ops within bounds, batch invariant, thread-count invariant\n",
                   llm_cpu_level_name(l));
        }
        if (fast) fast->ops->free(fast);
        if (fast1) fast1->ops->free(fast1);
    }
    TU_CHECK(tested >= 1, "at least the portable level");
    if (ref) ref->ops->free(ref);
    test_selection();
    test_demo_greedy();
    return tu_finish("test_cpu_kernels");
}
