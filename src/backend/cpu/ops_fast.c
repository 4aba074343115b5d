/* The non-matmul ops on the fast kernel levels: the drivers (threading, weight widening, KV block walk)
 * around the level's row kernels in llm_backend_cpu.kern. Each row's result depends only on that row
 * (and its own sequence's KV), never on the rest of the batch. */
#include <math.h>

#include "backend/cpu/cpu_internal.h"

int llm_cpu_kernels_init(llm_cpu_ktable *k, llm_cpu_level level, const llm_cpu_features *f) {
    if (!llm_cpu_level_supported(f, level)) return -1;
    switch (level) {
    case LLM_CPU_LEVEL_REF: /* the reference ops do not use the table; PORTABLE's fills it harmlessly */
    case LLM_CPU_LEVEL_PORTABLE:
        llm_cpu_kernels_portable(k);
        k->level = level;
        return 0;
    case LLM_CPU_LEVEL_AVX2:
        return llm_cpu_kernels_avx2(k) ? 0 : -1;
    case LLM_CPU_LEVEL_AVX512:
        return llm_cpu_kernels_avx512(k, f) ? 0 : -1;
    case LLM_CPU_LEVEL_COUNT:
        break;
    }
    return -1;
}

/* Shape: out[R][D], x[R][D], w[D]. The weight vector is widened once per call into the thread-0
 * scratch (these run on the calling thread: a row of 2-8 K floats costs less than a dispatch). */
void llm_cpu_rmsnorm_fast(llm_backend *be, float *out, const float *x, const llm_tensor *w, int rows, int dim,
                          float eps) {
    llm_backend_cpu *cpu = llm_cpu(be);
    const float *wf = llm_cpu_row_f32(w, 0, cpu->scratch);
    for (int r = 0; r < rows; r++)
        cpu->kern.rmsnorm_row(out + (size_t)r * dim, x + (size_t)r * dim, wf, dim, eps);
}

void llm_cpu_add_rmsnorm_fast(llm_backend *be, float *out, float *x, const float *y, const llm_tensor *w,
                              int rows, int dim, float eps) {
    llm_backend_cpu *cpu = llm_cpu(be);
    const float *wf = llm_cpu_row_f32(w, 0, cpu->scratch);
    for (int r = 0; r < rows; r++)
        cpu->kern.add_rmsnorm_row(out + (size_t)r * dim, x + (size_t)r * dim, y + (size_t)r * dim, wf, dim,
                                  eps);
}

typedef struct {
    const llm_cpu_ktable *kern;
    float *out;
    const float *gate, *up;
    size_t n;
} swiglu_args;

/* Shares are cut at multiples of 64 floats so every vector but the very last is whole. */
static void swiglu_task(void *p, int ith, int nth) {
    const swiglu_args *a = p;
    long b, e;
    llm_split_range((long)((a->n + 63) / 64), ith, nth, &b, &e);
    size_t lo = (size_t)b * 64, hi = (size_t)e * 64;
    if (hi > a->n) hi = a->n;
    if (lo < hi) a->kern->swiglu(a->out + lo, a->gate + lo, a->up + lo, hi - lo);
}

void llm_cpu_swiglu_fast(llm_backend *be, float *out, const float *gate, const float *up, size_t n) {
    llm_backend_cpu *cpu = llm_cpu(be);
    swiglu_args a = {&cpu->kern, out, gate, up, n};
    if (n < LLM_CPU_PARALLEL_MIN)
        swiglu_task(&a, 0, 1);
    else
        llm_threadpool_run(cpu->pool, swiglu_task, &a);
}

typedef struct {
    llm_backend_cpu *cpu;
    float *out;
    const float *q;
    const llm_kv_view *kv;
    const llm_batch *b;
    int n_head;
    float scale;
} attn_args;

/* Query heads attended together: they share their KV head's blocks, which are then read once (from
 * memory, at long context) for all of them instead of once per head. */
#define LLM_CPU_ATTN_GROUP 8

