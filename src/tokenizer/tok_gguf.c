/* GGUF's embedded byte-level BPE tokenizer (tokenizer.ggml.*) <-> llm_tokenizer.
 *
 * Reading validates every key against the GGUF (so errors name the key and the index), then writes the
 * tokenizer.json that the metadata stands for and hands it to the tokenizer.json loader: one code path
 * encodes, whichever file the tokenizer came from, and that path is the one checked against HF
 * `tokenizers`. The few things tokenizer.json cannot say (ids past the last token, the special ids, the
 * EOT id) are set on the loaded tokenizer afterwards.
 *
 * How the flat GGUF token list maps onto tokenizer.json: HF keeps the BPE vocabulary (ids 0..M-1) apart
 * from added tokens, which take the id of the same string in the vocabulary or else the next id after
 * M. So M is one past the last token that is not control / user-defined (before the trailing unused
 * run); tokens 0..M-1 form model.vocab, and every control / user-defined token below the trailing run is
 * an added token, whose id HF then assigns exactly as the file has it (the strings are unique). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "tokenizer/tok_gguf.h"
#include "tokenizer/tok_internal.h"

#define K_MODEL    "tokenizer.ggml.model"
#define K_PRE      "tokenizer.ggml.pre"
#define K_TOKENS   "tokenizer.ggml.tokens"
#define K_TYPES    "tokenizer.ggml.token_type"
#define K_MERGES   "tokenizer.ggml.merges"
#define K_BOS      "tokenizer.ggml.bos_token_id"
#define K_EOS      "tokenizer.ggml.eos_token_id"
#define K_UNK      "tokenizer.ggml.unknown_token_id"
#define K_PAD      "tokenizer.ggml.padding_token_id"
#define K_EOT      "tokenizer.ggml.eot_token_id"
#define K_ADD_BOS  "tokenizer.ggml.add_bos_token"
#define K_ADD_EOS  "tokenizer.ggml.add_eos_token"
#define K_TEMPLATE "tokenizer.chat_template"

/* llama.cpp's token types (gguf-py TokenType / llama_token_type). */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

/* What a tokenizer.ggml.pre name stands for in tokenizer.json terms (the HF files of those families). */
typedef struct pre_spec {
    const char *name;     /* the name the writer uses */
    tok_fast_split split; /* Split regex before ByteLevel(use_regex=false); NONE: ByteLevel's GPT-2 regex */
    int nfc;              /* NFC normalizer (Qwen2) */
    int digits;           /* Digits(individual_digits) first (SmolLM) */
    int ignore_merges;    /* model.ignore_merges (Llama 3; llama.cpp sets the same for this pre) */
    int add_bos_default;  /* llama.cpp's add_bos when the file has no add_bos_token */
} pre_spec;

static const pre_spec PRES[] = {
    {"llama-bpe", TOK_FAST_LLAMA3, 0, 0, 1, 1},
    {"qwen2", TOK_FAST_QWEN2, 1, 0, 0, 0},
    {"gpt-2", TOK_FAST_NONE, 0, 0, 0, 0},
    {"smollm", TOK_FAST_NONE, 0, 1, 0, 0},
};
#define N_PRES (sizeof PRES / sizeof PRES[0])

static const pre_spec *find_pre(const char *s, size_t len) {
    /* llama.cpp reads these two older names of the Llama 3 pre-tokenizer the same way */
    static const char *const llama3_alias[] = {"llama3", "llama-v3"};
    for (size_t i = 0; i < 2; i++)
        if (strlen(llama3_alias[i]) == len && memcmp(s, llama3_alias[i], len) == 0) return &PRES[0];
    for (size_t i = 0; i < N_PRES; i++)
        if (strlen(PRES[i].name) == len && memcmp(s, PRES[i].name, len) == 0) return &PRES[i];
    return NULL;
}

/* Length of at most max bytes of s that ends on a UTF-8 boundary, for quoting values in messages. */
static int clip(const char *s, size_t len, size_t max) {
    if (len <= max) return (int)len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    return (int)n;
}

/* ---------------------------------------------------------------------------------------------- */
/* Reading                                                                                          */

typedef struct rd {
    const llm_gguf *g;
    const char *path;
    llm_error *err;
    /* tokenizer.ggml.tokens, pointing into the map */
    const char **tok_s;
    size_t *tok_l;
    uint8_t *types;
    uint64_t n;
    tok_map map; /* token string -> id, all n tokens */
} rd;

