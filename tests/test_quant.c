/* Q8_0 / Q4_K: sizes, GGUF bit layouts (hand-built blocks), quantization error bounds, activation
 * quantization, and the dot kernels at every level this CPU runs against a float64 reference and
 * against each other (bit for bit). LLAMAC_QUANT_BENCH=1 also prints kernel speeds (GB/s of weights,
 * one core). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/cpu_features.h"
#include "backend/cpu/quant_dot.h"
#include "backend/cpu/quant_dot_impl.h"
#include "core/half.h"
#include "core/quant.h"
#include "io/gguf.h"
#include "test_util.h"

static double uniform(tu_rng *r) { /* (0, 1) */
    return ((double)(tu_rng_next(r) >> 11) + 0.5) / 9007199254740992.0;
}

static float gauss(tu_rng *r) {
    return (float)(sqrt(-2 * log(uniform(r))) * cos(6.283185307179586 * uniform(r)));
}

/* Gaussian rows of scale sigma; with outliers, about 1 in 64 values is 20..60 sigma. Never all zero. */
static void fill(tu_rng *r, float *x, int64_t n, float sigma, int outliers) {
    for (int64_t i = 0; i < n; i++) {
        x[i] = sigma * gauss(r);
        if (outliers && tu_rng_below(r, 64) == 0)
            x[i] = sigma * (20.f + 40.f * (float)uniform(r)) * (x[i] < 0 ? -1 : 1);
    }
}

/* ---- sizes and type ids -------------------------------------------------------------------------------- */

static void test_sizes(void) {
    TU_CHECK(llm_dtype_block_elems(LLM_DTYPE_F32) == 1 && llm_dtype_block_elems(LLM_DTYPE_BF16) == 1,
             "float blocks");
    TU_CHECK(llm_dtype_block_elems(LLM_DTYPE_Q8_0) == 32 && llm_dtype_block_bytes(LLM_DTYPE_Q8_0) == 34,
             "Q8_0 block");
    TU_CHECK(llm_dtype_block_elems(LLM_DTYPE_Q4_K) == 256 && llm_dtype_block_bytes(LLM_DTYPE_Q4_K) == 144,
             "Q4_K block");
    TU_CHECK(llm_dtype_row_bytes(LLM_DTYPE_Q8_0, 2048) == 2176, "Q8_0 row");
    TU_CHECK(llm_dtype_row_bytes(LLM_DTYPE_Q4_K, 2048) == 1152, "Q4_K row");
    TU_CHECK(llm_dtype_row_bytes(LLM_DTYPE_F16, 3) == 6 && llm_dtype_row_bytes(LLM_DTYPE_F32, 5) == 20,
             "float rows");
    TU_CHECK(llm_dtype_row_bytes(LLM_DTYPE_Q8_0, 48) == 0 && llm_dtype_row_bytes(LLM_DTYPE_Q4_K, 288) == 0 &&
                 llm_dtype_row_bytes(LLM_DTYPE_Q4_K, 0) == 0 &&
                 llm_dtype_row_bytes(LLM_DTYPE_Q8_0, -32) == 0 &&
                 llm_dtype_row_bytes(LLM_DTYPE_COUNT, 32) == 0,
             "bad shapes give 0");
    TU_CHECK(llm_dtype_is_quant(LLM_DTYPE_Q8_0) && llm_dtype_is_quant(LLM_DTYPE_Q4_K) &&
                 !llm_dtype_is_quant(LLM_DTYPE_BF16) && !llm_dtype_is_quant(LLM_DTYPE_F32),
             "is_quant");
    const struct {
        uint32_t id;
        llm_dtype dt;
    } map[] = {{0, LLM_DTYPE_F32},
               {1, LLM_DTYPE_F16},
               {8, LLM_DTYPE_Q8_0},
               {12, LLM_DTYPE_Q4_K},
               {30, LLM_DTYPE_BF16}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        llm_dtype dt = LLM_DTYPE_COUNT;
        TU_CHECK(llm_dtype_from_ggml(map[i].id, &dt) == 1 && dt == map[i].dt, "ggml %u", map[i].id);
        TU_CHECK(llm_dtype_to_ggml(map[i].dt) == (int64_t)map[i].id, "to ggml %u", map[i].id);
        uint32_t be, bb; /* agrees with the GGUF reader's own table */
        llm_ggml_type_block(map[i].id, &be, &bb);
        TU_CHECK((int64_t)be == llm_dtype_block_elems(map[i].dt) && bb == llm_dtype_block_bytes(map[i].dt),
                 "gguf block size of type %u", map[i].id);
    }
    llm_dtype dt = LLM_DTYPE_F32;
    TU_CHECK(llm_dtype_from_ggml(2, &dt) == 0 && llm_dtype_from_ggml(14, &dt) == 0 && dt == LLM_DTYPE_F32,
             "Q4_0 / Q6_K do not map");
    TU_CHECK(llm_dtype_to_ggml(LLM_DTYPE_COUNT) == -1, "unknown dtype");
    TU_CHECK(llm_quant_act_bytes(LLM_DTYPE_Q8_0, 2048) == 2176 &&
                 llm_quant_act_bytes(LLM_DTYPE_Q4_K, 2048) == 8 * 292 &&
                 llm_quant_act_bytes(LLM_DTYPE_Q4_K, 96) == 0 &&
                 llm_quant_act_bytes(LLM_DTYPE_BF16, 256) == 0,
             "activation bytes");
    /* bad shapes and dtypes are no-ops, never crashes */
    float x[64], out[2] = {7.f, 7.f};
    uint8_t buf[300];
    for (int i = 0; i < 64; i++) x[i] = (float)i - 31.5f;
    memset(buf, 0xAB, sizeof buf);
    llm_quantize_row(LLM_DTYPE_Q8_0, x, buf, 48);
    llm_quantize_row(LLM_DTYPE_Q4_K, x, buf, 64);
    llm_quantize_row(LLM_DTYPE_BF16, x, buf, 64);
    llm_quant_act(LLM_DTYPE_Q4_K, x, buf, 64, LLM_CPU_LEVEL_AVX512);
    llm_quant_act(LLM_DTYPE_F32, x, buf, 64, LLM_CPU_LEVEL_REF);
    int untouched = 1;
    for (size_t i = 0; i < sizeof buf; i++) untouched &= buf[i] == 0xAB;
    TU_CHECK(untouched, "bad quantize calls wrote nothing");
    llm_quant_dot_rows(LLM_DTYPE_Q8_0, buf, 48, 0, 1, buf, out, LLM_CPU_LEVEL_REF);
    llm_quant_dot_rows(LLM_DTYPE_Q8_0, buf, 32, 0, 0, buf, out, LLM_CPU_LEVEL_REF);
    llm_quant_dot_rows(LLM_DTYPE_F16, buf, 32, 0, 1, buf, out, LLM_CPU_LEVEL_AVX2);
    llm_quant_dot_rows(LLM_DTYPE_Q4_K, buf, 256, -1, 1, buf, out, LLM_CPU_LEVEL_AVX2);
    TU_CHECK(out[0] == 7.f && out[1] == 7.f, "bad dot calls wrote nothing");
    /* a level beyond what the CPU has falls back instead of faulting */
    llm_quantize_row(LLM_DTYPE_Q8_0, x, buf, 32);
    llm_quant_act(LLM_DTYPE_Q8_0, x, buf + 34, 32, LLM_CPU_LEVEL_COUNT);
    llm_quant_dot_rows(LLM_DTYPE_Q8_0, buf, 32, 0, 1, buf + 34, out, LLM_CPU_LEVEL_COUNT);
    llm_quant_dot_rows(LLM_DTYPE_Q8_0, buf, 32, 0, 1, buf + 34, out + 1, LLM_CPU_LEVEL_REF);
    TU_CHECK(out[0] == out[1] && out[0] > 0, "level COUNT falls back: %g vs %g", out[0], out[1]);
}

