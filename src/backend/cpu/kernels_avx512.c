/* The AVX512 level: AVX-512 F/BW/VL kernels, compiled with per-function target attributes so that the
 * library still runs on any x86-64 (the table is only installed after cpuid says yes).
 *
 * Canonical matmul orders (16 lanes per output element, reduced at the end by the fixed tree of
 * reduce4):
 *  - bf16 weights on a CPU with AVX512_BF16: activations rounded to bf16 (nearest even); each chunk of
 *    32 columns is one vdpbf16ps into the element's accumulator (lane l takes columns 2l and 2l+1 of
 *    the chunk), in K order; a partial last chunk is zero-masked.
 *  - f32, f16, and bf16 without AVX512_BF16: weights widened to f32 (exact), activations f32; each chunk
 *    of 16 columns is one FMA into the accumulator, in K order; a partial last chunk is zero-masked. */
#include "backend/cpu/kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define TGT   __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")))
#define TGTBF __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
#define AI    static inline __attribute__((always_inline))

#define NR16 6 /* token rows per tile: 4 x 6 accumulators + 4 weight vectors + 1 activation <= 32 zmm */

/* 16 weights from column i of row p, widened to f32 (m: the columns that exist). */
AI TGT __m512 ld16(const void *p, int64_t i, llm_dtype dt) {
    if (dt == LLM_DTYPE_F32) return _mm512_loadu_ps((const float *)p + i);
    const __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)p + i));
    if (dt == LLM_DTYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

AI TGT __m512 ld16m(const void *p, int64_t i, llm_dtype dt, __mmask16 m) {
    if (dt == LLM_DTYPE_F32) return _mm512_maskz_loadu_ps(m, (const float *)p + i);
    const __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)p + i);
    if (dt == LLM_DTYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* The lane sums of 4 accumulators, each by the fixed tree (l, l+8), (l, l+4), (l, l+2), (l, l+1) — the
 * order of a one-vector reduction, done for four at once: out[r] = Σ lanes of a_r. */
AI TGT __m128 reduce4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    const __m512 t01 = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(3, 2, 3, 2)),
                                     _mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(1, 0, 1, 0)));
    const __m512 t23 = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, _MM_SHUFFLE(3, 2, 3, 2)),
                                     _mm512_shuffle_f32x4(a2, a3, _MM_SHUFFLE(1, 0, 1, 0)));
    /* 128-bit quarter r holds row r's 8 partial sums folded to 4: lanes (l + l+8) + (l+4 + l+12) */
    const __m512 q = _mm512_add_ps(_mm512_shuffle_f32x4(t01, t23, _MM_SHUFFLE(3, 1, 3, 1)),
                                   _mm512_shuffle_f32x4(t01, t23, _MM_SHUFFLE(2, 0, 2, 0)));
    const __m512 h = _mm512_add_ps(q, _mm512_permute_ps(q, _MM_SHUFFLE(1, 0, 3, 2)));
    const __m512 o = _mm512_add_ps(h, _mm512_permute_ps(h, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm512_castps512_ps128(
        _mm512_permutexvar_ps(_mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0), o));
}

/* Stores the final sums of the tile: out[j * ldo + r] for r < nr_valid. */
AI TGT void store_sums(const llm_gemm_tile *t, __m512 a[LLM_CPU_MR][NR16], const int NT) {
    const __mmask8 m = (__mmask8)((1u << t->nr_valid) - 1);
    for (int j = 0; j < NT; j++)
        _mm_mask_storeu_ps(t->out + (size_t)j * t->ldo, m, reduce4(a[0][j], a[1][j], a[2][j], a[3][j]));
}

