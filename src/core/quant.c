/* Q8_0 / Q4_K: sizes, ggml type mapping, quantization and dequantization (portable C). */
#include "core/quant.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "core/half.h"

int64_t llm_dtype_block_elems(llm_dtype dtype) {
    switch (dtype) {
    case LLM_DTYPE_F32:
    case LLM_DTYPE_F16:
    case LLM_DTYPE_BF16:
        return 1;
    case LLM_DTYPE_Q8_0:
        return LLM_QK8_0;
    case LLM_DTYPE_Q4_K:
        return LLM_QK_K;
    case LLM_DTYPE_COUNT:
        break;
    }
    return 0;
}

size_t llm_dtype_block_bytes(llm_dtype dtype) {
    switch (dtype) {
    case LLM_DTYPE_F32:
        return 4;
    case LLM_DTYPE_F16:
    case LLM_DTYPE_BF16:
        return 2;
    case LLM_DTYPE_Q8_0:
        return sizeof(llm_block_q8_0);
    case LLM_DTYPE_Q4_K:
        return sizeof(llm_block_q4_K);
    case LLM_DTYPE_COUNT:
        break;
    }
    return 0;
}

size_t llm_dtype_row_bytes(llm_dtype dtype, int64_t cols) {
    const int64_t be = llm_dtype_block_elems(dtype);
    if (be <= 0 || cols <= 0 || cols % be != 0) return 0;
    return (size_t)(cols / be) * llm_dtype_block_bytes(dtype);
}

int llm_dtype_is_quant(llm_dtype dtype) {
    return dtype == LLM_DTYPE_Q8_0 || dtype == LLM_DTYPE_Q4_K;
}

/* ggml's type numbering (the same values as io/gguf.h's llm_ggml_type; core does not depend on io). */
enum { GGML_ID_F32 = 0, GGML_ID_F16 = 1, GGML_ID_Q8_0 = 8, GGML_ID_Q4_K = 12, GGML_ID_BF16 = 30 };

int llm_dtype_from_ggml(uint32_t ggml_type, llm_dtype *out) {
    switch (ggml_type) {
    case GGML_ID_F32:
        *out = LLM_DTYPE_F32;
        return 1;
    case GGML_ID_F16:
        *out = LLM_DTYPE_F16;
        return 1;
    case GGML_ID_BF16:
        *out = LLM_DTYPE_BF16;
        return 1;
    case GGML_ID_Q8_0:
        *out = LLM_DTYPE_Q8_0;
        return 1;
    case GGML_ID_Q4_K:
        *out = LLM_DTYPE_Q4_K;
        return 1;
    default:
        return 0;
    }
}

int64_t llm_dtype_to_ggml(llm_dtype dtype) {
    switch (dtype) {
    case LLM_DTYPE_F32:
        return GGML_ID_F32;
    case LLM_DTYPE_F16:
        return GGML_ID_F16;
    case LLM_DTYPE_BF16:
        return GGML_ID_BF16;
    case LLM_DTYPE_Q8_0:
        return GGML_ID_Q8_0;
    case LLM_DTYPE_Q4_K:
        return GGML_ID_Q4_K;
    case LLM_DTYPE_COUNT:
        break;
    }
    return -1;
}

/* Round to nearest, ties to even, for |v| < 2^22: adding 1.5 * 2^23 pushes the fraction bits out in the
 * FPU's default rounding mode. Unlike nearbyintf it vectorizes on baseline x86-64. */
static inline float round_ne(float v) {
    return (v + 12582912.f) - 12582912.f;
}

/* v clamped to [lo, hi], NaN going to lo (so the int conversion that follows is always defined). */
static inline float clampf(float v, float lo, float hi) {
    v = v > lo ? v : lo; /* written as selects (not fmaxf) so that loops over it vectorize */
    return v < hi ? v : hi;
}

/* fp16 of a non-negative scale, saturating at the largest finite half instead of overflowing. */
static inline uint16_t scale_to_f16(float s) {
    if (!(s < 65504.f)) s = s != s ? 0.f : 65504.f;
    return llm_f32_to_f16(s);
}

/* ---- Q8_0 ---------------------------------------------------------------------------------------------- */

