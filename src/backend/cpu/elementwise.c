/* Embedding lookup, SwiGLU, residual add, row gather. */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"

void llm_cpu_embed(llm_backend *be, float *out, const llm_tensor *table, const int32_t *ids, int n) {
    (void)be;
    const int64_t d = table->cols;
    for (int t = 0; t < n; t++) {
        float *dst = out + (size_t)t * d;
        const float *row = llm_cpu_row_f32(table, ids[t], dst);
        if (row != dst) memcpy(dst, row, (size_t)d * sizeof *dst);
    }
}

typedef struct {
    float *out;
    const float *gate, *up;
    size_t n;
} swiglu_args;

static void swiglu_task(void *p, int ith, int nth) {
    const swiglu_args *a = p;
    long b, e;
    llm_split_range((long)a->n, ith, nth, &b, &e);
    for (long i = b; i < e; i++) {
        const float g = a->gate[i];
        a->out[i] = g / (1.0f + expf(-g)) * a->up[i];
    }
}

void llm_cpu_swiglu(llm_backend *be, float *out, const float *gate, const float *up, size_t n) {
    swiglu_args a = {out, gate, up, n};
    if (n < LLM_CPU_PARALLEL_MIN)
        swiglu_task(&a, 0, 1);
    else
        llm_threadpool_run(llm_cpu(be)->pool, swiglu_task, &a);
}

void llm_cpu_add(llm_backend *be, float *x, const float *y, size_t n) {
    (void)be;
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

void llm_cpu_get_rows(llm_backend *be, float *out, const float *x, const int32_t *rows, int n_rows, int dim) {
    (void)be;
    for (int r = 0; r < n_rows; r++)
        memmove(out + (size_t)r * dim, x + (size_t)rows[r] * dim, (size_t)dim * sizeof *out);
}
