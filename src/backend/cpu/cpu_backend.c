/* The CPU reference backend: instance management and the op table. The ops live in one file per
 * family (matmul.c, attention.c, norm_rope.c, elementwise.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/arena.h"
#include "core/half.h"

const float *llm_cpu_row_f32(const llm_tensor *w, int64_t row, float *dst) {
    const int64_t cols = w->cols;
    switch (w->dtype) {
    case LLM_DTYPE_F32:
        return (const float *)w->data + row * cols;
    case LLM_DTYPE_BF16: {
        const uint16_t *src = (const uint16_t *)w->data + row * cols;
        for (int64_t i = 0; i < cols; i++) dst[i] = llm_bf16_to_f32(src[i]);
        return dst;
    }
    case LLM_DTYPE_F16: {
        const uint16_t *src = (const uint16_t *)w->data + row * cols;
        for (int64_t i = 0; i < cols; i++) dst[i] = llm_f16_to_f32(src[i]);
        return dst;
    }
    case LLM_DTYPE_Q8_0:
    case LLM_DTYPE_Q4_K:
    case LLM_DTYPE_COUNT:
        break;
    }
    LLM_ASSERT(0 && "tensor dtype validated at load");
    return dst;
}

float llm_cpu_elem_f32(const llm_tensor *t, int64_t i) {
    switch (t->dtype) {
    case LLM_DTYPE_F32:
        return ((const float *)t->data)[i];
    case LLM_DTYPE_BF16:
        return llm_bf16_to_f32(((const uint16_t *)t->data)[i]);
    case LLM_DTYPE_F16:
        return llm_f16_to_f32(((const uint16_t *)t->data)[i]);
    case LLM_DTYPE_Q8_0:
    case LLM_DTYPE_Q4_K:
    case LLM_DTYPE_COUNT:
        break;
    }
    LLM_ASSERT(0 && "tensor dtype validated at load");
    return 0.0f;
}

static void cpu_free(llm_backend *be) {
    if (!be) return;
    llm_backend_cpu *cpu = llm_cpu(be);
    llm_threadpool_free(cpu->pool);
    free(cpu->scratch);
    free(cpu);
}

static llm_status cpu_status(llm_backend *be, char *msg, size_t cap) {
    llm_backend_cpu *cpu = llm_cpu(be);
    if (msg && cap) snprintf(msg, cap, "%s", cpu->msg);
    return cpu->status;
}

static void *cpu_alloc(llm_backend *be, size_t bytes) {
    llm_backend_cpu *cpu = llm_cpu(be);
    void *p = NULL;
    if (posix_memalign(&p, LLM_ARENA_ALIGN, bytes ? bytes : LLM_ARENA_ALIGN) != 0) p = NULL;
    if (!p && cpu->status == LLM_OK) {
        cpu->status = LLM_ERR_OUT_OF_MEMORY;
        snprintf(cpu->msg, sizeof cpu->msg, "cpu backend: cannot allocate %zu bytes", bytes);
    }
    return p;
}

static void cpu_release(llm_backend *be, void *p) {
    (void)be;
    free(p);
}

static void cpu_to_host(llm_backend *be, float *dst, const float *src, size_t n) {
    (void)be;
    if (dst != src) memcpy(dst, src, n * sizeof *dst);
}

static void cpu_copy(llm_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    memcpy(dst, src, bytes);
}

static const llm_backend_ops cpu_ops = {
    .name = "cpu",
    .from_host = cpu_copy, /* host memory is backend memory */
    .free = cpu_free,
    .status = cpu_status,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .to_host = cpu_to_host,
    .copy = cpu_copy,
    .embed = llm_cpu_embed,
    .rmsnorm = llm_cpu_rmsnorm,
    .add_rmsnorm = llm_cpu_add_rmsnorm,
    .matmul = llm_cpu_matmul,
    .rope_table = llm_cpu_rope_table,
    .rope = llm_cpu_rope,
    .kv_write = llm_cpu_kv_write,
    .attention = llm_cpu_attention,
    .swiglu = llm_cpu_swiglu,
    .add = llm_cpu_add,
    .get_rows = llm_cpu_get_rows,
};

llm_backend *llm_backend_cpu_create(const llm_backend_config *cfg) {
    llm_backend_cpu *cpu = calloc(1, sizeof *cpu);
    if (!cpu) return NULL;
    cpu->base.ops = &cpu_ops;
    cpu->n_threads = cfg->n_threads > 0 ? cfg->n_threads : 1;
    cpu->max_row = cfg->max_row > 0 ? cfg->max_row : 1;
    /* One tile of widened weight rows per thread, padded to keep threads on separate cache lines. */
    cpu->scratch_stride = llm_align_up((size_t)cpu->max_row * LLM_CPU_MATMUL_TILE, 16);
    size_t bytes = cpu->scratch_stride * (size_t)cpu->n_threads * sizeof(float);
    if (posix_memalign((void **)&cpu->scratch, LLM_ARENA_ALIGN, bytes) != 0) {
        free(cpu);
        return NULL;
    }
    cpu->pool = llm_threadpool_create(cpu->n_threads);
    if (!cpu->pool) {
        free(cpu->scratch);
        free(cpu);
        return NULL;
    }
    return &cpu->base;
}
