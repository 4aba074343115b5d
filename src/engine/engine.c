/* llm_engine: sequences, their KV block tables, and the prefill/decode verbs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_backend.h"
#include "core/fileutil.h"
#include "engine/engine_internal.h"
#include "kv/kv_cache.h"
#include "model/forward.h"
#include "model/model_internal.h"

#define LLM_SEQ_SLOT_BITS 16

typedef struct seq_slot {
    int used;
    uint16_t generation; /* bumped on every reuse so stale ids are caught */
    int32_t n_tokens;
    int32_t n_blocks;
    int32_t *blocks; /* [max_blocks_per_seq] */
    int32_t *tokens; /* [n_ctx]: the ids whose keys/values the blocks hold */
    /* Prefix-cache chain of the full blocks 0..n_chain-1 (n_chain == n_tokens / block_size between
     * calls): bhash[i] hashes (bhash[i-1], ids of block i); canon[i] is the registered block holding
     * that exact prefix (this sequence's own block, one it attached, or an equal block registered
     * first by another sequence), -1 if none, valid while its epoch is canon_epoch[i]. Block i+1 is
     * registered as canon[i]'s child. */
    uint64_t *bhash;       /* [max_blocks_per_seq] */
    int32_t *canon;        /* [max_blocks_per_seq] */
    uint32_t *canon_epoch; /* [max_blocks_per_seq] */
    int32_t n_chain;
} seq_slot;

struct llm_engine {
    llm_model *model;
    llm_engine_params p;
    llm_backend *be;
    llm_kv_cache kv;
    llm_forward fwd;
    seq_slot *seqs;
    int32_t n_live;
    int32_t max_blocks_per_seq;
    /* host staging for building batches, sized at creation */
    int32_t *positions;        /* [max_batch_tokens] */
    int32_t *tokens;           /* [max_batch_tokens] */
    int32_t *logit_rows;       /* [max_batch_tokens] */
    llm_batch_seq *bseqs;      /* [max_batch_tokens] */
    int32_t *new_blocks;       /* [n_seq_max]: blocks of each item's sequence before the step, for rollback */
    int32_t *chain_before;     /* [n_seq_max]: the same for the prefix-cache chain */
    llm_step_item *step_items; /* [n_seq_max]: llm_decode's items */
    uint8_t *mark;             /* [n_seq_max] */
    uint64_t scratch_bytes, kv_bytes, footprint;
    uint64_t prefix_lookup_tokens, prefix_hit_tokens, computed_tokens;
    uint64_t forward_passes;
    llm_error err;
};

llm_engine_params llm_engine_default_params(void) {
    llm_engine_params p;
    memset(&p, 0, sizeof p);
    p.n_ctx = 0;
    p.n_seq_max = 16;
    p.kv_block_size = 16;
    p.max_batch_tokens = 256;
    p.kv_dtype = LLM_DTYPE_COUNT; /* the engine's pick */
    return p;
}

const char *llm_engine_last_error(const llm_engine *e) {
    return e ? e->err.msg : "";
}

static llm_status engine_fail(llm_engine *e, llm_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static llm_status engine_fail(llm_engine *e, llm_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err.msg, sizeof e->err.msg, fmt, ap);
    va_end(ap);
    e->err.status = st;
    return st;
}

void llm_engine_free(llm_engine *e) {
    if (!e) return;
    if (e->seqs)
        for (int32_t i = 0; i < e->p.n_seq_max; i++) {
            free(e->seqs[i].blocks);
            free(e->seqs[i].tokens);
            free(e->seqs[i].bhash);
            free(e->seqs[i].canon);
            free(e->seqs[i].canon_epoch);
        }
    free(e->seqs);
    if (e->be) {
        llm_forward_release(&e->fwd);
        llm_kv_release(&e->kv, e->be);
        e->be->ops->free(e->be);
    }
    free(e->positions);
    free(e->tokens);
    free(e->logit_rows);
    free(e->bseqs);
    free(e->new_blocks);
    free(e->chain_before);
    free(e->step_items);
    free(e->mark);
    if (e->model) e->model->n_engines--;
    free(e);
}

static int64_t max3(int64_t a, int64_t b, int64_t c) {
    return a > b ? (a > c ? a : c) : (b > c ? b : c);
}

/* Everything an engine will allocate, worked out from the parameters before anything is allocated. */
typedef struct engine_plan {
    llm_engine_params p;
    int32_t n_blocks;
    int32_t logits_chunk;
    int n_threads;
    int64_t max_row;
    uint64_t kv_bytes, scratch_bytes, footprint;
} engine_plan;

