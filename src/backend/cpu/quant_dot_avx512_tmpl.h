/* Body of the AVX-512 quantized dot kernels, included twice by quant_dot_avx512.c: with QD_VNNI 1
 * (vpdpbusd / vpdpwssd) and 0 (maddubs / madd), under the target attribute QD_TARGET, names suffixed
 * by QD_NAME. Not a header of its own: no include guard on purpose.
 *
 * Layout trick: one 512-bit register holds the same 32 activation bytes in both 256-bit halves and
 * 32 weight bytes of two different rows (row pair) in its halves, so lanes 0..7 compute row A and
 * lanes 8..15 row B with exactly the operations of the AVX2 / scalar lane order of quant_dot.h.
 * An odd row is paired with itself. */

#define QD_INLINE static inline __attribute__((always_inline)) QD_TARGET

QD_INLINE __m512i QD_NAME(pair_load)(const uint8_t *a, const uint8_t *b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)a)),
                              _mm256_loadu_si256((const __m256i *)(const void *)b), 1);
}

QD_INLINE __m512i QD_NAME(bcast_load)(const uint8_t *a) {
    return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(const void *)a));
}

/* The two rows' results: the 8-lane tree of quant_dot.h on each half. */
QD_INLINE void QD_NAME(reduce_pair)(__m512 t, float *oa, float *ob) {
    const __m256 h[2] = {_mm512_castps512_ps256(t),
                         _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(t), 1))};
    float *o[2] = {oa, ob};
    for (int i = 0; i < 2; i++) {
        const __m128 u = _mm_add_ps(_mm256_castps256_ps128(h[i]), _mm256_extractf128_ps(h[i], 1));
        const __m128 v = _mm_add_ps(u, _mm_movehl_ps(u, u));
        *o[i] = _mm_cvtss_f32(_mm_add_ss(v, _mm_shuffle_ps(v, v, 1)));
    }
}

/* lane sums of 4 products w * a (int8 both). negc: VNNI only, -128 * (sum of the 4 a's) per lane. */
QD_INLINE __m512i QD_NAME(dot_i8)(__m512i w, __m512i a, __m512i negc) {
#if QD_VNNI
    /* vpdpbusd wants unsigned x signed: w + 128 = w ^ 0x80 is unsigned, and negc takes the 128 * a back */
    return _mm512_dpbusd_epi32(negc, _mm512_xor_si512(w, _mm512_set1_epi8((char)0x80)), a);
#else
    (void)negc;
    const __m512i sa = _mm512_mask_sub_epi8(a, _mm512_movepi8_mask(w), _mm512_setzero_si512(), a);
    return _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_abs_epi8(w), sa), _mm512_set1_epi16(1));
#endif
}

QD_INLINE __m512i QD_NAME(neg_corr)(__m512i a) {
#if QD_VNNI
    return _mm512_sub_epi32(_mm512_setzero_si512(),
                            _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char)0x80), a));
#else
    (void)a;
    return _mm512_setzero_si512();
#endif
}

QD_INLINE uint32_t QD_NAME(u16x2)(const uint8_t *lo, const uint8_t *hi) {
    uint16_t a, b;
    memcpy(&a, lo, 2);
    memcpy(&b, hi, 2);
    return (uint32_t)a | (uint32_t)b << 16;
}

