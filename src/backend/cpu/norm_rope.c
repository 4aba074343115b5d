/* RMSNorm and rotary position embedding. */
#include <math.h>

#include "backend/cpu/cpu_internal.h"

void llm_cpu_rmsnorm(llm_backend *be, float *out, const float *x, const llm_tensor *w, int rows, int dim,
                     float eps) {
    llm_backend_cpu *cpu = llm_cpu(be);
    /* The weight vector is widened once per call into the thread-0 scratch (the call runs on the
     * calling thread, which is thread 0 of the pool). */
    const float *wf = llm_cpu_row_f32(w, 0, cpu->scratch);
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *orow = out + (size_t)r * dim;
        double ss = 0.0; /* double: the mean of squares is the one reduction here that can lose bits */
        for (int i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
        const float inv = (float)(1.0 / sqrt(ss / dim + eps));
        for (int i = 0; i < dim; i++) orow[i] = wf[i] * (xr[i] * inv);
    }
}

void llm_cpu_add_rmsnorm(llm_backend *be, float *out, float *x, const float *y, const llm_tensor *w, int rows,
                         int dim, float eps) {
    llm_backend_cpu *cpu = llm_cpu(be);
    const float *wf = llm_cpu_row_f32(w, 0, cpu->scratch);
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * dim;
        const float *yr = y + (size_t)r * dim;
        float *orow = out + (size_t)r * dim;
        double ss = 0.0; /* the same sum, in the same order, as llm_cpu_rmsnorm over the updated row */
        for (int i = 0; i < dim; i++) {
            xr[i] += yr[i];
            ss += (double)xr[i] * xr[i];
        }
        const float inv = (float)(1.0 / sqrt(ss / dim + eps));
        for (int i = 0; i < dim; i++) orow[i] = wf[i] * (xr[i] * inv);
    }
}

void llm_cpu_rope_table(llm_backend *be, float *cos_out, float *sin_out, const int32_t *pos, int n,
                        const float *inv_freq, int half) {
    (void)be;
    for (int t = 0; t < n; t++) {
        for (int i = 0; i < half; i++) {
            /* angle and trig in double: positions reach 10^5 and more, where a float32 angle
             * would be off by whole hundredths of a radian */
            const double angle = (double)inv_freq[i] * (double)pos[t];
            cos_out[(size_t)t * half + i] = (float)cos(angle);
            sin_out[(size_t)t * half + i] = (float)sin(angle);
        }
    }
}

void llm_cpu_rope(llm_backend *be, float *x, int n, int n_heads, int head_dim, const float *cos_t,
                  const float *sin_t, int interleaved) {
    (void)be;
    const int half = head_dim / 2;
    /* element indices of pair i: (i*a, i*a + b) */
    const int a = interleaved ? 2 : 1, b = interleaved ? 1 : half;
    for (int t = 0; t < n; t++) {
        const float *c = cos_t + (size_t)t * half;
        const float *s = sin_t + (size_t)t * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * n_heads + h) * head_dim;
            for (int i = 0; i < half; i++) {
                const float x0 = v[i * a], x1 = v[i * a + b];
                v[i * a] = x0 * c[i] - x1 * s[i];
                v[i * a + b] = x1 * c[i] + x0 * s[i];
            }
        }
    }
}