/* ---- layouts from hand-built blocks -------------------------------------------------------------------- */

static void test_layout_q8_0(void) {
    uint8_t blk[2 * 34 + 1];
    uint8_t *b = blk + 1; /* odd address: readers must not assume alignment */
    const uint16_t d0 = 0x3800 /* 0.5 */, d1 = 0xC400 /* -4 */;
    memcpy(b, &d0, 2);
    memcpy(b + 34, &d1, 2);
    for (int i = 0; i < 32; i++) {
        b[2 + i] = (uint8_t)(int8_t)(i * 8 - 127);
        b[36 + i] = (uint8_t)(int8_t)(100 - 7 * i);
    }
    float y[64];
    llm_dequant_row(LLM_DTYPE_Q8_0, b, y, 64);
    int bad = 0;
    for (int i = 0; i < 32; i++) {
        bad += y[i] != 0.5f * (float)(i * 8 - 127);
        bad += y[32 + i] != -4.f * (float)(100 - 7 * i);
    }
    TU_CHECK(bad == 0, "Q8_0 hand-built block: %d wrong values", bad);
}

/* A Q4_K block built from the documented bit layout, not from our packer: 6-bit scales and mins with
 * their top bits in use, packed into the 12 bytes by hand, and a known nibble pattern. */
static void test_layout_q4_K(tu_rng *rng) {
    static const uint8_t sc[8] = {1, 17, 33, 63, 5, 40, 63, 48};
    static const uint8_t mn[8] = {0, 62, 3, 33, 17, 63, 50, 20};
    /* bytes 0-3: sc[0..3] | top bits of sc[4..7] << 6; 4-7: m[0..3] | top bits of m[4..7] << 6;
     * 8-11: low 4 bits of sc[4..7] | low 4 bits of m[4..7] << 4 (worked out by hand) */
    static const uint8_t packed[12] = {0x01, 0x91, 0xE1, 0xFF, 0x40, 0xFE,
                                       0xC3, 0x61, 0x15, 0xF8, 0x2F, 0x40};
    uint8_t raw[145];
    uint8_t *b = raw + 1;
    const uint16_t d = 0x3400 /* 0.25 */, dmin = 0x3000 /* 0.125 */;
    memcpy(b, &d, 2);
    memcpy(b + 2, &dmin, 2);
    memcpy(b + 4, packed, 12);
    for (int g = 0; g < 4; g++)
        for (int i = 0; i < 32; i++)
            b[16 + 32 * g + i] = (uint8_t)(((i + 3 * g) & 15) | (((31 - i + g) & 15) << 4));
    float y[256];
    llm_dequant_row(LLM_DTYPE_Q4_K, b, y, 256);
    int bad = 0;
    for (int g = 0; g < 4; g++) {
        for (int i = 0; i < 32; i++) {
            /* weights 64g..64g+31: low nibbles with sub-block 2g; 64g+32..: high nibbles with 2g+1 */
            const double lo = 0.25 * sc[2 * g] * ((i + 3 * g) & 15) - 0.125 * mn[2 * g];
            const double hi = 0.25 * sc[2 * g + 1] * ((31 - i + g) & 15) - 0.125 * mn[2 * g + 1];
            bad += y[64 * g + i] != (float)lo;
            bad += y[64 * g + 32 + i] != (float)hi;
        }
    }
    TU_CHECK(bad == 0, "Q4_K hand-built block: %d wrong values", bad);
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        llm_q4k_scale_min(j, packed, &s, &m);
        TU_CHECK(s == sc[j] && m == mn[j], "scale/min %d: %u %u", j, s, m);
    }
    uint8_t ours[12];
    llm_q4k_pack_scales(sc, mn, ours);
    TU_CHECK(memcmp(ours, packed, 12) == 0, "our packer writes the documented bytes");
    /* pack / unpack round trip on random 6-bit values, and the kernels' word-wise unpack agrees */
    for (int it = 0; it < 2000; it++) {
        uint8_t s8[8], m8[8], p[12];
        for (int j = 0; j < 8; j++) {
            s8[j] = (uint8_t)tu_rng_below(rng, 64);
            m8[j] = (uint8_t)tu_rng_below(rng, 64);
        }
        llm_q4k_pack_scales(s8, m8, p);
        uint64_t ws, wm;
        llm_qd_q4k_unpack(p, &ws, &wm);
        for (int j = 0; j < 8; j++) {
            uint8_t s, m;
            llm_q4k_scale_min(j, p, &s, &m);
            if (s != s8[j] || m != m8[j] || ((ws >> (8 * j)) & 0xff) != s || ((wm >> (8 * j)) & 0xff) != m) {
                TU_CHECK(0, "scale pack round trip, sub-block %d", j);
                return;
            }
        }
    }
}