/* np row pairs (2 or 1 after inlining), rows[2p], rows[2p + 1]. */
QD_INLINE void QD_NAME(q8_0_pairs)(const uint8_t *const *rows, const uint8_t *pfb, size_t pf, size_t pf_end,
                                   int64_t nb, const uint8_t *act, float *out, const int np) {
    __m512 acc0[2], acc1[2];
    for (int p = 0; p < np; p++) acc0[p] = acc1[p] = _mm512_setzero_ps();
    const __m512i sel0 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m512i sel1 = _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        /* 4 rows x 68 bytes read per step: 5 lines of the prefetch range */
        for (int c = 0; c < 5 && pf < pf_end; c++, pf += 64) LLM_QD_PREFETCH(pfb, pf);
        const uint8_t *ab = act + LLM_Q8_0_BYTES * b;
        const __m512i a0 = QD_NAME(bcast_load)(ab + 2), a1 = QD_NAME(bcast_load)(ab + LLM_Q8_0_BYTES + 2);
        const __m512i n0 = QD_NAME(neg_corr)(a0), n1 = QD_NAME(neg_corr)(a1);
        const __m128 fa = _mm_cvtph_ps(_mm_set1_epi32((int)QD_NAME(u16x2)(ab, ab + LLM_Q8_0_BYTES)));
        const __m128 fa4 = _mm_shuffle_ps(fa, fa, _MM_SHUFFLE(1, 1, 0, 0)); /* fa0 fa0 fa1 fa1 */
        for (int p = 0; p < np; p++) {
            const uint8_t *wa = rows[2 * p] + LLM_Q8_0_BYTES * b, *wb = rows[2 * p + 1] + LLM_Q8_0_BYTES * b;
            const __m512i i0 = QD_NAME(dot_i8)(QD_NAME(pair_load)(wa + 2, wb + 2), a0, n0);
            const __m512i i1 =
                QD_NAME(dot_i8)(QD_NAME(pair_load)(wa + LLM_Q8_0_BYTES + 2, wb + LLM_Q8_0_BYTES + 2), a1, n1);
            /* scales [A b, B b, A b+1, B b+1] = dw * da, then spread over the halves */
            __m128i h = _mm_cvtsi32_si128((int)QD_NAME(u16x2)(wa, wb));
            h = _mm_insert_epi32(h, (int)QD_NAME(u16x2)(wa + LLM_Q8_0_BYTES, wb + LLM_Q8_0_BYTES), 1);
            const __m512 s4 = _mm512_castps128_ps512(_mm_mul_ps(_mm_cvtph_ps(h), fa4));
            const __m512 s0 = _mm512_permutexvar_ps(sel0, s4), s1 = _mm512_permutexvar_ps(sel1, s4);
            acc0[p] = _mm512_add_ps(acc0[p], _mm512_mul_ps(s0, _mm512_cvtepi32_ps(i0)));
            acc1[p] = _mm512_add_ps(acc1[p], _mm512_mul_ps(s1, _mm512_cvtepi32_ps(i1)));
        }
    }
    if (b < nb) {
        const uint8_t *ab = act + LLM_Q8_0_BYTES * b;
        const __m512i a0 = QD_NAME(bcast_load)(ab + 2);
        const __m512i n0 = QD_NAME(neg_corr)(a0);
        uint16_t ah;
        memcpy(&ah, ab, 2);
        const __m128 fa4 = _mm_cvtph_ps(_mm_set1_epi16((short)ah));
        for (int p = 0; p < np; p++) {
            const uint8_t *wa = rows[2 * p] + LLM_Q8_0_BYTES * b, *wb = rows[2 * p + 1] + LLM_Q8_0_BYTES * b;
            const __m512i i0 = QD_NAME(dot_i8)(QD_NAME(pair_load)(wa + 2, wb + 2), a0, n0);
            const __m128i h = _mm_cvtsi32_si128((int)QD_NAME(u16x2)(wa, wb));
            const __m512 s4 = _mm512_castps128_ps512(_mm_mul_ps(_mm_cvtph_ps(h), fa4));
            acc0[p] = _mm512_add_ps(acc0[p],
                                    _mm512_mul_ps(_mm512_permutexvar_ps(sel0, s4), _mm512_cvtepi32_ps(i0)));
        }
    }
    for (int p = 0; p < np; p++)
        QD_NAME(reduce_pair)(_mm512_add_ps(acc0[p], acc1[p]), &out[2 * p], &out[2 * p + 1]);
}