static llm_status oom(rd *r) {
    return llm_fail(r->err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory reading the tokenizer", r->path);
}

static int is_int_type(uint32_t t) {
    return t <= LLM_GGUF_INT32 || t == LLM_GGUF_UINT64 || t == LLM_GGUF_INT64;
}

/* An array key with string (want_string) or integer elements; *n its length. */
static llm_status get_array(rd *r, const char *key, int want_string, uint64_t *n) {
    uint32_t et = 0;
    llm_status st = llm_gguf_get_arr_len(r->g, key, n, &et, r->err);
    if (st == LLM_ERR_NOT_FOUND)
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT, "%s: %s is missing", r->path, key);
    if (st != LLM_OK) return st;
    if (want_string ? et != LLM_GGUF_STRING : !is_int_type(et))
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT, "%s: %s: expected an array of %s, found an array of %s",
                        r->path, key, want_string ? "string" : "integers", llm_gguf_type_name(et));
    return LLM_OK;
}

/* An optional token id key: -1 when absent; below n_tokens. */
static llm_status get_id(rd *r, const char *key, int32_t *out) {
    uint32_t v;
    *out = -1;
    llm_status st = llm_gguf_get_u32(r->g, key, &v, r->err);
    if (st == LLM_ERR_NOT_FOUND) return LLM_OK;
    if (st != LLM_OK) return st;
    if (v >= r->n)
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT, "%s: %s = %u is not a token id (%s has %llu tokens)",
                        r->path, key, v, K_TOKENS, (unsigned long long)r->n);
    *out = (int32_t)v;
    return LLM_OK;
}

/* An optional bool key: *present 0 and *out untouched when absent. */
static llm_status get_flag(rd *r, const char *key, int *out, int *present) {
    bool b;
    *present = 0;
    llm_status st = llm_gguf_get_bool(r->g, key, &b, r->err);
    if (st == LLM_ERR_NOT_FOUND) return LLM_OK;
    if (st != LLM_OK) return st;
    *out = b;
    *present = 1;
    return LLM_OK;
}

static llm_status read_tokens(rd *r) {
    llm_status st = get_array(r, K_TOKENS, 1, &r->n);
    if (st != LLM_OK) return st;
    /* the loader's own limit; a count past it cannot fit in a file anyway (each string takes 9+ bytes) */
    if (r->n == 0) return llm_fail(r->err, LLM_ERR_BAD_FORMAT, "%s: %s is empty", r->path, K_TOKENS);
    if (r->n > (uint64_t)INT32_MAX / 2)
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT, "%s: %s: %llu tokens are too many (at most %d)", r->path,
                        K_TOKENS, (unsigned long long)r->n, INT32_MAX / 2);
    size_t n = (size_t)r->n;
    r->tok_s = malloc(n * sizeof *r->tok_s);
    r->tok_l = malloc(n * sizeof *r->tok_l);
    r->types = malloc(n);
    if (!r->tok_s || !r->tok_l || !r->types || tok_map_init(&r->map, n) != 0) return oom(r);
    for (size_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        if ((st = llm_gguf_get_arr_str(r->g, K_TOKENS, i, &s, &len, r->err)) != LLM_OK) return st;
        if (len == 0)
            return llm_fail(r->err, LLM_ERR_BAD_FORMAT, "%s: %s[%zu] is an empty string", r->path, K_TOKENS,
                            i);
        size_t bad = tok_utf8_check(s, len);
        if (bad < len)
            return llm_fail(r->err, LLM_ERR_BAD_FORMAT, "%s: %s[%zu]: invalid UTF-8 at byte %zu of the token",
                            r->path, K_TOKENS, i, bad);
        int32_t prev = tok_map_put(&r->map, s, len, (int32_t)i, NULL);
        if (prev == -2) return oom(r);
        if (prev >= 0)
            return llm_fail(r->err, LLM_ERR_BAD_FORMAT, "%s: %s[%zu]: \"%.*s\" is also %s[%d]", r->path,
                            K_TOKENS, i, clip(s, len, 80), s, K_TOKENS, prev);
        r->tok_s[i] = s;
        r->tok_l[i] = len;
    }
    /* token_type is optional in llama.cpp too: without it every token is normal */
    memset(r->types, TT_NORMAL, n);
    if (llm_gguf_find_key(r->g, K_TYPES) < 0) return LLM_OK;
    uint64_t nt;
    if ((st = get_array(r, K_TYPES, 0, &nt)) != LLM_OK) return st;
    if (nt != r->n)
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT, "%s: %s has %llu entries but %s has %llu", r->path,
                        K_TYPES, (unsigned long long)nt, K_TOKENS, (unsigned long long)r->n);
    for (size_t i = 0; i < n; i++) {
        int32_t v;
        if ((st = llm_gguf_get_arr_i32(r->g, K_TYPES, i, &v, r->err)) != LLM_OK) return st;
        if (v < TT_NORMAL || v > TT_BYTE)
            return llm_fail(
                r->err, LLM_ERR_BAD_FORMAT,
                "%s: %s[%zu] = %d is not a token type (1 normal, 2 unknown, 3 control, 4 user-defined, "
                "5 unused, 6 byte)",
                r->path, K_TYPES, i, v);
        r->types[i] = (uint8_t)v;
    }
    return LLM_OK;
}

