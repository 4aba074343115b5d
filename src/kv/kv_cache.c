#include "kv/kv_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

uint64_t llm_kv_bytes(int32_t n_layer, int32_t n_head_kv, int32_t head_dim, int32_t block_size,
                      int32_t n_blocks, llm_dtype dtype) {
    return 2ull * (uint64_t)n_layer * (uint64_t)n_blocks * (uint64_t)n_head_kv * (uint64_t)block_size *
           (uint64_t)head_dim * llm_kv_elem_bytes(dtype);
}

/* splitmix64's finalizer: every input bit affects every output bit. */
static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

uint64_t llm_kv_default_hash(uint64_t parent, const int32_t *tokens, int32_t n) {
    uint64_t h = mix64(parent ^ 0x9e3779b97f4a7c15ull) ^ (uint64_t)n;
    for (int32_t i = 0; i < n; i++) h = mix64(h + 0x9e3779b97f4a7c15ull + (uint64_t)(uint32_t)tokens[i]);
    return h;
}

llm_status llm_kv_init(llm_kv_cache *kv, llm_backend *be, int32_t n_layer, int32_t n_head_kv,
                       int32_t head_dim, int32_t block_size, int32_t n_blocks, llm_dtype dtype) {
    memset(kv, 0, sizeof *kv);
    kv->dtype = dtype;
    kv->n_layer = n_layer;
    kv->n_head_kv = n_head_kv;
    kv->head_dim = head_dim;
    kv->block_size = block_size;
    kv->n_blocks = n_blocks;
    const size_t half = (size_t)(llm_kv_bytes(n_layer, n_head_kv, head_dim, block_size, n_blocks, dtype) / 2);
    const size_t nb = (size_t)n_blocks;
    uint32_t map_size = 16;
    while (map_size < 2 * (uint32_t)n_blocks) map_size *= 2;
    kv->k = be->ops->alloc(be, half);
    kv->v = be->ops->alloc(be, half);
    kv->free_list = malloc(nb * sizeof *kv->free_list);
    kv->refcount = calloc(nb, sizeof *kv->refcount);
    kv->hashed = calloc(nb, sizeof *kv->hashed);
    kv->hash = calloc(nb, sizeof *kv->hash);
    kv->parent_hash = calloc(nb, sizeof *kv->parent_hash);
    kv->parent = calloc(nb, sizeof *kv->parent);
    kv->parent_epoch = calloc(nb, sizeof *kv->parent_epoch);
    kv->epoch = calloc(nb, sizeof *kv->epoch);
    kv->block_tokens = calloc(nb * (size_t)block_size, sizeof *kv->block_tokens);
    kv->lru_prev = malloc(nb * sizeof *kv->lru_prev);
    kv->lru_next = malloc(nb * sizeof *kv->lru_next);
    kv->map = malloc((size_t)map_size * sizeof *kv->map);
    if (!kv->k || !kv->v || !kv->free_list || !kv->refcount || !kv->hashed || !kv->hash || !kv->parent_hash ||
        !kv->parent || !kv->parent_epoch || !kv->epoch || !kv->block_tokens || !kv->lru_prev ||
        !kv->lru_next || !kv->map) {
        llm_kv_release(kv, be);
        return LLM_ERR_OUT_OF_MEMORY;
    }
    kv->map_mask = map_size - 1;
    for (uint32_t i = 0; i < map_size; i++) kv->map[i] = -1;
    kv->lru_head = kv->lru_tail = -1;
    kv->hash_fn = llm_kv_default_hash;
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
    free(kv->hashed);
    free(kv->hash);
    free(kv->parent_hash);
    free(kv->parent);
    free(kv->parent_epoch);
    free(kv->epoch);
    free(kv->block_tokens);
    free(kv->lru_prev);
    free(kv->lru_next);
    free(kv->map);
    memset(kv, 0, sizeof *kv);
}

/* ---- LRU ------------------------------------------------------------------------------------------ */

static void lru_remove(llm_kv_cache *kv, int32_t b) {
    const int32_t p = kv->lru_prev[b], n = kv->lru_next[b];
    if (p >= 0)
        kv->lru_next[p] = n;
    else
        kv->lru_head = n;
    if (n >= 0)
        kv->lru_prev[n] = p;
    else
        kv->lru_tail = p;
    kv->n_cached--;
}

static void lru_append(llm_kv_cache *kv, int32_t b) {
    kv->lru_prev[b] = kv->lru_tail;
    kv->lru_next[b] = -1;
    if (kv->lru_tail >= 0)
        kv->lru_next[kv->lru_tail] = b;
    else
        kv->lru_head = b;
    kv->lru_tail = b;
    kv->n_cached++;
}