QD_INLINE void QD_NAME(q4_K_pairs)(const uint8_t *const *rows, const uint8_t *pfb, size_t pf, size_t pf_end,
                                   int64_t nb, const uint8_t *act, float *out, const int np) {
    __m512 acc[2];
    for (int p = 0; p < np; p++) acc[p] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(15);
    const __m512i sel_d = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
    const __m512i sel_m = _mm512_setr_epi32(1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m512i dup128 = _mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3);
    for (int64_t b = 0; b < nb; b++) {
        /* 4 rows x 144 bytes per step: 10 lines of the prefetch range */
        for (int c = 0; c < 10 && pf < pf_end; c++, pf += 64) LLM_QD_PREFETCH(pfb, pf);
        const uint8_t *ab = act + LLM_Q8_K_BYTES * b, *aq = ab + LLM_Q8_K_QS;
        float d8;
        memcpy(&d8, ab, 4);
        __m512i alo[4], ahi[4];
        for (int g = 0; g < 4; g++) {
            alo[g] = QD_NAME(bcast_load)(aq + 64 * g);
            ahi[g] = QD_NAME(bcast_load)(aq + 64 * g + 32);
        }
        const __m512i bs32 =
            _mm512_madd_epi16(QD_NAME(bcast_load)(ab + LLM_Q8_K_BSUMS), _mm512_set1_epi16(1));
        for (int p = 0; p < np; p++) {
            const uint8_t *wa = rows[2 * p] + LLM_Q4_K_BYTES * b, *wb = rows[2 * p + 1] + LLM_Q4_K_BYTES * b;
            uint64_t sca, ma, scb, mb;
            llm_qd_q4k_unpack(wa + 4, &sca, &ma);
            llm_qd_q4k_unpack(wb + 4, &scb, &mb);
            /* int16 scales: 128-bit lanes [A, A, B, B], so an in-lane shuffle broadcasts sc_j per row */
            const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_set_epi64x((long long)scb, (long long)sca));
            const __m512i scv = _mm512_permutexvar_epi64(dup128, _mm512_castsi256_si512(sc16));
            __m512i isum = _mm512_setzero_si512();
            for (int g = 0; g < 4; g++) {
                const __m512i q = QD_NAME(pair_load)(wa + 16 + 32 * g, wb + 16 + 32 * g);
                const __m512i lo = _mm512_and_si512(q, m4),
                              hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
                const __m512i plo = _mm512_maddubs_epi16(lo, alo[g]), phi = _mm512_maddubs_epi16(hi, ahi[g]);
                const __m512i slo =
                    _mm512_shuffle_epi8(scv, _mm512_set1_epi16((short)(0x0100 + 0x0202 * (2 * g))));
                const __m512i shi =
                    _mm512_shuffle_epi8(scv, _mm512_set1_epi16((short)(0x0100 + 0x0202 * (2 * g + 1))));
#if QD_VNNI
                isum = _mm512_dpwssd_epi32(isum, plo, slo);
                isum = _mm512_dpwssd_epi32(isum, phi, shi);
#else
                isum = _mm512_add_epi32(isum, _mm512_madd_epi16(plo, slo));
                isum = _mm512_add_epi32(isum, _mm512_madd_epi16(phi, shi));
#endif
            }
            const __m512i mp =
                _mm512_madd_epi16(_mm512_cvtepu8_epi32(_mm_set_epi64x((long long)mb, (long long)ma)), bs32);
            /* [dA, dminA, dB, dminB] * d8, spread: s1 = d * d8 per half, s2 = dmin * d8 */
            uint32_t hA, hB;
            memcpy(&hA, wa, 4);
            memcpy(&hB, wb, 4);
            const __m128 s4 =
                _mm_mul_ps(_mm_cvtph_ps(_mm_setr_epi32((int)hA, (int)hB, 0, 0)), _mm_set1_ps(d8));
            const __m512 s1 = _mm512_permutexvar_ps(sel_d, _mm512_castps128_ps512(s4));
            const __m512 s2 = _mm512_permutexvar_ps(sel_m, _mm512_castps128_ps512(s4));
            const __m512 t = _mm512_sub_ps(_mm512_mul_ps(s1, _mm512_cvtepi32_ps(isum)),
                                           _mm512_mul_ps(s2, _mm512_cvtepi32_ps(mp)));
            acc[p] = _mm512_add_ps(acc[p], t);
        }
    }
    for (int p = 0; p < np; p++) QD_NAME(reduce_pair)(acc[p], &out[2 * p], &out[2 * p + 1]);
}

/* 4 rows per pass (two pairs sharing the activation registers), then pairs; an odd last row is paired
 * with itself (its result is the same whatever its neighbour: each half computes alone). */