static void quantize_q8_0(const float *x, uint8_t *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += LLM_QK8_0, dst += sizeof(llm_block_q8_0)) {
        float amax = 0.f;
        /* a select, not fmaxf (a libm call here): the same value for |x| >= 0, NaN skipped by both */
        for (int i = 0; i < LLM_QK8_0; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
        /* Scale from the fp16 value actually stored, so that the error bound d/2 holds for the d a reader
         * sees (ggml rounds with the unrounded scale, which is off by up to 127 * 2^-11 * d more). */
        const uint16_t dh = scale_to_f16(amax / 127.f);
        const float d = llm_f16_to_f32(dh);
        const float id = d > 0.f ? 1.f / d : 0.f;
        int8_t q[LLM_QK8_0];
        for (int i = 0; i < LLM_QK8_0; i++) q[i] = (int8_t)round_ne(clampf(x[i] * id, -127.f, 127.f));
        memcpy(dst, &dh, 2);
        memcpy(dst + 2, q, LLM_QK8_0);
    }
}

static void dequant_q8_0(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += sizeof(llm_block_q8_0), y += LLM_QK8_0) {
        uint16_t dh;
        memcpy(&dh, src, 2);
        const float d = llm_f16_to_f32(dh);
        const int8_t *q = (const int8_t *)(src + 2);
        for (int i = 0; i < LLM_QK8_0; i++) y[i] = d * (float)q[i];
    }
}

/* ---- Q4_K ---------------------------------------------------------------------------------------------- */

