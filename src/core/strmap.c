#include "core/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_str(const char *s) { /* FNV-1a */
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

int llm_strmap_init(llm_strmap *m, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2) cap *= 2;
    m->keys = calloc(cap, sizeof *m->keys);
    m->values = calloc(cap, sizeof *m->values);
    m->cap = cap;
    m->count = 0;
    if (!m->keys || !m->values) {
        llm_strmap_free(m);
        return -1;
    }
    return 0;
}

void llm_strmap_free(llm_strmap *m) {
    free(m->keys);
    free(m->values);
    m->keys = NULL;
    m->values = NULL;
    m->cap = m->count = 0;
}

static int grow(llm_strmap *m) {
    llm_strmap bigger;
    if (llm_strmap_init(&bigger, m->cap) != 0) return -1; /* doubles the capacity */
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) llm_strmap_put(&bigger, m->keys[i], m->values[i]);
    llm_strmap_free(m);
    *m = bigger;
    return 0;
}

int llm_strmap_put(llm_strmap *m, const char *key, int value) {
    if ((m->count + 1) * 2 > m->cap && grow(m) != 0) return -2;
    size_t mask = m->cap - 1;
    for (size_t i = hash_str(key) & mask;; i = (i + 1) & mask) {
        if (!m->keys[i]) {
            m->keys[i] = key;
            m->values[i] = value;
            m->count++;
            return -1;
        }
        if (strcmp(m->keys[i], key) == 0) {
            int old = m->values[i];
            m->values[i] = value;
            return old;
        }
    }
}

int llm_strmap_get(const llm_strmap *m, const char *key) {
    if (!m->cap) return -1;
    size_t mask = m->cap - 1;
    for (size_t i = hash_str(key) & mask; m->keys[i]; i = (i + 1) & mask)
        if (strcmp(m->keys[i], key) == 0) return m->values[i];
    return -1;
}