#define QD_ROWS_FN(kind)                                                                                     \
    QD_TARGET void QD_NAME(llm_qd_rows_##kind)(const uint8_t *w, size_t row_bytes, int64_t nb,               \
                                               int64_t n_rows, const uint8_t *act, float *out) {             \
        int64_t r = 0;                                                                                       \
        for (; r + 4 <= n_rows; r += 4) {                                                                    \
            const uint8_t *rows[4] = {w + row_bytes * (size_t)r, w + row_bytes * (size_t)(r + 1),            \
                                      w + row_bytes * (size_t)(r + 2), w + row_bytes * (size_t)(r + 3)};     \
            size_t pf, pf_end;                                                                               \
            llm_qd_pf_range(row_bytes, r, 4, &pf, &pf_end);                                                  \
            QD_NAME(kind##_pairs)(rows, w, pf, pf_end, nb, act, out + r, 2);                                 \
        }                                                                                                    \
        for (; r < n_rows; r += 2) {                                                                         \
            const int64_t r1 = r + 1 < n_rows ? r + 1 : r;                                                   \
            const uint8_t *rows[2] = {w + row_bytes * (size_t)r, w + row_bytes * (size_t)r1};                \
            float o[2];                                                                                      \
            QD_NAME(kind##_pairs)(rows, w, 0, 0, nb, act, o, 1);                                             \
            out[r] = o[0];                                                                                   \
            if (r1 != r) out[r1] = o[1];                                                                     \
        }                                                                                                    \
    }

QD_ROWS_FN(q8_0)
QD_ROWS_FN(q4_K)

#undef QD_ROWS_FN

/* ---- several tokens per pass (prefill): each weight block is loaded (and for Q4_K unpacked) once and
 * dotted with the activations of up to QD_MT tokens. Per (row, token) the operations are those of the
 * one-token kernels above, in the same order: the same bits. Only where the row-side and token-side
 * factors meet does the association change nothing: dw * da is one float product either way. ---- */
#define QD_MT 4

/* Q8_0: np row pairs (1 or 2) x nt tokens (1..QD_MT). res[t][2p + i]: row 2p + i, token t. */
QD_INLINE void QD_NAME(q8_0_multi)(const uint8_t *const *rows, const uint8_t *pfb, size_t pf, size_t pf_end,
                                   int64_t nb, const uint8_t *act, size_t astride, float res[][4],
                                   const int np, const int nt) {
    __m512 acc0[2][QD_MT], acc1[2][QD_MT];
    for (int p = 0; p < np; p++)
        for (int t = 0; t < nt; t++) acc0[p][t] = acc1[p][t] = _mm512_setzero_ps();
    const __m512i sel0 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    for (int64_t b = 0; b < nb; b++) {
        if (b % 2 == 0)
            for (int c = 0; c < 5 && pf < pf_end; c++, pf += 64) LLM_QD_PREFETCH(pfb, pf);
        __m512i wv[2];
        __m512 ws[2];
#if !QD_VNNI
        __mmask64 wneg[2];
#endif
        for (int p = 0; p < np; p++) {
            const uint8_t *wa = rows[2 * p] + LLM_Q8_0_BYTES * b, *wb = rows[2 * p + 1] + LLM_Q8_0_BYTES * b;
            const __m512i w = QD_NAME(pair_load)(wa + 2, wb + 2);
#if QD_VNNI
            wv[p] = _mm512_xor_si512(w, _mm512_set1_epi8((char)0x80));
#else
            wv[p] = _mm512_abs_epi8(w);
            wneg[p] = _mm512_movepi8_mask(w);
#endif
            /* [dA x 8, dB x 8] */
            ws[p] = _mm512_permutexvar_ps(
                sel0, _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128((int)QD_NAME(u16x2)(wa, wb)))));
        }
        for (int t = 0; t < nt; t++) {
            const uint8_t *ab = act + astride * (size_t)t + LLM_Q8_0_BYTES * b;
            const __m512i a = QD_NAME(bcast_load)(ab + 2);
            uint16_t ah;
            memcpy(&ah, ab, 2);
            const __m512 da = _mm512_broadcastss_ps(_mm_cvtph_ps(_mm_set1_epi16((short)ah)));
#if QD_VNNI
            const __m512i n = QD_NAME(neg_corr)(a);
#endif
            for (int p = 0; p < np; p++) {
#if QD_VNNI
                const __m512i i = _mm512_dpbusd_epi32(n, wv[p], a);
#else
                const __m512i sa = _mm512_mask_sub_epi8(a, wneg[p], _mm512_setzero_si512(), a);
                const __m512i i = _mm512_madd_epi16(_mm512_maddubs_epi16(wv[p], sa), _mm512_set1_epi16(1));
#endif
                const __m512 f = _mm512_mul_ps(_mm512_mul_ps(ws[p], da), _mm512_cvtepi32_ps(i));
                if (b % 2 == 0)
                    acc0[p][t] = _mm512_add_ps(acc0[p][t], f);
                else
                    acc1[p][t] = _mm512_add_ps(acc1[p][t], f);
            }
        }
    }
    for (int p = 0; p < np; p++)
        for (int t = 0; t < nt; t++)
            QD_NAME(reduce_pair)(_mm512_add_ps(acc0[p][t], acc1[p][t]), &res[t][2 * p], &res[t][2 * p + 1]);
}