static llm_status plan_engine(const llm_model *model, const llm_engine_params *params, engine_plan *plan,
                              llm_error *err) {
    memset(plan, 0, sizeof *plan);
    llm_engine_params p = params ? *params : llm_engine_default_params();
    const llm_hparams *hp = &model->hp;
    if (p.n_ctx == 0) p.n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (p.n_ctx < 1 || p.n_ctx > hp->n_ctx_train)
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT,
                        "n_ctx %d out of range 1..%d (the model's max_position_embeddings)", p.n_ctx,
                        hp->n_ctx_train);
    if (p.n_seq_max < 1 || p.n_seq_max >= (1 << LLM_SEQ_SLOT_BITS) - 1)
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "n_seq_max %d out of range 1..%d", p.n_seq_max,
                        (1 << LLM_SEQ_SLOT_BITS) - 2);
    if (p.kv_block_size < 1 || p.kv_block_size > 256)
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "kv_block_size %d out of range 1..256",
                        p.kv_block_size);
    if (p.max_batch_tokens < 1 || p.max_batch_tokens > 65536)
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "max_batch_tokens %d out of range 1..65536",
                        p.max_batch_tokens);
    if (p.kv_budget_tokens < 0)
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "kv_budget_tokens %lld is negative",
                        (long long)p.kv_budget_tokens);

    if (p.kv_dtype == LLM_DTYPE_COUNT) p.kv_dtype = llm_model_default_kv_dtype(model);
    if (p.kv_dtype != LLM_DTYPE_F32 && p.kv_dtype != LLM_DTYPE_BF16)
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "kv_dtype %s: the KV cache is F32 or BF16",
                        llm_dtype_name(p.kv_dtype));
    if (p.kv_dtype == LLM_DTYPE_BF16 && model->backend != LLM_BACKEND_CUDA)
        return llm_fail(err, LLM_ERR_UNSUPPORTED,
                        "kv_dtype BF16 needs the cuda backend (the %s backend keeps the KV cache in F32)",
                        llm_backend_name(model->backend));
    const uint64_t kv_per_token = llm_kv_bytes(hp->n_layer, hp->n_head_kv, hp->head_dim, 1, 1, p.kv_dtype);
    int64_t budget = p.kv_budget_tokens;
    if (p.kv_budget_bytes) {
        uint64_t from_bytes = p.kv_budget_bytes / kv_per_token;
        if (from_bytes > INT64_MAX / 2) from_bytes = INT64_MAX / 2;
        budget = budget ? (budget < (int64_t)from_bytes ? budget : (int64_t)from_bytes) : (int64_t)from_bytes;
    }
    if (!p.kv_budget_tokens && !p.kv_budget_bytes) budget = p.n_ctx;
    if (budget < 1)
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT,
                        "KV budget of %llu bytes holds no token (%llu bytes per token)",
                        (unsigned long long)p.kv_budget_bytes, (unsigned long long)kv_per_token);
    const int64_t n_blocks = (budget + p.kv_block_size - 1) / p.kv_block_size;
    if (n_blocks > INT32_MAX / 2)
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "KV budget of %lld tokens is too large",
                        (long long)budget);
    plan->p = p;
    plan->n_blocks = (int32_t)n_blocks;
    plan->logits_chunk = p.max_batch_tokens < 64 ? p.max_batch_tokens : 64;
    plan->n_threads = model->n_threads;
    plan->max_row = max3(hp->n_embd, (int64_t)hp->n_head * hp->head_dim, hp->n_ff);
    plan->kv_bytes =
        llm_kv_bytes(hp->n_layer, hp->n_head_kv, hp->head_dim, p.kv_block_size, plan->n_blocks, p.kv_dtype);
    plan->scratch_bytes = llm_forward_arena_bytes(hp, p.max_batch_tokens, plan->logits_chunk);
    if (model->backend == LLM_BACKEND_CPU) { /* the kernels' own buffers, at the level they will run */
        const llm_cpu_kernels ck = llm_cpu_kernels_resolve(model->params.cpu_kernels, NULL, 0);
        const llm_backend_config bc = {.n_threads = plan->n_threads,
                                       .max_row = plan->max_row,
                                       .max_tokens = p.max_batch_tokens,
                                       .cpu_level = ck == LLM_CPU_KERNELS_AUTO ? 0 : (int)ck - 1};
        plan->scratch_bytes += llm_backend_cpu_scratch_bytes(&bc);
    }
    plan->footprint = model->weight_bytes + plan->kv_bytes + plan->scratch_bytes;
    if (plan->footprint > model->memory_limit) {
        char a[32], b[32], c[32], d[32], e[32];
        return llm_fail(
            err, LLM_ERR_MEMORY_LIMIT,
            "engine needs %s (weights %s + KV cache %s + scratch %s), more than the memory limit of %s",
            llm_format_bytes(plan->footprint, a, sizeof a),
            llm_format_bytes(model->weight_bytes, b, sizeof b), llm_format_bytes(plan->kv_bytes, c, sizeof c),
            llm_format_bytes(plan->scratch_bytes, d, sizeof d),
            llm_format_bytes(model->memory_limit, e, sizeof e));
    }
    return LLM_OK;
}

static void plan_info(const engine_plan *plan, llm_engine_info *info) {
    memset(info, 0, sizeof *info);
    info->n_ctx = plan->p.n_ctx;
    info->n_seq_max = plan->p.n_seq_max;
    info->kv_block_size = plan->p.kv_block_size;
    info->kv_blocks_total = plan->n_blocks;
    info->max_batch_tokens = plan->p.max_batch_tokens;
    info->kv_bytes = plan->kv_bytes;
    info->kv_dtype = plan->p.kv_dtype;
    info->scratch_bytes = plan->scratch_bytes;
    info->footprint_bytes = plan->footprint;
}

llm_status llm_engine_estimate(llm_model *model, const llm_engine_params *params, llm_engine_info *info) {
    if (!model || !info) return LLM_ERR_INVALID_ARGUMENT;
    llm_error err = {0};
    engine_plan plan;
    llm_status st = plan_engine(model, params, &plan, &err);
    if (st != LLM_OK) {
        snprintf(model->last_error, sizeof model->last_error, "%s", err.msg);
        return st;
    }
    plan_info(&plan, info);
    return LLM_OK;
}