/* Shape: query heads h0 .. h0+nq-1 (one KV head's) of one row, q/out rows [n_head][hd]; keys 0..pos of
 * the row's sequence, block by block. Each head sees exactly the blocks, in the order, it would alone. */
static void attend_group(const attn_args *a, const llm_batch_seq *sq, int r, int h0, int nq) {
    const int hd = a->kv->head_dim, nkv = a->kv->n_head_kv, bs = a->kv->block_size;
    const int kvh = h0 / (a->n_head / nkv);
    const int pos = sq->n_past + r;
    const size_t qrow = (size_t)(sq->row_begin + r) * a->n_head * hd;
    float acc[LLM_CPU_ATTN_GROUP][LLM_CPU_MAX_HEAD_DIM];
    llm_attn_state st[LLM_CPU_ATTN_GROUP];
    for (int g = 0; g < nq; g++) {
        for (int i = 0; i < hd; i++) acc[g][i] = 0.0f;
        st[g] = (llm_attn_state){acc[g], -INFINITY, 0.0f};
    }
    const int n_keys = pos + 1;
    for (int start = 0; start < n_keys; start += bs) {
        const int32_t blk = sq->block_table[start / bs];
        const int cnt = n_keys - start < bs ? n_keys - start : bs;
        const size_t off = ((size_t)blk * nkv + kvh) * bs * hd;
        for (int g = 0; g < nq; g++)
            a->cpu->kern.attn_block(&st[g], a->q + qrow + (size_t)(h0 + g) * hd, a->kv->k + off,
                                    a->kv->v + off, cnt, hd, a->scale);
    }
    for (int g = 0; g < nq; g++) {
        float *o = a->out + qrow + (size_t)(h0 + g) * hd;
        const float inv = 1.0f / st[g].sum;
        for (int i = 0; i < hd; i++) o[i] = acc[g][i] * inv;
    }
}

/* Items (row, group of query heads) are dealt round-robin: a prefill row's cost grows with its
 * position, so contiguous shares would leave the first thread idle. */
static void attention_task(void *p, int ith, int nth) {
    const attn_args *a = p;
    const int group = a->n_head / a->kv->n_head_kv;
    const int per_kv = (group + LLM_CPU_ATTN_GROUP - 1) / LLM_CPU_ATTN_GROUP; /* items per KV head */
    const int items_row = a->kv->n_head_kv * per_kv;
    long base = 0;
    for (int s = 0; s < a->b->n_seqs; s++) {
        const llm_batch_seq *sq = &a->b->seqs[s];
        const long items = (long)sq->n_rows * items_row;
        const long first =
            (ith - base % nth + nth) % nth; /* first local index with (base + i) % nth == ith */
        for (long local = first; local < items; local += nth) {
            const int r = (int)(local / items_row), it = (int)(local % items_row);
            const int kvh = it / per_kv, sub = it % per_kv;
            const int h0 = kvh * group + sub * LLM_CPU_ATTN_GROUP;
            const int nq = group - sub * LLM_CPU_ATTN_GROUP < LLM_CPU_ATTN_GROUP
                               ? group - sub * LLM_CPU_ATTN_GROUP
                               : LLM_CPU_ATTN_GROUP;
            attend_group(a, sq, r, h0, nq);
        }
        base += items;
    }
}

void llm_cpu_attention_fast(llm_backend *be, float *out, const float *q, const llm_kv_view *kv,
                            const llm_batch *b, int n_head, float scale) {
    llm_backend_cpu *cpu = llm_cpu(be);
    LLM_ASSERT(kv->block_size <= LLM_CPU_MAX_BLOCK && kv->head_dim <= LLM_CPU_MAX_HEAD_DIM);
    LLM_ASSERT(kv->dtype == LLM_DTYPE_F32 && "the engine gives the CPU a float cache");
    attn_args a = {cpu, out, q, kv, b, n_head, scale};
    llm_threadpool_run(cpu->pool, attention_task, &a);
}
