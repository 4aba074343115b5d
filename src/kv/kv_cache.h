/* The KV cache: a pool of fixed-size blocks shared by every sequence of an engine, and a prefix cache
 * over those blocks (the design of vLLM's automatic prefix caching).
 *
 * A block holds block_size consecutive positions of one sequence, for every layer and KV head.
 * Sequences map their positions to blocks through a block table, so memory is taken one block at a
 * time as a sequence grows and comes back when it is freed.
 *
 * Prefix caching. A FULL block can be registered under a 64-bit hash of (its parent's hash, its
 * token ids). The keys and values of a position depend on every token before it, so a block is only
 * reusable after the very same prefix; the hash chains through the parent to say so cheaply. A hash is
 * never trusted alone: a registered block also stores its token ids and the identity of its parent
 * block (block id + the parent's registration epoch), and a lookup compares both. By induction from the
 * first block, a match then means the whole prefix is token-for-token identical, even if every hash
 * collided.
 *
 * Every block is in exactly one of three places:
 *   free      refcount 0, no hash          (free_list)
 *   cached    refcount 0, registered       (LRU list, least recently released first)
 *   in use    refcount > 0, maybe registered
 * A block whose last reference goes keeps its contents and its registration and joins the LRU tail;
 * allocation takes a free block first, else evicts the LRU head (forgetting its registration).
 * Referenced blocks are never evicted. Registered blocks are immutable: only full blocks are
 * registered, and a sequence writes only into its own (refcount 1), unregistered last block; a
 * shared block that must change is first copied (llm_kv_block_cow). */
#ifndef LLM_KV_CACHE_H
#define LLM_KV_CACHE_H

#include <stdint.h>

#include "backend/backend.h"

/* Hash of one block: parent is the previous block's hash (LLM_KV_HASH_ROOT for the first block). */
typedef uint64_t (*llm_kv_hash_fn)(uint64_t parent, const int32_t *tokens, int32_t n);
#define LLM_KV_HASH_ROOT 0x6a09e667f3bcc908ull

typedef struct llm_kv_cache {
    int32_t n_layer, n_head_kv, head_dim, block_size, n_blocks;
    llm_dtype dtype;    /* F32 or BF16 (accelerators) */
    char *k, *v;        /* backend memory, [n_layer][n_blocks][n_head_kv][block_size][head_dim] of dtype */
    int32_t *free_list; /* stack of free block ids */
    int32_t n_free;
    uint16_t *refcount; /* [n_blocks] */
    /* prefix cache, per block */
    uint8_t *hashed;        /* registered in the map */
    uint64_t *hash;         /* valid when hashed */
    uint64_t *parent_hash;  /* the hash it was computed from (for consistency checks) */
    int32_t *parent;        /* parent block id at registration, -1 for a first block */
    uint32_t *parent_epoch; /* epoch[parent] at registration */
    uint32_t *epoch;        /* bumped whenever the block's registration ends: stale children never match */
    int32_t *block_tokens;  /* [n_blocks][block_size]: the ids a registered block holds */
    int32_t *lru_prev, *lru_next; /* doubly linked LRU of cached blocks */
    int32_t lru_head, lru_tail, n_cached;
    int32_t *map; /* open addressing (linear probing) of block ids by hash; -1 = empty */
    uint32_t map_mask;
    llm_kv_hash_fn hash_fn; /* llm_kv_default_hash unless a test replaces it */
    uint64_t n_evictions;
} llm_kv_cache;

/* Bytes of one element of a KV cache of dtype (F32: 4, BF16: 2). */
static inline size_t llm_kv_elem_bytes(llm_dtype dtype) {
    return dtype == LLM_DTYPE_F32 ? 4 : 2;
}

/* Bytes of K+V storage for n_blocks blocks. */
uint64_t llm_kv_bytes(int32_t n_layer, int32_t n_head_kv, int32_t head_dim, int32_t block_size,
                      int32_t n_blocks, llm_dtype dtype);

/* Allocates storage through the backend. Returns LLM_ERR_OUT_OF_MEMORY on failure (cache left empty). */
llm_status llm_kv_init(llm_kv_cache *kv, llm_backend *be, int32_t n_layer, int32_t n_head_kv,
                       int32_t head_dim, int32_t block_size, int32_t n_blocks, llm_dtype dtype);
void llm_kv_release(llm_kv_cache *kv, llm_backend *be);

/* A block with refcount 1: a free one, else the least recently used cached one (evicted), else -1. */
int32_t llm_kv_block_alloc(llm_kv_cache *kv);
/* Takes one more reference (a cached block leaves the LRU). */
void llm_kv_block_ref(llm_kv_cache *kv, int32_t block);
/* Drops one reference; with none left the block is cached (if registered) or free. */
void llm_kv_block_unref(llm_kv_cache *kv, int32_t block);

/* Blocks an allocation can still obtain: free plus cached. */
static inline int32_t llm_kv_blocks_available(const llm_kv_cache *kv) {
    return kv->n_free + kv->n_cached;
}
/* Blocks referenced by at least one sequence. */
static inline int32_t llm_kv_blocks_used(const llm_kv_cache *kv) {
    return kv->n_blocks - kv->n_free - kv->n_cached;
}

/* The default block hash: a 64-bit mix of the parent hash and the ids. */
uint64_t llm_kv_default_hash(uint64_t parent, const int32_t *tokens, int32_t n);
static inline uint64_t llm_kv_hash(const llm_kv_cache *kv, uint64_t parent, const int32_t *tokens) {
    return kv->hash_fn(parent, tokens, kv->block_size);
}

/* The registered block with this hash, parent identity (parent -1 for a first block) and token ids,
 * or -1. Takes no reference. */
int32_t llm_kv_lookup(const llm_kv_cache *kv, uint64_t hash, int32_t parent, uint32_t parent_epoch,
                      const int32_t *tokens);
/* Registers a referenced, unregistered, full block. */
void llm_kv_register(llm_kv_cache *kv, int32_t block, uint64_t hash, uint64_t parent_hash, int32_t parent,
                     uint32_t parent_epoch, const int32_t *tokens);
/* Ends a referenced block's registration (before its contents change). No-op if unregistered. */
void llm_kv_unregister(llm_kv_cache *kv, int32_t block);

/* Copy-on-write: a fresh block holding a copy of block's keys and values (every layer), with one
 * reference, unregistered; the caller's reference to block is dropped. -1 (nothing changed) when no
 * block can be allocated. */
int32_t llm_kv_block_cow(llm_kv_cache *kv, llm_backend *be, int32_t block);

/* Checks the pool's invariants: every block in exactly one place, list and map consistency, hashes
 * of registered blocks equal to hash_fn over their stored ids. 0 if sound, else -1 with a message. */
int llm_kv_check(const llm_kv_cache *kv, char *msg, size_t cap);

/* The view of one layer that the attention ops take. */
static inline llm_kv_view llm_kv_layer(const llm_kv_cache *kv, int32_t layer) {
    const size_t per_layer =
        (size_t)kv->n_blocks * kv->n_head_kv * kv->block_size * kv->head_dim * llm_kv_elem_bytes(kv->dtype);
    llm_kv_view v = {(float *)(void *)(kv->k + per_layer * layer), (float *)(void *)(kv->v + per_layer * layer),
                     kv->n_head_kv, kv->head_dim, kv->block_size, kv->dtype};
    return v;
}

#endif