llm_status llm_engine_create(llm_model *model, const llm_engine_params *params, llm_engine **out) {
    if (!out) return LLM_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!model) return LLM_ERR_INVALID_ARGUMENT;
    llm_error *err = &(llm_error){0};
    const llm_hparams *hp = &model->hp;
    engine_plan plan;
    llm_status st = plan_engine(model, params, &plan, err);
    if (st != LLM_OK) goto fail_early;
    const llm_engine_params p = plan.p;
    const int32_t n_blocks = plan.n_blocks, logits_chunk = plan.logits_chunk;
    const int n_threads = plan.n_threads;
    const uint64_t kv_bytes = plan.kv_bytes, scratch = plan.scratch_bytes, footprint = plan.footprint;
    const int64_t max_row = plan.max_row;

    llm_engine *e = calloc(1, sizeof *e);
    if (!e) {
        st = llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
        goto fail_early;
    }
    e->model = model;
    model->n_engines++;
    e->p = p;
    e->max_blocks_per_seq = (p.n_ctx + p.kv_block_size - 1) / p.kv_block_size;
    e->kv_bytes = kv_bytes;
    e->scratch_bytes = scratch;
    e->footprint = footprint;
    llm_backend_config bc = {.n_threads = n_threads,
                             .max_row = max_row,
                             .max_tokens = p.max_batch_tokens,
                             .max_ctx = p.n_ctx,
                             .n_head = hp->n_head,
                             .head_dim = hp->head_dim,
                             .max_blocks_per_seq = e->max_blocks_per_seq,
                             .max_seqs = p.n_seq_max};
    if (model->backend == LLM_BACKEND_CUDA) {
        char why[256];
        e->be = llm_backend_cuda_create(&bc, why, sizeof why);
        if (!e->be) {
            st = llm_fail(err, LLM_ERR_BACKEND, "cannot create the cuda backend: %s", why);
            goto fail;
        }
    } else {
        /* the kernel level: checked here so that a forced level this CPU lacks says what it lacks */
        char why[192] = "";
        const llm_cpu_kernels ck = llm_cpu_kernels_resolve(model->params.cpu_kernels, why, sizeof why);
        if (ck == LLM_CPU_KERNELS_AUTO) {
            st = llm_fail(err, (int)model->params.cpu_kernels < 0 || model->params.cpu_kernels > LLM_CPU_KERNELS_AVX512
                                   ? LLM_ERR_INVALID_ARGUMENT
                                   : LLM_ERR_UNSUPPORTED,
                          "cannot create the cpu backend: %s", why);
            goto fail;
        }
        bc.cpu_level = (int)ck - 1; /* llm_cpu_kernels is llm_cpu_level + 1 */
        e->be = llm_backend_cpu_create(&bc);
        if (e->be)
            llm_log(&model->log, LLM_LOG_INFO, "engine: cpu kernels %s (asked: %s)", llm_cpu_kernels_name(ck),
                    llm_cpu_kernels_name(model->params.cpu_kernels));
    }
    if (!e->be) {
        st = llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "cannot create the cpu backend with %d threads", n_threads);
        goto fail;
    }
    if ((st = llm_kv_init(&e->kv, e->be, hp->n_layer, hp->n_head_kv, hp->head_dim, p.kv_block_size,
                          n_blocks, p.kv_dtype))) {
        char a[32];
        llm_fail(err, st, "cannot allocate the KV cache (%s)", llm_format_bytes(kv_bytes, a, sizeof a));
        goto fail;
    }
    if ((st = llm_forward_init(&e->fwd, hp, &model->w, e->be, &e->kv, p.max_batch_tokens, logits_chunk, err)))
        goto fail;
    const size_t mb = (size_t)p.max_batch_tokens;
    e->seqs = calloc((size_t)p.n_seq_max, sizeof *e->seqs);
    e->positions = malloc(mb * sizeof *e->positions);
    e->tokens = malloc(mb * sizeof *e->tokens);
    e->logit_rows = malloc(mb * sizeof *e->logit_rows);
    e->bseqs = malloc(mb * sizeof *e->bseqs);
    e->new_blocks = malloc((size_t)p.n_seq_max * sizeof *e->new_blocks);
    e->chain_before = malloc((size_t)p.n_seq_max * sizeof *e->chain_before);
    e->step_items = malloc((size_t)p.n_seq_max * sizeof *e->step_items);
    e->mark = calloc((size_t)p.n_seq_max, 1);
    int ok = e->seqs && e->positions && e->tokens && e->logit_rows && e->bseqs && e->new_blocks &&
             e->chain_before && e->step_items && e->mark;
    for (int32_t i = 0; ok && i < p.n_seq_max; i++) {
        e->seqs[i].blocks = malloc((size_t)e->max_blocks_per_seq * sizeof(int32_t));
        e->seqs[i].tokens = malloc((size_t)p.n_ctx * sizeof(int32_t));
        e->seqs[i].bhash = malloc((size_t)e->max_blocks_per_seq * sizeof(uint64_t));
        e->seqs[i].canon = malloc((size_t)e->max_blocks_per_seq * sizeof(int32_t));
        e->seqs[i].canon_epoch = malloc((size_t)e->max_blocks_per_seq * sizeof(uint32_t));
        ok = e->seqs[i].blocks && e->seqs[i].tokens && e->seqs[i].bhash && e->seqs[i].canon &&
             e->seqs[i].canon_epoch;
    }
    if (!ok) {
        st = llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
        goto fail;
    }
    {
        char a[32], b[32];
        llm_log(&model->log, LLM_LOG_INFO,
                "engine: n_ctx %d, %d KV blocks of %d tokens (%s), scratch %s, %d threads", p.n_ctx, n_blocks,
                p.kv_block_size, llm_format_bytes(kv_bytes, a, sizeof a),
                llm_format_bytes(scratch, b, sizeof b), n_threads);
    }
    *out = e;
    return LLM_OK;
