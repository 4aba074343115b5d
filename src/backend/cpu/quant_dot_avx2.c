/* AVX2 (+ FMA + F16C) quantized dot kernels: maddubs / madd integer dots, 4 weight rows per pass over
 * the activation, in the lane order of quant_dot.h (bit-identical to the scalar kernels). Compiled with
 * per-function target attributes so the file builds for baseline x86-64 and elsewhere. */
#include "backend/cpu/quant_dot_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define T_AVX2    __attribute__((target("avx2,fma,f16c")))
#define T_INLINE  static inline __attribute__((always_inline)) T_AVX2
#define ROWS_MAIN 4 /* weight rows per pass: they share every activation load */

T_INLINE float h2f(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

T_INLINE __m256i loadu(const uint8_t *p) {
    return _mm256_loadu_si256((const __m256i *)(const void *)p);
}

/* ((t0 + t4) + (t2 + t6)) + ((t1 + t5) + (t3 + t7)) */
T_INLINE float reduce8(__m256 t) {
    const __m128 u = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
    const __m128 v = _mm_add_ps(u, _mm_movehl_ps(u, u));
    return _mm_cvtss_f32(_mm_add_ss(v, _mm_shuffle_ps(v, v, 1)));
}

/* 8 lanes of sum over 4 bytes of w * a (signed int8 both): maddubs needs one unsigned operand, so the
 * sign of w moves onto a. |w| <= 128 and |a| <= 127 keep maddubs' int16 pairs from saturating. */
T_INLINE __m256i dot_i8(__m256i w, __m256i a) {
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* ---- activations --------------------------------------------------------------------------------------- */

/* 8 floats -> clamp to +-127 (NaN -> -127, like the scalar code), round to even, int32. */
T_INLINE __m256i q8_round8(__m256 v) {
    v = _mm256_max_ps(v, _mm256_set1_ps(-127.f));
    v = _mm256_min_ps(v, _mm256_set1_ps(127.f));
    return _mm256_cvtps_epi32(v);
}

/* 32 int8 from 4 vectors of 8 int32 (all within +-127), in order. */
T_INLINE __m256i pack32(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d); /* lanes interleaved by 128 */
    const __m256i x = _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(x, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

T_INLINE float amax8(__m256 m) {
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}

T_AVX2 void llm_qd_act_q8_0_avx2(const float *x, uint8_t *act, int64_t nb) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int64_t b = 0; b < nb; b++, x += 32, act += LLM_Q8_0_BYTES) {
        __m256 v[4], m = _mm256_setzero_ps();
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(x + 8 * i);
            /* max(|x|, m): a NaN x leaves m as is, as in the scalar code */
            m = _mm256_max_ps(_mm256_and_ps(v[i], absmask), m);
        }
        uint16_t dh;
        float id;
        llm_qd_q8_0_scale(amax8(m), &dh, &id);
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int i = 0; i < 4; i++) q[i] = q8_round8(_mm256_mul_ps(v[i], vid));
        memcpy(act, &dh, 2);
        _mm256_storeu_si256((__m256i *)(void *)(act + 2), pack32(q[0], q[1], q[2], q[3]));
    }
}

T_AVX2 void llm_qd_act_q8_K_avx2(const float *x, uint8_t *act, int64_t nb) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int64_t b = 0; b < nb; b++, x += LLM_QK_K, act += LLM_Q8_K_BYTES) {
        __m256 m = _mm256_setzero_ps();
        for (int i = 0; i < LLM_QK_K; i += 8)
            m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), absmask), m);
        const float amax = amax8(m);
        const float iscale = amax > 0.f ? 127.f / amax : 0.f;
        const float d = iscale > 0.f ? 1.f / iscale : 0.f;
        memcpy(act, &d, 4);
        const __m256 vis = _mm256_set1_ps(iscale);
        for (int g = 0; g < LLM_QK_K / 32; g++) {
            __m256i q[4];
            for (int i = 0; i < 4; i++)
                q[i] = q8_round8(_mm256_mul_ps(_mm256_loadu_ps(x + 32 * g + 8 * i), vis));
            const __m256i q8 = pack32(q[0], q[1], q[2], q[3]);
            _mm256_storeu_si256((__m256i *)(void *)(act + LLM_Q8_K_QS + 32 * g), q8);
            /* bsums of the two 16-byte halves: widen to int16 and add pairs down to one per 16 */
            const __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q8); /* 16 pair sums */
            __m256i s32 = _mm256_madd_epi16(s16, _mm256_set1_epi16(1));        /* 8 quad sums */
            s32 = _mm256_hadd_epi32(s32, s32); /* [0+1, 2+3, .., | 4+5, 6+7, ..] */
            s32 = _mm256_hadd_epi32(s32, s32);
            int16_t bs[2] = {(int16_t)_mm256_extract_epi32(s32, 0), (int16_t)_mm256_extract_epi32(s32, 4)};
            memcpy(act + LLM_Q8_K_BSUMS + 4 * g, bs, 4);
        }
    }
}