static int is_added(uint8_t type) {
    return type == TT_CONTROL || type == TT_USER_DEFINED;
}

/* One "left right" merge, split as llama.cpp does (at the first space after the first byte); both parts
 * and their concatenation must be vocabulary tokens (ids below m). Appends ["left","right"] to json. */
static llm_status read_merge(rd *r, size_t i, int32_t m, llm_strbuf *json, llm_strbuf *joined) {
    const char *s;
    size_t len;
    llm_status st = llm_gguf_get_arr_str(r->g, K_MERGES, i, &s, &len, r->err);
    if (st != LLM_OK) return st;
    const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
    if (!sp)
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT,
                        "%s: %s[%zu]: \"%.*s\" is not two tokens separated by a space", r->path, K_MERGES, i,
                        clip(s, len, 80), s);
    const char *part[3] = {s, sp + 1, NULL};
    size_t plen[3] = {(size_t)(sp - s), len - (size_t)(sp - s) - 1, 0};
    llm_strbuf_clear(joined);
    llm_strbuf_append(joined, part[0], plen[0]);
    llm_strbuf_append(joined, part[1], plen[1]);
    if (joined->oom) return oom(r);
    part[2] = joined->data;
    plen[2] = joined->len;
    for (int k = 0; k < 3; k++) {
        int32_t id = tok_map_get(&r->map, part[k], plen[k]);
        const char *what = k < 2 ? "" : "the merged token ";
        if (id < 0)
            return llm_fail(r->err, LLM_ERR_BAD_FORMAT, "%s: %s[%zu]: \"%.*s\": %s\"%.*s\" is not a token",
                            r->path, K_MERGES, i, clip(s, len, 80), s, what, clip(part[k], plen[k], 80),
                            part[k]);
        if (id >= m)
            return llm_fail(r->err, LLM_ERR_BAD_FORMAT,
                            "%s: %s[%zu]: \"%.*s\": %s\"%.*s\" is token %d, a %s token, not one of the BPE "
                            "vocabulary (ids below %d)",
                            r->path, K_MERGES, i, clip(s, len, 80), s, what, clip(part[k], plen[k], 80),
                            part[k], id, r->types[id] == TT_UNUSED ? "unused" : "control or user-defined", m);
    }
    llm_strbuf_append_str(json, i ? ",[" : "[");
    llm_json_escape(json, part[0], plen[0]);
    llm_strbuf_append_char(json, ',');
    llm_json_escape(json, part[1], plen[1]);
    llm_strbuf_append_char(json, ']');
    return LLM_OK;
}

/* The pre-tokenizer, normalizer and decoder tokenizer.json has for this pre. */
static void json_pipeline(llm_strbuf *j, const pre_spec *p) {
    llm_strbuf_append_str(j, p->nfc ? "\"normalizer\":{\"type\":\"NFC\"}," : "\"normalizer\":null,");
    llm_strbuf_append_str(j, "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[");
    if (p->split != TOK_FAST_NONE) {
        const char *pat = tok_fast_split_pattern(p->split);
        llm_strbuf_append_str(j, "{\"type\":\"Split\",\"pattern\":{\"Regex\":");
        llm_json_escape(j, pat, strlen(pat));
        llm_strbuf_append_str(j, "},\"behavior\":\"Isolated\",\"invert\":false},"
                                 "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,"
                                 "\"use_regex\":false}]},");
    } else {
        if (p->digits) llm_strbuf_append_str(j, "{\"type\":\"Digits\",\"individual_digits\":true},");
        llm_strbuf_append_str(j, "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,"
                                 "\"use_regex\":true}]},");
    }
    llm_strbuf_append_str(
        j, "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,"
           "\"use_regex\":true},");
}

/* TemplateProcessing with BOS before and/or EOS after the sequence; null when neither is added. */
static void json_post(rd *r, llm_strbuf *j, int32_t bos, int32_t eos) {
    if (bos < 0 && eos < 0) {
        llm_strbuf_append_str(j, "\"post_processor\":null,");
        return;
    }
    llm_strbuf_append_str(j, "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[");
    if (bos >= 0) llm_strbuf_append_str(j, "{\"SpecialToken\":{\"id\":\"bos\",\"type_id\":0}},");
    llm_strbuf_append_str(j, "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}");
    if (eos >= 0) llm_strbuf_append_str(j, ",{\"SpecialToken\":{\"id\":\"eos\",\"type_id\":0}}");
    llm_strbuf_append_str(j, "],\"pair\":[],\"special_tokens\":{");
    for (int k = 0; k < 2; k++) {
        int32_t id = k ? eos : bos;
        if (id < 0) continue;
        llm_strbuf_appendf(j, "%s\"%s\":{\"id\":\"%s\",\"ids\":[%d],\"tokens\":[", k && bos >= 0 ? "," : "",
                           k ? "eos" : "bos", k ? "eos" : "bos", id);
        llm_json_escape(j, r->tok_s[id], r->tok_l[id]);
        llm_strbuf_append_str(j, "]}");
    }
    llm_strbuf_append_str(j, "}},");
}

