/* Open-addressing hash maps for the tokenizer: byte string -> id (vocabularies), id pair -> merge
 * (BPE merges), and a byte trie for added-token matching. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

static inline uint64_t mix64(uint64_t h) {
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

uint64_t tok_hash_bytes(const void *data, size_t n) {
    const uint8_t *p = data;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    h = (h ^ v) * 0x94d049bb133111ebull;
    return mix64(h);
}

/* ---- string -> id ---- */

int tok_map_init(tok_map *m, size_t expected) {
    memset(m, 0, sizeof *m);
    size_t cap = 16;
    while (cap < expected + expected / 2 + 1) cap *= 2;
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots) return -1;
    for (size_t i = 0; i < cap; i++) m->slots[i].id = -1;
    m->mask = cap - 1;
    return 0;
}

void tok_map_free(tok_map *m) {
    free(m->slots);
    free(m->pool);
    memset(m, 0, sizeof *m);
}

static tok_map_slot *find_slot(const tok_map *m, const char *key, size_t len, uint32_t h) {
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        tok_map_slot *s = &m->slots[i];
        if (s->id < 0) return s;
        if (s->hash == h && s->len == len && memcmp(m->pool + s->off, key, len) == 0) return s;
    }
}

static int grow(tok_map *m) {
    size_t cap = (m->mask + 1) * 2;
    tok_map_slot *slots = malloc(cap * sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < cap; i++) slots[i].id = -1;
    for (size_t i = 0; i <= m->mask; i++) {
        if (m->slots[i].id < 0) continue;
        size_t j = m->slots[i].hash & (cap - 1);
        while (slots[j].id >= 0) j = (j + 1) & (cap - 1);
        slots[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = slots;
    m->mask = cap - 1;
    return 0;
}

int32_t tok_map_put(tok_map *m, const char *key, size_t len, int32_t id, uint32_t *off_out) {
    if (len > UINT32_MAX / 2) return -2;
    if ((m->count + 1) * 3 > (m->mask + 1) * 2 && grow(m) != 0) return -2;
    uint32_t h = (uint32_t)tok_hash_bytes(key, len);
    tok_map_slot *s = find_slot(m, key, len, h);
    if (s->id >= 0) {
        if (off_out) *off_out = s->off;
        return s->id;
    }
    if (m->pool_len + len + 1 > m->pool_cap) {
        size_t cap = m->pool_cap ? m->pool_cap : 4096;
        while (cap < m->pool_len + len + 1) cap *= 2;
        if (cap > UINT32_MAX) return -2;
        char *p = realloc(m->pool, cap);
        if (!p) return -2;
        m->pool = p;
        m->pool_cap = cap;
    }
    memcpy(m->pool + m->pool_len, key, len);
    m->pool[m->pool_len + len] = '\0';
    s->hash = h;
    s->id = id;
    s->off = (uint32_t)m->pool_len;
    s->len = (uint32_t)len;
    m->pool_len += len + 1;
    m->count++;
    if (off_out) *off_out = s->off;
    return -1;
}

int32_t tok_map_get(const tok_map *m, const char *key, size_t len) {
    if (!m->slots) return -1;
    uint32_t h = (uint32_t)tok_hash_bytes(key, len);
    return find_slot(m, key, len, h)->id;
}

void tok_map_set(tok_map *m, const char *key, size_t len, int32_t id) {
    uint32_t h = (uint32_t)tok_hash_bytes(key, len);
    tok_map_slot *s = find_slot(m, key, len, h);
    if (s->id >= 0) s->id = id;
}

/* ---- (a, b) -> merge ---- */

int tok_merge_map_init(tok_merge_map *m, size_t expected) {
    memset(m, 0, sizeof *m);
    size_t cap = 16;
    unsigned bits = 4;
    while (cap < expected + expected / 2 + 1) {
        cap *= 2;
        bits++;
    }
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots) return -1;
    for (size_t i = 0; i < cap; i++) m->slots[i].key = UINT64_MAX;
    m->mask = cap - 1;
    m->shift = 64 - bits;
    return 0;
}

void tok_merge_map_free(tok_merge_map *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

int tok_merge_map_put(tok_merge_map *m, int32_t a, int32_t b, uint32_t rank, int32_t new_id) {
    if ((m->count + 1) * 3 > (m->mask + 1) * 2) {
        tok_merge_map bigger;
        if (tok_merge_map_init(&bigger, (m->mask + 1) * 2) != 0) return -1;
        for (size_t i = 0; i <= m->mask; i++) {
            const tok_merge_slot *s = &m->slots[i];
            if (s->key != UINT64_MAX)
                tok_merge_map_put(&bigger, (int32_t)(s->key >> 32), (int32_t)(uint32_t)s->key, s->rank,
                                  s->new_id);
        }
        tok_merge_map_free(m);
        *m = bigger;
    }
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> m->shift);
    for (;; i = (i + 1) & m->mask) {
        tok_merge_slot *s = &m->slots[i];
        if (s->key == key || s->key == UINT64_MAX) {
            if (s->key == UINT64_MAX) m->count++;
            s->key = key;
            s->rank = rank;
            s->new_id = new_id;
            return 0;
        }
    }
}

/* ---- trie ---- */

int tok_trie_init(tok_trie *t) {
    memset(t, 0, sizeof *t);
    t->cap_nodes = 64;
    t->terminal = malloc(t->cap_nodes * sizeof *t->terminal);
    size_t ecap = 128;
    t->edge_keys = malloc(ecap * sizeof *t->edge_keys);
    t->edge_child = malloc(ecap * sizeof *t->edge_child);
    if (!t->terminal || !t->edge_keys || !t->edge_child) {
        tok_trie_free(t);
        return -1;
    }
    for (size_t i = 0; i < ecap; i++) t->edge_keys[i] = UINT64_MAX;
    t->edge_mask = ecap - 1;
    t->terminal[0] = -1;
    t->n_nodes = 1;
    return 0;
}

void tok_trie_free(tok_trie *t) {
    free(t->terminal);
    free(t->edge_keys);
    free(t->edge_child);
    memset(t, 0, sizeof *t);
}

static inline size_t edge_slot(uint64_t key, size_t mask) {
    return (size_t)(mix64(key * 0x9E3779B97F4A7C15ull) & mask);
}

static int32_t trie_child(const tok_trie *t, uint32_t node, uint8_t byte) {
    uint64_t key = ((uint64_t)node << 8) | byte;
    for (size_t i = edge_slot(key, t->edge_mask);; i = (i + 1) & t->edge_mask) {
        if (t->edge_keys[i] == key) return (int32_t)t->edge_child[i];
        if (t->edge_keys[i] == UINT64_MAX) return -1;
    }
}

static int trie_grow_edges(tok_trie *t) {
    size_t cap = (t->edge_mask + 1) * 2;
    uint64_t *keys = malloc(cap * sizeof *keys);
    uint32_t *child = malloc(cap * sizeof *child);
    if (!keys || !child) {
        free(keys);
        free(child);
        return -1;
    }
    for (size_t i = 0; i < cap; i++) keys[i] = UINT64_MAX;
    for (size_t i = 0; i <= t->edge_mask; i++) {
        if (t->edge_keys[i] == UINT64_MAX) continue;
        size_t j = edge_slot(t->edge_keys[i], cap - 1);
        while (keys[j] != UINT64_MAX) j = (j + 1) & (cap - 1);
        keys[j] = t->edge_keys[i];
        child[j] = t->edge_child[i];
    }
    free(t->edge_keys);
    free(t->edge_child);
    t->edge_keys = keys;
    t->edge_child = child;
    t->edge_mask = cap - 1;
    return 0;
}

int tok_trie_add(tok_trie *t, const char *s, size_t len, int32_t payload) {
    if (len == 0) return 0;
    uint32_t node = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t byte = (uint8_t)s[i];
        int32_t c = trie_child(t, node, byte);
        if (c < 0) {
            if (t->n_nodes == t->cap_nodes) {
                int32_t *term = realloc(t->terminal, 2 * t->cap_nodes * sizeof *term);
                if (!term) return -1;
                t->terminal = term;
                t->cap_nodes *= 2;
            }
            if ((t->n_edges + 1) * 2 > t->edge_mask + 1 && trie_grow_edges(t) != 0) return -1;
            c = (int32_t)t->n_nodes++;
            t->terminal[c] = -1;
            uint64_t key = ((uint64_t)node << 8) | byte;
            size_t j = edge_slot(key, t->edge_mask);
            while (t->edge_keys[j] != UINT64_MAX) j = (j + 1) & t->edge_mask;
            t->edge_keys[j] = key;
            t->edge_child[j] = (uint32_t)c;
            t->n_edges++;
        }
        node = (uint32_t)c;
    }
    if (t->terminal[node] < 0) {
        t->terminal[node] = payload;
        t->n_patterns++;
    }
    t->first_byte[(uint8_t)s[0]] = 1;
    return 0;
}

size_t tok_trie_longest(const tok_trie *t, const uint8_t *s, size_t n, int32_t *payload) {
    size_t best = 0;
    uint32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t c = trie_child(t, node, s[i]);
        if (c < 0) break;
        node = (uint32_t)c;
        if (t->terminal[node] >= 0) {
            best = i + 1;
            *payload = t->terminal[node];
        }
    }
    return best;
}