/* ---- Q8_0 x Q8_0 --------------------------------------------------------------------------------------- */

/* nr rows (a compile-time constant after inlining: ROWS_MAIN or 1): the per-row operations are the
 * same either way, so a row's result does not depend on its neighbours. */
T_INLINE void q8_0_rows(const uint8_t *w, size_t rb, int64_t nb, const uint8_t *act, float *out, const int nr,
                        const uint8_t *pfb, size_t pf, size_t pf_end) {
    __m256 acc0[ROWS_MAIN], acc1[ROWS_MAIN];
    for (int r = 0; r < nr; r++) acc0[r] = acc1[r] = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        /* 4 rows x 68 bytes read per step: 5 lines of the prefetch range */
        for (int c = 0; c < 5 && pf < pf_end; c++, pf += 64) LLM_QD_PREFETCH(pfb, pf);
        const uint8_t *ab = act + LLM_Q8_0_BYTES * b;
        const __m256i a0 = loadu(ab + 2), a1 = loadu(ab + LLM_Q8_0_BYTES + 2);
        const float fa0 = h2f(ab), fa1 = h2f(ab + LLM_Q8_0_BYTES);
        for (int r = 0; r < nr; r++) {
            const uint8_t *wb = w + rb * (size_t)r + LLM_Q8_0_BYTES * b;
            const __m256i i0 = dot_i8(loadu(wb + 2), a0);
            const __m256i i1 = dot_i8(loadu(wb + LLM_Q8_0_BYTES + 2), a1);
            const __m256 s0 = _mm256_set1_ps(h2f(wb) * fa0),
                         s1 = _mm256_set1_ps(h2f(wb + LLM_Q8_0_BYTES) * fa1);
            acc0[r] = _mm256_add_ps(acc0[r], _mm256_mul_ps(s0, _mm256_cvtepi32_ps(i0)));
            acc1[r] = _mm256_add_ps(acc1[r], _mm256_mul_ps(s1, _mm256_cvtepi32_ps(i1)));
        }
    }
    if (b < nb) { /* an odd last block goes to the even accumulator */
        const uint8_t *ab = act + LLM_Q8_0_BYTES * b;
        const __m256i a0 = loadu(ab + 2);
        const float fa0 = h2f(ab);
        for (int r = 0; r < nr; r++) {
            const uint8_t *wb = w + rb * (size_t)r + LLM_Q8_0_BYTES * b;
            const __m256 s0 = _mm256_set1_ps(h2f(wb) * fa0);
            acc0[r] =
                _mm256_add_ps(acc0[r], _mm256_mul_ps(s0, _mm256_cvtepi32_ps(dot_i8(loadu(wb + 2), a0))));
        }
    }
    for (int r = 0; r < nr; r++) out[r] = reduce8(_mm256_add_ps(acc0[r], acc1[r]));
}

T_AVX2 void llm_qd_rows_q8_0_avx2(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                                  const uint8_t *act, float *out) {
    int64_t r = 0;
    for (; r + ROWS_MAIN <= n_rows; r += ROWS_MAIN) {
        size_t pf, pf_end;
        llm_qd_pf_range(row_bytes, r, ROWS_MAIN, &pf, &pf_end);
        q8_0_rows(w + row_bytes * (size_t)r, row_bytes, nb, act, out + r, ROWS_MAIN, w, pf, pf_end);
    }
    for (; r < n_rows; r++) q8_0_rows(w + row_bytes * (size_t)r, row_bytes, nb, act, out + r, 1, w, 0, 0);
}

/* ---- Q4_K x Q8_K --------------------------------------------------------------------------------------- */