fail:
    llm_engine_free(e);
fail_early:
    snprintf(model->last_error, sizeof model->last_error, "%s", err->msg);
    return st;
}

void llm_engine_get_info(const llm_engine *e, llm_engine_info *info) {
    engine_plan plan = {.p = e->p,
                        .n_blocks = e->kv.n_blocks,
                        .kv_bytes = e->kv_bytes,
                        .scratch_bytes = e->scratch_bytes,
                        .footprint = e->footprint};
    plan_info(&plan, info);
    info->kv_blocks_used = llm_kv_blocks_used(&e->kv);
    info->n_seqs = e->n_live;
    info->kv_blocks_cached = e->kv.n_cached;
    info->prefix_lookup_tokens = e->prefix_lookup_tokens;
    info->prefix_hit_tokens = e->prefix_hit_tokens;
    info->computed_tokens = e->computed_tokens;
}

/* ---- sequences ---------------------------------------------------------------------------------- */

static seq_slot *find_seq(const llm_engine *e, llm_seq_id id) {
    if (id <= 0) return NULL;
    int32_t slot = (id & ((1 << LLM_SEQ_SLOT_BITS) - 1)) - 1;
    uint16_t gen = (uint16_t)((uint32_t)id >> LLM_SEQ_SLOT_BITS);
    if (slot < 0 || slot >= e->p.n_seq_max) return NULL;
    seq_slot *s = &e->seqs[slot];
    return (s->used && s->generation == gen) ? s : NULL;
}

llm_status llm_seq_create(llm_engine *e, llm_seq_id *out) {
    if (!e || !out) return LLM_ERR_INVALID_ARGUMENT;
    for (int32_t i = 0; i < e->p.n_seq_max; i++) {
        seq_slot *s = &e->seqs[i];
        if (s->used) continue;
        s->used = 1;
        s->generation = (uint16_t)((s->generation + 1) & 0x7fff); /* keeps ids positive */
        if (s->generation == 0) s->generation = 1;
        s->n_tokens = 0;
        s->n_blocks = 0;
        s->n_chain = 0;
        e->n_live++;
        *out = (llm_seq_id)(((int32_t)s->generation << LLM_SEQ_SLOT_BITS) | (i + 1));
        return LLM_OK;
    }
    return engine_fail(e, LLM_ERR_TOO_MANY_SEQUENCES, "all %d sequence slots are in use", e->p.n_seq_max);
}

void llm_seq_free(llm_engine *e, llm_seq_id id) {
    if (!e) return;
    seq_slot *s = find_seq(e, id);
    if (!s) return;
    /* last block first: the LRU then evicts a prefix's tail before its head */
    for (int32_t b = s->n_blocks - 1; b >= 0; b--) llm_kv_block_unref(&e->kv, s->blocks[b]);
    s->n_blocks = 0;
    s->n_chain = 0;
    s->n_tokens = 0;
    s->used = 0;
    e->n_live--;
}

int32_t llm_seq_length(const llm_engine *e, llm_seq_id id) {
    const seq_slot *s = e ? find_seq(e, id) : NULL;
    return s ? s->n_tokens : -1;
}

const int32_t *llm_seq_tokens(const llm_engine *e, llm_seq_id id) {
    const seq_slot *s = e ? find_seq(e, id) : NULL;
    return s ? s->tokens : NULL;
}

static void shrink_blocks(llm_engine *e, seq_slot *s, int32_t n_blocks);

llm_status llm_seq_truncate(llm_engine *e, llm_seq_id id, int32_t n_tokens) {
    if (!e) return LLM_ERR_INVALID_ARGUMENT;
    seq_slot *s = find_seq(e, id);
    if (!s) return engine_fail(e, LLM_ERR_INVALID_SEQUENCE, "sequence %d does not exist in this engine", id);
    if (n_tokens < 0 || n_tokens > s->n_tokens)
        return engine_fail(e, LLM_ERR_INVALID_ARGUMENT, "cannot truncate a sequence of %d tokens to %d",
                           s->n_tokens, n_tokens);
    s->n_tokens = n_tokens;
    shrink_blocks(e, s, (n_tokens + e->p.kv_block_size - 1) / e->p.kv_block_size);
    if (s->n_chain > n_tokens / e->p.kv_block_size) s->n_chain = n_tokens / e->p.kv_block_size;
    /* A now-partial last block may still be registered or shared; it is made private (unregistered, or
     * copied) only when the sequence next writes into it, so truncating never needs a free block. */
    return LLM_OK;
}

int32_t llm_engine_debug_seq_blocks(const llm_engine *e, llm_seq_id id) {
    const seq_slot *s = find_seq(e, id);
    return s ? s->n_blocks : -1;
}

llm_model *llm_engine_model(const llm_engine *e) {
    return e->model;
}

llm_status llm_engine_set_error(llm_engine *e, llm_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err.msg, sizeof e->err.msg, fmt, ap);
    va_end(ap);
    e->err.status = st;
    return st;
}

void llm_engine_debug_set_query_rope_offset(llm_engine *e, int offset) {
    e->fwd.debug_q_position_offset = offset;
}

/* Grows s's block table to cover n_tokens positions. Returns 0, or -1 if the pool ran dry (any
 * blocks taken are given back). */
static int reserve_blocks(llm_engine *e, seq_slot *s, int32_t n_tokens) {
    const int32_t want = (n_tokens + e->p.kv_block_size - 1) / e->p.kv_block_size;
    const int32_t had = s->n_blocks;
    if (want - had > llm_kv_blocks_available(&e->kv)) return -1;
    while (s->n_blocks < want) s->blocks[s->n_blocks++] = llm_kv_block_alloc(&e->kv);
    return 0;
}

