/* The PORTABLE level: fast kernels in plain C, for any CPU (the compiler vectorises the lane loops with
 * whatever the baseline target has, SSE2 on x86-64).
 *
 * Canonical matmul order: 8 lanes per output element; lane l accumulates w[i]*x[i] for i ≡ l (mod 8)
 * in K order (weights widened to f32 exactly, activations f32); then lanes (l, l+4), (l, l+2), (l, l+1)
 * are added. */
#include <math.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "core/half.h"

#define PL  8 /* lanes */
#define PNR 8 /* token rows per tile (LLM_CPU_NR_MAX) */

typedef float v4f __attribute__((vector_size(4 * sizeof(float))));

/* w[kc] of one row widened to f32 (exact), into dst. */
static inline void widen(float *restrict dst, const void *w, int64_t kc, llm_dtype dt) {
    if (dt == LLM_DTYPE_F32) {
        memcpy(dst, w, (size_t)kc * sizeof *dst);
    } else if (dt == LLM_DTYPE_BF16) {
        const uint16_t *s = w;
        for (int64_t i = 0; i < kc; i++) dst[i] = llm_bf16_to_f32(s[i]);
    } else {
        const uint16_t *s = w;
        for (int64_t i = 0; i < kc; i++) dst[i] = llm_f16_to_f32(s[i]);
    }
}

/* Shape: MR weight rows × nt (<= PNR) token rows over kc columns. The columns go in pieces of 256: the
 * piece of each weight row is widened once into a stack buffer, then every token row runs over it with
 * its accumulators in locals (the widening is paid once per PNR tokens, not once per token). */
static void tile_portable(const llm_gemm_tile *t, llm_dtype dt) {
    enum { PIECE = 256 };
    float a[LLM_CPU_MR][PNR][PL];
    for (int r = 0; r < LLM_CPU_MR; r++)
        for (int j = 0; j < t->nt; j++)
            for (int l = 0; l < PL; l++)
                a[r][j][l] = t->load ? t->acc[((size_t)r * LLM_CPU_NR_MAX + j) * PL + l] : 0.0f;
    const size_t esz = dt == LLM_DTYPE_F32 ? 4 : 2;
    float wf[LLM_CPU_MR][PIECE];
    float xz[PIECE];
    const float *x = t->x;
    for (int64_t i0 = 0; i0 < t->kc; i0 += PIECE) {
        const int64_t n = t->kc - i0 < PIECE ? t->kc - i0 : PIECE;
        const int64_t npad = (n + PL - 1) / PL * PL; /* the partial last chunk is zero-padded */
        for (int r = 0; r < LLM_CPU_MR; r++) {
            widen(wf[r], (const char *)t->w[r] + (size_t)i0 * esz, n, dt);
            for (int64_t i = n; i < npad; i++) wf[r][i] = 0.0f;
        }
        for (int j = 0; j < t->nt; j++) {
            const float *xj = x + (size_t)j * t->ldx + i0;
            if (npad != n) { /* only the very last piece */
                memcpy(xz, xj, (size_t)n * sizeof(float));
                for (int64_t i = n; i < npad; i++) xz[i] = 0.0f;
                xj = xz;
            }
            /* GNU C vectors of 4 floats (lanes 0-3 and 4-7 of each accumulator): SSE on baseline
             * x86-64, NEON on ARM; wider generic vectors would go through the stack on SSE */
            v4f b[LLM_CPU_MR][2];
            for (int r = 0; r < LLM_CPU_MR; r++) memcpy(b[r], a[r][j], sizeof b[r]);
            for (int64_t i = 0; i < npad; i += PL) {
                v4f x0, x1;
                memcpy(&x0, xj + i, sizeof x0), memcpy(&x1, xj + i + 4, sizeof x1);
                for (int r = 0; r < LLM_CPU_MR; r++) {
                    v4f w0, w1;
                    memcpy(&w0, wf[r] + i, sizeof w0), memcpy(&w1, wf[r] + i + 4, sizeof w1);
                    b[r][0] += w0 * x0;
                    b[r][1] += w1 * x1;
                }
            }
            for (int r = 0; r < LLM_CPU_MR; r++) memcpy(a[r][j], b[r], sizeof b[r]);
        }
    }
    if (!t->ldo) {
        for (int r = 0; r < LLM_CPU_MR; r++)
            for (int j = 0; j < t->nt; j++)
                for (int l = 0; l < PL; l++) t->acc[((size_t)r * LLM_CPU_NR_MAX + j) * PL + l] = a[r][j][l];
        return;
    }
    for (int j = 0; j < t->nt; j++)
        for (int r = 0; r < t->nr_valid; r++) {
            float *v = a[r][j];
            for (int w = PL / 2; w > 0; w /= 2)
                for (int l = 0; l < w; l++) v[l] += v[l + w];
            t->out[(size_t)j * t->ldo + r] = v[0];
        }
}

static void tile_f32(const llm_gemm_tile *t) {
    tile_portable(t, LLM_DTYPE_F32);
}
static void tile_f16(const llm_gemm_tile *t) {
    tile_portable(t, LLM_DTYPE_F16);
}
static void tile_bf16(const llm_gemm_tile *t) {
    tile_portable(t, LLM_DTYPE_BF16);
}

static void swiglu_portable(float *out, const float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

#define LLM_KFN      static
#define LLM_KNAME(x) x##_portable
static void exp_n_portable(float *dst, const float *src, int n) {
    for (int i = 0; i < n; i++) dst[i] = expf(src[i]);
}
#include "backend/cpu/kernels_body.h"
#undef LLM_KFN
#undef LLM_KNAME

void llm_cpu_kernels_portable(llm_cpu_ktable *k) {
    memset(k, 0, sizeof *k);
    k->level = LLM_CPU_LEVEL_PORTABLE;
    const llm_gemm_kernel base = {NULL, PL, PL, PNR, 0};
    k->gemm[LLM_DTYPE_F32] = base;
    k->gemm[LLM_DTYPE_F32].tile = tile_f32;
    k->gemm[LLM_DTYPE_F16] = base;
    k->gemm[LLM_DTYPE_F16].tile = tile_f16;
    k->gemm[LLM_DTYPE_BF16] = base;
    k->gemm[LLM_DTYPE_BF16].tile = tile_bf16;
    k->rmsnorm_row = rmsnorm_row_portable;
    k->add_rmsnorm_row = add_rmsnorm_row_portable;
    k->swiglu = swiglu_portable;
    k->attn_block = attn_block_portable;
}