T_INLINE void q4_K_rows(const uint8_t *w, size_t rb, int64_t nb, const uint8_t *act, float *out, const int nr,
                        const uint8_t *pfb, size_t pf, size_t pf_end) {
    __m256 acc[ROWS_MAIN];
    for (int r = 0; r < nr; r++) acc[r] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(15);
    for (int64_t b = 0; b < nb; b++) {
        /* 4 rows x 144 bytes per step: 10 lines of the prefetch range */
        for (int c = 0; c < 10 && pf < pf_end; c++, pf += 64) LLM_QD_PREFETCH(pfb, pf);
        const uint8_t *ab = act + LLM_Q8_K_BYTES * b, *aq = ab + LLM_Q8_K_QS;
        float d8;
        memcpy(&d8, ab, 4);
        /* activation sums per sub-block of 32: bsums[2L] + bsums[2L + 1] in lane L */
        const __m256i bs32 = _mm256_madd_epi16(loadu(ab + LLM_Q8_K_BSUMS), _mm256_set1_epi16(1));
        for (int r = 0; r < nr; r++) {
            const uint8_t *wb = w + rb * (size_t)r + LLM_Q4_K_BYTES * b, *qs = wb + 16;
            uint64_t sc8, m8;
            llm_qd_q4k_unpack(wb + 4, &sc8, &m8);
            /* sub-block scales as int16, both 128-bit halves alike; shuffles broadcast one of them */
            const __m256i scv =
                _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc8)));
            __m256i isum = _mm256_setzero_si256();
            for (int g = 0; g < 4; g++) {
                const __m256i q = loadu(qs + 32 * g);
                const __m256i lo = _mm256_and_si256(q, m4),
                              hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                const __m256i plo = _mm256_maddubs_epi16(lo, loadu(aq + 64 * g));
                const __m256i phi = _mm256_maddubs_epi16(hi, loadu(aq + 64 * g + 32));
                const __m256i slo =
                    _mm256_shuffle_epi8(scv, _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * g))));
                const __m256i shi =
                    _mm256_shuffle_epi8(scv, _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * g + 1))));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(plo, slo));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(phi, shi));
            }
            /* mins: m_L (high int16 of each lane zero) times the int16-sized bsum32_L */
            const __m256i mp =
                _mm256_madd_epi16(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)m8)), bs32);
            const __m256 s1 = _mm256_set1_ps(d8 * h2f(wb)), s2 = _mm256_set1_ps(d8 * h2f(wb + 2));
            const __m256 t = _mm256_sub_ps(_mm256_mul_ps(s1, _mm256_cvtepi32_ps(isum)),
                                           _mm256_mul_ps(s2, _mm256_cvtepi32_ps(mp)));
            acc[r] = _mm256_add_ps(acc[r], t);
        }
    }
    for (int r = 0; r < nr; r++) out[r] = reduce8(acc[r]);
}

T_AVX2 void llm_qd_rows_q4_K_avx2(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                                  const uint8_t *act, float *out) {
    int64_t r = 0;
    for (; r + ROWS_MAIN <= n_rows; r += ROWS_MAIN) {
        size_t pf, pf_end;
        llm_qd_pf_range(row_bytes, r, ROWS_MAIN, &pf, &pf_end);
        q4_K_rows(w + row_bytes * (size_t)r, row_bytes, nb, act, out + r, ROWS_MAIN, w, pf, pf_end);
    }
    for (; r < n_rows; r++) q4_K_rows(w + row_bytes * (size_t)r, row_bytes, nb, act, out + r, 1, w, 0, 0);
}

/* ---- several tokens per pass (prefill) ----------------------------------------------------------------- */

/* Each weight block is loaded (Q4_K: and unpacked) once per row and tile of tokens, then dotted with
 * every token of the tile; per (row, token) the operations of the one-token kernels above, in their order,
 * so the same bits. Tiles: one row x 4 tokens (16 ymm registers). */
#define MT_Q8 4
#define MT_Q4 4

T_INLINE void q8_0_multi_row(const uint8_t *w, int64_t nb, const uint8_t *act, size_t astride, float *out,
                             size_t ldo, const int nt, const uint8_t *pfb, size_t pf, size_t pf_end) {
    __m256 acc0[MT_Q8], acc1[MT_Q8];
    for (int t = 0; t < nt; t++) acc0[t] = acc1[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        if (b % 4 == 0)
            for (int c = 0; c < 3 && pf < pf_end; c++, pf += 64) LLM_QD_PREFETCH(pfb, pf);
        const uint8_t *wb = w + LLM_Q8_0_BYTES * b;
        const __m256i wq = loadu(wb + 2), wabs = _mm256_sign_epi8(wq, wq);
        const float dw = h2f(wb);
        for (int t = 0; t < nt; t++) {
            const uint8_t *ab = act + astride * (size_t)t + LLM_Q8_0_BYTES * b;
            const __m256i p = _mm256_maddubs_epi16(wabs, _mm256_sign_epi8(loadu(ab + 2), wq));
            const __m256i i = _mm256_madd_epi16(p, _mm256_set1_epi16(1));
            const __m256 f = _mm256_mul_ps(_mm256_set1_ps(dw * h2f(ab)), _mm256_cvtepi32_ps(i));
            if (b % 2 == 0)
                acc0[t] = _mm256_add_ps(acc0[t], f);
            else
                acc1[t] = _mm256_add_ps(acc1[t], f);
        }
    }
    for (int t = 0; t < nt; t++) out[ldo * (size_t)t] = reduce8(_mm256_add_ps(acc0[t], acc1[t]));
}

