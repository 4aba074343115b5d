/* The BPE model: one piece of text -> ids, as HF's BPE::tokenize (with dropout off).
 *
 * Initial symbols are the characters of the piece (HF merge_word: continuing_subword_prefix on all but
 * the first, end_of_word_suffix on the last, byte_fallback to <0xXX> tokens, unk handling with
 * fuse_unk), or in byte-level mode one symbol per byte. Then the adjacent pair with the lowest merge
 * rank is merged, leftmost first, until no pair has a merge. HF runs that loop with a binary heap and
 * lazily skips stale entries; merging by (rank, position) over the live pairs is the same order, so
 * short words use a plain scan over an array of pair ranks and long ones a heap.
 *
 * Results go through a per-tokenizer word cache, bounded and cleared when full. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

#define CACHE_MAX_KEY     128
#define CACHE_MAX_ENTRIES 32768
#define SCAN_MAX_SYMBOLS  48

int tok_ids_reserve(tok_ids *ids, size_t extra) {
    if (ids->n + extra <= ids->cap) return 0;
    size_t cap = ids->cap ? ids->cap : 256;
    while (cap < ids->n + extra) cap *= 2;
    int32_t *v = realloc(ids->v, cap * sizeof *v);
    if (!v) return -1;
    ids->v = v;
    ids->cap = cap;
    return 0;
}

int tok_ids_push(tok_ids *ids, int32_t id) {
    if (ids->n == ids->cap && tok_ids_reserve(ids, 1)) return -1;
    ids->v[ids->n++] = id;
    return 0;
}

/* ---- word cache ---- */

void tok_cache_free(tok_cache *c) {
    free(c->slots);
    free(c->keys);
    free(c->ids);
    memset(c, 0, sizeof *c);
}

static void cache_clear(tok_cache *c) {
    if (c->slots) memset(c->slots, 0, (c->mask + 1) * sizeof *c->slots);
    c->count = c->keys_len = c->ids_len = 0;
}

static const tok_cache_slot *cache_get(const tok_cache *c, const char *key, size_t len, uint32_t h) {
    if (!c->slots) return NULL;
    for (size_t i = h & c->mask;; i = (i + 1) & c->mask) {
        const tok_cache_slot *s = &c->slots[i];
        if (s->key_len == 0) return NULL;
        if (s->hash == h && s->key_len == len && memcmp(c->keys + s->key_off, key, len) == 0) return s;
    }
}

static void cache_put(tok_cache *c, const char *key, size_t len, uint32_t h, const int32_t *ids, size_t n) {
    if (!c->slots) {
        c->max_count = CACHE_MAX_ENTRIES;
        size_t cap = 2 * CACHE_MAX_ENTRIES;
        c->slots = calloc(cap, sizeof *c->slots);
        if (!c->slots) return; /* no cache: still correct */
        c->mask = cap - 1;
    }
    if (c->count >= c->max_count) cache_clear(c);
    if (c->keys_len + len > c->keys_cap) {
        size_t cap = c->keys_cap ? c->keys_cap * 2 : 1 << 16;
        while (cap < c->keys_len + len) cap *= 2;
        char *k = realloc(c->keys, cap);
        if (!k) return;
        c->keys = k;
        c->keys_cap = cap;
    }
    if (c->ids_len + n > c->ids_cap) {
        size_t cap = c->ids_cap ? c->ids_cap * 2 : 1 << 15;
        while (cap < c->ids_len + n) cap *= 2;
        int32_t *v = realloc(c->ids, cap * sizeof *v);
        if (!v) return;
        c->ids = v;
        c->ids_cap = cap;
    }
    size_t i = h & c->mask;
    while (c->slots[i].key_len) i = (i + 1) & c->mask;
    memcpy(c->keys + c->keys_len, key, len);
    memcpy(c->ids + c->ids_len, ids, n * sizeof *ids);
    c->slots[i] =
        (tok_cache_slot){h, (uint32_t)c->keys_len, (uint32_t)len, (uint32_t)c->ids_len, (uint32_t)n};
    c->keys_len += len;
    c->ids_len += n;
    c->count++;
}