static void shrink_blocks(llm_engine *e, seq_slot *s, int32_t n_blocks) {
    while (s->n_blocks > n_blocks) llm_kv_block_unref(&e->kv, s->blocks[--s->n_blocks]);
}

/* ---- prefix cache ------------------------------------------------------------------------------- */

/* The parent identity of full block `level` of s: its chain hash and registered block. 0 when the
 * chain is broken (the parent prefix is not, or no longer, registered): nothing below it can match. */
static int chain_parent(const llm_engine *e, const seq_slot *s, int32_t level, uint64_t *ph, int32_t *pb,
                        uint32_t *pe) {
    if (level == 0) {
        *ph = LLM_KV_HASH_ROOT, *pb = -1, *pe = 0;
        return 1;
    }
    const int32_t c = s->canon[level - 1];
    if (c < 0 || !e->kv.hashed[c] || e->kv.epoch[c] != s->canon_epoch[level - 1]) return 0;
    *ph = s->bhash[level - 1], *pb = c, *pe = s->canon_epoch[level - 1];
    return 1;
}

/* s ends at a block boundary and is about to get tokens[]: attaches the longest run of registered
 * blocks that hold exactly the next full blocks of tokens, skipping at most max_skip tokens. Each
 * attached block gains a reference (leaving the LRU if it was cached). Returns the tokens skipped. */
static int32_t attach_cached_prefix(llm_engine *e, seq_slot *s, const int32_t *tokens, int32_t max_skip) {
    const int32_t bs = e->p.kv_block_size;
    int32_t skipped = 0;
    while (skipped + bs <= max_skip) {
        const int32_t level = s->n_blocks;
        LLM_ASSERT(level == s->n_chain && level == (s->n_tokens + skipped) / bs);
        uint64_t ph;
        int32_t pb;
        uint32_t pe;
        if (!chain_parent(e, s, level, &ph, &pb, &pe)) break;
        const uint64_t h = llm_kv_hash(&e->kv, ph, tokens + skipped);
        const int32_t c = llm_kv_lookup(&e->kv, h, pb, pe, tokens + skipped);
        if (c < 0) break;
        llm_kv_block_ref(&e->kv, c);
        s->blocks[s->n_blocks++] = c;
        s->bhash[level] = h, s->canon[level] = c, s->canon_epoch[level] = e->kv.epoch[c];
        s->n_chain = level + 1;
        skipped += bs;
    }
    return skipped;
}

/* Registers s's full blocks n_chain.. (after a forward pass filled them). A block whose prefix is
 * already registered elsewhere stays unregistered (a duplicate); the chain then continues through the
 * registered one, so later blocks remain findable. */
static void register_full_blocks(llm_engine *e, seq_slot *s) {
    const int32_t bs = e->p.kv_block_size;
    for (int32_t level = s->n_chain; level < s->n_tokens / bs; level++) {
        const int32_t *ids = s->tokens + (size_t)level * bs;
        const int32_t b = s->blocks[level];
        uint64_t ph;
        int32_t pb;
        uint32_t pe;
        s->canon[level] = -1;
        s->bhash[level] = 0;
        if (chain_parent(e, s, level, &ph, &pb, &pe)) {
            const uint64_t h = llm_kv_hash(&e->kv, ph, ids);
            int32_t c = e->kv.hashed[b] ? b : llm_kv_lookup(&e->kv, h, pb, pe, ids);
            if (c < 0) {
                llm_kv_register(&e->kv, b, h, ph, pb, pe, ids);
                c = b;
            }
            s->bhash[level] = h, s->canon[level] = c, s->canon_epoch[level] = e->kv.epoch[c];
        }
        s->n_chain = level + 1;
    }
}

/* 1 if s's partial last block is shared, so writing into it first needs a copy (a fresh block). */
static int needs_cow(const llm_engine *e, const seq_slot *s) {
    const int32_t bs = e->p.kv_block_size;
    return s->n_tokens % bs != 0 && e->kv.refcount[s->blocks[s->n_tokens / bs]] > 1;
}

/* Makes s's partial last block writable: its own (copied if shared) and unregistered, since its
 * contents are about to change. -1 if a copy was needed and no block could be had. */
static int make_writable(llm_engine *e, seq_slot *s) {
    const int32_t bs = e->p.kv_block_size;
    if (s->n_tokens % bs == 0) return 0;
    const int32_t i = s->n_tokens / bs;
    if (e->kv.refcount[s->blocks[i]] > 1) {
        const int32_t nb = llm_kv_block_cow(&e->kv, e->be, s->blocks[i]);
        if (nb < 0) return -1;
        s->blocks[i] = nb;
    } else {
        llm_kv_unregister(&e->kv, s->blocks[i]);
    }
    return 0;
}

/* The copy-on-write invariant: positions [from, to) of s are about to be written, so every block
 * they touch must be s's alone and unregistered (only full, immutable blocks are ever shared). */
static void assert_writable(const llm_engine *e, const seq_slot *s, int32_t from, int32_t to) {
    const int32_t bs = e->p.kv_block_size;
    for (int32_t i = from / bs; i < (to + bs - 1) / bs; i++) {
        LLM_ASSERT(e->kv.refcount[s->blocks[i]] == 1 && !e->kv.hashed[s->blocks[i]]);
        (void)i, (void)s, (void)e;
    }
}