/* Q4_K: one row pair x nt tokens: the pair's quants are unpacked and its scales spread once per
 * super-block, then every token's activations pass over them. */
QD_INLINE void QD_NAME(q4_K_multi)(const uint8_t *const *rows, const uint8_t *pfb, size_t pf, size_t pf_end,
                                   int64_t nb, const uint8_t *act, size_t astride, float res[][4],
                                   const int np, const int nt) {
    (void)np; /* always one pair */
    __m512 acc[QD_MT];
    for (int t = 0; t < nt; t++) acc[t] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(15);
    const __m512i sel_d = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
    const __m512i sel_m = _mm512_setr_epi32(1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m512i dup128 = _mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3);
    for (int64_t b = 0; b < nb; b++) {
        /* 2 rows x 144 bytes per step: 5 lines of the prefetch range */
        for (int c = 0; c < 5 && pf < pf_end; c++, pf += 64) LLM_QD_PREFETCH(pfb, pf);
        const uint8_t *wa = rows[0] + LLM_Q4_K_BYTES * b, *wb = rows[1] + LLM_Q4_K_BYTES * b;
        uint64_t sca, ma, scb, mb;
        llm_qd_q4k_unpack(wa + 4, &sca, &ma);
        llm_qd_q4k_unpack(wb + 4, &scb, &mb);
        const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_set_epi64x((long long)scb, (long long)sca));
        const __m512i scv = _mm512_permutexvar_epi64(dup128, _mm512_castsi256_si512(sc16));
        __m512i lo[4], hi[4], slo[4], shi[4];
        for (int g = 0; g < 4; g++) {
            const __m512i q = QD_NAME(pair_load)(wa + 16 + 32 * g, wb + 16 + 32 * g);
            lo[g] = _mm512_and_si512(q, m4);
            hi[g] = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
            slo[g] = _mm512_shuffle_epi8(scv, _mm512_set1_epi16((short)(0x0100 + 0x0202 * (2 * g))));
            shi[g] = _mm512_shuffle_epi8(scv, _mm512_set1_epi16((short)(0x0100 + 0x0202 * (2 * g + 1))));
        }
        const __m512i m32 = _mm512_cvtepu8_epi32(_mm_set_epi64x((long long)mb, (long long)ma));
        uint32_t hA, hB;
        memcpy(&hA, wa, 4);
        memcpy(&hB, wb, 4);
        const __m512 dd = _mm512_castps128_ps512(_mm_cvtph_ps(_mm_setr_epi32((int)hA, (int)hB, 0, 0)));
        const __m512 vd = _mm512_permutexvar_ps(sel_d, dd), vm = _mm512_permutexvar_ps(sel_m, dd);
        for (int t = 0; t < nt; t++) {
            const uint8_t *ab = act + astride * (size_t)t + LLM_Q8_K_BYTES * b, *aq = ab + LLM_Q8_K_QS;
            float d8;
            memcpy(&d8, ab, 4);
            __m512i isum = _mm512_setzero_si512();
            for (int g = 0; g < 4; g++) {
                const __m512i plo = _mm512_maddubs_epi16(lo[g], QD_NAME(bcast_load)(aq + 64 * g));
                const __m512i phi = _mm512_maddubs_epi16(hi[g], QD_NAME(bcast_load)(aq + 64 * g + 32));
#if QD_VNNI
                isum = _mm512_dpwssd_epi32(isum, plo, slo[g]);
                isum = _mm512_dpwssd_epi32(isum, phi, shi[g]);
#else
                isum = _mm512_add_epi32(isum, _mm512_madd_epi16(plo, slo[g]));
                isum = _mm512_add_epi32(isum, _mm512_madd_epi16(phi, shi[g]));
#endif
            }
            const __m512i bs32 =
                _mm512_madd_epi16(QD_NAME(bcast_load)(ab + LLM_Q8_K_BSUMS), _mm512_set1_epi16(1));
            const __m512i mp = _mm512_madd_epi16(m32, bs32);
            const __m512 d8v = _mm512_set1_ps(d8);
            const __m512 s1 = _mm512_mul_ps(vd, d8v), s2 = _mm512_mul_ps(vm, d8v);
            const __m512 tv = _mm512_sub_ps(_mm512_mul_ps(s1, _mm512_cvtepi32_ps(isum)),
                                            _mm512_mul_ps(s2, _mm512_cvtepi32_ps(mp)));
            acc[t] = _mm512_add_ps(acc[t], tv);
        }
    }
    for (int t = 0; t < nt; t++) QD_NAME(reduce_pair)(acc[t], &res[t][0], &res[t][1]);
}