/* ---- quantization error -------------------------------------------------------------------------------- */

static double rel_rmse(const float *x, const float *y, int64_t n) {
    double e = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        e += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        s += (double)x[i] * x[i];
    }
    return sqrt(e / s);
}

/* The naive Q4_K choice: per sub-block min/max grid, 6-bit scales rounded, nearest quants. */
static void naive_q4k(const float *x, uint8_t *dst) {
    float s[8], m[8], smax = 0, mmax = 0;
    for (int j = 0; j < 8; j++) {
        float lo = x[32 * j], hi = x[32 * j];
        for (int i = 0; i < 32; i++) {
            lo = fminf(lo, x[32 * j + i]);
            hi = fmaxf(hi, x[32 * j + i]);
        }
        lo = fminf(lo, 0.f);
        s[j] = (hi - lo) / 15;
        m[j] = -lo;
        smax = fmaxf(smax, s[j]);
        mmax = fmaxf(mmax, m[j]);
    }
    const uint16_t dh = llm_f32_to_f16(smax / 63), mh = llm_f32_to_f16(mmax / 63);
    const float d = llm_f16_to_f32(dh), dm = llm_f16_to_f32(mh);
    uint8_t sc[8], mm[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = (uint8_t)fminf(63.f, fmaxf(1.f, rintf(s[j] / d)));
        mm[j] = (uint8_t)fminf(63.f, rintf(m[j] / dm));
    }
    memcpy(dst, &dh, 2);
    memcpy(dst + 2, &mh, 2);
    llm_q4k_pack_scales(sc, mm, dst + 4);
    for (int g = 0; g < 4; g++)
        for (int i = 0; i < 32; i++) {
            int q[2];
            for (int h = 0; h < 2; h++) {
                const int j = 2 * g + h;
                q[h] =
                    (int)fminf(15.f, fmaxf(0.f, rintf((x[64 * g + 32 * h + i] + dm * mm[j]) / (d * sc[j]))));
            }
            dst[16 + 32 * g + i] = (uint8_t)(q[0] | q[1] << 4);
        }
}

