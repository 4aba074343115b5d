/* Internals of the quantized dot kernels (backend/cpu/quant_dot.h): the per-level entry points and the
 * scalar pieces every level shares, so that all levels compute the same numbers in the same order. */
#ifndef LLM_BACKEND_CPU_QUANT_DOT_IMPL_H
#define LLM_BACKEND_CPU_QUANT_DOT_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_features.h"
#include "core/quant.h"

#define LLM_Q8_0_BYTES 34  /* sizeof(llm_block_q8_0) */
#define LLM_Q4_K_BYTES 144 /* sizeof(llm_block_q4_K) */
#define LLM_Q8_K_BYTES 292 /* sizeof(llm_block_q8_K): float d at 0, qs at 4, bsums at 260 */
#define LLM_Q8_K_QS    4
#define LLM_Q8_K_BSUMS 260

/* Software prefetch. The kernels read 4 rows at once: 4 interleaved streams, which the hardware
 * prefetchers of Zen 5 do not follow well (measured: half the DRAM bandwidth of one plain sequential
 * read). So each pass over rows [r, r + 4) also prefetches, line by line and at the pace it reads, the
 * bytes LLM_QD_PF_AHEAD further on: one sequential stream, far enough ahead to cover DRAM latency
 * (4 KB ahead: 24 GB/s, 8 KB: 33 GB/s = the read roofline, one Zen 5 core, Q8_0). The range is not
 * clipped to the rows of the call: callers walk a tensor in small row groups (matmul: 16 rows a call),
 * and the stream must run on into the next group. Past the tensor's end the hints fall on other memory
 * or on none: prefetch never faults and nothing prefetched is ever read by these kernels. */
#define LLM_QD_PF_AHEAD 8192

/* The prefetch range of the pass over rows [r, r + nr), as byte offsets from the call's first row. */
static inline void llm_qd_pf_range(size_t row_bytes, int64_t r, int nr, size_t *lo, size_t *hi) {
    *lo = row_bytes * (size_t)r + LLM_QD_PF_AHEAD;
    *hi = *lo + row_bytes * (size_t)nr;
}

/* A prefetch hint at base + off, computed in integers: the address may lie outside any object. */
#define LLM_QD_PREFETCH(base, off) _mm_prefetch((const char *)((uintptr_t)(base) + (off)), _MM_HINT_T0)

_Static_assert(offsetof(llm_block_q8_K, qs) == LLM_Q8_K_QS &&
                   offsetof(llm_block_q8_K, bsums) == LLM_Q8_K_BSUMS,
               "Q8_K field offsets");

/* Kernel signature: n_rows consecutive weight rows starting at w (row_bytes apart), nb blocks each,
 * dotted with act; one float per row into out. */
typedef void (*llm_qd_rows_fn)(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                               const uint8_t *act, float *out);

/* Multi-token kernel signature: the n_rows rows dotted with each of n_tok activation rows (act_stride
 * bytes apart); the result of row i and token t goes to out[t * ldo + i]. Per (row, token) the same bits
 * as the one-token kernel of the same level. */
typedef void (*llm_qd_multi_fn)(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                                const uint8_t *act, size_t act_stride, int n_tok, float *out, size_t ldo);

/* The lane reduction of quant_dot.h: ((t0 + t4) + (t2 + t6)) + ((t1 + t5) + (t3 + t7)). */
static inline float llm_qd_reduce8(const float t[8]) {
    return ((t[0] + t[4]) + (t[2] + t[6])) + ((t[1] + t[5]) + (t[3] + t[7]));
}

/* The 8 six-bit scales and mins of a Q4_K super-block (core/quant.h's packing), unpacked with word
 * arithmetic on the 12 bytes: byte j of *sc8 is sc[j], byte j of *m8 is m[j]. */
