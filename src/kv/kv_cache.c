#include "kv/kv_cache.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

uint64_t llm_kv_bytes(int32_t n_layer, int32_t n_head_kv, int32_t head_dim, int32_t block_size, int32_t n_blocks) {
    return 2ull * (uint64_t)n_layer * (uint64_t)n_blocks * (uint64_t)n_head_kv * (uint64_t)block_size *
           (uint64_t)head_dim * sizeof(float);
}

llm_status llm_kv_init(llm_kv_cache *kv, llm_backend *be, int32_t n_layer, int32_t n_head_kv, int32_t head_dim,
                       int32_t block_size, int32_t n_blocks) {
    memset(kv, 0, sizeof *kv);
    kv->n_layer = n_layer;
    kv->n_head_kv = n_head_kv;
    kv->head_dim = head_dim;
    kv->block_size = block_size;
    kv->n_blocks = n_blocks;
    const size_t half = (size_t)(llm_kv_bytes(n_layer, n_head_kv, head_dim, block_size, n_blocks) / 2);
    kv->k = be->ops->alloc(be, half);
    kv->v = be->ops->alloc(be, half);
    kv->free_list = malloc((size_t)n_blocks * sizeof *kv->free_list);
    kv->refcount = calloc((size_t)n_blocks, sizeof *kv->refcount);
    if (!kv->k || !kv->v || !kv->free_list || !kv->refcount) {
        llm_kv_release(kv, be);
        return LLM_ERR_OUT_OF_MEMORY;
    }
    /* Lowest ids on top of the stack: sequences get ascending blocks, which reads nicely in dumps. */
    for (int32_t i = 0; i < n_blocks; i++) kv->free_list[i] = n_blocks - 1 - i;
    kv->n_free = n_blocks;
    return LLM_OK;
}

void llm_kv_release(llm_kv_cache *kv, llm_backend *be) {
    if (kv->k) be->ops->release(be, kv->k);
    if (kv->v) be->ops->release(be, kv->v);
    free(kv->free_list);
    free(kv->refcount);
    memset(kv, 0, sizeof *kv);
}

int32_t llm_kv_block_alloc(llm_kv_cache *kv) {
    if (kv->n_free == 0) return -1;
    int32_t b = kv->free_list[--kv->n_free];
    LLM_ASSERT(kv->refcount[b] == 0);
    kv->refcount[b] = 1;
    return b;
}

void llm_kv_block_unref(llm_kv_cache *kv, int32_t block) {
    LLM_ASSERT(block >= 0 && block < kv->n_blocks && kv->refcount[block] > 0);
    if (--kv->refcount[block] == 0) kv->free_list[kv->n_free++] = block;
}
