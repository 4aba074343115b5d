/* The AVX2 level: AVX2 + FMA + F16C kernels, compiled with per-function target attributes (the library
 * runs on any x86-64; the table is installed only after cpuid says yes).
 *
 * Canonical matmul order: 8 lanes per output element; weights widened to f32 (exact), activations f32;
 * each chunk of 8 columns is one FMA into the element's accumulator, in K order (a partial last chunk is
 * zero-padded); then lanes (l, l+4), (l, l+2), (l, l+1) are added. */
#include "backend/cpu/kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define TGT __attribute__((target("avx2,fma,f16c")))
#define AI  static inline __attribute__((always_inline))

#define NR8 2 /* token rows per tile: 4 x 2 accumulators + 4 weight vectors + 1 activation <= 16 ymm */

AI TGT __m256 ld8(const void *p, int64_t i, llm_dtype dt) {
    if (dt == LLM_DTYPE_F32) return _mm256_loadu_ps((const float *)p + i);
    const __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)p + i));
    if (dt == LLM_DTYPE_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* The last n (< 8) columns, zero-padded through a stack copy (AVX2 has no masked 16-bit loads). */
AI TGT __m256 ld8_tail(const void *p, int64_t i, llm_dtype dt, int64_t n) {
    float f[8] = {0};
    uint16_t h[8] = {0};
    if (dt == LLM_DTYPE_F32) {
        memcpy(f, (const float *)p + i, (size_t)n * sizeof *f);
        return _mm256_loadu_ps(f);
    }
    memcpy(h, (const uint16_t *)p + i, (size_t)n * sizeof *h);
    return ld8(h, 0, dt);
}

AI TGT float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)); /* l + (l+4) */
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));                                        /* + (l+2) */
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));                                    /* + (l+1) */
    return _mm_cvtss_f32(s);
}

/* Shape: MR weight rows (dt) × NT token rows (f32) over kc columns, 8-column FMA chunks. */
AI TGT void tile8(const llm_gemm_tile *t, llm_dtype dt, const int NT) {
    __m256 a[LLM_CPU_MR][NR8];
    float *acc = t->acc;
    for (int r = 0; r < LLM_CPU_MR; r++)
        for (int j = 0; j < NT; j++)
            a[r][j] =
                t->load ? _mm256_loadu_ps(acc + ((size_t)r * LLM_CPU_NR_MAX + j) * 8) : _mm256_setzero_ps();
    const float *x = t->x;
    const void *w0 = t->w[0], *w1 = t->w[1], *w2 = t->w[2], *w3 = t->w[3];
    int64_t i = 0;
    for (; i + 8 <= t->kc; i += 8) {
        const __m256 b0 = ld8(w0, i, dt), b1 = ld8(w1, i, dt), b2 = ld8(w2, i, dt), b3 = ld8(w3, i, dt);
        for (int j = 0; j < NT; j++) {
            const __m256 xv = _mm256_loadu_ps(x + (size_t)j * t->ldx + i);
            a[0][j] = _mm256_fmadd_ps(b0, xv, a[0][j]);
            a[1][j] = _mm256_fmadd_ps(b1, xv, a[1][j]);
            a[2][j] = _mm256_fmadd_ps(b2, xv, a[2][j]);
            a[3][j] = _mm256_fmadd_ps(b3, xv, a[3][j]);
        }
    }
    if (i < t->kc) {
        const int64_t n = t->kc - i;
        const __m256 b0 = ld8_tail(w0, i, dt, n), b1 = ld8_tail(w1, i, dt, n), b2 = ld8_tail(w2, i, dt, n),
                     b3 = ld8_tail(w3, i, dt, n);
        for (int j = 0; j < NT; j++) {
            const __m256 xv = ld8_tail(x + (size_t)j * t->ldx, i, LLM_DTYPE_F32, n);
            a[0][j] = _mm256_fmadd_ps(b0, xv, a[0][j]);
            a[1][j] = _mm256_fmadd_ps(b1, xv, a[1][j]);
            a[2][j] = _mm256_fmadd_ps(b2, xv, a[2][j]);
            a[3][j] = _mm256_fmadd_ps(b3, xv, a[3][j]);
        }
    }
    if (!t->ldo) {
        for (int r = 0; r < LLM_CPU_MR; r++)
            for (int j = 0; j < NT; j++)
                _mm256_storeu_ps(acc + ((size_t)r * LLM_CPU_NR_MAX + j) * 8, a[r][j]);
        return;
    }
    for (int j = 0; j < NT; j++)
        for (int r = 0; r < LLM_CPU_MR; r++)
            if (r < t->nr_valid) t->out[(size_t)j * t->ldo + r] = hsum8(a[r][j]);
}