static void test_quant_error(tu_rng *rng) {
    enum { N = 256 * 512 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    uint8_t *q = malloc(N / 32 * 34 + 1), *qn = malloc(N / 256 * 144);

    /* Q8_0: every element within d/2 of its value (d the stored fp16 scale, = fp16(amax / 127)). The
     * slack (1e-4 relative) covers float rounding of x * (1/d), up to 127 * 2^-23 of a step. */
    for (int outl = 0; outl < 2; outl++) {
        fill(rng, x, N, 0.02f + (float)uniform(rng), outl);
        llm_quantize_row(LLM_DTYPE_Q8_0, x, q + 1, N);
        llm_dequant_row(LLM_DTYPE_Q8_0, q + 1, y, N);
        int bad = 0;
        for (int b = 0; b < N / 32; b++) {
            uint16_t dh;
            memcpy(&dh, q + 1 + 34 * b, 2);
            const float d = llm_f16_to_f32(dh);
            float amax = 0;
            for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[32 * b + i]));
            bad += dh != llm_f32_to_f16(amax / 127.f);
            for (int i = 0; i < 32; i++) bad += fabsf(x[32 * b + i] - y[32 * b + i]) > 0.5f * d * (1 + 1e-4f);
        }
        TU_CHECK(bad == 0, "Q8_0 error bound d/2 (outliers %d): %d violations", outl, bad);
        const double e = rel_rmse(x, y, N);
        TU_CHECK(e < (outl ? 0.02 : 0.006), "Q8_0 relative RMSE %.5f (outliers %d)", e, outl);
    }

    /* Q4_K on Gaussian rows: relative RMSE <= 0.073 (measured 0.0699), and clearly better than the naive
     * min/max choice (0.0783) on the same data. */
    fill(rng, x, N, 0.05f + (float)uniform(rng), 0);
    llm_quantize_row(LLM_DTYPE_Q4_K, x, q, N);
    llm_dequant_row(LLM_DTYPE_Q4_K, q, y, N);
    const double ours = rel_rmse(x, y, N);
    for (int b = 0; b < N / 256; b++) naive_q4k(x + 256 * b, qn + 144 * b);
    llm_dequant_row(LLM_DTYPE_Q4_K, qn, y, N);
    const double naive = rel_rmse(x, y, N);
    printf("Q4_K relative RMSE on Gaussian rows: ours %.5f, naive min/max %.5f\n", ours, naive);
    TU_CHECK(ours <= 0.073, "Q4_K relative RMSE %.5f > 0.073", ours);
    TU_CHECK(ours < 0.95 * naive, "Q4_K search (%.5f) not better than naive (%.5f)", ours, naive);

    /* Q4_K with outliers, one-signed rows (the min must reach 0), small and huge magnitudes: bounded
     * error. Per element: never more than the sub-block's range. At sigma 1e-4 the fp16 super-block scale
     * is subnormal (coarser); at 1e-7 it underflows to 0 and the best the format offers is about zero. */
    const struct {
        float sigma, shift;
        int outl;
        double bound;
    } cases[] = {{1.f, 0, 1, 0.2},
                 {1.f, 4.f, 0, 0.035},
                 {1.f, -4.f, 0, 0.03},
                 {1e-4f, 0, 0, 0.09},
                 {3e3f, 0, 0, 0.075}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fill(rng, x, N / 8, cases[c].sigma, cases[c].outl);
        for (int i = 0; i < N / 8; i++) x[i] += cases[c].shift;
        llm_quantize_row(LLM_DTYPE_Q4_K, x, q, N / 8);
        llm_dequant_row(LLM_DTYPE_Q4_K, q, y, N / 8);
        const double e = rel_rmse(x, y, N / 8);
        int bad = 0;
        for (int j = 0; j < N / 8 / 32; j++) {
            float lo = 0, hi = 0;
            for (int i = 0; i < 32; i++) {
                lo = fminf(lo, x[32 * j + i]);
                hi = fmaxf(hi, x[32 * j + i]);
            }
            for (int i = 0; i < 32; i++) bad += !(fabsf(y[32 * j + i] - x[32 * j + i]) <= hi - lo);
        }
        TU_CHECK(e <= cases[c].bound && bad == 0,
                 "Q4_K case %zu: relative RMSE %.5f (bound %.3f), %d elements off", c, e, cases[c].bound,
                 bad);
    }

    fill(rng, x, 4096, 1e-7f, 0);
    llm_quantize_row(LLM_DTYPE_Q4_K, x, q, 4096);
    llm_dequant_row(LLM_DTYPE_Q4_K, q, y, 4096);
    TU_CHECK(rel_rmse(x, y, 4096) <= 1.0, "Q4_K of an fp16-underflowing row: relative RMSE %.3f > 1",
             rel_rmse(x, y, 4096));

    /* constant and zero sub-blocks are exact; NaN / Inf inputs give finite blocks */
    for (int i = 0; i < 256; i++) x[i] = i < 128 ? -1.5f : 0.f;
    llm_quantize_row(LLM_DTYPE_Q4_K, x, q, 256);
    llm_dequant_row(LLM_DTYPE_Q4_K, q, y, 256);
    TU_CHECK(rel_rmse(x, y, 256) < 1e-3, "constant sub-blocks: %g", rel_rmse(x, y, 256));
    fill(rng, x, 256, 1.f, 0);
    x[3] = NAN;
    x[77] = INFINITY;
    x[200] = -INFINITY;
    for (int t = 0; t < 2; t++) {
        const llm_dtype dt = t ? LLM_DTYPE_Q4_K : LLM_DTYPE_Q8_0;
        llm_quantize_row(dt, x, q, 256);
        llm_dequant_row(dt, q, y, 256);
        int finite = 1;
        for (int i = 0; i < 256; i++) finite &= isfinite(y[i]) != 0;
        TU_CHECK(finite, "%s of NaN/Inf input gives finite values", llm_dtype_name(dt));
    }
    free(x);
    free(y);
    free(q);
    free(qn);
}

/* ---- activation quantization --------------------------------------------------------------------------- */

static void test_act(tu_rng *rng, const llm_cpu_features *f) {
    enum { K = 8192 + 256 };
    float *x = malloc(K * sizeof(float));
    fill(rng, x, K, 3.f * (float)uniform(rng) + 0.01f, 1);
    for (int t = 0; t < 2; t++) {
        const llm_dtype wt = t ? LLM_DTYPE_Q4_K : LLM_DTYPE_Q8_0;
        const size_t n = llm_quant_act_bytes(wt, K);
        uint8_t *ref = malloc(n + 1), *got = malloc(n + 1);
        llm_quant_act(wt, x, ref, K, LLM_CPU_LEVEL_REF);
        for (int l = LLM_CPU_LEVEL_PORTABLE; l < LLM_CPU_LEVEL_COUNT; l++) {
            if (!llm_cpu_level_supported(f, (llm_cpu_level)l)) continue;
            llm_quant_act(wt, x, got + 1, K, (llm_cpu_level)l);
            TU_CHECK(memcmp(ref, got + 1, n) == 0, "%s activations at level %s differ from ref",
                     llm_dtype_name(wt), llm_cpu_level_name((llm_cpu_level)l));
        }
        if (wt == LLM_DTYPE_Q8_0) { /* the same bytes as the weight quantizer */
            llm_quantize_row(LLM_DTYPE_Q8_0, x, got, K);
            TU_CHECK(memcmp(ref, got, n) == 0, "Q8_0 activations == Q8_0 weights");
        } else { /* Q8_K: |x - d q| <= d/2, bsums are the sums of 16 */
            int bad = 0;
            for (int b = 0; b < K / 256; b++) {
                const uint8_t *blk = ref + 292 * b;
                float d;
                memcpy(&d, blk, 4);
                const int8_t *qs = (const int8_t *)(blk + 4);
                for (int i = 0; i < 256; i++)
                    bad += fabsf(x[256 * b + i] - d * qs[i]) > 0.5f * d * (1 + 1e-4f);
                for (int g = 0; g < 16; g++) {
                    int s = 0;
                    int16_t bs;
                    for (int i = 0; i < 16; i++) s += qs[16 * g + i];
                    memcpy(&bs, blk + 260 + 2 * g, 2);
                    bad += bs != s;
                }
            }
            TU_CHECK(bad == 0, "Q8_K activations: %d violations", bad);
        }
        free(ref);
        free(got);
    }
    free(x);
}

