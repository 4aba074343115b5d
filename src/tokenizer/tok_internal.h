/*
 * tok_internal.h — the pieces of the Hugging Face tokenizer.json implementation shared by the files of
 * src/tokenizer/. Nothing here is public; include/llamac.h has the contract.
 *
 * The encode pipeline mirrors HF `tokenizers` (TokenizerImpl::encode_single_sequence) step by step:
 *
 *   1. added tokens with normalized=false are cut out of the raw text (tok_added.c);
 *   2. every other piece is normalized, then added tokens with normalized=true are cut out of the
 *      normalized text (tok_normalize.c, tok_added.c);
 *   3. the pre-tokenizer chain splits (and may rewrite) the remaining pieces (tok_pretokenize.c);
 *   4. the BPE model turns each piece into ids, through a per-tokenizer word cache (tok_bpe.c);
 *   5. with LLM_TOKENIZE_ADD_SPECIAL, the post-processor adds its ids (tok_encode.c).
 *
 * Text at every stage is a list of spans (tok_span) over one base buffer; a stage that rewrites text
 * (normalizers, Metaspace, ByteLevel) writes a new base into a scratch buffer. A span that already is
 * a token (an added token) carries its id and no text.
 *
 * When the pre-tokenizer chain ends with ByteLevel and the model is a plain BPE, the byte-to-unicode
 * mapping is never materialized: BPE starts from one symbol per byte (the id of that byte's mapped
 * character), and the vocabulary is also indexed by the raw bytes its entries stand for.
 *
 * Speed: Split regexes run on PCRE2's JIT, except the exact Llama-3 / Qwen2 patterns, which have a
 * hand-written matcher for ASCII (tok_fastsplit.c) that defers to PCRE2 whenever non-ASCII text
 * decides a match. BPE results are cached per piece; the merge tables are open-addressing hashes.
 * All scratch lives in the tokenizer (no allocation per token), which is why one tokenizer must not
 * be used by two threads at once.
 */
#ifndef LLM_TOKENIZER_TOK_INTERNAL_H
#define LLM_TOKENIZER_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/utf8.h"
#include "core/strbuf.h"
#include "llamac.h"

/* ---------------------------------------------------------------------------------------------- */
/* Unicode helpers (tok_unicode.c)                                                                  */