static llm_status check_tokens(llm_engine *e, const int32_t *tokens, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= e->model->hp.n_vocab)
            return engine_fail(e, LLM_ERR_INVALID_ARGUMENT,
                               "token %d at index %zu is outside the vocabulary [0, %d)", tokens[i], i,
                               e->model->hp.n_vocab);
    return LLM_OK;
}

/* ---- step: the one forward pass behind prefill and decode ---------------------------------------- */

/* Logit rows an item asks for. */
static size_t item_rows(const llm_step_item *it) {
    return it->logits == LLM_LOGITS_ALL ? (size_t)it->n_tokens : it->logits == LLM_LOGITS_LAST ? 1u : 0u;
}

/* Validates every item before anything changes. */
static llm_status check_items(llm_engine *e, const llm_step_item *items, size_t n_items, size_t *n_rows) {
    *n_rows = 0;
    if (n_items == 0 || !items)
        return engine_fail(e, LLM_ERR_INVALID_ARGUMENT, "a step needs at least one item");
    if (n_items > (size_t)e->p.n_seq_max)
        return engine_fail(e, LLM_ERR_INVALID_ARGUMENT,
                           "%zu items in one step; the engine holds at most %d sequences", n_items,
                           e->p.n_seq_max);
    llm_status st = LLM_OK;
    for (size_t i = 0; i < n_items && st == LLM_OK; i++) {
        const llm_step_item *it = &items[i];
        seq_slot *s = find_seq(e, it->seq);
        if (!s) {
            st = engine_fail(e, LLM_ERR_INVALID_SEQUENCE,
                             "sequence %d (item %zu) does not exist in this engine", it->seq, i);
            break;
        }
        const int32_t slot = (int32_t)(s - e->seqs);
        if (e->mark[slot]) {
            st = engine_fail(e, LLM_ERR_INVALID_ARGUMENT, "sequence %d appears twice in one step (item %zu)",
                             it->seq, i);
            break;
        }
        e->mark[slot] = 1;
        if (it->n_tokens < 1 || !it->tokens)
            st = engine_fail(e, LLM_ERR_INVALID_ARGUMENT, "item %zu has no tokens", i);
        else if (it->logits != LLM_LOGITS_NONE && it->logits != LLM_LOGITS_LAST &&
                 it->logits != LLM_LOGITS_ALL)
            st = engine_fail(e, LLM_ERR_INVALID_ARGUMENT, "item %zu: unknown logits mode %d", i,
                             (int)it->logits);
        else if (it->n_tokens > e->p.n_ctx - s->n_tokens)
            st = engine_fail(e, LLM_ERR_CONTEXT_FULL,
                             "sequence %d holds %d tokens; %d more would exceed the context of %d tokens",
                             it->seq, s->n_tokens, it->n_tokens, e->p.n_ctx);
        else if ((st = check_tokens(e, it->tokens, (size_t)it->n_tokens)) != LLM_OK)
            break;
        *n_rows += item_rows(it);
    }
    for (size_t j = 0; j < n_items; j++) { /* marks are idempotent: clear every item's */
        seq_slot *s = find_seq(e, items[j].seq);
        if (s) e->mark[s - e->seqs] = 0;
    }
    return st;
}

/* Gives back what the step took for items [0, n): blocks added since, chain position. */
static void rollback(llm_engine *e, llm_step_item *items, size_t n) {
    for (size_t i = 0; i < n; i++) {
        seq_slot *s = find_seq(e, items[i].seq);
        shrink_blocks(e, s, e->new_blocks[i]);
        s->n_chain = e->chain_before[i];
    }
}