/* ---- dot kernels --------------------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    llm_qd_rows_fn fn[2]; /* Q8_0, Q4_K */
} kernel_set;

/* Every kernel this CPU runs: the levels, plus AVX-512 without VNNI when the CPU has VNNI (the level
 * dispatch would never pick it here). */
static int kernel_sets(const llm_cpu_features *f, kernel_set *ks) {
    int n = 0;
    for (int l = 0; l < LLM_CPU_LEVEL_COUNT; l++) {
        if (!llm_cpu_level_supported(f, (llm_cpu_level)l)) continue;
        ks[n].name = llm_cpu_level_name((llm_cpu_level)l);
        ks[n].fn[0] = llm_qd_rows_kernel(LLM_DTYPE_Q8_0, (llm_cpu_level)l);
        ks[n].fn[1] = llm_qd_rows_kernel(LLM_DTYPE_Q4_K, (llm_cpu_level)l);
        n++;
    }
#if defined(__x86_64__)
    if (llm_cpu_level_supported(f, LLM_CPU_LEVEL_AVX512)) {
        ks[n] = (kernel_set){"avx512-no-vnni", {llm_qd_rows_q8_0_avx512, llm_qd_rows_q4_K_avx512}};
        n++;
        if (f->avx512_vnni) {
            ks[n] = (kernel_set){"avx512-vnni", {llm_qd_rows_q8_0_avx512_vnni, llm_qd_rows_q4_K_avx512_vnni}};
            n++;
        }
    }
#endif
    return n;
}

/* Checks out[0..n) against the float64 dot of dequantized rows and activation; returns the number of
 * rows off by more than 1e-5 of the sum of |products| (float rounding of a few hundred partial sums). */
static int check_vs_f64(llm_dtype wt, const uint8_t *w, int64_t k, int64_t n, const uint8_t *act,
                        const float *out, double *worst) {
    float *wf = malloc((size_t)k * sizeof(float)), *af = malloc((size_t)k * sizeof(float));
    if (wt == LLM_DTYPE_Q8_0) {
        llm_dequant_row(LLM_DTYPE_Q8_0, act, af, k);
    } else {
        for (int64_t b = 0; b < k / 256; b++) {
            float d;
            memcpy(&d, act + 292 * b, 4);
            for (int i = 0; i < 256; i++) af[256 * b + i] = d * (float)(int8_t)act[292 * b + 4 + i];
        }
    }
    const size_t rb = llm_dtype_row_bytes(wt, k);
    int bad = 0;
    for (int64_t r = 0; r < n; r++) {
        llm_dequant_row(wt, w + rb * (size_t)r, wf, k);
        double s = 0, sa = 0;
        for (int64_t i = 0; i < k; i++) {
            s += (double)wf[i] * af[i];
            sa += fabs((double)wf[i] * af[i]);
        }
        const double err = fabs(out[r] - s) / (sa + 1e-30);
        if (err > *worst) *worst = err;
        bad += !(err <= 1e-5);
    }
    free(wf);
    free(af);
    return bad;
}