/* ---- hash map ------------------------------------------------------------------------------------- */

static void map_insert(llm_kv_cache *kv, int32_t b) {
    uint32_t i = (uint32_t)kv->hash[b] & kv->map_mask;
    while (kv->map[i] >= 0) i = (i + 1) & kv->map_mask;
    kv->map[i] = b;
}

/* Linear probing with backward-shift deletion: no tombstones, so probes stay short forever. */
static void map_remove(llm_kv_cache *kv, int32_t b) {
    uint32_t i = (uint32_t)kv->hash[b] & kv->map_mask;
    while (kv->map[i] != b) {
        LLM_ASSERT(kv->map[i] >= 0);
        i = (i + 1) & kv->map_mask;
    }
    for (uint32_t j = (i + 1) & kv->map_mask;; j = (j + 1) & kv->map_mask) {
        const int32_t e = kv->map[j];
        if (e < 0) break;
        const uint32_t home = (uint32_t)kv->hash[e] & kv->map_mask;
        /* e may move into the hole at i unless its home lies cyclically in (i, j] */
        const int stays = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (stays) continue;
        kv->map[i] = e;
        i = j;
    }
    kv->map[i] = -1;
}

int32_t llm_kv_lookup(const llm_kv_cache *kv, uint64_t hash, int32_t parent, uint32_t parent_epoch,
                      const int32_t *tokens) {
    const size_t bs = (size_t)kv->block_size;
    for (uint32_t i = (uint32_t)hash & kv->map_mask; kv->map[i] >= 0; i = (i + 1) & kv->map_mask) {
        const int32_t b = kv->map[i];
        if (kv->hash[b] != hash || kv->parent[b] != parent) continue;
        if (parent >= 0 && kv->parent_epoch[b] != parent_epoch) continue;
        if (memcmp(kv->block_tokens + (size_t)b * bs, tokens, bs * sizeof *tokens) != 0) continue;
        return b;
    }
    return -1;
}

void llm_kv_register(llm_kv_cache *kv, int32_t b, uint64_t hash, uint64_t parent_hash, int32_t parent,
                     uint32_t parent_epoch, const int32_t *tokens) {
    LLM_ASSERT(b >= 0 && b < kv->n_blocks && kv->refcount[b] > 0 && !kv->hashed[b]);
    kv->hashed[b] = 1;
    kv->hash[b] = hash;
    kv->parent_hash[b] = parent_hash;
    kv->parent[b] = parent;
    kv->parent_epoch[b] = parent < 0 ? 0 : parent_epoch;
    memcpy(kv->block_tokens + (size_t)b * kv->block_size, tokens, (size_t)kv->block_size * sizeof *tokens);
    map_insert(kv, b);
}

static void forget(llm_kv_cache *kv, int32_t b) {
    map_remove(kv, b);
    kv->hashed[b] = 0;
    kv->epoch[b]++;
}

void llm_kv_unregister(llm_kv_cache *kv, int32_t b) {
    LLM_ASSERT(b >= 0 && b < kv->n_blocks && kv->refcount[b] > 0);
    if (kv->hashed[b]) forget(kv, b);
}

/* ---- blocks --------------------------------------------------------------------------------------- */

int32_t llm_kv_block_alloc(llm_kv_cache *kv) {
    int32_t b;
    if (kv->n_free > 0) {
        b = kv->free_list[--kv->n_free];
    } else if (kv->lru_head >= 0) {
        b = kv->lru_head;
        lru_remove(kv, b);
        forget(kv, b);
        kv->n_evictions++;
    } else {
        return -1;
    }
    LLM_ASSERT(kv->refcount[b] == 0 && !kv->hashed[b]);
    kv->refcount[b] = 1;
    return b;
}

void llm_kv_block_ref(llm_kv_cache *kv, int32_t b) {
    LLM_ASSERT(b >= 0 && b < kv->n_blocks);
    if (kv->refcount[b] == 0) {
        LLM_ASSERT(kv->hashed[b]); /* only cached blocks can be revived */
        lru_remove(kv, b);
    }
    LLM_ASSERT(kv->refcount[b] < UINT16_MAX);
    kv->refcount[b]++;
}

void llm_kv_block_unref(llm_kv_cache *kv, int32_t b) {
    LLM_ASSERT(b >= 0 && b < kv->n_blocks && kv->refcount[b] > 0);
    if (--kv->refcount[b] > 0) return;
    if (kv->hashed[b])
        lru_append(kv, b);
    else
        kv->free_list[kv->n_free++] = b;
}