static inline void llm_qd_q4k_unpack(const uint8_t *scales, uint64_t *sc8, uint64_t *m8) {
    uint32_t w0, w1, w2;
    memcpy(&w0, scales, 4);
    memcpy(&w1, scales + 4, 4);
    memcpy(&w2, scales + 8, 4);
    const uint32_t sc_lo = w0 & 0x3f3f3f3fu, m_lo = w1 & 0x3f3f3f3fu;
    const uint32_t sc_hi = (w2 & 0x0f0f0f0fu) | ((w0 >> 2) & 0x30303030u);
    const uint32_t m_hi = ((w2 >> 4) & 0x0f0f0f0fu) | ((w1 >> 2) & 0x30303030u);
    *sc8 = sc_lo | (uint64_t)sc_hi << 32;
    *m8 = m_lo | (uint64_t)m_hi << 32;
}

/* Quantizes one block of 256 floats to Q8_K (scalar; the SIMD versions match it bit for bit). */
void llm_qd_quant_q8_K_block(const float *x, uint8_t *dst);
/* The scale half of Q8_0 activation quantization: d (fp16 bits) and 1/d for a block of amax. */
void llm_qd_q8_0_scale(float amax, uint16_t *dh, float *id);

#if defined(__x86_64__)
void llm_qd_act_q8_0_avx2(const float *x, uint8_t *act, int64_t nb);
void llm_qd_act_q8_K_avx2(const float *x, uint8_t *act, int64_t nb);
void llm_qd_rows_q8_0_avx2(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows, const uint8_t *act,
                           float *out);
void llm_qd_rows_q4_K_avx2(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows, const uint8_t *act,
                           float *out);
/* Multi-token AVX2 kernels: one row x 4 tokens per pass. */
void llm_qd_multi_q8_0_avx2(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                            const uint8_t *act, size_t act_stride, int n_tok, float *out, size_t ldo);
void llm_qd_multi_q4_K_avx2(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                            const uint8_t *act, size_t act_stride, int n_tok, float *out, size_t ldo);
/* AVX-512: with VNNI (vpdpbusd / vpdpwssd) and without (maddubs / madd); the test runs both. */
void llm_qd_rows_q8_0_avx512_vnni(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                                  const uint8_t *act, float *out);
void llm_qd_rows_q8_0_avx512(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                             const uint8_t *act, float *out);
void llm_qd_rows_q4_K_avx512_vnni(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                                  const uint8_t *act, float *out);
void llm_qd_rows_q4_K_avx512(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                             const uint8_t *act, float *out);
/* Multi-token AVX-512 kernels: 4 tokens per tile; Q8_0 4 rows (2 pairs) per step, Q4_K 2 rows. */
void llm_qd_multi_q8_0_avx512_vnni(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                                   const uint8_t *act, size_t act_stride, int n_tok, float *out, size_t ldo);
void llm_qd_multi_q4_K_avx512_vnni(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                                   const uint8_t *act, size_t act_stride, int n_tok, float *out, size_t ldo);
void llm_qd_multi_q8_0_avx512(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                              const uint8_t *act, size_t act_stride, int n_tok, float *out, size_t ldo);
void llm_qd_multi_q4_K_avx512(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                              const uint8_t *act, size_t act_stride, int n_tok, float *out, size_t ldo);
#endif

/* Scalar kernels (REF and PORTABLE). */
void llm_qd_rows_q8_0_scalar(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                             const uint8_t *act, float *out);
void llm_qd_rows_q4_K_scalar(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                             const uint8_t *act, float *out);

/* The kernel llm_quant_dot_rows runs for (wtype, level) on this CPU (after falling back from a level the
 * CPU lacks); NULL for a bad wtype. Exposed for tests and benchmarks. */
llm_qd_rows_fn llm_qd_rows_kernel(llm_dtype wtype, llm_cpu_level level);
/* The multi-token kernel llm_quant_dot_rows_multi runs for (wtype, level): the AVX2 / AVX-512 ones above,
 * else (REF, PORTABLE) a loop of the scalar one-token kernel over the tokens. NULL for a bad wtype. */
llm_qd_multi_fn llm_qd_multi_kernel(llm_dtype wtype, llm_cpu_level level);

#endif