/* Shape: MR weight rows (dt) × NT token rows (f32) over kc columns, 16-column FMA chunks. */
AI TGT void tile16(const llm_gemm_tile *t, llm_dtype dt, const int NT) {
    __m512 a[LLM_CPU_MR][NR16];
    float *acc = t->acc;
    for (int r = 0; r < LLM_CPU_MR; r++)
        for (int j = 0; j < NT; j++)
            a[r][j] =
                t->load ? _mm512_loadu_ps(acc + ((size_t)r * LLM_CPU_NR_MAX + j) * 16) : _mm512_setzero_ps();
    const float *x = t->x;
    const void *w0 = t->w[0], *w1 = t->w[1], *w2 = t->w[2], *w3 = t->w[3];
    int64_t i = 0;
    for (; i + 16 <= t->kc; i += 16) {
        const __m512 b0 = ld16(w0, i, dt), b1 = ld16(w1, i, dt), b2 = ld16(w2, i, dt), b3 = ld16(w3, i, dt);
        for (int j = 0; j < NT; j++) {
            const __m512 xv = _mm512_loadu_ps(x + (size_t)j * t->ldx + i);
            a[0][j] = _mm512_fmadd_ps(b0, xv, a[0][j]);
            a[1][j] = _mm512_fmadd_ps(b1, xv, a[1][j]);
            a[2][j] = _mm512_fmadd_ps(b2, xv, a[2][j]);
            a[3][j] = _mm512_fmadd_ps(b3, xv, a[3][j]);
        }
    }
    if (i < t->kc) {
        const __mmask16 m = (__mmask16)((1u << (t->kc - i)) - 1);
        const __m512 b0 = ld16m(w0, i, dt, m), b1 = ld16m(w1, i, dt, m), b2 = ld16m(w2, i, dt, m),
                     b3 = ld16m(w3, i, dt, m);
        for (int j = 0; j < NT; j++) {
            const __m512 xv = _mm512_maskz_loadu_ps(m, x + (size_t)j * t->ldx + i);
            a[0][j] = _mm512_fmadd_ps(b0, xv, a[0][j]);
            a[1][j] = _mm512_fmadd_ps(b1, xv, a[1][j]);
            a[2][j] = _mm512_fmadd_ps(b2, xv, a[2][j]);
            a[3][j] = _mm512_fmadd_ps(b3, xv, a[3][j]);
        }
    }
    if (!t->ldo) {
        for (int r = 0; r < LLM_CPU_MR; r++)
            for (int j = 0; j < NT; j++)
                _mm512_storeu_ps(acc + ((size_t)r * LLM_CPU_NR_MAX + j) * 16, a[r][j]);
        return;
    }
    store_sums(t, a, NT);
}

#define TILE16_DISPATCH(name, dt)                                                                            \
    static TGT void name(const llm_gemm_tile *t) {                                                           \
        switch (t->nt) {                                                                                     \
        case 1:                                                                                              \
            tile16(t, dt, 1);                                                                                \
            break;                                                                                           \
        case 2:                                                                                              \
            tile16(t, dt, 2);                                                                                \
            break;                                                                                           \
        case 3:                                                                                              \
            tile16(t, dt, 3);                                                                                \
            break;                                                                                           \
        case 4:                                                                                              \
            tile16(t, dt, 4);                                                                                \
            break;                                                                                           \
        case 5:                                                                                              \
            tile16(t, dt, 5);                                                                                \
            break;                                                                                           \
        default:                                                                                             \
            tile16(t, dt, 6);                                                                                \
            break;                                                                                           \
        }                                                                                                    \
    }
TILE16_DISPATCH(tile_f32, LLM_DTYPE_F32)
TILE16_DISPATCH(tile_f16, LLM_DTYPE_F16)
TILE16_DISPATCH(tile_bf16_fma, LLM_DTYPE_BF16)

