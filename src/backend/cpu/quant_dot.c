/* Quantized dot products: activation quantization, the scalar kernels (REF / PORTABLE) and the
 * dispatch to the SIMD files. The scalar code spells out the lane order every level follows. */
#include "backend/cpu/quant_dot.h"

#include <math.h>

#include "backend/cpu/quant_dot_impl.h"
#include "core/half.h"

size_t llm_quant_act_bytes(llm_dtype wtype, int64_t k) {
    if (wtype == LLM_DTYPE_Q8_0) return llm_dtype_row_bytes(LLM_DTYPE_Q8_0, k);
    if (wtype == LLM_DTYPE_Q4_K && k > 0 && k % LLM_QK_K == 0) return (size_t)(k / LLM_QK_K) * LLM_Q8_K_BYTES;
    return 0;
}

/* Level usable on this CPU: the one asked for, else the best below it (callers normally pass what
 * llm_cpu_best_level chose; this only keeps a wrong level from raising SIGILL). __builtin_cpu_supports
 * reads the compiler runtime's once-probed table: cheap, and no state of ours; cpuid itself would trap
 * to the hypervisor on every call in a VM. It cannot name F16C under clang 14: every x86 CPU with AVX2
 * has F16C. */
static llm_cpu_level usable_level(llm_cpu_level level) {
#if defined(__x86_64__)
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (level >= LLM_CPU_LEVEL_AVX512) {
        if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl"))
            return LLM_CPU_LEVEL_AVX512;
        level = LLM_CPU_LEVEL_AVX2;
    }
    if (level >= LLM_CPU_LEVEL_AVX2) {
        if (avx2) return LLM_CPU_LEVEL_AVX2;
        level = LLM_CPU_LEVEL_PORTABLE;
    }
    return level < LLM_CPU_LEVEL_REF ? LLM_CPU_LEVEL_REF : level;
#else
    return level > LLM_CPU_LEVEL_PORTABLE ? LLM_CPU_LEVEL_PORTABLE : level;
#endif
}

/* ---- activation quantization --------------------------------------------------------------------------- */

void llm_qd_q8_0_scale(float amax, uint16_t *dh, float *id) {
    float d = amax / 127.f;
    if (!(d < 65504.f)) d = d != d ? 0.f : 65504.f; /* saturate like the weight quantizer */
    *dh = llm_f32_to_f16(d);
    const float df = llm_f16_to_f32(*dh);
    *id = df > 0.f ? 1.f / df : 0.f;
}

/* v clamped to [-127, 127] (NaN -> -127, as maxps / minps do in the SIMD versions), rounded to even. */
static inline int8_t q8_round(float v) {
    v = v > -127.f ? v : -127.f;
    v = v < 127.f ? v : 127.f;
    return (int8_t)((v + 12582912.f) - 12582912.f);
}

static void act_q8_0_scalar(const float *x, uint8_t *act, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += LLM_QK8_0, act += LLM_Q8_0_BYTES) {
        float amax = 0.f;
        for (int i = 0; i < LLM_QK8_0; i++) {
            const float a = fabsf(x[i]);
            amax = a > amax ? a : amax;
        }
        uint16_t dh;
        float id;
        llm_qd_q8_0_scale(amax, &dh, &id);
        memcpy(act, &dh, 2);
        for (int i = 0; i < LLM_QK8_0; i++) act[2 + i] = (uint8_t)q8_round(x[i] * id);
    }
}

void llm_qd_quant_q8_K_block(const float *x, uint8_t *dst) {
    float amax = 0.f;
    for (int i = 0; i < LLM_QK_K; i++) {
        const float a = fabsf(x[i]);
        amax = a > amax ? a : amax;
    }
    const float iscale = amax > 0.f ? 127.f / amax : 0.f;
    const float d = iscale > 0.f ? 1.f / iscale : 0.f;
    int8_t q[LLM_QK_K];
    int16_t bsums[LLM_QK_K / 16];
    for (int i = 0; i < LLM_QK_K; i++) q[i] = q8_round(x[i] * iscale);
    for (int g = 0; g < LLM_QK_K / 16; g++) {
        int s = 0;
        for (int i = 0; i < 16; i++) s += q[16 * g + i];
        bsums[g] = (int16_t)s;
    }
    memcpy(dst, &d, 4);
    memcpy(dst + LLM_Q8_K_QS, q, sizeof q);
    memcpy(dst + LLM_Q8_K_BSUMS, bsums, sizeof bsums);
}