/* Ids n_json..n_total-1 (the trailing unused tokens): in range, but no token has them. */
static llm_status extend_ids(llm_tokenizer *t, int32_t n_total) {
    if (n_total <= t->n_vocab) return LLM_OK;
    uint32_t *off = realloc(t->piece_off, (size_t)n_total * sizeof *off);
    if (!off) return LLM_ERR_OUT_OF_MEMORY;
    t->piece_off = off;
    uint32_t *len = realloc(t->piece_len, (size_t)n_total * sizeof *len);
    if (!len) return LLM_ERR_OUT_OF_MEMORY;
    t->piece_len = len;
    uint8_t *sp = realloc(t->special, (size_t)n_total);
    if (!sp) return LLM_ERR_OUT_OF_MEMORY;
    t->special = sp;
    for (int32_t id = t->n_vocab; id < n_total; id++) {
        t->piece_off[id] = 0;
        t->piece_len[id] = UINT32_MAX;
        t->special[id] = 0;
    }
    t->n_vocab = n_total;
    return LLM_OK;
}

static llm_status read_gguf(rd *r, const llm_tokenizer_params *params, llm_tokenizer **out) {
    const char *s;
    size_t len;
    llm_status st = llm_gguf_get_string(r->g, K_MODEL, &s, &len, r->err);
    if (st == LLM_ERR_NOT_FOUND)
        return llm_fail(r->err, LLM_ERR_NOT_FOUND, "%s: %s is absent: the file has no embedded tokenizer",
                        r->path, K_MODEL);
    if (st != LLM_OK) return st;
    if (len != 4 || memcmp(s, "gpt2", 4) != 0)
        return llm_fail(r->err, LLM_ERR_UNSUPPORTED,
                        "%s: %s = \"%.*s\": only \"gpt2\" (byte-level BPE) tokenizers are supported", r->path,
                        K_MODEL, clip(s, len, 80), s);
    st = llm_gguf_get_string(r->g, K_PRE, &s, &len, r->err);
    if (st == LLM_ERR_NOT_FOUND)
        return llm_fail(r->err, LLM_ERR_UNSUPPORTED,
                        "%s: %s is absent (llama.cpp would fall back to its \"default\" splitter, which no "
                        "Hugging Face tokenizer uses)",
                        r->path, K_PRE);
    if (st != LLM_OK) return st;
    const pre_spec *pre = find_pre(s, len);
    if (!pre)
        return llm_fail(
            r->err, LLM_ERR_UNSUPPORTED,
            "%s: %s = \"%.*s\" is not supported (supported: llama-bpe, llama3, llama-v3, qwen2, gpt-2, "
            "smollm)",
            r->path, K_PRE, clip(s, len, 80), s);
    if ((st = read_tokens(r)) != LLM_OK) return st;
    const int32_t n = (int32_t)r->n;

    /* trailing unused run [n_json, n) and the BPE vocabulary [0, m) */
    int32_t n_json = n;
    while (n_json > 0 && r->types[n_json - 1] == TT_UNUSED) n_json--;
    int32_t m = 0;
    for (int32_t i = 0; i < n_json; i++)
        if (!is_added(r->types[i])) m = i + 1;
    if (m == 0)
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT,
                        "%s: %s has no normal tokens (a BPE vocabulary is needed)", r->path, K_TYPES);

    int32_t bos, eos, unk, pad, eot;
    if ((st = get_id(r, K_BOS, &bos)) != LLM_OK || (st = get_id(r, K_EOS, &eos)) != LLM_OK ||
        (st = get_id(r, K_UNK, &unk)) != LLM_OK || (st = get_id(r, K_PAD, &pad)) != LLM_OK ||
        (st = get_id(r, K_EOT, &eot)) != LLM_OK)
        return st;
    int add_bos = pre->add_bos_default, add_eos = 0, have_bos_flag, have_eos_flag;
    if ((st = get_flag(r, K_ADD_BOS, &add_bos, &have_bos_flag)) != LLM_OK) return st;
    if ((st = get_flag(r, K_ADD_EOS, &add_eos, &have_eos_flag)) != LLM_OK) return st;
    const char *key[2] = {K_BOS, K_EOS};
    int32_t *want[2] = {&bos, &eos};
    int add[2] = {add_bos, add_eos}, explicit_flag[2] = {have_bos_flag, have_eos_flag};
    int32_t post_id[2] = {-1, -1};
    for (int k = 0; k < 2; k++) {
        if (!add[k]) continue;
        if (*want[k] < 0) {
            if (explicit_flag[k])
                return llm_fail(r->err, LLM_ERR_BAD_FORMAT, "%s: %s is true but %s is absent", r->path,
                                k ? K_ADD_EOS : K_ADD_BOS, key[k]);
            continue; /* only the pre's default asked for it: nothing to add */
        }
        if (*want[k] >= n_json)
            return llm_fail(r->err, LLM_ERR_BAD_FORMAT,
                            "%s: %s = %d names an unused token, which cannot be added", r->path, key[k],
                            *want[k]);
        post_id[k] = *want[k];
    }

    const char *tmpl = NULL;
    size_t tmpl_len = 0;
    st = llm_gguf_get_string(r->g, K_TEMPLATE, &tmpl, &tmpl_len, r->err);
    if (st == LLM_ERR_NOT_FOUND)
        tmpl = NULL;
    else if (st != LLM_OK)
        return st;
    else if (memchr(tmpl, '\0', tmpl_len))
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT, "%s: %s holds a NUL byte at offset %zu", r->path,
                        K_TEMPLATE, (size_t)((const char *)memchr(tmpl, '\0', tmpl_len) - tmpl));

    /* tokenizer.json */
    llm_strbuf j = LLM_STRBUF_INIT, joined = LLM_STRBUF_INIT;
    llm_strbuf_append_str(&j, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[");
    int first = 1;
    for (int32_t i = 0; i < n_json; i++) {
        if (!is_added(r->types[i])) continue;
        llm_strbuf_appendf(&j, "%s{\"id\":%d,\"content\":", first ? "" : ",", i);
        llm_json_escape(&j, r->tok_s[i], r->tok_l[i]);
        llm_strbuf_appendf(&j,
                           ",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,"
                           "\"special\":%s}",
                           r->types[i] == TT_CONTROL ? "true" : "false");
        first = 0;
    }
    llm_strbuf_append_str(&j, "],");
    json_pipeline(&j, pre);
    json_post(r, &j, post_id[0], post_id[1]);
    llm_strbuf_appendf(&j,
                       "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,"
                       "\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,\"fuse_unk\":false,"
                       "\"byte_fallback\":false,\"ignore_merges\":%s,\"vocab\":{",
                       pre->ignore_merges ? "true" : "false");
    for (int32_t i = 0; i < m; i++) {
        if (i) llm_strbuf_append_char(&j, ',');
        llm_json_escape(&j, r->tok_s[i], r->tok_l[i]);
        llm_strbuf_appendf(&j, ":%d", i);
    }
    llm_strbuf_append_str(&j, "},\"merges\":[");
    uint64_t n_merges = 0;
    st = get_array(r, K_MERGES, 1, &n_merges);
    for (uint64_t i = 0; i < n_merges && st == LLM_OK; i++) st = read_merge(r, (size_t)i, m, &j, &joined);
    llm_strbuf_append_str(&j, "]}}");
    llm_strbuf_free(&joined);
    if (st == LLM_OK && j.oom) st = oom(r);
    if (st != LLM_OK) {
        llm_strbuf_free(&j);
        return st;
    }

    char msg[LLM_ERROR_CAP];
    llm_tokenizer *t = NULL;
    st = llm_tokenizer_load_from_memory(j.data, j.len, NULL, 0, params, &t, msg, sizeof msg);
    llm_strbuf_free(&j);
    if (st != LLM_OK)
        return llm_fail(r->err, st, "%s: the tokenizer.json rebuilt from tokenizer.ggml.*: %s", r->path, msg);
    if (extend_ids(t, n) != LLM_OK) {
        llm_tokenizer_free(t);
        return oom(r);
    }
    t->special_ids[LLM_SPECIAL_BOS] = bos;
    t->special_ids[LLM_SPECIAL_EOS] = eos;
    t->special_ids[LLM_SPECIAL_UNK] = unk;
    t->special_ids[LLM_SPECIAL_PAD] = pad;
    t->eot_id = eot;
    if (tmpl) {
        t->chat_template = malloc(tmpl_len + 1);
        if (!t->chat_template) {
            llm_tokenizer_free(t);
            return oom(r);
        }
        memcpy(t->chat_template, tmpl, tmpl_len);
        t->chat_template[tmpl_len] = '\0';
    }
    *out = t;
    return LLM_OK;
}

llm_status llm_tokenizer_from_gguf(const llm_gguf *g, const llm_tokenizer_params *params, llm_tokenizer **out,
                                   llm_error *err) {
    if (out) *out = NULL;
    if (!g || !out) return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "llm_tokenizer_from_gguf: NULL argument");
    rd r;
    memset(&r, 0, sizeof r);
    r.g = g;
    r.path = llm_gguf_path(g);
    r.err = err;
    llm_status st = read_gguf(&r, params, out);
    free(r.tok_s);
    free(r.tok_l);
    free(r.types);
    tok_map_free(&r.map);
    return st;
}