/* Shape: MR bf16 weight rows × NT bf16 token rows over kc columns, 32-column vdpbf16ps chunks. */
AI TGTBF void tile_dp(const llm_gemm_tile *t, const int NT) {
    __m512 a[LLM_CPU_MR][NR16];
    float *acc = t->acc;
    for (int r = 0; r < LLM_CPU_MR; r++)
        for (int j = 0; j < NT; j++)
            a[r][j] =
                t->load ? _mm512_loadu_ps(acc + ((size_t)r * LLM_CPU_NR_MAX + j) * 16) : _mm512_setzero_ps();
    const uint16_t *x = t->x;
    const uint16_t *w0 = t->w[0], *w1 = t->w[1], *w2 = t->w[2], *w3 = t->w[3];
    int64_t i = 0;
    for (; i + 32 <= t->kc; i += 32) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(w0 + i), b1 = (__m512bh)_mm512_loadu_si512(w1 + i),
                       b2 = (__m512bh)_mm512_loadu_si512(w2 + i), b3 = (__m512bh)_mm512_loadu_si512(w3 + i);
        for (int j = 0; j < NT; j++) {
            const __m512bh xv = (__m512bh)_mm512_loadu_si512(x + (size_t)j * t->ldx + i);
            a[0][j] = _mm512_dpbf16_ps(a[0][j], b0, xv);
            a[1][j] = _mm512_dpbf16_ps(a[1][j], b1, xv);
            a[2][j] = _mm512_dpbf16_ps(a[2][j], b2, xv);
            a[3][j] = _mm512_dpbf16_ps(a[3][j], b3, xv);
        }
    }
    if (i < t->kc) {
        const __mmask32 m = (__mmask32)((1u << (t->kc - i)) - 1);
        const __m512bh b0 = (__m512bh)_mm512_maskz_loadu_epi16(m, w0 + i),
                       b1 = (__m512bh)_mm512_maskz_loadu_epi16(m, w1 + i),
                       b2 = (__m512bh)_mm512_maskz_loadu_epi16(m, w2 + i),
                       b3 = (__m512bh)_mm512_maskz_loadu_epi16(m, w3 + i);
        for (int j = 0; j < NT; j++) {
            const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(m, x + (size_t)j * t->ldx + i);
            a[0][j] = _mm512_dpbf16_ps(a[0][j], b0, xv);
            a[1][j] = _mm512_dpbf16_ps(a[1][j], b1, xv);
            a[2][j] = _mm512_dpbf16_ps(a[2][j], b2, xv);
            a[3][j] = _mm512_dpbf16_ps(a[3][j], b3, xv);
        }
    }
    if (!t->ldo) {
        for (int r = 0; r < LLM_CPU_MR; r++)
            for (int j = 0; j < NT; j++)
                _mm512_storeu_ps(acc + ((size_t)r * LLM_CPU_NR_MAX + j) * 16, a[r][j]);
        return;
    }
    store_sums(t, a, NT);
}

static TGTBF void tile_bf16_dp(const llm_gemm_tile *t) {
    switch (t->nt) {
    case 1:
        tile_dp(t, 1);
        break;
    case 2:
        tile_dp(t, 2);
        break;
    case 3:
        tile_dp(t, 3);
        break;
    case 4:
        tile_dp(t, 4);
        break;
    case 5:
        tile_dp(t, 5);
        break;
    default:
        tile_dp(t, 6);
        break;
    }
}

/* dst[N] = bf16(src[N]), nearest even (vcvtneps2bf16). */
static TGTBF void to_bf16_avx512(uint16_t *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i)));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        const __m256i h = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i));
        _mm256_mask_storeu_epi16(dst + i, m, h);
    }
}

/* exp of 16 floats: 2^n · p(r), x = n ln2 + r, |r| <= ln2/2, p of degree 6 (relative error ~1e-7);
 * inputs below -104 (and -inf) give 0, above 88.7 give +inf. */
AI TGT __m512 exp16(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    x = _mm512_min_ps(x, _mm512_set1_ps(88.8f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-6f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

static TGT void exp_n_avx512(float *dst, const float *src, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, exp16(_mm512_loadu_ps(src + i)));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(dst + i, m, exp16(_mm512_maskz_loadu_ps(m, src + i)));
    }
}

/* out[N] = gate / (1 + exp(-gate)) * up */
static TGT void swiglu_avx512(float *out, const float *gate, const float *up, size_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 g = _mm512_loadu_ps(gate + i);
        const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
        _mm512_storeu_ps(out + i,
                         _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_loadu_ps(up + i)));
    }
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
        const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
        _mm512_mask_storeu_ps(
            out + i, m,
            _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_maskz_loadu_ps(m, up + i)));
    }
}

