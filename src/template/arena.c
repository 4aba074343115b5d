/* The arenas of the template engine: a parsed template's AST and a render's values live in chunks
 * that are released together. A limit turns runaway templates into an error instead of exhausting
 * the host's memory. */
#include <stdlib.h>
#include <string.h>

#include "template/tpl.h"

struct tpl_chunk {
    tpl_chunk *next;
    size_t cap, used;
    /* data follows, 16-byte aligned */
};

#define TPL_CHUNK_HDR ((sizeof(tpl_chunk) + 15) & ~(size_t)15)
#define TPL_CHUNK_MIN ((size_t)64 << 10)

void *tpl_alloc(tpl_arena *a, size_t n) {
    if (a->failed) return NULL;
    if (n == 0) n = 1;
    if (n > ((size_t)1 << 46)) {
        a->failed = 1;
        return NULL;
    }
    n = (n + 15) & ~(size_t)15;
    tpl_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > TPL_CHUNK_MIN / 2 ? n : TPL_CHUNK_MIN;
        if (a->limit && (a->used + cap + TPL_CHUNK_HDR > a->limit)) {
            /* a last, exactly sized chunk may still fit */
            cap = n;
            if (a->used + cap + TPL_CHUNK_HDR > a->limit) {
                a->failed = 1;
                return NULL;
            }
        }
        c = malloc(TPL_CHUNK_HDR + cap);
        if (!c) {
            a->failed = 2;
            return NULL;
        }
        c->cap = cap;
        c->used = 0;
        a->used += TPL_CHUNK_HDR + cap;
        if (a->head && cap == n && a->head->cap - a->head->used >= TPL_CHUNK_MIN / 8) {
            /* a big one-off block: keep allocating from the current chunk afterwards */
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    char *p = (char *)c + TPL_CHUNK_HDR + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

void *tpl_realloc(tpl_arena *a, void *old, size_t old_n, size_t new_n) {
    if (new_n <= old_n) return old;
    void *p = tpl_alloc(a, new_n);
    if (p && old && old_n) memcpy(p, old, old_n);
    return p;
}

char *tpl_strdup(tpl_arena *a, const char *s, size_t n) {
    char *p = tpl_alloc(a, n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void tpl_arena_free(tpl_arena *a) {
    if (!a) return;
    tpl_chunk *c = a->head;
    while (c) {
        tpl_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->used = 0;
}