int32_t llm_tokenizer_eot_id(const llm_tokenizer *tok) {
    return tok ? tok->eot_id : -1;
}

/* ---------------------------------------------------------------------------------------------- */
/* Writing                                                                                          */

/* Whether t's pipeline is exactly the one p stands for; if not, why (into why). */
static int pipeline_is(const llm_tokenizer *t, const pre_spec *p, char *why, size_t cap) {
    if (p->nfc ? !(t->n_norms == 1 && t->norms[0].type == TOK_NORM_NFC) : t->n_norms != 0) {
        snprintf(why, cap, "the normalizer must be %s", p->nfc ? "NFC alone" : "absent");
        return 0;
    }
    size_t k = 0;
    if (p->split != TOK_FAST_NONE) {
        const tok_pretok *s = t->n_pretoks > 0 ? &t->pretoks[0] : NULL;
        if (!s || s->type != TOK_PT_SPLIT || s->fast != p->split || s->behavior != TOK_SPLIT_ISOLATED ||
            s->invert) {
            snprintf(why, cap, "the first pre-tokenizer must be a Split with the %s regex, Isolated",
                     p->split == TOK_FAST_LLAMA3 ? "Llama 3" : "Qwen2");
            return 0;
        }
        k = 1;
    } else if (p->digits) {
        if (!(t->n_pretoks > 0 && t->pretoks[0].type == TOK_PT_DIGITS && t->pretoks[0].individual_digits)) {
            snprintf(why, cap, "the first pre-tokenizer must be Digits with individual_digits");
            return 0;
        }
        k = 1;
    }
    int use_regex = p->split == TOK_FAST_NONE;
    if (t->n_pretoks != k + 1 || t->pretoks[k].type != TOK_PT_BYTE_LEVEL || t->pretoks[k].add_prefix_space ||
        t->pretoks[k].use_regex != use_regex) {
        snprintf(why, cap,
                 "the pre-tokenizer chain must end with ByteLevel (add_prefix_space false, use_regex %s)",
                 use_regex ? "true" : "false");
        return 0;
    }
    if (t->ignore_merges != p->ignore_merges) {
        snprintf(why, cap, "model.ignore_merges must be %s", p->ignore_merges ? "true" : "false");
        return 0;
    }
    return 1;
}