static void test_dots(tu_rng *rng, const llm_cpu_features *f) {
    kernel_set ks[8];
    const int nks = kernel_sets(f, ks);
    const int64_t ks_q8[] = {32, 64, 96, 256, 2048, 4096 + 32, 8192 + 256};
    const int64_t ks_q4[] = {256, 512, 2048, 8192 + 256};
    const int64_t rows[] = {1, 2, 3, 4, 5, 7, 9, 13};
    for (int t = 0; t < 2; t++) {
        const llm_dtype wt = t ? LLM_DTYPE_Q4_K : LLM_DTYPE_Q8_0;
        const int64_t *kk = t ? ks_q4 : ks_q8;
        const int nk = t ? 4 : 7;
        double worst[8] = {0};
        for (int ik = 0; ik < nk; ik++) {
            const int64_t k = kk[ik];
            const int64_t n = rows[tu_rng_below(rng, 8)] + (ik & 1) * 8;
            const size_t rb = llm_dtype_row_bytes(wt, k), ab = llm_quant_act_bytes(wt, k);
            float *x = malloc((size_t)(k * n) * sizeof(float));
            uint8_t *wraw = malloc(rb * (size_t)n + 1), *araw = malloc(ab + 3);
            uint8_t *w = wraw + 1, *act = araw + 3; /* misaligned on purpose */
            for (int64_t r = 0; r < n; r++)
                fill(rng, x + k * r, k, 0.01f + (float)uniform(rng), (int)(r % 3 == 1));
            if (t && n > 2) /* one row of one sign: large mins */
                for (int64_t i = 0; i < k; i++) x[k + i] = fabsf(x[k + i]) + 0.3f;
            llm_quantize_row(wt, x, w, k * n); /* rows are whole blocks: one call quantizes them all */
            fill(rng, x, k, 1.f, 1);
            llm_quant_act(wt, x, act, k, LLM_CPU_LEVEL_REF);
            float *ref = malloc((size_t)n * sizeof(float)), *out = malloc((size_t)n * sizeof(float));
            ks[0].fn[t](w, rb, k / llm_dtype_block_elems(wt), n, act, ref);
            for (int s = 0; s < nks; s++) {
                for (int64_t r = 0; r < n; r++) out[r] = NAN;
                ks[s].fn[t](w, rb, k / llm_dtype_block_elems(wt), n, act, out);
                const int bad = check_vs_f64(wt, w, k, n, act, out, &worst[s]);
                TU_CHECK(bad == 0, "%s %s k=%lld rows=%lld: %d rows off the float64 dot", llm_dtype_name(wt),
                         ks[s].name, (long long)k, (long long)n, bad);
                TU_CHECK(memcmp(out, ref, (size_t)n * sizeof(float)) == 0,
                         "%s %s k=%lld rows=%lld differs from %s", llm_dtype_name(wt), ks[s].name,
                         (long long)k, (long long)n, ks[0].name);
            }
            /* the public entry, rows split at random points: the same bits whatever the split */
            for (int l = 0; l < LLM_CPU_LEVEL_COUNT; l++) {
                if (!llm_cpu_level_supported(f, (llm_cpu_level)l)) continue;
                for (int64_t r0 = 0; r0 < n;) {
                    const int64_t len = 1 + (int64_t)tu_rng_below(rng, (uint32_t)(n - r0));
                    llm_quant_dot_rows(wt, w, k, r0, len, act, out + r0, (llm_cpu_level)l);
                    r0 += len;
                }
                TU_CHECK(memcmp(out, ref, (size_t)n * sizeof(float)) == 0, "%s level %s, split rows, k=%lld",
                         llm_dtype_name(wt), llm_cpu_level_name((llm_cpu_level)l), (long long)k);
            }
            free(x);
            free(wraw);
            free(araw);
            free(ref);
            free(out);
        }
        for (int s = 0; s < nks; s++)
            printf("%s %-15s worst |dot - f64| / sum|products| = %.2e\n", llm_dtype_name(wt), ks[s].name,
                   worst[s]);
    }
}

/* Multi-token kernels (prefill): every (row, token) result must have the bits of the one-token kernel,
 * whatever the number of tokens per call, the rows per call and where the call's rows start, at every
 * level and for both AVX-512 variants. Outputs outside [row, token) of the call must stay untouched. */
typedef struct {
    const char *name;
    llm_qd_multi_fn fn[2]; /* Q8_0, Q4_K */
} multi_set;