/* llm_step; with hidden set, the rows written are final-normed hidden states (n_embd floats each). */
static llm_status step_rows(llm_engine *e, llm_step_item *items, size_t n_items, float *logits,
                            size_t logits_cap, size_t *logits_len, int hidden) {
    if (!e) return LLM_ERR_INVALID_ARGUMENT;
    const size_t V = (size_t)(hidden ? e->model->hp.n_embd : e->model->hp.n_vocab); /* floats per row */
    size_t n_logit_rows = 0;
    llm_status st = check_items(e, items, n_items, &n_logit_rows);
    if (logits_len) *logits_len = n_logit_rows * V;
    if (st != LLM_OK) return st;
    if (n_logit_rows > 0 && (!logits || logits_cap < n_logit_rows * V))
        return engine_fail(e, LLM_ERR_BUFFER_TOO_SMALL, "logits buffer holds %zu floats, %zu needed",
                           logits ? logits_cap : 0, n_logit_rows * V);
    const int32_t bs = e->p.kv_block_size;

    /* Prefix cache, then the blocks every item needs, counted before any is taken so that a refusal
     * changes nothing. An item from a block boundary reuses registered blocks for its leading full
     * blocks; its last token is always computed, and LLM_LOGITS_ALL computes every row. */
    int64_t need_blocks = 0;
    for (size_t i = 0; i < n_items; i++) {
        llm_step_item *it = &items[i];
        seq_slot *s = find_seq(e, it->seq);
        e->new_blocks[i] = s->n_blocks;
        e->chain_before[i] = s->n_chain;
        it->n_reused = 0;
        if (s->n_tokens % bs == 0 && it->n_tokens > 1 && it->logits != LLM_LOGITS_ALL)
            it->n_reused = attach_cached_prefix(e, s, it->tokens, it->n_tokens - 1);
        const int32_t want = (s->n_tokens + it->n_tokens + bs - 1) / bs;
        need_blocks += want - s->n_blocks + needs_cow(e, s);
    }
    if (need_blocks > llm_kv_blocks_available(&e->kv)) {
        rollback(e, items, n_items);
        for (size_t i = 0; i < n_items; i++) items[i].n_reused = 0;
        return engine_fail(e, LLM_ERR_KV_FULL,
                           "KV cache full: %lld more blocks of %d tokens needed, %d of %d free or cached",
                           (long long)need_blocks, bs, llm_kv_blocks_available(&e->kv), e->kv.n_blocks);
    }
    for (size_t i = 0; i < n_items; i++) {
        seq_slot *s = find_seq(e, items[i].seq);
        if (make_writable(e, s) != 0 || reserve_blocks(e, s, s->n_tokens + items[i].n_tokens) != 0)
            LLM_ASSERT(!"blocks counted as available could not be had");
        assert_writable(e, s, s->n_tokens + items[i].n_reused, s->n_tokens + items[i].n_tokens);
    }

    /* Rows are packed in item order into forward passes of at most max_batch_tokens rows; an item
     * split across two passes continues where the first left off (its keys are in the cache by then).
     * Logit rows come out in the same global order, so each pass writes a contiguous span. */
    const int32_t T_max = e->p.max_batch_tokens;
    size_t item = 0;
    int32_t item_done = 0; /* computed rows of items[item] */
    float *dst = logits;
    while (item < n_items) {
        int32_t T = 0, S = 0, n_rows = 0;
        while (item < n_items && T < T_max) {
            const llm_step_item *it = &items[item];
            const seq_slot *s = find_seq(e, it->seq);
            const int32_t run = it->n_tokens - it->n_reused; /* rows to compute */
            const int32_t n = run - item_done < T_max - T ? run - item_done : T_max - T;
            const int32_t n_past = s->n_tokens + it->n_reused + item_done;
            memcpy(e->tokens + T, it->tokens + it->n_reused + item_done, (size_t)n * sizeof *e->tokens);
            for (int32_t r = 0; r < n; r++) e->positions[T + r] = n_past + r;
            e->bseqs[S++] = (llm_batch_seq){T, n, n_past, s->blocks};
            if (it->logits == LLM_LOGITS_ALL)
                for (int32_t r = 0; r < n; r++) e->logit_rows[n_rows++] = T + r;
            else if (it->logits == LLM_LOGITS_LAST && item_done + n == run)
                e->logit_rows[n_rows++] = T + n - 1;
            T += n;
            item_done += n;
            if (item_done == run) item++, item_done = 0;
        }
        llm_batch b = {T, e->tokens, e->positions, S, e->bseqs};
        st = hidden ? llm_forward_run_hidden(&e->fwd, &b, e->logit_rows, n_rows, dst, &e->err)
                    : llm_forward_run(&e->fwd, &b, e->logit_rows, n_rows, dst, &e->err);
        if (st != LLM_OK) {
            rollback(e, items, n_items);
            for (size_t i = 0; i < n_items; i++) items[i].n_reused = 0;
            return st;
        }
        dst += (size_t)n_rows * V;
        e->forward_passes++;
    }

    for (size_t i = 0; i < n_items; i++) {
        const llm_step_item *it = &items[i];
        seq_slot *s = find_seq(e, it->seq);
        if (s->n_tokens % bs == 0 && it->n_tokens > 1 && it->logits != LLM_LOGITS_ALL)
            e->prefix_lookup_tokens += (uint64_t)it->n_tokens;
        e->prefix_hit_tokens += (uint64_t)it->n_reused;
        e->computed_tokens += (uint64_t)(it->n_tokens - it->n_reused);
        memcpy(s->tokens + s->n_tokens, it->tokens, (size_t)it->n_tokens * sizeof *it->tokens);
        s->n_tokens += it->n_tokens;
        register_full_blocks(e, s);
    }
    return LLM_OK;
}

llm_status llm_step(llm_engine *e, llm_step_item *items, size_t n_items, float *logits, size_t logits_cap,
                    size_t *logits_len) {
    return step_rows(e, items, n_items, logits, logits_cap, logits_len, 0);
}

llm_status llm_engine_step_hidden(llm_engine *e, llm_step_item *items, size_t n_items, float *hidden,
                                  size_t hidden_cap, size_t *hidden_len) {
    return step_rows(e, items, n_items, hidden, hidden_cap, hidden_len, 1);
}

llm_status llm_prefill(llm_engine *e, llm_seq_id id, const int32_t *tokens, size_t n_tokens,
                       llm_logits_mode mode, float *logits, size_t logits_cap, size_t *logits_len) {
    if (!e) return LLM_ERR_INVALID_ARGUMENT;
    const size_t V = (size_t)e->model->hp.n_vocab;
    if (logits_len) *logits_len = mode == LLM_LOGITS_ALL ? n_tokens * V : mode == LLM_LOGITS_LAST ? V : 0;
    if (n_tokens == 0 || !tokens)
        return engine_fail(e, LLM_ERR_INVALID_ARGUMENT, "prefill needs at least one token");
    if (n_tokens > (size_t)INT32_MAX)
        return engine_fail(e, LLM_ERR_CONTEXT_FULL, "%zu tokens exceed the context of %d tokens", n_tokens,
                           e->p.n_ctx);
    llm_step_item it = {id, tokens, (int32_t)n_tokens, mode, 0};
    return llm_step(e, &it, 1, logits, logits_cap, logits_len);
}