/* ---- merging ---- */

void tok_bpe_scratch_free(tok_bpe_scratch *s) {
    free(s->sym);
    free(s->prev);
    free(s->next);
    free(s->rank);
    free(s->merged);
    free(s->alive);
    free(s->heap);
    free(s->tree);
    llm_strbuf_free(&s->text);
    llm_strbuf_free(&s->key);
    memset(s, 0, sizeof *s);
}

static int scratch_reserve(tok_bpe_scratch *s, size_t n) {
    if (n <= s->cap) return 0;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < n) cap *= 2;
    int32_t *sym = realloc(s->sym, cap * sizeof *sym);
    if (sym) s->sym = sym;
    int32_t *prev = realloc(s->prev, cap * sizeof *prev);
    if (prev) s->prev = prev;
    int32_t *next = realloc(s->next, cap * sizeof *next);
    if (next) s->next = next;
    uint32_t *rank = realloc(s->rank, cap * sizeof *rank);
    if (rank) s->rank = rank;
    int32_t *merged = realloc(s->merged, cap * sizeof *merged);
    if (merged) s->merged = merged;
    uint8_t *alive = realloc(s->alive, cap);
    if (alive) s->alive = alive;
    if (!sym || !prev || !next || !rank || !merged || !alive) return -1;
    s->cap = cap;
    return 0;
}

static inline void pair_rank(const llm_tokenizer *t, tok_bpe_scratch *s, int32_t i) {
    int32_t j = s->next[i];
    const tok_merge_slot *m = j >= 0 ? tok_merge_map_get(&t->merges, s->sym[i], s->sym[j]) : NULL;
    s->rank[i] = m ? m->rank : UINT32_MAX;
    s->merged[i] = m ? m->new_id : -1;
}

/* Merges symbol i with its successor into id `merged`. */
static inline void merge_at(tok_bpe_scratch *s, int32_t i, int32_t merged) {
    int32_t j = s->next[i];
    s->sym[i] = merged;
    s->alive[j] = 0;
    s->next[i] = s->next[j];
    if (s->next[j] >= 0) s->prev[s->next[j]] = i;
}

static void merge_scan(const llm_tokenizer *t, tok_bpe_scratch *s, size_t n) {
    for (size_t i = 0; i < n; i++) pair_rank(t, s, (int32_t)i);
    for (;;) {
        uint32_t best = UINT32_MAX;
        int32_t at = -1;
        for (int32_t i = 0; i >= 0; i = s->next[i])
            if (s->rank[i] < best) {
                best = s->rank[i];
                at = i;
            }
        if (at < 0) return;
        merge_at(s, at, s->merged[at]);
        pair_rank(t, s, at);
        if (s->prev[at] >= 0) pair_rank(t, s, s->prev[at]);
    }
}