static void test_dots_multi(tu_rng *rng, const llm_cpu_features *f) {
    multi_set ms[8];
    int nms = 0;
    for (int l = 0; l < LLM_CPU_LEVEL_COUNT; l++) {
        if (!llm_cpu_level_supported(f, (llm_cpu_level)l)) continue;
        ms[nms++] = (multi_set){llm_cpu_level_name((llm_cpu_level)l),
                                {llm_qd_multi_kernel(LLM_DTYPE_Q8_0, (llm_cpu_level)l),
                                 llm_qd_multi_kernel(LLM_DTYPE_Q4_K, (llm_cpu_level)l)}};
    }
#if defined(__x86_64__)
    if (llm_cpu_level_supported(f, LLM_CPU_LEVEL_AVX512)) {
        ms[nms++] = (multi_set){"avx512-no-vnni", {llm_qd_multi_q8_0_avx512, llm_qd_multi_q4_K_avx512}};
        if (f->avx512_vnni)
            ms[nms++] =
                (multi_set){"avx512-vnni", {llm_qd_multi_q8_0_avx512_vnni, llm_qd_multi_q4_K_avx512_vnni}};
    }
#endif
    const int64_t ks_q8[] = {32, 64, 96, 2048, 4096 + 32};
    const int64_t ks_q4[] = {256, 512, 2048 + 256};
    const int toks[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 13};
    int checked = 0;
    for (int t = 0; t < 2; t++) {
        const llm_dtype wt = t ? LLM_DTYPE_Q4_K : LLM_DTYPE_Q8_0;
        const int64_t *kk = t ? ks_q4 : ks_q8;
        const int nk = t ? 3 : 5;
        for (int ik = 0; ik < nk; ik++) {
            const int64_t k = kk[ik];
            const int64_t n = 1 + (int64_t)tu_rng_below(rng, 19); /* odd and even, short and long */
            const int nt = toks[tu_rng_below(rng, 10)];
            const size_t rb = llm_dtype_row_bytes(wt, k), ab = llm_quant_act_bytes(wt, k);
            const size_t astride = ab + 5; /* rows of activations apart by an odd stride */
            const size_t ldo = (size_t)n + 3;
            float *x = malloc((size_t)(k * (n > nt ? n : nt)) * sizeof(float));
            uint8_t *wraw = malloc(rb * (size_t)n + 1), *araw = malloc(astride * (size_t)nt + 3);
            uint8_t *w = wraw + 1, *act = araw + 3;
            memset(araw, 0x5a, astride * (size_t)nt + 3);
            for (int64_t r = 0; r < n; r++)
                fill(rng, x + k * r, k, 0.01f + (float)uniform(rng), (int)(r % 3 == 1));
            llm_quantize_row(wt, x, w, k * n);
            for (int j = 0; j < nt; j++) {
                fill(rng, x, k, 0.1f + (float)uniform(rng), j & 1);
                llm_quant_act(wt, x, act + astride * (size_t)j, k, LLM_CPU_LEVEL_REF);
            }
            const size_t no = ldo * (size_t)nt;
            float *ref = malloc(no * sizeof(float)), *out = malloc(no * sizeof(float));
            for (size_t i = 0; i < no; i++) ref[i] = -7.f; /* the gaps stay at this value */
            const llm_qd_rows_fn one = llm_qd_rows_kernel(wt, LLM_CPU_LEVEL_REF);
            for (int j = 0; j < nt; j++)
                one(w, rb, k / llm_dtype_block_elems(wt), n, act + astride * (size_t)j,
                    ref + ldo * (size_t)j);
            for (int s = 0; s < nms; s++) {
                for (size_t i = 0; i < no; i++) out[i] = -7.f;
                ms[s].fn[t](w, rb, k / llm_dtype_block_elems(wt), n, act, astride, nt, out, ldo);
                TU_CHECK(memcmp(out, ref, no * sizeof(float)) == 0,
                         "%s multi %s k=%lld rows=%lld tokens=%d differs from the one-token ref kernel",
                         llm_dtype_name(wt), ms[s].name, (long long)k, (long long)n, nt);
                checked++;
            }
            /* the public entry, rows and tokens split at random points */
            for (int l = 0; l < LLM_CPU_LEVEL_COUNT; l++) {
                if (!llm_cpu_level_supported(f, (llm_cpu_level)l)) continue;
                for (size_t i = 0; i < no; i++) out[i] = -7.f;
                for (int t0 = 0; t0 < nt;) {
                    const int tl = 1 + (int)tu_rng_below(rng, (uint32_t)(nt - t0));
                    for (int64_t r0 = 0; r0 < n;) {
                        const int64_t len = 1 + (int64_t)tu_rng_below(rng, (uint32_t)(n - r0));
                        llm_quant_dot_rows_multi(wt, w, k, r0, len, act + astride * (size_t)t0, astride, tl,
                                                 out + ldo * (size_t)t0 + r0, ldo, (llm_cpu_level)l);
                        r0 += len;
                    }
                    t0 += tl;
                }
                TU_CHECK(memcmp(out, ref, no * sizeof(float)) == 0,
                         "%s level %s, multi, split rows and tokens, k=%lld rows=%lld tokens=%d",
                         llm_dtype_name(wt), llm_cpu_level_name((llm_cpu_level)l), (long long)k, (long long)n,
                         nt);
            }
            /* bad arguments: no-op */
            for (size_t i = 0; i < no; i++) out[i] = -7.f;
            llm_quant_dot_rows_multi(wt, w, k, 0, n, act, astride, 0, out, ldo, LLM_CPU_LEVEL_AVX2);
            llm_quant_dot_rows_multi(wt, w, k + 1, 0, n, act, astride, nt, out, ldo, LLM_CPU_LEVEL_AVX2);
            llm_quant_dot_rows_multi(LLM_DTYPE_F16, w, k, 0, n, act, astride, nt, out, ldo,
                                     LLM_CPU_LEVEL_AVX2);
            int untouched = 1;
            for (size_t i = 0; i < no; i++) untouched &= out[i] == -7.f;
            TU_CHECK(untouched, "llm_quant_dot_rows_multi wrote on bad arguments");
            free(x);
            free(wraw);
            free(araw);
            free(ref);
            free(out);
        }
    }
    printf("multi-token dots: %d kernel runs bit-identical to the one-token kernel\n", checked);
}

/* The checker must catch layout mistakes: reading Q4_K nibbles in the other order (high first), or
 * one Q8_0 block with the wrong scale, gives rows the float64 comparison rejects. */
static void test_checker_catches_bugs(tu_rng *rng) {
    enum { K = 2048, N = 4 };
    float *x = malloc(K * N * sizeof(float));
    uint8_t *w = malloc(144 * 8 * N), *act = malloc(292 * 8), *w8 = malloc(34 * 64 * N),
            *a8 = malloc(34 * 64);
    float out[N];
    double worst = 0;
    fill(rng, x, K * N, 1.f, 0);
    llm_quantize_row(LLM_DTYPE_Q4_K, x, w, K * N);
    llm_quantize_row(LLM_DTYPE_Q8_0, x, w8, K * N);
    fill(rng, x, K, 1.f, 0);
    llm_quant_act(LLM_DTYPE_Q4_K, x, act, K, LLM_CPU_LEVEL_REF);
    llm_quant_act(LLM_DTYPE_Q8_0, x, a8, K, LLM_CPU_LEVEL_REF);
    uint8_t *swapped = malloc(34 * 64 * N); /* room for either format */
    memcpy(swapped, w, 144 * 8 * N);
    for (int b = 0; b < 8 * N; b++)
        for (int i = 0; i < 128; i++) {
            uint8_t *p = swapped + 144 * b + 16 + i;
            *p = (uint8_t)(*p >> 4 | *p << 4);
        }
    llm_qd_rows_q4_K_scalar(swapped, 144 * 8, 8, N, act, out); /* a kernel with the nibble order wrong */
    TU_CHECK(check_vs_f64(LLM_DTYPE_Q4_K, w, K, N, act, out, &worst) == N, "checker misses swapped nibbles");
    memcpy(swapped, w8, 34 * 64 * N);
    uint16_t h;
    memcpy(&h, swapped + 34 * 5, 2);
    h = (uint16_t)(h + 0x400);
    memcpy(swapped + 34 * 5, &h, 2);
    llm_qd_rows_q8_0_scalar(swapped, 34 * 64, 64, N, a8, out); /* one block's scale doubled */
    TU_CHECK(check_vs_f64(LLM_DTYPE_Q8_0, w8, K, N, a8, out, &worst) >= 1,
             "checker misses a wrong block scale");
    free(x);
    free(w);
    free(act);
    free(w8);
    free(a8);
    free(swapped);
}