llm_status llm_decode(llm_engine *e, const llm_seq_id *ids, const int32_t *tokens, size_t n_seqs,
                      float *logits, size_t logits_cap, size_t *logits_len) {
    if (!e) return LLM_ERR_INVALID_ARGUMENT;
    if (logits_len) *logits_len = n_seqs * (size_t)e->model->hp.n_vocab;
    if (n_seqs == 0 || !ids || !tokens)
        return engine_fail(e, LLM_ERR_INVALID_ARGUMENT, "decode needs at least one sequence");
    if (n_seqs > (size_t)e->p.n_seq_max)
        return engine_fail(e, LLM_ERR_INVALID_ARGUMENT,
                           "%zu sequences in one decode; the engine holds at most %d", n_seqs,
                           e->p.n_seq_max);
    for (size_t i = 0; i < n_seqs; i++)
        e->step_items[i] = (llm_step_item){ids[i], tokens + i, 1, LLM_LOGITS_LAST, 0};
    return llm_step(e, e->step_items, n_seqs, logits, logits_cap, logits_len);
}

/* ---- fork --------------------------------------------------------------------------------------- */

llm_status llm_seq_fork(llm_engine *e, llm_seq_id src, llm_seq_id *out) {
    if (!e || !out) return LLM_ERR_INVALID_ARGUMENT;
    *out = 0;
    const seq_slot *s = find_seq(e, src);
    if (!s) return engine_fail(e, LLM_ERR_INVALID_SEQUENCE, "sequence %d does not exist in this engine", src);
    const int32_t src_slot = (int32_t)(s - e->seqs);
    llm_seq_id id = 0;
    llm_status st = llm_seq_create(e, &id);
    if (st != LLM_OK) return st;
    s = &e->seqs[src_slot];
    seq_slot *d = find_seq(e, id);
    for (int32_t b = 0; b < s->n_blocks; b++) llm_kv_block_ref(&e->kv, s->blocks[b]);
    memcpy(d->blocks, s->blocks, (size_t)s->n_blocks * sizeof *d->blocks);
    memcpy(d->tokens, s->tokens, (size_t)s->n_tokens * sizeof *d->tokens);
    memcpy(d->bhash, s->bhash, (size_t)s->n_chain * sizeof *d->bhash);
    memcpy(d->canon, s->canon, (size_t)s->n_chain * sizeof *d->canon);
    memcpy(d->canon_epoch, s->canon_epoch, (size_t)s->n_chain * sizeof *d->canon_epoch);
    d->n_blocks = s->n_blocks;
    d->n_tokens = s->n_tokens;
    d->n_chain = s->n_chain;
    *out = id;
    return LLM_OK;
}

/* ---- test hooks --------------------------------------------------------------------------------- */

llm_status llm_engine_debug_set_block_hash(llm_engine *e,
                                           uint64_t (*fn)(uint64_t, const int32_t *, int32_t)) {
    for (int32_t b = 0; b < e->kv.n_blocks; b++)
        if (e->kv.hashed[b])
            return engine_fail(e, LLM_ERR_INVALID_ARGUMENT,
                               "the block hash can change only while no block is registered");
    e->kv.hash_fn = fn ? fn : llm_kv_default_hash;
    return LLM_OK;
}

uint64_t llm_engine_debug_forward_passes(const llm_engine *e) {
    return e->forward_passes;
}

uint64_t llm_engine_debug_evictions(const llm_engine *e) {
    return e->kv.n_evictions;
}

int llm_engine_debug_check(const llm_engine *e, char *msg, size_t cap) {
    if (llm_kv_check(&e->kv, msg, cap) != 0) return -1;
    const llm_kv_cache *kv = &e->kv;
    const int32_t bs = e->p.kv_block_size;
    int32_t *refs = calloc((size_t)kv->n_blocks, sizeof *refs);
    int ok = refs != NULL;
    if (!ok) snprintf(msg, cap, "out of memory");
    for (int32_t i = 0; ok && i < e->p.n_seq_max; i++) {
        const seq_slot *s = &e->seqs[i];
        if (!s->used) continue;
        if (s->n_blocks != (s->n_tokens + bs - 1) / bs || s->n_chain != s->n_tokens / bs) {
            ok = 0, snprintf(msg, cap, "slot %d: %d tokens, %d blocks, chain %d", i, s->n_tokens, s->n_blocks,
                             s->n_chain);
            break;
        }
        for (int32_t j = 0; ok && j < s->n_blocks; j++) {
            const int32_t b = s->blocks[j];
            refs[b]++;
            const int32_t n = s->n_tokens - j * bs < bs ? s->n_tokens - j * bs : bs;
            /* a registered block must hold exactly the ids of every sequence position it serves */
            if (kv->hashed[b] && memcmp(kv->block_tokens + (size_t)b * bs, s->tokens + (size_t)j * bs,
                                        (size_t)n * sizeof(int32_t)) != 0)
                ok = 0,
                snprintf(msg, cap, "slot %d block %d (id %d): registered ids differ from the sequence's", i,
                         j, b);
            /* the chain's registered block for this prefix, if still live, holds the same ids */
            if (ok && j < s->n_chain && s->canon[j] >= 0 && kv->epoch[s->canon[j]] == s->canon_epoch[j] &&
                memcmp(kv->block_tokens + (size_t)s->canon[j] * bs, s->tokens + (size_t)j * bs,
                       (size_t)bs * sizeof(int32_t)) != 0)
                ok = 0, snprintf(msg, cap, "slot %d block %d: chain names a block with other ids", i, j);
        }
    }
    for (int32_t b = 0; ok && b < kv->n_blocks; b++)
        if (refs[b] != kv->refcount[b])
            ok = 0, snprintf(msg, cap, "block %d: refcount %d, referenced by sequences %d times", b,
                             kv->refcount[b], refs[b]);
    free(refs);
    return ok ? 0 : -1;
}