void llm_q4k_pack_scales(const uint8_t sc[8], const uint8_t m[8], uint8_t scales[12]) {
    for (int j = 0; j < 4; j++) {
        scales[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        scales[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        scales[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
    }
}

#define SUB 32 /* weights per Q4_K sub-block */

/* Candidate grids of the per-sub-block search: inverse scales (15 + RMIN + RDELTA * t) / (max - min),
 * t = 0..NSTEP, i.e. the plain min/max grid (t = 4) and grids slightly coarser and finer, which let a
 * few outliers clip when that lowers the squared error. Measured on Gaussian rows (relative RMSE,
 * quantize speed in CPU time on one Zen 5 core): 21 grids + 2 joint rounds + full 3 x 3 refinement 0.0698
 * at 20 M weights/s; the choice below 0.0699 at 41 M/s; no search at all (min/max grid, plain 6-bit
 * rounding) 0.0783. */
#define Q4K_NSTEP  8
#define Q4K_RMIN   -1.0f
#define Q4K_RDELTA 0.25f
#define Q4K_ROUNDS 1     /* joint least-squares re-fits of (d, dmin) */
#define Q4K_XMAX   1e30f /* inputs are clipped to +-this (far beyond any weight) */

/* Least-squares scale s >= 0 and offset b <= 0 (the format stores -b as a non-negative min) fitting
 * x ~ s * L + b over one sub-block, searched over the candidate grids; returns them through *s, *b.
 * A candidate is judged by the closed-form squared error of its own quants under its fitted (s, b) (an
 * upper bound of the error after re-rounding to the fitted grid, which the caller does). Sums run in
 * 8 independent lanes so that the compiler vectorizes them without reassociating float math. */
static void q4k_fit_sub(const float *x, float *s_out, float *b_out) {
    float xmin = x[0], xmax = x[0];
    double sx = 0, sxx = 0;
    for (int i = 0; i < SUB; i++) {
        xmin = x[i] < xmin ? x[i] : xmin;
        xmax = x[i] > xmax ? x[i] : xmax;
        sx += x[i];
        sxx += (double)x[i] * x[i];
    }
    if (xmin > 0.f) xmin = 0.f; /* the grid must reach down to 0 or below: min is stored >= 0 */
    if (!(xmax > xmin)) {       /* constant (or all-NaN) sub-block */
        *s_out = 0.f;
        *b_out = xmin == xmin ? xmin : 0.f;
        return;
    }
    float best_s = (xmax - xmin) / 15.f, best_b = xmin; /* the plain min/max grid, if nothing fits better */
    double best_err = HUGE_VAL;
    for (int t = 0; t <= Q4K_NSTEP; t++) {
        const float iscale = (15.f + Q4K_RMIN + Q4K_RDELTA * (float)t) / (xmax - xmin);
        float sl[8] = {0}, sll[8] = {0}, sxl[8] = {0};
        for (int i = 0; i < SUB; i += 8) {
            for (int l = 0; l < 8; l++) {
                /* (x - xmin) * iscale lies in [0, 16]: round half up, clip at 15 (integer ops vectorize) */
                int qi = (int)((x[i + l] - xmin) * iscale + 0.5f);
                qi = qi < 15 ? qi : 15;
                const float q = (float)qi;
                sl[l] += q;
                sll[l] += q * q;
                sxl[l] += q * x[i + l];
            }
        }
        double L = 0, LL = 0, XL = 0;
        for (int l = 0; l < 8; l++) {
            L += sl[l];
            LL += sll[l];
            XL += sxl[l];
        }
        const double det = (double)SUB * LL - L * L;
        if (det <= 0) continue;
        double sd = ((double)SUB * XL - L * sx) / det;
        double bd = (LL * sx - L * XL) / det;
        if (bd > 0) { /* offset must be <= 0: refit the scale alone */
            bd = 0;
            sd = XL / LL;
        }
        if (!(sd > 0)) continue;
        const double err =
            sxx - 2 * sd * XL - 2 * bd * sx + sd * sd * LL + 2 * sd * bd * L + (double)SUB * bd * bd;
        if (err < best_err) {
            best_err = err;
            best_s = (float)sd;
            best_b = (float)bd;
        }
    }
    *s_out = best_s;
    *b_out = best_b;
}

/* Squared error of one sub-block (xabs: a bound of its |x|) under the stored arithmetic (d1 = d * sc, m1 =
 * dmin * m, y = d1 * q - m1), quants re-chosen as the nearest grid points; writes them to q when q != NULL.
 */
static float q4k_sub_err(const float *x, float xabs, float d1, float m1, uint8_t *q) {
    const float id = d1 > 0.f ? 1.f / d1 : 0.f;
    if (!((xabs + m1) * id < 1e9f)) { /* a degenerate scale: the careful, scalar way */
        float err = 0;
        for (int i = 0; i < SUB; i++) {
            const float li = round_ne(clampf((x[i] + m1) * id, 0.f, 15.f));
            const float e = d1 * li - m1 - x[i];
            err += e * e;
            if (q) q[i] = (uint8_t)li;
        }
        return err;
    }
    /* |(x + m1) * id| stays far below 2^30 for the scales quantize_q4k_block picks (inputs are finite and
     * d1 >= d = largest sub-block scale / 63), so the int conversion is defined; clip in integers, which
     * the compiler vectorizes (float selects it does not, under IEEE rules). Round half up: any nearest
     * grid point is as good. The offset 16 makes the truncation a floor for inputs down to -16. */
    float err[8] = {0};
    int l[SUB];
    for (int i = 0; i < SUB; i += 8) {
        for (int j = 0; j < 8; j++) {
            int li = (int)((x[i + j] + m1) * id + 16.5f) - 16;
            li = li < 0 ? 0 : li;
            li = li < 15 ? li : 15;
            l[i + j] = li;
            const float e = d1 * (float)li - m1 - x[i + j];
            err[j] += e * e;
        }
    }
    if (q)
        for (int i = 0; i < SUB; i++) q[i] = (uint8_t)l[i];
    return ((err[0] + err[1]) + (err[2] + err[3])) + ((err[4] + err[5]) + (err[6] + err[7]));
}

/* Improves the 6-bit (sc, m) of one sub-block under fixed super-block scales: the best of the current
 * pair, its 4 axis neighbours, the 2 diagonal ones along which scale and min move together (a wider or
 * narrower grid around the same centre), and m = 0 (which matters when d underflows fp16 for tiny
 * weights: a zero row beats a constant offset). Returns the error. Measured on Gaussian rows: as good as
 * the full 3 x 3 neighbourhood (relative RMSE 0.0699) at 3/4 of its cost; axis moves alone give 0.0703. */
static float q4k_refine_sub(const float *x, float xabs, float d, float dmin, uint8_t *sc, uint8_t *m) {
    static const int8_t moves[7][2] = {{-1, 0}, {1, 0}, {0, -1}, {0, 1}, {1, 1}, {-1, -1}, {0, -64}};
    const int s0 = *sc, m0 = *m;
    int bs = s0, bm = m0;
    float best = q4k_sub_err(x, xabs, d * (float)s0, dmin * (float)m0, NULL);
    for (int c = 0; c < 7; c++) {
        const int s = s0 + moves[c][0], mm = moves[c][1] == -64 ? 0 : m0 + moves[c][1];
        if (s < 0 || s > 63 || mm < 0 || mm > 63 || (moves[c][1] == -64 && m0 <= 1)) continue;
        const float e = q4k_sub_err(x, xabs, d * (float)s, dmin * (float)mm, NULL);
        if (e < best) {
            best = e;
            bs = s;
            bm = mm;
        }
    }
    *sc = (uint8_t)bs;
    *m = (uint8_t)bm;
    return best;
}

/* Total squared error of a whole super-block under (d, dmin) after refining every (sc, m). */
static float q4k_refine_all(const float *x, float xabs, float d, float dmin, uint8_t sc[8], uint8_t m[8]) {
    float err = 0;
    for (int j = 0; j < 8; j++) err += q4k_refine_sub(x + SUB * j, xabs, d, dmin, &sc[j], &m[j]);
    return err;
}

static uint8_t q6(float v) {
    return (uint8_t)round_ne(clampf(v, 0.f, 63.f));
}

/* One super-block of 256 weights:
 *  1. per sub-block, the least-squares (scale, min) of q4k_fit_sub;
 *  2. fp16 super-block scales d = max scale / 63, dmin = max min / 63 and 6-bit sc, m rounded to them;
 *  3. each (sc, m) nudged to a neighbour where that lowers the error under the real fp16 arithmetic;
 *  4. d and dmin re-fitted jointly by least squares over all 256 weights given the chosen sc, m and
 *     quants (x ~ d * sc * q - dmin * m is linear in d, dmin), rounded to fp16 and step 3 repeated;
 *     kept only when the total error drops (Q4K_ROUNDS times at most). */
static void quantize_q4k_block(const float *xin, uint8_t *dst) {
    /* Finite, bounded copy: NaN -> 0, magnitudes clipped, so that no arithmetic below overflows. */
    float x[LLM_QK_K], xabs = 0.f;
    for (int i = 0; i < LLM_QK_K; i++) {
        const float v = xin[i] == xin[i] ? xin[i] : 0.f;
        x[i] = clampf(v, -Q4K_XMAX, Q4K_XMAX);
        xabs = fabsf(x[i]) > xabs ? fabsf(x[i]) : xabs;
    }
    float s[8], b[8];
    for (int j = 0; j < 8; j++) q4k_fit_sub(x + SUB * j, &s[j], &b[j]);
    float smax = 0.f, mmax = 0.f;
    for (int j = 0; j < 8; j++) {
        smax = fmaxf(smax, s[j]);
        mmax = fmaxf(mmax, -b[j]);
    }
    uint16_t dh = scale_to_f16(smax / 63.f), dminh = scale_to_f16(mmax / 63.f);
    float d = llm_f16_to_f32(dh), dmin = llm_f16_to_f32(dminh);
    uint8_t sc[8], m[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = d > 0.f ? q6(s[j] / d) : 0;
        m[j] = dmin > 0.f ? q6(-b[j] / dmin) : 0;
    }
    float err = q4k_refine_all(x, xabs, d, dmin, sc, m);

    for (int round = 0; round < Q4K_ROUNDS; round++) {
        /* normal equations of x_i ~ d * u_i - dmin * v_i, u = sc * q, v = m */
        double suu = 0, suv = 0, svv = 0, sxu = 0, sxv = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t q[SUB];
            q4k_sub_err(x + SUB * j, xabs, d * (float)sc[j], dmin * (float)m[j], q);
            for (int i = 0; i < SUB; i++) {
                const double u = (double)sc[j] * q[i], v = m[j], xi = x[SUB * j + i];
                suu += u * u;
                suv += u * v;
                svv += v * v;
                sxu += xi * u;
                sxv += xi * v;
            }
        }
        const double det = suu * svv - suv * suv;
        if (!(det > 0)) break;
        const double nd = (sxu * svv - sxv * suv) / det;
        const double ndmin = -(suu * sxv - suv * sxu) / det;
        if (!(nd > 0) || !(ndmin >= 0)) break;
        const uint16_t ndh = scale_to_f16((float)nd), ndminh = scale_to_f16((float)ndmin);
        const float d2 = llm_f16_to_f32(ndh), dmin2 = llm_f16_to_f32(ndminh);
        uint8_t sc2[8], m2[8];
        memcpy(sc2, sc, 8);
        memcpy(m2, m, 8);
        const float err2 = q4k_refine_all(x, xabs, d2, dmin2, sc2, m2);
        if (!(err2 < err)) break;
        err = err2;
        dh = ndh;
        dminh = ndminh;
        d = d2;
        dmin = dmin2;
        memcpy(sc, sc2, 8);
        memcpy(m, m2, 8);
    }

    memcpy(dst, &dh, 2);
    memcpy(dst + 2, &dminh, 2);
    llm_q4k_pack_scales(sc, m, dst + 4);
    uint8_t *qs = dst + 16;
    for (int g = 0; g < 4; g++) {
        uint8_t lo[SUB], hi[SUB];
        q4k_sub_err(x + 64 * g, xabs, d * (float)sc[2 * g], dmin * (float)m[2 * g], lo);
        q4k_sub_err(x + 64 * g + SUB, xabs, d * (float)sc[2 * g + 1], dmin * (float)m[2 * g + 1], hi);
        for (int i = 0; i < SUB; i++) qs[SUB * g + i] = (uint8_t)(lo[i] | (hi[i] << 4));
    }
}

static void dequant_q4k(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += sizeof(llm_block_q4_K)) {
        uint16_t dh, dminh;
        memcpy(&dh, src, 2);
        memcpy(&dminh, src + 2, 2);
        const float d = llm_f16_to_f32(dh), dmin = llm_f16_to_f32(dminh);
        const uint8_t *scales = src + 4, *qs = src + 16;
        for (int g = 0; g < 4; g++, qs += SUB) {
            uint8_t sc, m;
            llm_q4k_scale_min(2 * g, scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            llm_q4k_scale_min(2 * g + 1, scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int i = 0; i < SUB; i++) *y++ = d1 * (float)(qs[i] & 15) - m1;
            for (int i = 0; i < SUB; i++) *y++ = d2 * (float)(qs[i] >> 4) - m2;
        }
    }
}

/* ---- entry points -------------------------------------------------------------------------------------- */

void llm_quantize_row(llm_dtype wtype, const float *x, void *dst, int64_t k) {
    if (!llm_dtype_is_quant(wtype) || llm_dtype_row_bytes(wtype, k) == 0) return;
    const int64_t nb = k / llm_dtype_block_elems(wtype);
    uint8_t *out = dst;
    if (wtype == LLM_DTYPE_Q8_0) {
        quantize_q8_0(x, out, nb);
    } else {
        for (int64_t b = 0; b < nb; b++)
            quantize_q4k_block(x + LLM_QK_K * b, out + sizeof(llm_block_q4_K) * b);
    }
}

void llm_dequant_row(llm_dtype wtype, const void *row, float *dst, int64_t k) {
    if (llm_dtype_row_bytes(wtype, k) == 0) return;
    const uint8_t *src = row;
    switch (wtype) {
    case LLM_DTYPE_Q8_0:
        dequant_q8_0(src, dst, k / LLM_QK8_0);
        break;
    case LLM_DTYPE_Q4_K:
        dequant_q4k(src, dst, k / LLM_QK_K);
        break;
    case LLM_DTYPE_F32:
        memcpy(dst, src, (size_t)k * sizeof(float));
        break;
    case LLM_DTYPE_F16:
    case LLM_DTYPE_BF16:
        for (int64_t i = 0; i < k; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = wtype == LLM_DTYPE_F16 ? llm_f16_to_f32(h) : llm_bf16_to_f32(h);
        }
        break;
    case LLM_DTYPE_COUNT:
        break;
    }
}
