/* The CPU reference backend: instance management and the op table. The ops live in one file per
 * family (matmul.c, attention.c, norm_rope.c, elementwise.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/arena.h"
#include "core/half.h"
#include "core/quant.h"

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
    case LLM_DTYPE_Q4_K: /* the reference path: dequantize, then the f32 dot */
        llm_dequant_row(w->dtype, (const char *)w->data + (size_t)row * llm_dtype_row_bytes(w->dtype, cols),
                        dst, cols);
        return dst;
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
    free(cpu->xb);
    free(cpu->accbuf);
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

/* The reference op table (LLM_CPU_LEVEL_REF): the numbers the parity tests pin down. */
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
    .matmul_multi = llm_cpu_matmul_multi,
    .matmul_swiglu = llm_cpu_matmul_swiglu,
    .rope_table = llm_cpu_rope_table,
    .rope = llm_cpu_rope,
    .kv_write = llm_cpu_kv_write,
    .attention = llm_cpu_attention,
    .swiglu = llm_cpu_swiglu,
    .add = llm_cpu_add,
    .get_rows = llm_cpu_get_rows,
};

/* Every fast level: the same drivers, which call the level's kernels through cpu->kern (chosen once,
 * at creation). Embedding, RoPE, KV writes, residual adds and row gathers are memory copies or a few
 * flops per element: the reference versions already run at memory speed. */
static const llm_backend_ops cpu_fast_ops = {
    .name = "cpu",
    .from_host = cpu_copy,
    .free = cpu_free,
    .status = cpu_status,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .to_host = cpu_to_host,
    .copy = cpu_copy,
    .embed = llm_cpu_embed,
    .rmsnorm = llm_cpu_rmsnorm_fast,
    .add_rmsnorm = llm_cpu_add_rmsnorm_fast,
    .matmul = llm_cpu_matmul_fast,
    .matmul_multi = llm_cpu_matmul_multi_fast,
    .matmul_swiglu = llm_cpu_matmul_swiglu_fast,
    .rope_table = llm_cpu_rope_table,
    .rope = llm_cpu_rope,
    .kv_write = llm_cpu_kv_write,
    .attention = llm_cpu_attention_fast,
    .swiglu = llm_cpu_swiglu_fast,
    .add = llm_cpu_add,
    .get_rows = llm_cpu_get_rows,
};

llm_cpu_level llm_backend_cpu_level(const llm_backend *be) {
    return ((const llm_backend_cpu *)be)->kern.level;
}

/* Largest activation block converted to bf16 at once (elements): 8 MB, more than the T × K of any
 * forward pass the engine plans for the supported models (256 × 14336 = 3.7 M). */
#define LLM_CPU_XB_MAX ((size_t)4 << 20)

size_t llm_backend_cpu_scratch_bytes(const llm_backend_config *cfg) {
    llm_cpu_features f;
    llm_cpu_features_detect(&f);
    const llm_cpu_level level = cfg->cpu_level < 0 ? llm_cpu_best_level(&f) : (llm_cpu_level)cfg->cpu_level;
    const size_t threads = cfg->n_threads > 0 ? (size_t)cfg->n_threads : 1,
                 max_row = cfg->max_row > 0 ? (size_t)cfg->max_row : 1;
    size_t bytes = llm_align_up(max_row * LLM_CPU_MATMUL_TILE, 16) * threads * sizeof(float); /* as below */
    if (level != LLM_CPU_LEVEL_REF) {
        bytes += (size_t)(LLM_CPU_PANEL / LLM_CPU_MR) * LLM_CPU_TOKEN_TILES * LLM_CPU_MR * LLM_CPU_NR_MAX *
                 LLM_CPU_LANES_MAX * threads * sizeof(float);
        size_t cap = (cfg->max_tokens > 0 ? (size_t)cfg->max_tokens : 1) * max_row;
        if (cap > LLM_CPU_XB_MAX) cap = LLM_CPU_XB_MAX;
        if (cap < max_row) cap = max_row;
        bytes += cap * sizeof(uint16_t);
    }
    return bytes;
}

llm_backend *llm_backend_cpu_create(const llm_backend_config *cfg) {
    llm_cpu_features f;
    llm_cpu_features_detect(&f);
    const llm_cpu_level level = cfg->cpu_level < 0 ? llm_cpu_best_level(&f) : (llm_cpu_level)cfg->cpu_level;
    if ((int)level >= LLM_CPU_LEVEL_COUNT) return NULL;
    llm_backend_cpu *cpu = calloc(1, sizeof *cpu);
    if (!cpu) return NULL;
    if (llm_cpu_kernels_init(&cpu->kern, level, &f) != 0) {
        free(cpu);
        return NULL;
    }
    cpu->base.ops = level == LLM_CPU_LEVEL_REF ? &cpu_ops : &cpu_fast_ops;
    cpu->n_threads = cfg->n_threads > 0 ? cfg->n_threads : 1;
    cpu->max_row = cfg->max_row > 0 ? cfg->max_row : 1;
    cpu->kblock = LLM_CPU_KBLOCK;
    /* One tile of widened weight rows per thread, padded to keep threads on separate cache lines. */
    cpu->scratch_stride = llm_align_up((size_t)cpu->max_row * LLM_CPU_MATMUL_TILE, 16);
    size_t bytes = cpu->scratch_stride * (size_t)cpu->n_threads * sizeof(float);
    int ok = posix_memalign((void **)&cpu->scratch, LLM_ARENA_ALIGN, bytes) == 0;
    if (ok && level != LLM_CPU_LEVEL_REF) {
        cpu->acc_stride = (size_t)(LLM_CPU_PANEL / LLM_CPU_MR) * LLM_CPU_TOKEN_TILES * LLM_CPU_MR *
                          LLM_CPU_NR_MAX * LLM_CPU_LANES_MAX;
        ok = posix_memalign((void **)&cpu->accbuf, LLM_ARENA_ALIGN,
                            cpu->acc_stride * (size_t)cpu->n_threads * sizeof(float)) == 0;
        if (ok) { /* bf16 activations (AVX512_BF16) or quantized ones (Q8_0 / Q4_K weights) */
            const size_t tokens = cfg->max_tokens > 0 ? (size_t)cfg->max_tokens : 1;
            size_t cap = tokens * (size_t)cpu->max_row;
            if (cap > LLM_CPU_XB_MAX) cap = LLM_CPU_XB_MAX;
            if (cap < (size_t)cpu->max_row) cap = (size_t)cpu->max_row; /* at least one row of any K */
            cpu->xb_cap = cap;
            ok = posix_memalign((void **)&cpu->xb, LLM_ARENA_ALIGN, cap * sizeof(uint16_t)) == 0;
        }
    }
    if (ok) cpu->pool = llm_threadpool_create(cpu->n_threads);
    if (!ok || !cpu->pool) {
        cpu_free(&cpu->base);
        return NULL;
    }
    return &cpu->base;
}