#define LLM_KFN      static TGT
#define LLM_KNAME(x) x##_avx512
#include "backend/cpu/kernels_body.h"
#undef LLM_KFN
#undef LLM_KNAME

/* attn_block for head_dim a multiple of 16 up to 128 (every model here): q and the output accumulator
 * live in registers, scores use FMAs and exp16. Other head sizes take the generic body. */
static TGT void attn_block_avx512_regs(llm_attn_state *st, const float *q, const float *k, const float *v,
                                       int cnt, int hd, float scale) {
    if (hd % 16 != 0 || hd > 128) {
        attn_block_avx512(st, q, k, v, cnt, hd, scale);
        return;
    }
    const int nv = hd / 16;
    __m512 qv[8], acc[8];
    for (int c = 0; c < nv; c++) qv[c] = _mm512_loadu_ps(q + 16 * c);
    float sc[256];
    float bmax = -INFINITY;
    for (int j = 0; j < cnt; j++) {
        const float *kj = k + (size_t)j * hd;
        __m512 d = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kj));
        for (int c = 1; c < nv; c++) d = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(kj + 16 * c), d);
        sc[j] = _mm512_reduce_add_ps(d) * scale;
        bmax = sc[j] > bmax ? sc[j] : bmax;
    }
    const float nmax = bmax > st->max ? bmax : st->max;
    const __m512 vmax = _mm512_set1_ps(nmax);
    for (int j = 0; j < cnt; j += 16) {
        const __mmask16 m = cnt - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (cnt - j)) - 1);
        _mm512_mask_storeu_ps(sc + j, m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, sc + j), vmax)));
    }
    float corr[16] = {st->max - nmax}; /* exp(-inf) = 0 on the first block */
    _mm512_storeu_ps(corr, exp16(_mm512_loadu_ps(corr)));
    const __m512 cv = _mm512_set1_ps(corr[0]);
    for (int c = 0; c < nv; c++) acc[c] = _mm512_mul_ps(_mm512_loadu_ps(st->acc + 16 * c), cv);
    float sum = st->sum * corr[0];
    for (int j = 0; j < cnt; j++) {
        sum += sc[j];
        const __m512 pj = _mm512_set1_ps(sc[j]);
        const float *vj = v + (size_t)j * hd;
        for (int c = 0; c < nv; c++) acc[c] = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vj + 16 * c), acc[c]);
    }
    for (int c = 0; c < nv; c++) _mm512_storeu_ps(st->acc + 16 * c, acc[c]);
    st->sum = sum;
    st->max = nmax;
}

int llm_cpu_kernels_avx512(llm_cpu_ktable *k, const llm_cpu_features *f) {
    memset(k, 0, sizeof *k);
    k->level = LLM_CPU_LEVEL_AVX512;
    const llm_gemm_kernel fma = {NULL, 16, 16, NR16, 0};
    k->gemm[LLM_DTYPE_F32] = fma;
    k->gemm[LLM_DTYPE_F32].tile = tile_f32;
    k->gemm[LLM_DTYPE_F16] = fma;
    k->gemm[LLM_DTYPE_F16].tile = tile_f16;
    k->gemm[LLM_DTYPE_BF16] = fma;
    k->gemm[LLM_DTYPE_BF16].tile = tile_bf16_fma;
    if (f->avx512_bf16) {
        const llm_gemm_kernel dp = {tile_bf16_dp, 16, 32, NR16, 1};
        k->gemm[LLM_DTYPE_BF16] = dp;
        k->to_bf16 = to_bf16_avx512;
    }
    k->rmsnorm_row = rmsnorm_row_avx512;
    k->add_rmsnorm_row = add_rmsnorm_row_avx512;
    k->swiglu = swiglu_avx512;
    k->attn_block = attn_block_avx512_regs;
    return 1;
}

#else
int llm_cpu_kernels_avx512(llm_cpu_ktable *k, const llm_cpu_features *f) {
    (void)k, (void)f;
    return 0;
}
#endif