/* Everything a GGUF byte-level BPE cannot express, whatever the pre. */
static llm_status check_writable(const llm_tokenizer *t, llm_error *err) {
    if (t->byte_fallback || t->cont_prefix || t->eow_suffix)
        return llm_fail(
            err, LLM_ERR_UNSUPPORTED,
            "tokenizer: byte_fallback, continuing_subword_prefix and end_of_word_suffix have no GGUF "
            "\"gpt2\" equivalent");
    if (t->n_decs != 1 || t->decs[0].type != TOK_DEC_BYTE_LEVEL)
        return llm_fail(err, LLM_ERR_UNSUPPORTED,
                        "tokenizer: the decoder must be ByteLevel alone for GGUF \"gpt2\"");
    for (size_t i = 0; i < t->n_added; i++) {
        const tok_added *a = &t->added[i];
        if (a->lstrip || a->rstrip || a->single_word || (a->normalized && t->n_norms > 0))
            return llm_fail(
                err, LLM_ERR_UNSUPPORTED,
                "tokenizer: added token %d \"%.*s\" has lstrip, rstrip, single_word or normalized "
                "(with a normalizer), which GGUF cannot record",
                a->id, clip(a->content, a->len, 60), a->content);
    }
    const int32_t bos = t->special_ids[LLM_SPECIAL_BOS], eos = t->special_ids[LLM_SPECIAL_EOS];
    if (t->post.n_prefix > 1 || (t->post.n_prefix == 1 && t->post.prefix[0] != bos))
        return llm_fail(
            err, LLM_ERR_UNSUPPORTED,
            "tokenizer: the post-processor adds %zu id(s) before the text starting with %d; GGUF can "
            "only say add_bos_token (bos_token is %d)",
            t->post.n_prefix, t->post.prefix[0], bos);
    if (t->post.n_suffix > 1 || (t->post.n_suffix == 1 && t->post.suffix[0] != eos))
        return llm_fail(
            err, LLM_ERR_UNSUPPORTED,
            "tokenizer: the post-processor adds %zu id(s) after the text starting with %d; GGUF can "
            "only say add_eos_token (eos_token is %d)",
            t->post.n_suffix, t->post.suffix[0], eos);
    return LLM_OK;
}

typedef struct merge_ent {
    uint32_t rank;
    int32_t a, b;
} merge_ent;

static int cmp_rank(const void *x, const void *y) {
    uint32_t a = ((const merge_ent *)x)->rank, b = ((const merge_ent *)y)->rank;
    return a < b ? -1 : a > b;
}