/* Rows in steps of QD_NAME(kind)_RSTEP (4 for Q8_0: two pairs; 2 for Q4_K: one pair), tokens in tiles of
 * nt; the short last step pairs an odd row with itself. The prefetch stream runs during the first token
 * tile only (later tiles find the rows in cache). */
#define QD_MULTI_ROWS(kind, rstep)                                                                           \
    QD_INLINE void QD_NAME(kind##_multi_rows)(const uint8_t *w, size_t row_bytes, int64_t nb,                \
                                              int64_t n_rows, const uint8_t *act, size_t astride,            \
                                              float *out, size_t ldo, int pf_on, const int nt) {             \
        float res[QD_MT][4];                                                                                 \
        int64_t r = 0;                                                                                       \
        for (; r + (rstep) <= n_rows; r += (rstep)) {                                                        \
            const uint8_t *rows[4];                                                                          \
            for (int i = 0; i < (rstep); i++) rows[i] = w + row_bytes * (size_t)(r + i);                     \
            size_t pf = 0, pf_end = 0;                                                                       \
            if (pf_on) llm_qd_pf_range(row_bytes, r, (rstep), &pf, &pf_end);                                 \
            QD_NAME(kind##_multi)(rows, w, pf, pf_end, nb, act, astride, res, (rstep) / 2, nt);              \
            for (int t = 0; t < nt; t++)                                                                     \
                for (int i = 0; i < (rstep); i++) out[ldo * (size_t)t + (size_t)(r + i)] = res[t][i];        \
        }                                                                                                    \
        for (; r < n_rows; r += 2) {                                                                         \
            const int64_t r1 = r + 1 < n_rows ? r + 1 : r;                                                   \
            const uint8_t *rows[2] = {w + row_bytes * (size_t)r, w + row_bytes * (size_t)r1};                \
            QD_NAME(kind##_multi)(rows, w, 0, 0, nb, act, astride, res, 1, nt);                              \
            for (int t = 0; t < nt; t++) {                                                                   \
                out[ldo * (size_t)t + (size_t)r] = res[t][0];                                                \
                if (r1 != r) out[ldo * (size_t)t + (size_t)r1] = res[t][1];                                  \
            }                                                                                                \
        }                                                                                                    \
    }                                                                                                        \
    QD_TARGET void QD_NAME(llm_qd_multi_##kind)(const uint8_t *w, size_t row_bytes, int64_t nb,              \
                                                int64_t n_rows, const uint8_t *act, size_t astride,          \
                                                int n_tok, float *out, size_t ldo) {                         \
        for (int t0 = 0; t0 < n_tok; t0 += QD_MT) {                                                          \
            const uint8_t *at = act + astride * (size_t)t0;                                                  \
            float *ot = out + ldo * (size_t)t0;                                                              \
            switch (n_tok - t0 < QD_MT ? n_tok - t0 : QD_MT) {                                               \
            case 1:                                                                                          \
                QD_NAME(kind##_multi_rows)(w, row_bytes, nb, n_rows, at, astride, ot, ldo, t0 == 0, 1);      \
                break;                                                                                       \
            case 2:                                                                                          \
                QD_NAME(kind##_multi_rows)(w, row_bytes, nb, n_rows, at, astride, ot, ldo, t0 == 0, 2);      \
                break;                                                                                       \
            case 3:                                                                                          \
                QD_NAME(kind##_multi_rows)(w, row_bytes, nb, n_rows, at, astride, ot, ldo, t0 == 0, 3);      \
                break;                                                                                       \
            default:                                                                                         \
                QD_NAME(kind##_multi_rows)(w, row_bytes, nb, n_rows, at, astride, ot, ldo, t0 == 0, 4);      \
                break;                                                                                       \
            }                                                                                                \
        }                                                                                                    \
    }

QD_MULTI_ROWS(q8_0, 4)
QD_MULTI_ROWS(q4_K, 2)

#undef QD_MULTI_ROWS
#undef QD_MT
#undef QD_INLINE