void llm_quant_act(llm_dtype wtype, const float *x, void *act, int64_t k, llm_cpu_level level) {
    if (llm_quant_act_bytes(wtype, k) == 0) return;
    level = usable_level(level);
    (void)level; /* only the x86 paths look at it */
    uint8_t *dst = act;
    if (wtype == LLM_DTYPE_Q8_0) {
        const int64_t nb = k / LLM_QK8_0;
#if defined(__x86_64__)
        if (level >= LLM_CPU_LEVEL_AVX2) {
            llm_qd_act_q8_0_avx2(x, dst, nb);
            return;
        }
#endif
        act_q8_0_scalar(x, dst, nb);
    } else {
        const int64_t nb = k / LLM_QK_K;
#if defined(__x86_64__)
        if (level >= LLM_CPU_LEVEL_AVX2) {
            llm_qd_act_q8_K_avx2(x, dst, nb);
            return;
        }
#endif
        for (int64_t b = 0; b < nb; b++) llm_qd_quant_q8_K_block(x + LLM_QK_K * b, dst + LLM_Q8_K_BYTES * b);
    }
}

/* ---- scalar kernels ------------------------------------------------------------------------------------ */

static inline float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return llm_f16_to_f32(h);
}

void llm_qd_rows_q8_0_scalar(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                             const uint8_t *act, float *out) {
    for (int64_t r = 0; r < n_rows; r++, w += row_bytes) {
        float acc[2][8] = {{0}};
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *wb = w + LLM_Q8_0_BYTES * b, *ab = act + LLM_Q8_0_BYTES * b;
            const float s = f16_at(wb) * f16_at(ab);
            const int8_t *wq = (const int8_t *)(wb + 2), *aq = (const int8_t *)(ab + 2);
            /* products first, then lane sums: loops the compiler vectorizes (integer sums are exact, so
             * their order is free) */
            int16_t prod[32];
            for (int i = 0; i < 32; i++) prod[i] = (int16_t)(wq[i] * aq[i]);
            for (int l = 0; l < 8; l++) {
                const int32_t isum = (prod[4 * l] + prod[4 * l + 1]) + (prod[4 * l + 2] + prod[4 * l + 3]);
                acc[b & 1][l] = acc[b & 1][l] + s * (float)isum;
            }
        }
        float t[8];
        for (int l = 0; l < 8; l++) t[l] = acc[0][l] + acc[1][l];
        out[r] = llm_qd_reduce8(t);
    }
}

void llm_qd_rows_q4_K_scalar(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                             const uint8_t *act, float *out) {
    for (int64_t r = 0; r < n_rows; r++, w += row_bytes) {
        float acc[8] = {0};
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *wb = w + LLM_Q4_K_BYTES * b, *ab = act + LLM_Q8_K_BYTES * b;
            float d8;
            memcpy(&d8, ab, 4);
            const int8_t *aq = (const int8_t *)(ab + LLM_Q8_K_QS);
            int16_t bsums[16];
            memcpy(bsums, ab + LLM_Q8_K_BSUMS, sizeof bsums);
            uint64_t sc8, m8;
            llm_qd_q4k_unpack(wb + 4, &sc8, &m8);
            const uint8_t *qs = wb + 16;
            int32_t isum[8] = {0};
            for (int j = 0; j < 8; j++) {
                const int sc = (int)((sc8 >> (8 * j)) & 0xff);
                const uint8_t *q = qs + 32 * (j / 2);
                const int shift = 4 * (j & 1);
                for (int l = 0; l < 8; l++) {
                    int32_t s4 = 0;
                    for (int t = 0; t < 4; t++) s4 += ((q[4 * l + t] >> shift) & 15) * aq[32 * j + 4 * l + t];
                    isum[l] += sc * s4;
                }
            }
            const float s1 = d8 * f16_at(wb), s2 = d8 * f16_at(wb + 2);
            for (int l = 0; l < 8; l++) {
                const int32_t mp = (int32_t)((m8 >> (8 * l)) & 0xff) * (bsums[2 * l] + bsums[2 * l + 1]);
                acc[l] = acc[l] + (s1 * (float)isum[l] - s2 * (float)mp);
            }
        }
        out[r] = llm_qd_reduce8(acc);
    }
}

/* ---- dispatch ------------------------------------------------------------------------------------------ */