/* The token strings (NUL-terminated, in one pool) and types in id order, padded to n. */
static llm_status build_tokens(const llm_tokenizer *t, int32_t n, llm_strbuf *pool, size_t *offs,
                               int32_t *types, llm_error *err) {
    for (int32_t id = 0; id < n; id++) types[id] = TT_NORMAL;
    for (size_t i = 0; i < t->n_added; i++)
        types[t->added[i].id] = t->added[i].special ? TT_CONTROL : TT_USER_DEFINED;
    for (int32_t id = 0; id < n; id++) {
        offs[id] = pool->len;
        const char *s;
        size_t len;
        if (id < t->n_vocab && t->piece_len[id] != UINT32_MAX) {
            s = t->pieces.data + t->piece_off[id];
            len = t->piece_len[id];
            if (len == 0 || memchr(s, '\0', len))
                return llm_fail(err, LLM_ERR_UNSUPPORTED,
                                "tokenizer: token %d is empty or holds a NUL byte, which "
                                "a GGUF string array cannot hold",
                                id);
            llm_strbuf_append(pool, s, len);
        } else {
            /* convert_hf_to_gguf's filler for ids no token has */
            char name[32];
            int k = snprintf(name, sizeof name, "[PAD%d]", id);
            if (llm_tokenizer_token_id(t, name, (size_t)k) >= 0)
                return llm_fail(err, LLM_ERR_UNSUPPORTED,
                                "tokenizer: id %d has no token, and its filler \"%s\" is already a token", id,
                                name);
            llm_strbuf_append(pool, name, (size_t)k);
            types[id] = TT_UNUSED;
        }
        llm_strbuf_append_char(pool, '\0');
    }
    return pool->oom ? llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "tokenizer: out of memory writing GGUF") : LLM_OK;
}

/* The merges in rank order as "left right" (NUL-terminated, in one pool). */
static llm_status build_merges(const llm_tokenizer *t, llm_strbuf *pool, size_t **offs_out, size_t *n_out,
                               llm_error *err) {
    const tok_merge_map *mm = &t->merges;
    merge_ent *v = malloc((mm->count ? mm->count : 1) * sizeof *v);
    size_t *offs = malloc((mm->count ? mm->count : 1) * sizeof *offs);
    if (!v || !offs) {
        free(v);
        free(offs);
        return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "tokenizer: out of memory writing GGUF");
    }
    size_t n = 0;
    for (size_t i = 0; mm->slots && i <= mm->mask; i++) {
        const tok_merge_slot *s = &mm->slots[i];
        if (s->key == UINT64_MAX || n == mm->count) continue;
        v[n++] = (merge_ent){s->rank, (int32_t)(s->key >> 32), (int32_t)(uint32_t)s->key};
    }
    qsort(v, n, sizeof *v, cmp_rank);
    llm_status st = LLM_OK;
    for (size_t i = 0; i < n && st == LLM_OK; i++) {
        offs[i] = pool->len;
        for (int k = 0; k < 2; k++) {
            int32_t id = k ? v[i].b : v[i].a;
            const char *s = t->pieces.data + t->piece_off[id];
            size_t len = t->piece_len[id];
            /* GGUF separates the parts by a space, so a part cannot hold one */
            if (len == 0 || memchr(s, ' ', len) || memchr(s, '\0', len)) {
                st = llm_fail(
                    err, LLM_ERR_UNSUPPORTED,
                    "tokenizer: merge %zu: token %d \"%.*s\" is empty or holds a space or NUL byte, which "
                    "a GGUF \"left right\" merge cannot hold",
                    i, id, clip(s, len, 60), s);
                break;
            }
            if (k) llm_strbuf_append_char(pool, ' ');
            llm_strbuf_append(pool, s, len);
        }
        llm_strbuf_append_char(pool, '\0');
    }
    free(v);
    if (st == LLM_OK && pool->oom)
        st = llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "tokenizer: out of memory writing GGUF");
    if (st != LLM_OK) {
        free(offs);
        return st;
    }
    *offs_out = offs;
    *n_out = n;
    return LLM_OK;
}