static inline int heap_less(const tok_bpe_heap_item *a, const tok_bpe_heap_item *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static int heap_push(tok_bpe_scratch *s, tok_bpe_heap_item it) {
    if (s->heap_n == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 256;
        tok_bpe_heap_item *h = realloc(s->heap, cap * sizeof *h);
        if (!h) return -1;
        s->heap = h;
        s->heap_cap = cap;
    }
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&it, &s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = it;
    return 0;
}

static tok_bpe_heap_item heap_pop(tok_bpe_scratch *s) {
    tok_bpe_heap_item top = s->heap[0];
    tok_bpe_heap_item last = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_less(&s->heap[c + 1], &s->heap[c])) c++;
        if (!heap_less(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

/* HF Word::merge_all, including its staleness check (the pair at pos must still merge into the same
 * id). Returns -1 on OOM (the word is then left partly merged). */
static int merge_heap(const llm_tokenizer *t, tok_bpe_scratch *s, size_t n) {
    s->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        const tok_merge_slot *m = tok_merge_map_get(&t->merges, s->sym[i], s->sym[i + 1]);
        if (m && heap_push(s, (tok_bpe_heap_item){m->rank, (uint32_t)i, m->new_id})) return -1;
    }
    while (s->heap_n) {
        tok_bpe_heap_item top = heap_pop(s);
        int32_t i = (int32_t)top.pos;
        if (!s->alive[i] || s->next[i] < 0) continue;
        const tok_merge_slot *m = tok_merge_map_get(&t->merges, s->sym[i], s->sym[s->next[i]]);
        if (!m || m->new_id != top.new_id) continue;
        merge_at(s, i, top.new_id);
        if (s->prev[i] >= 0) {
            const tok_merge_slot *pm = tok_merge_map_get(&t->merges, s->sym[s->prev[i]], s->sym[i]);
            if (pm && heap_push(s, (tok_bpe_heap_item){pm->rank, (uint32_t)s->prev[i], pm->new_id}))
                return -1;
        }
        if (s->next[i] >= 0) {
            const tok_merge_slot *nm = tok_merge_map_get(&t->merges, s->sym[i], s->sym[s->next[i]]);
            if (nm && heap_push(s, (tok_bpe_heap_item){nm->rank, (uint32_t)i, nm->new_id})) return -1;
        }
    }
    return 0;
}

/* The same order as the scan, for long words: a tournament tree whose root is the live pair with the
 * smallest (rank, position); a merge changes at most three leaves (the pair at the merged symbol, the
 * one before it, and the vanished one after it). Returns -1 on OOM. */
static int merge_tree(const llm_tokenizer *t, tok_bpe_scratch *s, size_t n) {
    size_t P = 1;
    while (P < n) P *= 2;
    if (2 * P > s->tree_cap) {
        uint64_t *tree = realloc(s->tree, 2 * P * sizeof *tree);
        if (!tree) return -1;
        s->tree = tree;
        s->tree_cap = 2 * P;
    }
    uint64_t *tr = s->tree;
    for (size_t i = 0; i < n; i++) {
        pair_rank(t, s, (int32_t)i);
        tr[P + i] = s->rank[i] == UINT32_MAX ? UINT64_MAX : ((uint64_t)s->rank[i] << 32) | i;
    }
    for (size_t i = n; i < P; i++) tr[P + i] = UINT64_MAX;
    for (size_t i = P - 1; i >= 1; i--) tr[i] = tr[2 * i] < tr[2 * i + 1] ? tr[2 * i] : tr[2 * i + 1];
    while (tr[1] != UINT64_MAX) {
        int32_t at = (int32_t)(uint32_t)tr[1];
        int32_t gone = s->next[at];
        merge_at(s, at, s->merged[at]);
        int32_t upd[3] = {gone, at, s->prev[at]};
        for (int u = 0; u < 3; u++) {
            int32_t i = upd[u];
            if (i < 0) continue;
            uint64_t key = UINT64_MAX;
            if (i != gone) {
                pair_rank(t, s, i);
                if (s->rank[i] != UINT32_MAX) key = ((uint64_t)s->rank[i] << 32) | (uint32_t)i;
            }
            size_t k = P + (size_t)i;
            tr[k] = key;
            for (k /= 2; k >= 1; k /= 2) {
                uint64_t m = tr[2 * k] < tr[2 * k + 1] ? tr[2 * k] : tr[2 * k + 1];
                if (tr[k] == m) break;
                tr[k] = m;
            }
        }
    }
    return 0;
}

/* Merges the n symbols of s (which may be a view into the middle of t->bpe's arrays). */
static void merge_symbols(const llm_tokenizer *t, tok_bpe_scratch *s, size_t n, int mode) {
    for (size_t i = 0; i < n; i++) {
        s->prev[i] = (int32_t)i - 1;
        s->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
        s->alive[i] = 1;
    }
    if (n < 2) return;
    int r = 0;
    if (mode == 1 || (mode == 0 && n <= SCAN_MAX_SYMBOLS))
        merge_scan(t, s, n);
    else if (mode == 2)
        r = merge_heap(t, s, n);
    else
        r = merge_tree(t, s, n);
    if (r != 0) merge_scan(t, s, n); /* out of memory: the scan needs none and gives the same result */
}

void tok_bpe_merge(llm_tokenizer *t, size_t n, int mode) {
    merge_symbols(t, &t->bpe, n, mode);
}

/* No merge can join symbols x and y (see the junctions table in tok_internal.h). */
static inline int hard_boundary(const llm_tokenizer *t, int32_t x, int32_t y) {
    uint32_t a = t->last_cp[x], b = t->first_cp[y];
    if (a == UINT32_MAX || b == UINT32_MAX) return 0;
    return tok_merge_map_get(&t->junctions, (int32_t)a, (int32_t)b) == NULL;
}

/* A long piece: merges each run of symbols between hard boundaries on its own (the same merges
 * happen, since none crosses a boundary, and each run's merge order is its own (rank, position)
 * order), with the runs cached by their symbol ids. */
static llm_status merge_segments(llm_tokenizer *t, size_t n, tok_ids *out) {
    tok_bpe_scratch *sc = &t->bpe;
    if (tok_ids_reserve(out, n)) return LLM_ERR_OUT_OF_MEMORY;
    size_t a = 0;
    for (size_t i = 1; i <= n; i++) {
        if (i < n && !hard_boundary(t, sc->sym[i - 1], sc->sym[i])) continue;
        size_t m = i - a;
        if (m == 1) {
            out->v[out->n++] = sc->sym[a];
            a = i;
            continue;
        }
        /* key: 0xFF (never the first byte of UTF-8 text, the other keys) + the symbol ids */
        int cached = m <= CACHE_MAX_KEY / 4;
        uint32_t h = 0;
        if (cached) {
            llm_strbuf_clear(&sc->key);
            llm_strbuf_append_char(&sc->key, (char)0xFF);
            llm_strbuf_append(&sc->key, sc->sym + a, m * sizeof *sc->sym);
            if (sc->key.oom) return LLM_ERR_OUT_OF_MEMORY;
            h = (uint32_t)tok_hash_bytes(sc->key.data, sc->key.len);
            const tok_cache_slot *hit = cache_get(&t->cache, sc->key.data, sc->key.len, h);
            if (hit) {
                memcpy(out->v + out->n, t->cache.ids + hit->ids_off, hit->n_ids * sizeof(int32_t));
                out->n += hit->n_ids;
                a = i;
                continue;
            }
        }
        tok_bpe_scratch view = *sc;
        view.sym += a, view.prev += a, view.next += a, view.rank += a, view.merged += a, view.alive += a;
        merge_symbols(t, &view, m, 0);
        sc->heap = view.heap; /* the heap or the tree may have grown */
        sc->heap_cap = view.heap_cap;
        sc->tree = view.tree;
        sc->tree_cap = view.tree_cap;
        size_t first = out->n;
        for (int32_t k = 0; k >= 0; k = view.next[k]) out->v[out->n++] = view.sym[k];
        if (cached) cache_put(&t->cache, sc->key.data, sc->key.len, h, out->v + first, out->n - first);
        a = i;
    }
    return LLM_OK;
}

/* HF merge_word's initial symbols for a piece of text; returns the count, or -1 with t->err set. */
static long text_symbols(llm_tokenizer *t, const char *s, size_t len) {
    tok_bpe_scratch *sc = &t->bpe;
    size_t n = 0;
    int32_t unk = -1; /* a pending unk symbol */
    const uint8_t *u = (const uint8_t *)s;
    for (size_t i = 0; i < len;) {
        size_t k = tok_utf8_len(u[i]);
        if (k > len - i) k = len - i;
        const char *piece = s + i;
        size_t plen = k;
        int first = i == 0, last = i + k == len;
        if ((!first && t->cont_prefix) || (last && t->eow_suffix)) {
            llm_strbuf_clear(&sc->text);
            if (!first && t->cont_prefix) llm_strbuf_append(&sc->text, t->cont_prefix, t->cont_prefix_len);
            llm_strbuf_append(&sc->text, piece, k);
            if (last && t->eow_suffix) llm_strbuf_append(&sc->text, t->eow_suffix, t->eow_suffix_len);
            if (sc->text.oom) return llm_fail(&t->err, LLM_ERR_OUT_OF_MEMORY, "out of memory"), -1;
            piece = sc->text.data;
            plen = sc->text.len;
        }
        i += k;
        if (scratch_reserve(sc, n + plen + 2))
            return llm_fail(&t->err, LLM_ERR_OUT_OF_MEMORY, "out of memory"), -1;
        int32_t id = tok_map_get(&t->vocab, piece, plen);
        if (id >= 0) {
            if (unk >= 0) sc->sym[n++] = unk, unk = -1;
            sc->sym[n++] = id;
            continue;
        }
        if (t->byte_fallback) {
            size_t b = 0;
            while (b < plen && t->byte_fallback_id[(uint8_t)piece[b]] >= 0) b++;
            if (b == plen) {
                for (b = 0; b < plen; b++) sc->sym[n++] = t->byte_fallback_id[(uint8_t)piece[b]];
                continue;
            }
        }
        if (t->unk_token) {
            if (t->unk_id < 0)
                return llm_fail(&t->err, LLM_ERR_BAD_FORMAT, "unk_token \"%s\" is not in the vocabulary",
                                t->unk_token),
                       -1;
            if (unk >= 0 && !t->fuse_unk) sc->sym[n++] = unk;
            unk = t->unk_id;
        }
        /* no unk token: HF drops the character */
    }
    if (unk >= 0) {
        if (scratch_reserve(sc, n + 1)) return llm_fail(&t->err, LLM_ERR_OUT_OF_MEMORY, "out of memory"), -1;
        sc->sym[n++] = unk;
    }
    return (long)n;
}

llm_status tok_bpe_piece(llm_tokenizer *t, const char *s, size_t len, tok_ids *out) {
    if (len == 0) return LLM_OK;
    if (t->ignore_merges) {
        int32_t id = tok_map_get(t->byte_level_mode ? &t->raw_vocab : &t->vocab, s, len);
        if (id >= 0) return tok_ids_push(out, id) ? LLM_ERR_OUT_OF_MEMORY : LLM_OK;
    }
    uint32_t h = 0;
    if (len <= CACHE_MAX_KEY) {
        h = (uint32_t)tok_hash_bytes(s, len);
        const tok_cache_slot *hit = cache_get(&t->cache, s, len, h);
        if (hit) {
            if (tok_ids_reserve(out, hit->n_ids)) return LLM_ERR_OUT_OF_MEMORY;
            memcpy(out->v + out->n, t->cache.ids + hit->ids_off, hit->n_ids * sizeof(int32_t));
            out->n += hit->n_ids;
            return LLM_OK;
        }
    }
    tok_bpe_scratch *sc = &t->bpe;
    size_t n;
    if (t->byte_level_mode) {
        if (scratch_reserve(sc, len)) return LLM_ERR_OUT_OF_MEMORY;
        for (size_t i = 0; i < len; i++) sc->sym[i] = t->byte_level_id[(uint8_t)s[i]];
        n = len;
    } else {
        long r = text_symbols(t, s, len);
        if (r < 0) return t->err.status;
        n = (size_t)r;
    }
    if (len > CACHE_MAX_KEY && n > SCAN_MAX_SYMBOLS) return merge_segments(t, n, out);
    tok_bpe_merge(t, n, 0);
    size_t first = out->n;
    if (tok_ids_reserve(out, n)) return LLM_ERR_OUT_OF_MEMORY;
    for (int32_t i = n ? 0 : -1; i >= 0; i = sc->next[i]) out->v[out->n++] = sc->sym[i];
    if (len <= CACHE_MAX_KEY) cache_put(&t->cache, s, len, h, out->v + first, out->n - first);
    return LLM_OK;
}

size_t tok_bpe_merge_ids(llm_tokenizer *t, const int32_t *in, size_t n, int mode, int32_t *out) {
    tok_bpe_scratch *sc = &t->bpe;
    if (scratch_reserve(sc, n + 1)) return 0;
    memcpy(sc->sym, in, n * sizeof *in);
    tok_bpe_merge(t, n, mode);
    size_t k = 0;
    for (int32_t i = n ? 0 : -1; i >= 0; i = sc->next[i]) out[k++] = sc->sym[i];
    return k;
}
