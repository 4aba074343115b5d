/* AVX-512 (F/BW/VL) quantized dot kernels, with and without VNNI: one body (quant_dot_avx512_tmpl.h)
 * compiled twice under per-function target attributes, so the file builds for baseline x86-64. */
#include "backend/cpu/quant_dot_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define QD_TARGET  __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define QD_VNNI    1
#define QD_NAME(x) x##_avx512_vnni_
#include "backend/cpu/quant_dot_avx512_tmpl.h"
#undef QD_TARGET
#undef QD_VNNI
#undef QD_NAME

#define QD_TARGET  __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define QD_VNNI    0
#define QD_NAME(x) x##_avx512_
#include "backend/cpu/quant_dot_avx512_tmpl.h"
#undef QD_TARGET
#undef QD_VNNI
#undef QD_NAME

/* The exported names of quant_dot_impl.h. */
void llm_qd_rows_q8_0_avx512_vnni(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                                  const uint8_t *act, float *out) {
    llm_qd_rows_q8_0_avx512_vnni_(w, row_bytes, nb, n_rows, act, out);
}
void llm_qd_rows_q4_K_avx512_vnni(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                                  const uint8_t *act, float *out) {
    llm_qd_rows_q4_K_avx512_vnni_(w, row_bytes, nb, n_rows, act, out);
}
void llm_qd_rows_q8_0_avx512(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                             const uint8_t *act, float *out) {
    llm_qd_rows_q8_0_avx512_(w, row_bytes, nb, n_rows, act, out);
}
void llm_qd_rows_q4_K_avx512(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                             const uint8_t *act, float *out) {
    llm_qd_rows_q4_K_avx512_(w, row_bytes, nb, n_rows, act, out);
}
void llm_qd_multi_q8_0_avx512_vnni(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                                   const uint8_t *act, size_t act_stride, int n_tok, float *out, size_t ldo) {
    llm_qd_multi_q8_0_avx512_vnni_(w, row_bytes, nb, n_rows, act, act_stride, n_tok, out, ldo);
}
void llm_qd_multi_q4_K_avx512_vnni(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                                   const uint8_t *act, size_t act_stride, int n_tok, float *out, size_t ldo) {
    llm_qd_multi_q4_K_avx512_vnni_(w, row_bytes, nb, n_rows, act, act_stride, n_tok, out, ldo);
}
void llm_qd_multi_q8_0_avx512(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                              const uint8_t *act, size_t act_stride, int n_tok, float *out, size_t ldo) {
    llm_qd_multi_q8_0_avx512_(w, row_bytes, nb, n_rows, act, act_stride, n_tok, out, ldo);
}
void llm_qd_multi_q4_K_avx512(const uint8_t *w, size_t row_bytes, int64_t nb, int64_t n_rows,
                              const uint8_t *act, size_t act_stride, int n_tok, float *out, size_t ldo) {
    llm_qd_multi_q4_K_avx512_(w, row_bytes, nb, n_rows, act, act_stride, n_tok, out, ldo);
}

#endif
