/* A bump allocator over one block sized up front: activations of a forward pass come from here, so
 * the hot path never calls malloc. Reset between passes. */
#ifndef LLM_CORE_ARENA_H
#define LLM_CORE_ARENA_H

#include <stddef.h>

typedef struct llm_arena {
    char *base;
    size_t cap;
    size_t used;
    size_t high_water;
} llm_arena;

/* Allocations are aligned to 64 bytes (a cache line, and what AVX-512 loads like). */
#define LLM_ARENA_ALIGN 64

static inline size_t llm_align_up(size_t n, size_t a) {
    return (n + a - 1) / a * a;
}

/* Returns NULL when the arena is exhausted: a sizing bug, which callers turn into LLM_ERR_INTERNAL. */
static inline void *llm_arena_alloc(llm_arena *a, size_t bytes) {
    size_t start = llm_align_up(a->used, LLM_ARENA_ALIGN);
    if (start > a->cap || bytes > a->cap - start) return NULL;
    a->used = start + bytes;
    if (a->used > a->high_water) a->high_water = a->used;
    return a->base + start;
}

static inline void llm_arena_reset(llm_arena *a) {
    a->used = 0;
}

#endif
