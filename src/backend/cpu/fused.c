/* The fused ops of the op table, on the CPU: the reference composition of the plain ops (an
 * accelerator fuses them into fewer passes; here each weight is already read once per matmul). */
#include "backend/cpu/cpu_internal.h"

void llm_cpu_matmul_multi(llm_backend *be, int n, float *const outs[], const float *x,
                          const llm_tensor *const ws[], const llm_tensor *const biases[], int n_tokens) {
    for (int i = 0; i < n; i++) be->ops->matmul(be, outs[i], x, ws[i], biases[i], n_tokens);
}

void llm_cpu_matmul_swiglu(llm_backend *be, float *out, float *scratch, const float *x,
                           const llm_tensor *w_gate, const llm_tensor *b_gate, const llm_tensor *w_up,
                           const llm_tensor *b_up, int n_tokens) {
    be->ops->matmul(be, out, x, w_gate, b_gate, n_tokens); /* out[T][F] = gate */
    be->ops->matmul(be, scratch, x, w_up, b_up, n_tokens); /* scratch[T][F] = up */
    be->ops->swiglu(be, out, out, scratch, (size_t)n_tokens * (size_t)w_gate->rows);
}
