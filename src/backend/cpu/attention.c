/* Causal attention over the paged KV cache, and the KV write that feeds it.
 *
 * Each (token row, head) pair is one independent work item: its query attends to positions
 * 0..pos of its own sequence, read block by block through the sequence's block table. Softmax is
 * computed online (running max and sum, rescaled per block), so no buffer of scores as long as the
 * context is needed and the result of a row does not depend on what else is in the batch. */
#include <math.h>

#include "backend/cpu/cpu_internal.h"

void llm_cpu_kv_write(llm_backend *be, const llm_kv_view *kv, const float *k, const float *v,
                      const llm_batch *b) {
    (void)be;
    LLM_ASSERT(kv->dtype == LLM_DTYPE_F32 && "the engine gives the CPU a float cache");
    const int hd = kv->head_dim, nkv = kv->n_head_kv, bs = kv->block_size;
    const size_t row = (size_t)nkv * hd;
    for (int s = 0; s < b->n_seqs; s++) {
        const llm_batch_seq *sq = &b->seqs[s];
        for (int r = 0; r < sq->n_rows; r++) {
            const int pos = sq->n_past + r;
            const int32_t blk = sq->block_table[pos / bs];
            const int slot = pos % bs;
            const float *ks = k + (size_t)(sq->row_begin + r) * row;
            const float *vs = v + (size_t)(sq->row_begin + r) * row;
            for (int h = 0; h < nkv; h++) {
                size_t dst = (((size_t)blk * nkv + h) * bs + slot) * hd;
                for (int i = 0; i < hd; i++) {
                    kv->k[dst + i] = ks[(size_t)h * hd + i];
                    kv->v[dst + i] = vs[(size_t)h * hd + i];
                }
            }
        }
    }
}

typedef struct {
    float *out;
    const float *q;
    const llm_kv_view *kv;
    const llm_batch *b;
    int n_head;
    float scale;
    long n_items;
} attn_args;

static void attend_one(const attn_args *a, const llm_batch_seq *sq, int r, int h) {
    const int hd = a->kv->head_dim, nkv = a->kv->n_head_kv, bs = a->kv->block_size;
    const int group = a->n_head / nkv;
    const int kvh = h / group;
    const int pos = sq->n_past + r;
    const size_t qrow = (size_t)(sq->row_begin + r) * a->n_head * hd + (size_t)h * hd;
    const float *q = a->q + qrow;
    float acc[LLM_CPU_MAX_HEAD_DIM];
    float scores[LLM_CPU_MAX_BLOCK];
    for (int i = 0; i < hd; i++) acc[i] = 0.0f;
    float running_max = -INFINITY, running_sum = 0.0f;
    const int n_keys = pos + 1;
    for (int start = 0; start < n_keys; start += bs) {
        const int32_t blk = sq->block_table[start / bs];
        const int cnt = n_keys - start < bs ? n_keys - start : bs;
        const float *kb = a->kv->k + ((size_t)blk * nkv + kvh) * bs * hd;
        const float *vb = a->kv->v + ((size_t)blk * nkv + kvh) * bs * hd;
        float block_max = -INFINITY;
        for (int j = 0; j < cnt; j++) {
            const float *kj = kb + (size_t)j * hd;
            float dot = 0.0f;
            for (int i = 0; i < hd; i++) dot += q[i] * kj[i];
            scores[j] = dot * a->scale;
            if (scores[j] > block_max) block_max = scores[j];
        }
        const float new_max = block_max > running_max ? block_max : running_max;
        const float correction = expf(running_max - new_max); /* exp(-inf) = 0 on the first block */
        running_sum *= correction;
        for (int i = 0; i < hd; i++) acc[i] *= correction;
        for (int j = 0; j < cnt; j++) {
            const float p = expf(scores[j] - new_max);
            running_sum += p;
            const float *vj = vb + (size_t)j * hd;
            for (int i = 0; i < hd; i++) acc[i] += p * vj[i];
        }
        running_max = new_max;
    }
    float *o = a->out + qrow;
    const float inv = 1.0f / running_sum;
    for (int i = 0; i < hd; i++) o[i] = acc[i] * inv;
}

static void attention_task(void *p, int ith, int nth) {
    const attn_args *a = p;
    long begin, end;
    llm_split_range(a->n_items, ith, nth, &begin, &end);
    long base = 0;
    for (int s = 0; s < a->b->n_seqs && base < end; s++) {
        const llm_batch_seq *sq = &a->b->seqs[s];
        const long items = (long)sq->n_rows * a->n_head;
        long lo = begin > base ? begin : base;
        long hi = end < base + items ? end : base + items;
        for (long it = lo; it < hi; it++) {
            const long local = it - base;
            attend_one(a, sq, (int)(local / a->n_head), (int)(local % a->n_head));
        }
        base += items;
    }
}

void llm_cpu_attention(llm_backend *be, float *out, const float *q, const llm_kv_view *kv, const llm_batch *b,
                       int n_head, float scale) {
    llm_backend_cpu *cpu = llm_cpu(be);
    LLM_ASSERT(kv->block_size <= LLM_CPU_MAX_BLOCK && kv->head_dim <= LLM_CPU_MAX_HEAD_DIM);
    long items = 0;
    for (int s = 0; s < b->n_seqs; s++) items += (long)b->seqs[s].n_rows * n_head;
    attn_args a = {out, q, kv, b, n_head, scale, items};
    llm_threadpool_run(cpu->pool, attention_task, &a);
}