static llm_status write_keys(const llm_tokenizer *t, llm_gguf_writer *w, const char *pre,
                             const char *const *tokens, const int32_t *types, size_t n,
                             const char *const *merges, size_t n_merges, llm_error *err) {
    llm_status st;
    if ((st = llm_gguf_writer_add_string(w, K_MODEL, "gpt2", 4, err)) != LLM_OK) return st;
    if ((st = llm_gguf_writer_add_string(w, K_PRE, pre, strlen(pre), err)) != LLM_OK) return st;
    if ((st = llm_gguf_writer_add_str_array(w, K_TOKENS, tokens, n, err)) != LLM_OK) return st;
    if ((st = llm_gguf_writer_add_i32_array(w, K_TYPES, types, n, err)) != LLM_OK) return st;
    if ((st = llm_gguf_writer_add_str_array(w, K_MERGES, merges, n_merges, err)) != LLM_OK) return st;
    static const char *const id_keys[4] = {K_BOS, K_EOS, K_UNK, K_PAD};
    for (int k = 0; k < 4; k++)
        if (t->special_ids[k] >= 0 &&
            (st = llm_gguf_writer_add_u32(w, id_keys[k], (uint32_t)t->special_ids[k], err)) != LLM_OK)
            return st;
    if (t->eot_id >= 0 && (st = llm_gguf_writer_add_u32(w, K_EOT, (uint32_t)t->eot_id, err)) != LLM_OK)
        return st;
    /* written even when they equal llama.cpp's default for the pre, so no reader has to know the default */
    if ((st = llm_gguf_writer_add_bool(w, K_ADD_BOS, t->post.n_prefix == 1, err)) != LLM_OK) return st;
    if ((st = llm_gguf_writer_add_bool(w, K_ADD_EOS, t->post.n_suffix == 1, err)) != LLM_OK) return st;
    if (t->chat_template && (st = llm_gguf_writer_add_string(w, K_TEMPLATE, t->chat_template,
                                                             strlen(t->chat_template), err)) != LLM_OK)
        return st;
    return LLM_OK;
}

llm_status llm_tokenizer_write_gguf_padded(const llm_tokenizer *t, llm_gguf_writer *w, const char *pre,
                                           int32_t n_tokens, llm_error *err) {
    if (!t || !w) return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "llm_tokenizer_write_gguf: NULL argument");
    if (n_tokens != 0 && n_tokens < t->n_vocab)
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT,
                        "llm_tokenizer_write_gguf: %d tokens requested but the tokenizer has ids up to %d",
                        n_tokens, t->n_vocab - 1);
    const pre_spec *p = NULL;
    char why[256] = "";
    if (pre) {
        p = find_pre(pre, strlen(pre));
        if (!p)
            return llm_fail(err, LLM_ERR_INVALID_ARGUMENT,
                            "llm_tokenizer_write_gguf: %s \"%s\" is not one this library reads back", K_PRE,
                            pre);
        if (!pipeline_is(t, p, why, sizeof why))
            return llm_fail(err, LLM_ERR_UNSUPPORTED, "tokenizer: not what %s \"%s\" stands for: %s", K_PRE,
                            pre, why);
    } else {
        for (size_t i = 0; i < N_PRES && !p; i++)
            if (pipeline_is(t, &PRES[i], why, sizeof why)) p = &PRES[i];
        if (!p)
            return llm_fail(err, LLM_ERR_UNSUPPORTED,
                            "tokenizer: its pre-tokenizer matches none of llama-bpe, qwen2, gpt-2, smollm");
        pre = p->name;
    }
    llm_status st = check_writable(t, err);
    if (st != LLM_OK) return st;

    int32_t n = n_tokens > t->n_vocab ? n_tokens : t->n_vocab;
    llm_strbuf tpool = LLM_STRBUF_INIT, mpool = LLM_STRBUF_INIT;
    size_t *toffs = malloc((size_t)n * sizeof *toffs), *moffs = NULL, n_merges = 0;
    int32_t *types = malloc((size_t)n * sizeof *types);
    const char **tokens = NULL, **merges = NULL;
    if (!toffs || !types) {
        st = llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "tokenizer: out of memory writing GGUF");
        goto done;
    }
    if ((st = build_tokens(t, n, &tpool, toffs, types, err)) != LLM_OK) goto done;
    if ((st = build_merges(t, &mpool, &moffs, &n_merges, err)) != LLM_OK) goto done;
    /* pointers only now: the pools do not move any more */
    tokens = malloc((size_t)n * sizeof *tokens);
    merges = malloc((n_merges ? n_merges : 1) * sizeof *merges);
    if (!tokens || !merges) {
        st = llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "tokenizer: out of memory writing GGUF");
        goto done;
    }
    for (int32_t i = 0; i < n; i++) tokens[i] = tpool.data + toffs[i];
    for (size_t i = 0; i < n_merges; i++) merges[i] = mpool.data + moffs[i];
    st = write_keys(t, w, pre, tokens, types, (size_t)n, merges, n_merges, err);
done:
    free(toffs);
    free(moffs);
    free(types);
    free(tokens);
    free(merges);
    llm_strbuf_free(&tpool);
    llm_strbuf_free(&mpool);
    return st;
}

llm_status llm_tokenizer_write_gguf(const llm_tokenizer *tok, llm_gguf_writer *w, const char *pre,
                                    llm_error *err) {
    return llm_tokenizer_write_gguf_padded(tok, w, pre, 0, err);
}
