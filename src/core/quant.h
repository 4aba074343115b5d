/* Block-quantized weight formats Q8_0 and Q4_K, bit for bit the layouts of ggml / GGUF, so that tensors
 * of a GGUF file can be used in place and tensors we quantize at load can be written to GGUF.
 *
 * Format level only: portable C, no SIMD. The dot-product kernels live in backend/cpu/quant_dot.h.
 *
 * Q8_0 (ggml type 8): 32 weights per 34-byte block
 *     offset 0  uint16 d       fp16 scale
 *     offset 2  int8   qs[32]  weight i = d * qs[i]
 *
 * Q4_K (ggml type 12): 256 weights per 144-byte super-block, 8 sub-blocks of 32 weights
 *     offset 0  uint16 d           fp16 super-block scale of the sub-block scales
 *     offset 2  uint16 dmin        fp16 super-block scale of the sub-block mins
 *     offset 4  uint8  scales[12]  8 six-bit scales sc[j] and 8 six-bit mins m[j], packed:
 *                 j < 4:  sc[j] = scales[j] & 63             m[j] = scales[j + 4] & 63
 *                 j >= 4: sc[j] = (scales[j + 4] & 15) | (scales[j - 4] >> 6) << 4
 *                         m[j]  = (scales[j + 4] >> 4) | (scales[j] >> 6) << 4
 *               (bytes 0..3 carry sc[0..3] plus the top two bits of sc[4..7]; bytes 4..7 carry
 *               m[0..3] plus the top two bits of m[4..7]; bytes 8..11 carry the low four bits of
 *               sc[4..7] (low nibble) and m[4..7] (high nibble))
 *     offset 16 uint8  qs[128]     4-bit quants: weights 64g .. 64g+31 are the low nibbles of
 *                                  qs[32g .. 32g+31], weights 64g+32 .. 64g+63 their high nibbles
 *                                  (g = 0..3; sub-block 2g low, 2g+1 high)
 *     weight i of sub-block j = d * sc[j] * q - dmin * m[j]   (q in 0..15)
 *
 * Q8_K (activation side of the Q4_K dot, never stored in files): 256 values per 292-byte block
 *     float d; int8 qs[256]; int16 bsums[16] (bsums[i] = sum of qs[16i .. 16i+15]); value = d * qs[i].
 *
 * Blocks inside a row are packed back to back, so a block of 34 bytes may start at any even address
 * and a row inside a GGUF file at any address: read fields through memcpy (or the accessors below),
 * never by dereferencing a cast pointer to a possibly misaligned struct. */
#ifndef LLM_CORE_QUANT_H
#define LLM_CORE_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "llamac.h"

#define LLM_QK8_0         32  /* weights per Q8_0 block */
#define LLM_QK_K          256 /* weights per Q4_K / Q8_K super-block */
#define LLM_Q4K_SCALE_LEN 12

typedef struct llm_block_q8_0 {
    uint16_t d; /* fp16 */
    int8_t qs[LLM_QK8_0];
} llm_block_q8_0;

typedef struct llm_block_q4_K {
    uint16_t d;    /* fp16 */
    uint16_t dmin; /* fp16 */
    uint8_t scales[LLM_Q4K_SCALE_LEN];
    uint8_t qs[LLM_QK_K / 2];
} llm_block_q4_K;

typedef struct llm_block_q8_K {
    float d;
    int8_t qs[LLM_QK_K];
    int16_t bsums[LLM_QK_K / 16];
} llm_block_q8_K;

_Static_assert(sizeof(llm_block_q8_0) == 34, "Q8_0 block must be 34 bytes (ggml block_q8_0)");
_Static_assert(sizeof(llm_block_q4_K) == 144, "Q4_K block must be 144 bytes (ggml block_q4_K)");
_Static_assert(sizeof(llm_block_q8_K) == 292, "Q8_K block must be 292 bytes (ggml block_q8_K)");
_Static_assert(offsetof(llm_block_q4_K, scales) == 4 && offsetof(llm_block_q4_K, qs) == 16,
               "Q4_K field offsets as in ggml");

/* Weights per block: 1 for F32/F16/BF16, 32 for Q8_0, 256 for Q4_K; 0 for an unknown dtype. */
int64_t llm_dtype_block_elems(llm_dtype dtype);
/* Bytes per block: 4, 2, 2, 34, 144; 0 for an unknown dtype. */
size_t llm_dtype_block_bytes(llm_dtype dtype);
/* Bytes of a row of cols weights; 0 if cols <= 0, cols is not a multiple of the block or dtype unknown. */
size_t llm_dtype_row_bytes(llm_dtype dtype, int64_t cols);
/* 1 for Q8_0 and Q4_K, 0 otherwise. */
int llm_dtype_is_quant(llm_dtype dtype);

/* GGUF / ggml tensor type ids (as in io/gguf.h's llm_ggml_type) <-> llm_dtype, for the types both
 * know: F32 0, F16 1, Q8_0 8, Q4_K 12, BF16 30. llm_dtype_from_ggml returns 1 and sets *out when the
 * type maps, else 0 (*out untouched); llm_dtype_to_ggml returns the id, or -1 for an unknown dtype. */
int llm_dtype_from_ggml(uint32_t ggml_type, llm_dtype *out);
int64_t llm_dtype_to_ggml(llm_dtype dtype);

/* Quantizes k floats (k a multiple of the block; otherwise nothing is written) into
 * llm_dtype_row_bytes(wtype, k) bytes at dst (any alignment). wtype Q8_0 or Q4_K; others: no-op.
 *   Q8_0: per block d = fp16(amax / 127), q = round-to-nearest-even(x / d) clamped to +-127, so every
 *         element's error is at most d/2 (d the stored, fp16-rounded scale).
 *   Q4_K: per sub-block a least-squares search of scale and min, then 6-bit sub-block scales under
 *         fp16 super-block scales, refined jointly (see quant.c). Relative RMSE (sqrt(sum err^2 /
 *         sum x^2)) on Gaussian rows is 0.0699, vs 0.0783 for the naive per-sub-block min/max choice;
 *         tests/test_quant.c checks <= 0.073. About 40 M weights/s per Zen 5 core.
 * Finite inputs give finite blocks; NaN/Inf inputs give unspecified (but valid) blocks. Thread-safe;
 * no allocation. */
void llm_quantize_row(llm_dtype wtype, const float *x, void *dst, int64_t k);

/* Dequantizes k weights (a multiple of the block) of row (any alignment) into dst, exactly as ggml's
 * dequantize_row_q8_0 / dequantize_row_q4_K: y = d * q (Q8_0), y = (d * sc) * q - (dmin * m) (Q4_K),
 * in float. Also accepts F32/F16/BF16 rows (plain conversion). Unknown dtype or bad k: no-op. */
void llm_dequant_row(llm_dtype wtype, const void *row, float *dst, int64_t k);

/* The 6-bit scale and min of sub-block j (0..7) of a Q4_K scales[12] array (ggml's get_scale_min_k4). */
static inline void llm_q4k_scale_min(int j, const uint8_t *scales, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = scales[j] & 63;
        *m = scales[j + 4] & 63;
    } else {
        *sc = (uint8_t)((scales[j + 4] & 15) | ((scales[j - 4] >> 6) << 4));
        *m = (uint8_t)((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
    }
}

/* The inverse: packs 8 six-bit scales and mins (each 0..63) into scales[12]. */
void llm_q4k_pack_scales(const uint8_t sc[8], const uint8_t m[8], uint8_t scales[12]);

#endif