/* ---- benchmark (LLAMAC_QUANT_BENCH=1) ------------------------------------------------------------------ */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* GB/s of weight bytes on one core: rows of k = 2048 (Llama-3.2-1B's hidden size), a 256 MB working
 * set (DRAM-bound, like decode) and a 1 MB one (L2-resident: the kernel's compute rate). */
static void bench(tu_rng *rng, const llm_cpu_features *f) {
    kernel_set ks[8];
    const int nks = kernel_sets(f, ks);
    const int64_t k = 2048;
    for (int t = 0; t < 2; t++) {
        const llm_dtype wt = t ? LLM_DTYPE_Q4_K : LLM_DTYPE_Q8_0;
        const size_t rb = llm_dtype_row_bytes(wt, k);
        const int64_t nbig = (int64_t)((256u << 20) / rb), nsmall = (int64_t)((1u << 20) / rb);
        uint8_t *w = malloc(rb * (size_t)nbig), *act = malloc(llm_quant_act_bytes(wt, k));
        float *x = malloc((size_t)k * sizeof(float)), *out = malloc((size_t)nbig * sizeof(float));
        fill(rng, x, k, 1.f, 0);
        for (int64_t r = 0; r < nbig; r += 64) llm_quantize_row(wt, x, w + rb * (size_t)r, k);
        for (int64_t r = 0; r < nbig; r++)
            if (r % 64) memcpy(w + rb * (size_t)r, w + rb * (size_t)(r - r % 64), rb);
        llm_quant_act(wt, x, act, k, LLM_CPU_LEVEL_REF);
        { /* the roofline: a plain read of the same 256 MB (vectorized integer sum) */
            const size_t nw = rb * (size_t)nbig / 8;
            uint64_t sink = 0;
            double best = 1e30;
            for (int rep = 0; rep < 4; rep++) {
                const double t0 = now_s();
                uint64_t acc[8] = {0};
                const uint64_t *p = (const uint64_t *)(const void *)w;
                for (size_t i = 0; i + 8 <= nw; i += 8)
                    for (int l = 0; l < 8; l++) acc[l] += p[i + l];
                for (int l = 0; l < 8; l++) sink += acc[l];
                const double dt = now_s() - t0;
                best = dt < best ? dt : best;
            }
            printf("bench %s read-only sum     %7.1f GB/s (256 MB, DRAM roofline) [%llu]\n",
                   llm_dtype_name(wt), (double)nw * 8 / best * 1e-9, (unsigned long long)(sink & 1));
        }
        for (int s = 0; s < nks; s++) {
            double gbs[2];
            for (int big = 0; big < 2; big++) {
                const int64_t n = big ? nbig : nsmall;
                const int reps = big ? 3 : 200;
                ks[s].fn[t](w, rb, k / llm_dtype_block_elems(wt), n, act, out); /* warm up */
                double best = 1e30;
                for (int rep = 0; rep < 3; rep++) {
                    const double t0 = now_s();
                    for (int i = 0; i < reps; i++)
                        ks[s].fn[t](w, rb, k / llm_dtype_block_elems(wt), n, act, out);
                    const double dt = (now_s() - t0) / reps;
                    best = dt < best ? dt : best;
                }
                gbs[big] = (double)rb * (double)n / best * 1e-9;
            }
            printf("bench %s %-15s %7.1f GB/s (L2-resident)  %7.1f GB/s (256 MB, DRAM)\n", llm_dtype_name(wt),
                   ks[s].name, gbs[0], gbs[1]);
        }
        /* through the public entry in groups of 16 rows, the way the CPU matmul walks a tensor */
        for (int l = LLM_CPU_LEVEL_AVX2; l < LLM_CPU_LEVEL_COUNT; l++) {
            if (!llm_cpu_level_supported(f, (llm_cpu_level)l)) continue;
            double best = 1e30;
            for (int rep = 0; rep < 3; rep++) {
                const double t0 = now_s();
                for (int64_t r0 = 0; r0 < nbig; r0 += 16)
                    llm_quant_dot_rows(wt, w, k, r0, nbig - r0 < 16 ? nbig - r0 : 16, act, out + r0,
                                       (llm_cpu_level)l);
                const double dt = now_s() - t0;
                best = dt < best ? dt : best;
            }
            printf("bench %s %-15s %7.1f GB/s (256 MB, DRAM, calls of 16 rows)\n", llm_dtype_name(wt),
                   llm_cpu_level_name((llm_cpu_level)l), (double)rb * (double)nbig / best * 1e-9);
        }
        free(w);
        free(act);
        free(x);
        free(out);
    }
}

int main(void) {
    tu_rng rng = {tu_fresh_seed("test_quant")};
    llm_cpu_features f;
    llm_cpu_features_detect(&f);
    test_sizes();
    test_layout_q8_0();
    test_layout_q4_K(&rng);
    test_quant_error(&rng);
    test_act(&rng, &f);
    test_dots(&rng, &f);
    test_dots_multi(&rng, &f);
    test_checker_catches_bugs(&rng);
    const char *b = getenv("LLAMAC_QUANT_BENCH");
    if (b && *b && strcmp(b, "0") != 0) bench(&rng, &f);
    return tu_finish("test_quant");
}