#define TILE8_DISPATCH(name, dt)                                                                             \
    static TGT void name(const llm_gemm_tile *t) {                                                           \
        if (t->nt == 1)                                                                                      \
            tile8(t, dt, 1);                                                                                 \
        else                                                                                                 \
            tile8(t, dt, 2);                                                                                 \
    }
TILE8_DISPATCH(tile_f32, LLM_DTYPE_F32)
TILE8_DISPATCH(tile_f16, LLM_DTYPE_F16)
TILE8_DISPATCH(tile_bf16, LLM_DTYPE_BF16)

/* exp of 8 floats: 2^n · p(r) as in the AVX512 level, with 2^n built from its exponent bits; inputs are
 * clamped to [-87.3, 88.7] (so -inf gives ~1e-38, not 0: harmless where it is used). */
AI TGT __m256 exp8(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
    x = _mm256_min_ps(x, _mm256_set1_ps(88.7f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145752f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.42860677e-6f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* n in [-126, 128]: 2^n in two factors so that n = 128 does not overflow the exponent field */
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i h = _mm256_srai_epi32(ni, 1);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, _mm256_set1_epi32(127)), 23));
    const __m256 s2 = _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, h), _mm256_set1_epi32(127)), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

static TGT void exp_n_avx2(float *dst, const float *src, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, exp8(_mm256_loadu_ps(src + i)));
    for (; i < n; i++) {
        float v[8] = {src[i]};
        _mm256_storeu_ps(v, exp8(_mm256_loadu_ps(v)));
        dst[i] = v[0];
    }
}

static TGT void swiglu_avx2(float *out, const float *gate, const float *up, size_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
        _mm256_storeu_ps(out + i,
                         _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) {
        float e;
        exp_n_avx2(&e, &(float){-gate[i]}, 1);
        out[i] = gate[i] / (1.0f + e) * up[i];
    }
}

#define LLM_KFN      static TGT
#define LLM_KNAME(x) x##_avx2
#include "backend/cpu/kernels_body.h"
#undef LLM_KFN
#undef LLM_KNAME

int llm_cpu_kernels_avx2(llm_cpu_ktable *k) {
    memset(k, 0, sizeof *k);
    k->level = LLM_CPU_LEVEL_AVX2;
    const llm_gemm_kernel fma = {NULL, 8, 8, NR8, 0};
    k->gemm[LLM_DTYPE_F32] = fma;
    k->gemm[LLM_DTYPE_F32].tile = tile_f32;
    k->gemm[LLM_DTYPE_F16] = fma;
    k->gemm[LLM_DTYPE_F16].tile = tile_f16;
    k->gemm[LLM_DTYPE_BF16] = fma;
    k->gemm[LLM_DTYPE_BF16].tile = tile_bf16;
    k->rmsnorm_row = rmsnorm_row_avx2;
    k->add_rmsnorm_row = add_rmsnorm_row_avx2;
    k->swiglu = swiglu_avx2;
    k->attn_block = attn_block_avx2;
    return 1;
}

#else
int llm_cpu_kernels_avx2(llm_cpu_ktable *k) {
    (void)k;
    return 0;
}
#endif
