/* Dot products of block-quantized weight rows (Q8_0, Q4_K; core/quant.h) with an activation row
 * quantized once per matmul: the decode hot loop of quantized models.
 *
 * Usage, per activation row x of k floats and weight tensor w of n rows of k weights:
 *     act = buffer of llm_quant_act_bytes(wtype, k) bytes (any alignment);
 *     llm_quant_act(wtype, x, act, k, level);
 *     llm_quant_dot_rows(wtype, w, k, r0, n, act, out, level);  (any split of rows over threads)
 *
 * Activation formats: Q8_0 weights meet Q8_0 activation blocks (34 bytes per 32: fp16 d, int8 qs);
 * Q4_K weights meet Q8_K blocks (292 bytes per 256: float d, int8 qs[256], int16 bsums[16]). Both
 * are made the same way at every level (d = amax / 127, round to nearest even, clamp to +-127; Q8_0's
 * d rounded to fp16 first), so every level sees the same bytes.
 *
 * Arithmetic (identical at every level, so results are bit-identical across REF, PORTABLE, AVX2 and
 * AVX512, and a row's result never depends on which rows it is computed with):
 *  - integer products are summed exactly in 8 lanes, lane L holding elements 4L..4L+3 of every 32;
 *  - Q8_0: block b adds (dw_b * da_b) * (float)lane_L to float accumulator [b & 1][L] (16 floats);
 *    the two halves are added lane by lane;
 *  - Q4_K: super-block B adds (d8 * d) * (float)isum_L - (d8 * dmin) * (float)(m_L * bsum32_L) to float
 *    accumulator [L], with isum_L = sum over sub-blocks j of sc_j * (lane L of sub-block j) and bsum32_L
 *    the sum of activation quants of sub-block L;
 *  - the 8 lanes t are reduced as ((t0 + t4) + (t2 + t6)) + ((t1 + t5) + (t3 + t7)).
 * Multiply and add are separate roundings everywhere (no FMA). Versus the exact float64 dot of the
 * dequantized weights and activations the result is off by float rounding only (tests/test_quant.c
 * checks 1e-5 of the sum of |products|).
 *
 * Levels (backend/cpu/cpu_features.h): REF and PORTABLE run the scalar C code; AVX2 (AVX2 + FMA + F16C)
 * uses maddubs / madd; AVX512 (F/BW/VL) uses vpdpbusd / vpdpwssd where the CPU has AVX512-VNNI and
 * maddubs / madd otherwise. A level the CPU lacks falls back to the best one it has (never SIGILL).
 * The SIMD kernels take 4 rows per pass over the activation and issue prefetch hints 8 KB ahead of
 * what they read, also past the rows of the call (hints only: nothing outside the rows is read), so a
 * tensor walked in small row groups streams at the DRAM read roofline.
 * Speed, one Zen 5 core, k = 2048 (tests/test_quant.c with LLAMAC_QUANT_BENCH=1), GB/s of weights read
 * from L2 / from DRAM, the latter against 31-35 GB/s for a plain sequential read of the same memory:
 *     Q8_0  AVX512-VNNI 71-77 / 32-34   AVX512 63-65 / 32-34   AVX2 43-46 / 27-29   scalar 3.1-3.3
 *     Q4_K  AVX512 (VNNI or not) 49-53 / 29-33                 AVX2 31-33 / 29-31   scalar 1.3
 * i.e. decode is bound by memory, not by these kernels, at the AVX2 level and above. Two threads on
 * the idle machine: Q8_0 65.9 GB/s, Q4_K 69.8 GB/s (plain read 72-74 GB/s); any other load on the
 * shared machine halves such figures.
 * Thread-safe; no allocation; no state. */
#ifndef LLM_BACKEND_CPU_QUANT_DOT_H
#define LLM_BACKEND_CPU_QUANT_DOT_H

#include <stddef.h>
#include <stdint.h>

#include "backend/cpu/cpu_features.h"
#include "llamac.h"

/* Bytes of one activation row of k values quantized for dots with weights of type wtype; 0 when
 * wtype is not Q8_0 / Q4_K or k is not a multiple of its block (32 / 256). */
size_t llm_quant_act_bytes(llm_dtype wtype, int64_t k);

/* Quantizes x[0..k) into act (llm_quant_act_bytes(wtype, k) bytes, any alignment). Bad wtype / k: no-op.
 * The bytes written do not depend on level. */
void llm_quant_act(llm_dtype wtype, const float *x, void *act, int64_t k, llm_cpu_level level);

/* out[i] = dot(weight row r0 + i, act) for i in [0, n_rows). w points at the tensor's first row; rows
 * are llm_dtype_row_bytes(wtype, k) bytes apart (any alignment). act from llm_quant_act with the same
 * wtype and k. Bad wtype / k / n_rows <= 0: no-op. */
void llm_quant_dot_rows(llm_dtype wtype, const void *w, int64_t k, int64_t r0, int64_t n_rows,
                        const void *act, float *out, llm_cpu_level level);

/* The same for n_tok activation rows at once (act_stride bytes apart, each from llm_quant_act): the dot of
 * weight row r0 + i with token t goes to out[t * ldo + i]. Each result has the bits llm_quant_dot_rows
 * gives for that row and token (whatever n_tok, n_rows and r0 are: batch invariance); the AVX-512
 * kernels load and unpack each weight block once for up to 4 tokens (prefill). Bad arguments: no-op. */
void llm_quant_dot_rows_multi(llm_dtype wtype, const void *w, int64_t k, int64_t r0, int64_t n_rows,
                              const void *act, size_t act_stride, int n_tok, float *out, size_t ldo,
                              llm_cpu_level level);

#endif
