/* The KV cache: a pool of fixed-size blocks shared by every sequence of an engine.
 *
 * A block holds block_size consecutive positions of one sequence, for every layer and KV head.
 * Sequences map their positions to blocks through a block table, so memory is taken one block at a
 * time as a sequence grows and comes back when it is freed. Blocks carry reference counts so that
 * later layers (prefix caching, forked sessions) can share them. */
#ifndef LLM_KV_CACHE_H
#define LLM_KV_CACHE_H

#include <stdint.h>

#include "backend/backend.h"

typedef struct llm_kv_cache {
    int32_t n_layer, n_head_kv, head_dim, block_size, n_blocks;
    float *k, *v;          /* backend memory, [n_layer][n_blocks][n_head_kv][block_size][head_dim] */
    int32_t *free_list;    /* stack of free block ids */
    int32_t n_free;
    uint16_t *refcount;    /* [n_blocks] */
} llm_kv_cache;

/* Bytes of K+V storage for n_blocks blocks. */
uint64_t llm_kv_bytes(int32_t n_layer, int32_t n_head_kv, int32_t head_dim, int32_t block_size, int32_t n_blocks);

/* Allocates storage through the backend. Returns LLM_ERR_OUT_OF_MEMORY on failure (cache left empty). */
llm_status llm_kv_init(llm_kv_cache *kv, llm_backend *be, int32_t n_layer, int32_t n_head_kv, int32_t head_dim,
                       int32_t block_size, int32_t n_blocks);
void llm_kv_release(llm_kv_cache *kv, llm_backend *be);

/* A fresh block with refcount 1, or -1 when none is free. */
int32_t llm_kv_block_alloc(llm_kv_cache *kv);
/* Drops one reference; the block is free again when none remain. */
void llm_kv_block_unref(llm_kv_cache *kv, int32_t block);

static inline int32_t llm_kv_blocks_used(const llm_kv_cache *kv) { return kv->n_blocks - kv->n_free; }

/* The view of one layer that the attention ops take. */
static inline llm_kv_view llm_kv_layer(const llm_kv_cache *kv, int32_t layer) {
    const size_t per_layer = (size_t)kv->n_blocks * kv->n_head_kv * kv->block_size * kv->head_dim;
    llm_kv_view v = {kv->k + per_layer * layer, kv->v + per_layer * layer, kv->n_head_kv, kv->head_dim,
                     kv->block_size};
    return v;
}

#endif