T_INLINE void q4_K_multi_row(const uint8_t *w, int64_t nb, const uint8_t *act, size_t astride, float *out,
                             size_t ldo, const int nt, const uint8_t *pfb, size_t pf, size_t pf_end) {
    __m256 acc[MT_Q4];
    for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(15);
    for (int64_t b = 0; b < nb; b++) {
        /* one row x 144 bytes per step: 2 or 3 lines of the prefetch range */
        for (int c = 0; c < 3 && pf < pf_end; c++, pf += 64) LLM_QD_PREFETCH(pfb, pf);
        const uint8_t *wb = w + LLM_Q4_K_BYTES * b, *qs = wb + 16;
        uint64_t sc8, m8;
        llm_qd_q4k_unpack(wb + 4, &sc8, &m8);
        const __m256i scv = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc8)));
        const __m256i m32 = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)m8));
        /* sub-block pairs outer, tokens inner: each 32-byte group of quants unpacked once, few registers
         * live (integer sums: their order is free) */
        __m256i isum[MT_Q4];
        for (int t = 0; t < nt; t++) isum[t] = _mm256_setzero_si256();
        for (int g = 0; g < 4; g++) {
            const __m256i q = loadu(qs + 32 * g);
            const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            const __m256i slo =
                _mm256_shuffle_epi8(scv, _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * g))));
            const __m256i shi =
                _mm256_shuffle_epi8(scv, _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * g + 1))));
            for (int t = 0; t < nt; t++) {
                const uint8_t *aq = act + astride * (size_t)t + LLM_Q8_K_BYTES * b + LLM_Q8_K_QS;
                const __m256i plo = _mm256_maddubs_epi16(lo, loadu(aq + 64 * g));
                const __m256i phi = _mm256_maddubs_epi16(hi, loadu(aq + 64 * g + 32));
                isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(plo, slo));
                isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(phi, shi));
            }
        }
        const float dw = h2f(wb), dmw = h2f(wb + 2);
        for (int t = 0; t < nt; t++) {
            const uint8_t *ab = act + astride * (size_t)t + LLM_Q8_K_BYTES * b;
            float d8;
            memcpy(&d8, ab, 4);
            const __m256i bs32 = _mm256_madd_epi16(loadu(ab + LLM_Q8_K_BSUMS), _mm256_set1_epi16(1));
            const __m256i mp = _mm256_madd_epi16(m32, bs32);
            const __m256 s1 = _mm256_set1_ps(d8 * dw), s2 = _mm256_set1_ps(d8 * dmw);
            const __m256 tv = _mm256_sub_ps(_mm256_mul_ps(s1, _mm256_cvtepi32_ps(isum[t])),
                                            _mm256_mul_ps(s2, _mm256_cvtepi32_ps(mp)));
            acc[t] = _mm256_add_ps(acc[t], tv);
        }
    }
    for (int t = 0; t < nt; t++) out[ldo * (size_t)t] = reduce8(acc[t]);
}

/* Token tiles outer (their activations stay in L1), rows inner; the prefetch stream runs during the
 * first tile only. */
#define MULTI_FN(kind, MT)                                                                                   \
    T_AVX2 void llm_qd_multi_##kind##_avx2(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,   \
                                           const uint8_t *act, size_t act_stride, int n_tok, float *out,     \
                                           size_t ldo) {                                                     \
        for (int t0 = 0; t0 < n_tok; t0 += (MT)) {                                                           \
            const int nt = n_tok - t0 < (MT) ? n_tok - t0 : (MT);                                            \
            const uint8_t *at = act + act_stride * (size_t)t0;                                               \
            for (int64_t r = 0; r < n_rows; r++) {                                                           \
                size_t pf = 0, pf_end = 0;                                                                   \
                if (t0 == 0) llm_qd_pf_range(row_bytes, r, 1, &pf, &pf_end);                                 \
                const uint8_t *wr = w + row_bytes * (size_t)r;                                               \
                float *o = out + ldo * (size_t)t0 + (size_t)r;                                               \
                if (nt == (MT))                                                                              \
                    kind##_multi_row(wr, nb, at, act_stride, o, ldo, (MT), w, pf, pf_end);                   \
                else                                                                                         \
                    for (int t = 0; t < nt; t++)                                                             \
                        kind##_multi_row(wr, nb, at + act_stride * (size_t)t, act_stride,                    \
                                         o + ldo * (size_t)t, ldo, 1, w, pf, pf_end);                        \
            }                                                                                                \
        }                                                                                                    \
    }

MULTI_FN(q8_0, MT_Q8)
MULTI_FN(q4_K, MT_Q4)

#undef MULTI_FN

#endif