llm_qd_rows_fn llm_qd_rows_kernel(llm_dtype wtype, llm_cpu_level level) {
    if (wtype != LLM_DTYPE_Q8_0 && wtype != LLM_DTYPE_Q4_K) return NULL;
    const int q8 = wtype == LLM_DTYPE_Q8_0;
    level = usable_level(level);
    (void)level; /* only the x86 paths look at it */
#if defined(__x86_64__)
    if (level == LLM_CPU_LEVEL_AVX512) {
        if (__builtin_cpu_supports("avx512vnni"))
            return q8 ? llm_qd_rows_q8_0_avx512_vnni : llm_qd_rows_q4_K_avx512_vnni;
        return q8 ? llm_qd_rows_q8_0_avx512 : llm_qd_rows_q4_K_avx512;
    }
    if (level == LLM_CPU_LEVEL_AVX2) return q8 ? llm_qd_rows_q8_0_avx2 : llm_qd_rows_q4_K_avx2;
#endif
    return q8 ? llm_qd_rows_q8_0_scalar : llm_qd_rows_q4_K_scalar;
}

/* Multi-token entry points of the scalar levels: the one-token kernel per token. */
#define QD_MULTI_LOOP(name)                                                                                  \
    static void name##_multi_loop(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,            \
                                  const uint8_t *act, size_t act_stride, int n_tok, float *out,              \
                                  size_t ldo) {                                                              \
        for (int t = 0; t < n_tok; t++)                                                                      \
            name(w, row_bytes, nb, n_rows, act + act_stride * (size_t)t, out + ldo * (size_t)t);             \
    }
QD_MULTI_LOOP(llm_qd_rows_q8_0_scalar)
QD_MULTI_LOOP(llm_qd_rows_q4_K_scalar)
#undef QD_MULTI_LOOP

llm_qd_multi_fn llm_qd_multi_kernel(llm_dtype wtype, llm_cpu_level level) {
    if (wtype != LLM_DTYPE_Q8_0 && wtype != LLM_DTYPE_Q4_K) return NULL;
    const int q8 = wtype == LLM_DTYPE_Q8_0;
    level = usable_level(level);
    (void)level;
#if defined(__x86_64__)
    if (level == LLM_CPU_LEVEL_AVX512) {
        if (__builtin_cpu_supports("avx512vnni"))
            return q8 ? llm_qd_multi_q8_0_avx512_vnni : llm_qd_multi_q4_K_avx512_vnni;
        return q8 ? llm_qd_multi_q8_0_avx512 : llm_qd_multi_q4_K_avx512;
    }
    if (level == LLM_CPU_LEVEL_AVX2) return q8 ? llm_qd_multi_q8_0_avx2 : llm_qd_multi_q4_K_avx2;
#endif
    return q8 ? llm_qd_rows_q8_0_scalar_multi_loop : llm_qd_rows_q4_K_scalar_multi_loop;
}

void llm_quant_dot_rows_multi(llm_dtype wtype, const void *w, int64_t k, int64_t r0, int64_t n_rows,
                              const void *act, size_t act_stride, int n_tok, float *out, size_t ldo,
                              llm_cpu_level level) {
    const size_t row_bytes = llm_dtype_row_bytes(wtype, k);
    if (!llm_dtype_is_quant(wtype) || row_bytes == 0 || n_rows <= 0 || r0 < 0 || n_tok <= 0) return;
    const int64_t nb = k / llm_dtype_block_elems(wtype);
    const uint8_t *w0 = (const uint8_t *)w + (size_t)r0 * row_bytes;
    if (n_tok == 1) { /* decode: the one-token kernel (4 rows per pass, tuned for streaming) */
        llm_qd_rows_kernel(wtype, level)(w0, row_bytes, nb, n_rows, act, out);
        return;
    }
    llm_qd_multi_kernel(wtype, level)(w0, row_bytes, nb, n_rows, act, act_stride, n_tok, out, ldo);
}

void llm_quant_dot_rows(llm_dtype wtype, const void *w, int64_t k, int64_t r0, int64_t n_rows,
                        const void *act, float *out, llm_cpu_level level) {
    const size_t row_bytes = llm_dtype_row_bytes(wtype, k);
    if (!llm_dtype_is_quant(wtype) || row_bytes == 0 || n_rows <= 0 || r0 < 0) return;
    const llm_qd_rows_fn fn = llm_qd_rows_kernel(wtype, level);
    const int64_t nb = k / llm_dtype_block_elems(wtype);
    fn((const uint8_t *)w + (size_t)r0 * row_bytes, row_bytes, nb, n_rows, act, out);
}