int32_t llm_kv_block_cow(llm_kv_cache *kv, llm_backend *be, int32_t b) {
    LLM_ASSERT(b >= 0 && b < kv->n_blocks && kv->refcount[b] > 0);
    const int32_t nb = llm_kv_block_alloc(kv);
    if (nb < 0) return -1;
    const size_t block_bytes =
        (size_t)kv->n_head_kv * kv->block_size * kv->head_dim * llm_kv_elem_bytes(kv->dtype);
    const size_t per_layer = (size_t)kv->n_blocks * block_bytes;
    for (int32_t l = 0; l < kv->n_layer; l++) {
        const size_t off_dst = per_layer * l + block_bytes * nb, off_src = per_layer * l + block_bytes * b;
        be->ops->copy(be, kv->k + off_dst, kv->k + off_src, block_bytes);
        be->ops->copy(be, kv->v + off_dst, kv->v + off_src, block_bytes);
    }
    llm_kv_block_unref(kv, b);
    return nb;
}

/* ---- consistency ---------------------------------------------------------------------------------- */

int llm_kv_check(const llm_kv_cache *kv, char *msg, size_t cap) {
    const int32_t n = kv->n_blocks;
    uint8_t *place = calloc((size_t)n, 1); /* 1 free, 2 LRU */
    int ok = place != NULL;
    if (!ok) snprintf(msg, cap, "out of memory");
    for (int32_t i = 0; ok && i < kv->n_free; i++) {
        const int32_t b = kv->free_list[i];
        if (b < 0 || b >= n || place[b])
            ok = 0, snprintf(msg, cap, "free list entry %d: block %d twice or bad", i, b);
        else if (kv->refcount[b] || kv->hashed[b])
            ok = 0,
            snprintf(msg, cap, "free block %d has refcount %d, hashed %d", b, kv->refcount[b], kv->hashed[b]);
        else
            place[b] = 1;
    }
    int32_t n_lru = 0, prev = -1;
    for (int32_t b = kv->lru_head; ok && b >= 0; prev = b, b = kv->lru_next[b]) {
        if (b >= n || place[b])
            ok = 0, snprintf(msg, cap, "LRU block %d is also elsewhere (or a cycle)", b);
        else if (kv->lru_prev[b] != prev)
            ok = 0, snprintf(msg, cap, "LRU block %d: broken back link", b);
        else if (kv->refcount[b] || !kv->hashed[b])
            ok = 0, snprintf(msg, cap, "cached block %d has refcount %d, hashed %d", b, kv->refcount[b],
                             kv->hashed[b]);
        else
            place[b] = 2, n_lru++;
    }
    if (ok && (n_lru != kv->n_cached || prev != kv->lru_tail))
        ok = 0, snprintf(msg, cap, "LRU holds %d blocks, count says %d (or bad tail)", n_lru, kv->n_cached);
    for (int32_t b = 0; ok && b < n; b++)
        if (!place[b] && kv->refcount[b] == 0)
            ok = 0, snprintf(msg, cap, "block %d is unreferenced but nowhere", b);
    /* every registered block is in the map once, reachable from its home slot; every map entry registered */
    int32_t n_map = 0;
    for (uint32_t i = 0; ok && i <= kv->map_mask; i++) {
        const int32_t b = kv->map[i];
        if (b < 0) continue;
        n_map++;
        if (b >= n || !kv->hashed[b])
            ok = 0, snprintf(msg, cap, "map slot %u holds unregistered block %d", i, b);
        for (uint32_t j = (uint32_t)kv->hash[b] & kv->map_mask; ok && j != i; j = (j + 1) & kv->map_mask)
            if (kv->map[j] < 0)
                ok = 0, snprintf(msg, cap, "map slot %u (block %d) unreachable from its home", i, b);
    }
    int32_t n_hashed = 0;
    for (int32_t b = 0; ok && b < n; b++) {
        if (!kv->hashed[b]) continue;
        n_hashed++;
        const uint64_t h =
            kv->hash_fn(kv->parent_hash[b], kv->block_tokens + (size_t)b * kv->block_size, kv->block_size);
        if (h != kv->hash[b]) ok = 0, snprintf(msg, cap, "block %d: stored hash does not match its ids", b);
    }
    if (ok && n_hashed != n_map)
        ok = 0, snprintf(msg, cap, "%d registered blocks, %d map entries", n_hashed, n_map);
    free(place);
    return ok ? 0 : -1;
}