/* Decodes one code point of VALID UTF-8 at s (n > 0 bytes available); returns its length. */
static inline size_t tok_utf8_next(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t b = s[0];
    if (b < 0x80 || n < 2) {
        *cp = b;
        return 1;
    }
    if (b < 0xE0) {
        *cp = ((uint32_t)(b & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (b < 0xF0 || n < 4) {
        *cp = ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    *cp = ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) |
          (s[3] & 0x3F);
    return 4;
}

/* Length of the code point starting with lead byte b (1 for anything that is not a lead byte). */
static inline size_t tok_utf8_len(uint8_t b) {
    return b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}

/* Length of the last code point of valid UTF-8 s[0..n), n > 0. */
static inline size_t tok_utf8_last_len(const uint8_t *s, size_t n) {
    size_t k = 1;
    while (k < n && k < 4 && (s[n - k] & 0xC0) == 0x80) k++;
    return k;
}

/* Writes cp as UTF-8 into out (4 bytes room); returns the length. */

/* Offset of the first byte that is not part of valid UTF-8, or len if all of s is valid. */
size_t tok_utf8_check(const char *s, size_t len);

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if the bytes there do not start one. When the
 * bytes are a proper prefix of a valid sequence cut by the end of s, *incomplete is set to 1 (and 0
 * is returned); otherwise the length of the maximal invalid subpart is in *bad (>= 1). */
size_t tok_utf8_seq(const uint8_t *s, size_t n, int *incomplete, size_t *bad);

/* Appends s[0..n) to out as Rust's String::from_utf8_lossy does: each maximal invalid subpart becomes
 * one U+FFFD. With final = 0, a trailing proper prefix of a valid sequence is left unconsumed and its
 * length is returned (the caller keeps those bytes for later); with final = 1 it becomes U+FFFD and 0
 * is returned. */
size_t tok_utf8_lossy(llm_strbuf *out, const uint8_t *s, size_t n, int final);

int tok_is_whitespace(uint32_t cp);  /* Rust char::is_whitespace (Unicode White_Space) */
int tok_is_numeric(uint32_t cp);     /* Rust char::is_numeric (general category N*) */
int tok_is_punctuation(uint32_t cp); /* ASCII punctuation or general category P* */
int tok_is_letter(uint32_t cp);      /* general category L* (utf8proc) */

/* The GPT-2 byte <-> unicode table of the ByteLevel pre-tokenizer and decoder. */
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp); /* -1 if cp is not one of the 256 characters */

/* ---------------------------------------------------------------------------------------------- */
/* Hashing and maps (tok_maps.c)                                                                    */

uint64_t tok_hash_bytes(const void *p, size_t n);

/* Byte string -> id, open addressing. Keys are copied into the map's pool. */
typedef struct tok_map_slot {
    uint32_t hash;
    int32_t id; /* -1: empty */
    uint32_t off;
    uint32_t len;
} tok_map_slot;

typedef struct tok_map {
    tok_map_slot *slots;
    size_t mask;
    size_t count;
    char *pool;
    size_t pool_len, pool_cap;
} tok_map;

int tok_map_init(tok_map *m, size_t expected); /* -1 on OOM */
void tok_map_free(tok_map *m);
/* Inserts key -> id unless the key is present. Returns -1 when inserted, the existing id when the key
 * was there (nothing changed), -2 on OOM. *off_out (may be NULL) gets the pool offset of the key. */
int32_t tok_map_put(tok_map *m, const char *key, size_t len, int32_t id, uint32_t *off_out);
int32_t tok_map_get(const tok_map *m, const char *key, size_t len); /* -1 if absent */
/* Overwrites the id of a present key. */
void tok_map_set(tok_map *m, const char *key, size_t len, int32_t id);

/* (left id, right id) -> (rank, merged id). */
typedef struct tok_merge_slot {
    uint64_t key; /* UINT64_MAX: empty */
    uint32_t rank;
    int32_t new_id;
} tok_merge_slot;

typedef struct tok_merge_map {
    tok_merge_slot *slots;
    size_t mask;
    unsigned shift;
    size_t count;
} tok_merge_map;

int tok_merge_map_init(tok_merge_map *m, size_t expected);
void tok_merge_map_free(tok_merge_map *m);
/* Inserts or overwrites (a later duplicate wins, as in HF's HashMap collect). -1 on OOM. */
int tok_merge_map_put(tok_merge_map *m, int32_t a, int32_t b, uint32_t rank, int32_t new_id);

static inline const tok_merge_slot *tok_merge_map_get(const tok_merge_map *m, int32_t a, int32_t b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> m->shift);
    for (;; i = (i + 1) & m->mask) {
        const tok_merge_slot *s = &m->slots[i];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
    }
}

/* A byte trie for leftmost-longest matching of added tokens. */
typedef struct tok_trie {
    /* edges: (node << 8 | byte) -> child node, open addressing */
    uint64_t *edge_keys; /* UINT64_MAX: empty */
    uint32_t *edge_child;
    size_t edge_mask, n_edges;
    int32_t *terminal; /* per node: index into the pattern's payload, -1 if none */
    size_t n_nodes, cap_nodes;
    uint8_t first_byte[256]; /* 1 if some pattern starts with that byte */
    size_t n_patterns;
} tok_trie;

int tok_trie_init(tok_trie *t);
void tok_trie_free(tok_trie *t);
/* Adds a non-empty pattern with its payload; a pattern already present keeps its first payload
 * (aho-corasick's leftmost-longest prefers the earlier pattern among equal matches). -1 on OOM. */
int tok_trie_add(tok_trie *t, const char *s, size_t len, int32_t payload);
/* Longest pattern that starts at s[0]; returns its length (0 if none) and the payload. */
size_t tok_trie_longest(const tok_trie *t, const uint8_t *s, size_t n, int32_t *payload);

/* ---------------------------------------------------------------------------------------------- */
/* Regular expressions (tok_regex.c)                                                                */

typedef struct tok_regex {
    pcre2_code *code;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    int jit; /* JIT-compiled */
} tok_regex;

/* Compiles an HF pattern: literal (a "String" pattern) or an Oniguruma-syntax regex (a "Regex"
 * pattern), translated so PCRE2 matches as Oniguruma does (\s, \d, \w, \h with Oniguruma's Unicode
 * meaning). Errors name `where` and PCRE2's message and offset. */
llm_status tok_regex_compile(tok_regex *re, const char *pattern, size_t len, int literal, const char *where,
                             llm_error *err);
void tok_regex_free(tok_regex *re);

/* One match: [start, end) of the subject. */
typedef struct tok_match {
    uint32_t start, end;
    uint8_t is_match;
} tok_match;

typedef struct tok_matchvec {
    tok_match *v;
    size_t n, cap;
} tok_matchvec;

int tok_matchvec_push(tok_matchvec *mv, size_t start, size_t end, int is_match);

/* HF Pattern::find_matches for a regex over s[0..len): alternating non-match / match ranges covering
 * all of s, with Oniguruma's find_iter handling of empty matches. Appends to out (cleared first).
 * Returns LLM_OK, LLM_ERR_OUT_OF_MEMORY or LLM_ERR_INTERNAL (a PCRE2 resource limit; message in err). */
llm_status tok_regex_find_matches(tok_regex *re, const char *s, size_t len, tok_matchvec *out,
                                  llm_error *err);

/* ---------------------------------------------------------------------------------------------- */
/* Components                                                                                       */

typedef enum tok_norm_type {
    TOK_NORM_NFC,
    TOK_NORM_NFD,
    TOK_NORM_NFKC,
    TOK_NORM_NFKD,
    TOK_NORM_LOWERCASE,
    TOK_NORM_PREPEND,
    TOK_NORM_APPEND,
    TOK_NORM_REPLACE,
    TOK_NORM_STRIP,
    TOK_NORM_STRIP_ACCENTS,
} tok_norm_type;

typedef struct tok_normalizer {
    tok_norm_type type;
    char *str; /* Prepend/Append text, Replace content */
    size_t str_len;
    tok_regex pattern; /* Replace */
    int strip_left, strip_right;
} tok_normalizer;

typedef enum tok_split_behavior {
    TOK_SPLIT_REMOVED,
    TOK_SPLIT_ISOLATED,
    TOK_SPLIT_MERGED_WITH_PREVIOUS,
    TOK_SPLIT_MERGED_WITH_NEXT,
    TOK_SPLIT_CONTIGUOUS,
} tok_split_behavior;

typedef enum tok_pretok_type {
    TOK_PT_SPLIT,
    TOK_PT_BYTE_LEVEL,
    TOK_PT_METASPACE,
    TOK_PT_DIGITS,
    TOK_PT_WHITESPACE,
    TOK_PT_WHITESPACE_SPLIT,
    TOK_PT_PUNCTUATION,
    TOK_PT_CHAR_DELIMITER, /* (BertPreTokenizer loads as WhitespaceSplit + Punctuation) */
} tok_pretok_type;

typedef enum tok_prepend_scheme {
    TOK_PREPEND_ALWAYS,
    TOK_PREPEND_FIRST,
    TOK_PREPEND_NEVER
} tok_prepend_scheme;

/* Which hand-written splitter replaces a Split regex (tok_fastsplit.c), if any. */
typedef enum tok_fast_split {
    TOK_FAST_NONE = 0,
    TOK_FAST_LLAMA3, /* ...|\p{N}{1,3}|... */
    TOK_FAST_QWEN2,  /* ...|\p{N}|... */
} tok_fast_split;

typedef struct tok_pretok {
    tok_pretok_type type;
    tok_regex pattern; /* Split; Whitespace */
    tok_split_behavior behavior;
    int invert;
    tok_fast_split fast;
    /* ByteLevel */
    int add_prefix_space, use_regex;
    int deferred; /* ByteLevel last in the chain: the byte mapping is left to BPE */
    /* Metaspace */
    uint32_t replacement;
    char repl_utf8[4];
    size_t repl_len;
    tok_prepend_scheme prepend_scheme;
    int split;
    /* Digits */
    int individual_digits;
    /* CharDelimiterSplit */
    uint32_t delimiter;
} tok_pretok;

typedef enum tok_dec_type {
    TOK_DEC_BYTE_LEVEL,
    TOK_DEC_METASPACE,
    TOK_DEC_BYTE_FALLBACK,
    TOK_DEC_FUSE,
    TOK_DEC_STRIP,
    TOK_DEC_REPLACE,
    TOK_DEC_WORDPIECE,
    TOK_DEC_BPE,
} tok_dec_type;

typedef struct tok_decoder {
    tok_dec_type type;
    uint32_t cp; /* Metaspace replacement, Strip content */
    tok_prepend_scheme prepend_scheme;
    size_t start, stop; /* Strip */
    tok_regex pattern;  /* Replace */
    char *str;          /* Replace content, WordPiece prefix, BPEDecoder suffix */
    size_t str_len;
    int cleanup; /* WordPiece */
} tok_decoder;

/* A post-processor reduced to what encoding a single sequence needs: ids before and after it. */
typedef struct tok_post {
    int32_t *prefix;
    size_t n_prefix;
    int32_t *suffix;
    size_t n_suffix;
} tok_post;

typedef struct tok_added {
    int32_t id;
    char *content;
    size_t len;
    char *norm; /* normalized content (normalized=true tokens) */
    size_t norm_len;
    uint8_t special, lstrip, rstrip, single_word, normalized;
} tok_added;

/* ---------------------------------------------------------------------------------------------- */
/* Encode scratch                                                                                   */

typedef struct tok_span {
    uint32_t start, len;
    int32_t id;     /* >= 0: already a token */
    uint32_t orig0; /* the span starts at offset 0 of the original text (Metaspace "first") */
} tok_span;

typedef struct tok_spanvec {
    tok_span *v;
    size_t n, cap;
} tok_spanvec;

int tok_spanvec_push(tok_spanvec *sv, uint32_t start, uint32_t len, int32_t id, uint32_t orig0);

typedef struct tok_ids {
    int32_t *v;
    size_t n, cap;
} tok_ids;

int tok_ids_push(tok_ids *ids, int32_t id);
int tok_ids_reserve(tok_ids *ids, size_t extra);

/* Word cache: piece bytes -> ids. Bounded; cleared when full. */
typedef struct tok_cache_slot {
    uint32_t hash;
    uint32_t key_off; /* into keys */
    uint32_t key_len; /* 0: empty */
    uint32_t ids_off; /* into ids */
    uint32_t n_ids;
} tok_cache_slot;

typedef struct tok_cache {
    tok_cache_slot *slots;
    size_t mask, count, max_count;
    char *keys;
    size_t keys_len, keys_cap;
    int32_t *ids;
    size_t ids_len, ids_cap;
} tok_cache;

/* BPE work arrays, reused across calls. */
typedef struct tok_bpe_heap_item {
    uint32_t rank;
    uint32_t pos;
    int32_t new_id;
} tok_bpe_heap_item;

typedef struct tok_bpe_scratch {
    int32_t *sym;  /* symbol ids */
    int32_t *prev; /* linked list over symbols */
    int32_t *next;
    uint32_t *rank; /* rank of the pair (i, next(i)); UINT32_MAX if none */
    int32_t *merged;
    uint8_t *alive;
    size_t cap;
    tok_bpe_heap_item *heap;
    size_t heap_n, heap_cap;
    uint64_t *tree; /* tournament tree over (rank << 32 | position) of the live pairs */
    size_t tree_cap;
    llm_strbuf text; /* continuing_subword_prefix / byte-fallback token names */
    llm_strbuf key;  /* cache key of a segment: its symbol ids */
} tok_bpe_scratch;

/* ---------------------------------------------------------------------------------------------- */
/* The tokenizer                                                                                    */

struct llm_tokenizer {
    llm_logger log;
    llm_error err;

    /* model (BPE) */
    tok_map vocab;      /* model.vocab */
    tok_map raw_vocab;  /* byte-level mode: vocab entries by the raw bytes they stand for */
    int32_t model_size; /* entries of model.vocab (ids 0..model_size-1) */
    tok_merge_map merges;
    /* Where merges can join: (last character of a merge's left token, first character of its right
     * token) for every merge. Between two symbols whose characters form no such pair, no merge can
     * ever cross, so a long piece splits there into independently merged (and cached) segments. */
    tok_merge_map junctions;
    uint32_t *first_cp, *last_cp; /* per model id: first / last code point (UINT32_MAX if empty) */
    int ignore_merges, byte_fallback, fuse_unk;
    char *unk_token;                /* NULL if none */
    int32_t unk_id;                 /* -1 if unk_token is not in the vocabulary */
    char *cont_prefix, *eow_suffix; /* NULL or non-empty */
    size_t cont_prefix_len, eow_suffix_len;
    int32_t byte_fallback_id[256]; /* id of "<0xXX>", -1 if absent */
    int32_t byte_level_id[256];    /* byte-level mode: id of the character standing for each byte */
    int byte_level_mode;           /* the chain ends with ByteLevel and BPE sees raw bytes */

    /* id -> token string (model vocabulary, then added tokens) */
    int32_t n_vocab; /* one past the largest id */
    uint32_t *piece_off;
    uint32_t *piece_len; /* UINT32_MAX: no token has this id */
    llm_strbuf pieces;
    uint8_t *special; /* per id: an added token marked special */

    /* added tokens */
    tok_added *added;
    size_t n_added;
    tok_map added_map;  /* content -> index in added[] */
    tok_trie trie_raw;  /* normalized=false tokens; payload: index in added[] */
    tok_trie trie_norm; /* normalized=true tokens, by their normalized content */
    tok_regex word_re;  /* regex-crate \w, for single_word tokens */
    int has_word_re;

    /* pipeline */
    tok_normalizer *norms;
    size_t n_norms;
    tok_pretok *pretoks;
    size_t n_pretoks;
    tok_post post;
    int has_post;
    tok_decoder *decs;
    size_t n_decs;
    int has_decoder;

    /* tokenizer_config.json / special_tokens_map.json */
    int32_t special_ids[4];
    char *chat_template;
    int32_t eot_id; /* tokenizer.ggml.eot_token_id of a GGUF tokenizer (tok_gguf.c), else -1 */

    /* scratch, reused across calls: a tokenizer handle is not to be used from two threads at once */
    llm_strbuf buf[3];  /* base texts of the pipeline stages */
    llm_strbuf ntmp[2]; /* normalizer chain */
    tok_spanvec spans[2];
    tok_matchvec matches;
    tok_ids out;
    tok_cache cache;
    tok_bpe_scratch bpe;
    llm_strbuf dec_text;
};

/* Loading (tok_load.c): parses tokenizer.json into t (zeroed by the caller). `name` is the file name
 * used in messages. */
llm_status tok_load_tokenizer_json(llm_tokenizer *t, const char *name, const char *text, size_t len);

/* Normalizes s[0..len), appending the result to out (tok_normalize.c). */
llm_status tok_normalize(llm_tokenizer *t, const char *s, size_t len, llm_strbuf *out);

/* Runs the pre-tokenizer chain (tok_pretokenize.c) over the spans in t->spans[*which], whose text is
 * *base. Afterwards *base is the text of the resulting spans, which are in t->spans[*which]. */
llm_status tok_pretokenize(llm_tokenizer *t, const char **base, int *which);

/* Encodes one piece with the BPE model, appending ids to out (tok_bpe.c). */
llm_status tok_bpe_piece(llm_tokenizer *t, const char *s, size_t len, tok_ids *out);
/* The merge loop on prepared symbols, for tests: mode 0 = automatic, 1 = pair-array scan, 2 = heap
 * (HF's algorithm), 3 = tournament tree. */
void tok_bpe_merge(llm_tokenizer *t, size_t n, int mode);
/* For tests: merges the symbols in[0..n) with the given mode; writes the result to out, returns its
 * length (0 on OOM). */
size_t tok_bpe_merge_ids(llm_tokenizer *t, const int32_t *in, size_t n, int mode, int32_t *out);
void tok_cache_free(tok_cache *c);
void tok_bpe_scratch_free(tok_bpe_scratch *s);

/* Splits by added tokens (tok_added.c): appends to out the spans of base[start, start+len), added
 * tokens with their ids. orig0 applies to the first span. parse_special = 0 skips special tokens. */
llm_status tok_split_added(llm_tokenizer *t, const tok_trie *trie, const char *base, uint32_t start,
                           uint32_t len, uint32_t orig0, int parse_special, tok_spanvec *out);

/* Hand-written splitter (tok_fastsplit.c): fills out like tok_regex_find_matches does for the same
 * pattern, re (its compiled form) deciding the matches that hinge on non-ASCII text. -1 on OOM or a
 * matching error. */
int tok_fast_split_matches(tok_fast_split kind, tok_regex *re, const char *s, size_t len, tok_matchvec *out);
/* Recognizes the exact Llama-3 / Qwen2 pre-tokenizer patterns. */
tok_fast_split tok_fast_split_detect(const char *pattern, size_t len);
/* The pattern tok_fast_split_detect recognizes as kind (NULL for TOK_FAST_NONE); static storage. The GGUF
 * reader (tok_gguf.c) rebuilds tokenizer.json's Split from it, so both agree by construction. */
const char *tok_fast_split_pattern(tok_fast_split kind);

/* Decoding (tok_decode.c): the token strings of ids, filtered as HF decode does. */
int tok_piece(const llm_tokenizer *t, int32_t id, const char **s, size_t *len);

/* For tests: the pieces the model would get for text (normalized and pre-tokenized, byte-level pieces
 * shown mapped as HF materializes them), '|'-separated; added tokens as "#id". */
llm_status tok_debug_pieces(llm_tokenizer *t, const char *text, size_t len, unsigned flags, llm_strbuf *out);

/* The byte of a ByteFallback token "<0xXX>", or -1. */
int tok_byte_token(const char *s, size_t len);

void tok_free_components(llm_tokenizer *t);

#endif
