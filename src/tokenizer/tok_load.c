/* tokenizer.json -> llm_tokenizer: the BPE model, added tokens, and the normalizer / pre-tokenizer /
 * post-processor / decoder chains (Sequences are flattened: applying a Sequence is applying its
 * members in order, for all four kinds).
 *
 * Every semantic error names the file, the line:column of the offending value and its JSON path,
 * e.g. "tokenizer.json:12:7: model.merges[3]: \"a bc\": \"bc\" is not in model.vocab". */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "tokenizer/tok_internal.h"

typedef struct ld {
    llm_tokenizer *t;
    const char *name;
    const char *text;
    size_t len;
    llm_error *err;
} ld;

#define PATH_CAP 256

static llm_status fail_at(ld *c, const llm_json *v, llm_status st, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static llm_status fail_at(ld *c, const llm_json *v, llm_status st, const char *path, const char *fmt, ...) {
    char msg[LLM_ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line = 0, col = 0;
    llm_json_line_col(c->text, c->len, llm_json_offset(v), &line, &col);
    return llm_fail(c->err, st, "%s:%d:%d: %s: %s", c->name, line, col, path && *path ? path : "(root)", msg);
}

static llm_status oom(ld *c) {
    return llm_fail(c->err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory", c->name);
}

static int absent(const llm_json *v) {
    return !v || llm_json_is_null(v);
}

static void subpath(char *out, const char *path, const char *key) {
    snprintf(out, PATH_CAP, "%s%s%s", path, *path ? "." : "", key);
}

static void indexpath(char *out, const char *path, const char *key, size_t i) {
    snprintf(out, PATH_CAP, "%s%s%s[%zu]", path, *path && *key ? "." : "", key, i);
}

/* Optional boolean member; *out keeps its default when absent or null. */
static llm_status get_bool(ld *c, const llm_json *obj, const char *key, const char *path, int *out) {
    const llm_json *v = llm_json_get(obj, key);
    if (absent(v)) return LLM_OK;
    int b;
    if (llm_json_bool(v, &b) != 0) {
        char p[PATH_CAP];
        subpath(p, path, key);
        return fail_at(c, v, LLM_ERR_BAD_FORMAT, p, "expected true or false, got %s",
                       llm_json_type_name(llm_json_type_of(v)));
    }
    *out = b;
    return LLM_OK;
}

/* Optional string member: *s NULL when absent or null (unless required). */
static llm_status get_str(ld *c, const llm_json *obj, const char *key, const char *path, int required,
                          const char **s, size_t *len) {
    const llm_json *v = llm_json_get(obj, key);
    *s = NULL;
    *len = 0;
    char p[PATH_CAP];
    subpath(p, path, key);
    if (absent(v)) {
        if (required) return fail_at(c, obj, LLM_ERR_BAD_FORMAT, p, "required string is missing");
        return LLM_OK;
    }
    if (!llm_json_is_string(v))
        return fail_at(c, v, LLM_ERR_BAD_FORMAT, p, "expected a string, got %s",
                       llm_json_type_name(llm_json_type_of(v)));
    *s = llm_json_string(v, len);
    return LLM_OK;
}

static llm_status get_uint(ld *c, const llm_json *obj, const char *key, const char *path, int64_t max,
                           size_t *out) {
    const llm_json *v = llm_json_get(obj, key);
    if (absent(v)) return LLM_OK;
    int64_t x;
    if (llm_json_int64(v, &x) != 0 || x < 0 || x > max) {
        char p[PATH_CAP];
        subpath(p, path, key);
        return fail_at(c, v, LLM_ERR_BAD_FORMAT, p, "expected an integer from 0 to %lld", (long long)max);
    }
    *out = (size_t)x;
    return LLM_OK;
}

/* A "char" in HF's serde: a string of exactly one code point. */
static llm_status get_char(ld *c, const llm_json *obj, const char *key, const char *path, int required,
                           uint32_t *cp) {
    const char *s;
    size_t len;
    llm_status st = get_str(c, obj, key, path, required, &s, &len);
    if (st != LLM_OK || !s) return st;
    if (len == 0 || tok_utf8_len((uint8_t)s[0]) != len) {
        char p[PATH_CAP];
        subpath(p, path, key);
        return fail_at(c, llm_json_get(obj, key), LLM_ERR_BAD_FORMAT, p,
                       "expected a single character, got \"%.*s\"", (int)(len > 40 ? 40 : len), s);
    }
    tok_utf8_next((const uint8_t *)s, len, cp);
    return LLM_OK;
}

static char *dup_bytes(const char *s, size_t len) {
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

/* The "type" of a component object; `kind` names the component for messages. */
static llm_status get_type(ld *c, const llm_json *obj, const char *path, const char *kind,
                           const char **type) {
    if (!llm_json_is_object(obj))
        return fail_at(c, obj, LLM_ERR_BAD_FORMAT, path, "a %s must be an object or null, got %s", kind,
                       llm_json_type_name(llm_json_type_of(obj)));
    size_t len;
    llm_status st = get_str(c, obj, "type", path, 1, type, &len);
    return st;
}

/* {"String": "..."} or {"Regex": "..."} */
static llm_status get_pattern(ld *c, const llm_json *obj, const char *path, tok_regex *re) {
    char p[PATH_CAP];
    subpath(p, path, "pattern");
    const llm_json *v = llm_json_get(obj, "pattern");
    if (absent(v)) return fail_at(c, obj, LLM_ERR_BAD_FORMAT, p, "required pattern is missing");
    const llm_json *s = llm_json_get(v, "String");
    const llm_json *r = llm_json_get(v, "Regex");
    if (!llm_json_is_object(v) || llm_json_count(v) != 1 ||
        (!llm_json_is_string(s) && !llm_json_is_string(r)))
        return fail_at(c, v, LLM_ERR_BAD_FORMAT, p, "expected {\"String\": \"...\"} or {\"Regex\": \"...\"}");
    size_t len;
    const char *text = llm_json_string(s ? s : r, &len);
    char where[PATH_CAP + 64];
    int line = 0, col = 0;
    llm_json_line_col(c->text, c->len, llm_json_offset(s ? s : r), &line, &col);
    snprintf(where, sizeof where, "%s:%d:%d: %s.%s", c->name, line, col, p, s ? "String" : "Regex");
    return tok_regex_compile(re, text, len, s != NULL, where, c->err);
}

static llm_status get_behavior(ld *c, const llm_json *obj, const char *path, tok_split_behavior dflt,
                               tok_split_behavior *out) {
    const char *s;
    size_t len;
    llm_status st = get_str(c, obj, "behavior", path, 0, &s, &len);
    if (st != LLM_OK) return st;
    *out = dflt;
    if (!s) return LLM_OK;
    static const struct {
        const char *name;
        tok_split_behavior b;
    } names[] = {{"Removed", TOK_SPLIT_REMOVED},
                 {"Isolated", TOK_SPLIT_ISOLATED},
                 {"MergedWithPrevious", TOK_SPLIT_MERGED_WITH_PREVIOUS},
                 {"MergedWithNext", TOK_SPLIT_MERGED_WITH_NEXT},
                 {"Contiguous", TOK_SPLIT_CONTIGUOUS}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].b;
            return LLM_OK;
        }
    char p[PATH_CAP];
    subpath(p, path, "behavior");
    return fail_at(
        c, llm_json_get(obj, "behavior"), LLM_ERR_BAD_FORMAT, p,
        "unknown split behavior \"%s\" (expected Removed, Isolated, MergedWithPrevious, MergedWithNext "
        "or Contiguous)",
        s);
}

/* Metaspace's prepend_scheme, with the legacy add_prefix_space (decoder and pre-tokenizer alike). */
static llm_status get_prepend_scheme(ld *c, const llm_json *obj, const char *path, tok_prepend_scheme *out) {
    const char *s;
    size_t len;
    llm_status st = get_str(c, obj, "prepend_scheme", path, 0, &s, &len);
    if (st != LLM_OK) return st;
    int have = s != NULL;
    *out = TOK_PREPEND_ALWAYS;
    if (s) {
        if (strcmp(s, "always") == 0)
            *out = TOK_PREPEND_ALWAYS;
        else if (strcmp(s, "first") == 0)
            *out = TOK_PREPEND_FIRST;
        else if (strcmp(s, "never") == 0)
            *out = TOK_PREPEND_NEVER;
        else {
            char p[PATH_CAP];
            subpath(p, path, "prepend_scheme");
            return fail_at(c, llm_json_get(obj, "prepend_scheme"), LLM_ERR_BAD_FORMAT, p,
                           "unknown prepend_scheme \"%s\" (expected always, first or never)", s);
        }
    }
    int aps = -1;
    if ((st = get_bool(c, obj, "add_prefix_space", path, &aps)) != LLM_OK) return st;
    if (aps == 0) {
        if (have && *out != TOK_PREPEND_NEVER) {
            char p[PATH_CAP];
            subpath(p, path, "add_prefix_space");
            return fail_at(c, llm_json_get(obj, "add_prefix_space"), LLM_ERR_BAD_FORMAT, p,
                           "add_prefix_space false contradicts prepend_scheme \"%s\"", s);
        }
        *out = TOK_PREPEND_NEVER;
    }
    return LLM_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Normalizers                                                                                      */

static llm_status add_norm(ld *c, tok_normalizer n) {
    llm_tokenizer *t = c->t;
    tok_normalizer *v = realloc(t->norms, (t->n_norms + 1) * sizeof *v);
    if (!v) {
        tok_regex_free(&n.pattern);
        free(n.str);
        return oom(c);
    }
    t->norms = v;
    t->norms[t->n_norms++] = n;
    return LLM_OK;
}

static llm_status parse_normalizer(ld *c, const llm_json *obj, const char *path, int depth) {
    if (absent(obj)) return LLM_OK;
    if (depth > 16) return fail_at(c, obj, LLM_ERR_UNSUPPORTED, path, "normalizers nested too deeply");
    const char *type;
    llm_status st = get_type(c, obj, path, "normalizer", &type);
    if (st != LLM_OK) return st;
    tok_normalizer n;
    memset(&n, 0, sizeof n);
    if (strcmp(type, "Sequence") == 0) {
        const llm_json *list = llm_json_get(obj, "normalizers");
        char p[PATH_CAP];
        subpath(p, path, "normalizers");
        if (!llm_json_is_array(list))
            return fail_at(c, list ? list : obj, LLM_ERR_BAD_FORMAT, p, "expected an array");
        for (size_t i = 0; i < llm_json_count(list); i++) {
            char q[PATH_CAP];
            indexpath(q, path, "normalizers", i);
            if ((st = parse_normalizer(c, llm_json_value_at(list, i), q, depth + 1)) != LLM_OK) return st;
        }
        return LLM_OK;
    }
    if (strcmp(type, "NFC") == 0)
        n.type = TOK_NORM_NFC;
    else if (strcmp(type, "NFD") == 0)
        n.type = TOK_NORM_NFD;
    else if (strcmp(type, "NFKC") == 0)
        n.type = TOK_NORM_NFKC;
    else if (strcmp(type, "NFKD") == 0)
        n.type = TOK_NORM_NFKD;
    else if (strcmp(type, "Lowercase") == 0)
        n.type = TOK_NORM_LOWERCASE;
    else if (strcmp(type, "StripAccents") == 0)
        n.type = TOK_NORM_STRIP_ACCENTS;
    else if (strcmp(type, "Strip") == 0) {
        n.type = TOK_NORM_STRIP;
        n.strip_left = n.strip_right = 1;
        if ((st = get_bool(c, obj, "strip_left", path, &n.strip_left)) != LLM_OK) return st;
        if ((st = get_bool(c, obj, "strip_right", path, &n.strip_right)) != LLM_OK) return st;
    } else if (strcmp(type, "Prepend") == 0 || strcmp(type, "Append") == 0) {
        int prepend = type[0] == 'P';
        n.type = prepend ? TOK_NORM_PREPEND : TOK_NORM_APPEND;
        const char *s;
        size_t len;
        if ((st = get_str(c, obj, prepend ? "prepend" : "append", path, 1, &s, &len)) != LLM_OK) return st;
        if (!(n.str = dup_bytes(s, len))) return oom(c);
        n.str_len = len;
    } else if (strcmp(type, "Replace") == 0) {
        n.type = TOK_NORM_REPLACE;
        const char *s;
        size_t len;
        if ((st = get_str(c, obj, "content", path, 1, &s, &len)) != LLM_OK) return st;
        if ((st = get_pattern(c, obj, path, &n.pattern)) != LLM_OK) return st;
        if (!(n.str = dup_bytes(s, len))) {
            tok_regex_free(&n.pattern);
            return oom(c);
        }
        n.str_len = len;
    } else {
        return fail_at(c, llm_json_get(obj, "type"), LLM_ERR_UNSUPPORTED, path,
                       "normalizer type \"%s\" is not supported", type);
    }
    return add_norm(c, n);
}

/* ---------------------------------------------------------------------------------------------- */
/* Pre-tokenizers                                                                                   */

static llm_status add_pretok(ld *c, tok_pretok p) {
    llm_tokenizer *t = c->t;
    tok_pretok *v = realloc(t->pretoks, (t->n_pretoks + 1) * sizeof *v);
    if (!v) {
        tok_regex_free(&p.pattern);
        return oom(c);
    }
    t->pretoks = v;
    t->pretoks[t->n_pretoks++] = p;
    return LLM_OK;
}

/* The GPT-2 pattern of ByteLevel's use_regex and the one of the Whitespace pre-tokenizer. */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char WHITESPACE_PATTERN[] = "\\w+|[^\\w\\s]+";

static llm_status builtin_regex(ld *c, tok_regex *re, const char *pattern, const char *path) {
    char where[PATH_CAP + 64];
    snprintf(where, sizeof where, "%s: %s", c->name, path);
    return tok_regex_compile(re, pattern, strlen(pattern), 0, where, c->err);
}

static llm_status parse_pretok(ld *c, const llm_json *obj, const char *path, int depth) {
    if (absent(obj)) return LLM_OK;
    if (depth > 16) return fail_at(c, obj, LLM_ERR_UNSUPPORTED, path, "pre-tokenizers nested too deeply");
    const char *type;
    llm_status st = get_type(c, obj, path, "pre-tokenizer", &type);
    if (st != LLM_OK) return st;
    tok_pretok p;
    memset(&p, 0, sizeof p);
    if (strcmp(type, "Sequence") == 0) {
        const llm_json *list = llm_json_get(obj, "pretokenizers");
        char q[PATH_CAP];
        subpath(q, path, "pretokenizers");
        if (!llm_json_is_array(list))
            return fail_at(c, list ? list : obj, LLM_ERR_BAD_FORMAT, q, "expected an array");
        for (size_t i = 0; i < llm_json_count(list); i++) {
            indexpath(q, path, "pretokenizers", i);
            if ((st = parse_pretok(c, llm_json_value_at(list, i), q, depth + 1)) != LLM_OK) return st;
        }
        return LLM_OK;
    }
    if (strcmp(type, "Split") == 0) {
        p.type = TOK_PT_SPLIT;
        if ((st = get_behavior(c, obj, path, TOK_SPLIT_ISOLATED, &p.behavior)) != LLM_OK) return st;
        if (absent(llm_json_get(obj, "behavior"))) {
            char q[PATH_CAP];
            subpath(q, path, "behavior");
            return fail_at(c, obj, LLM_ERR_BAD_FORMAT, q, "required split behavior is missing");
        }
        if ((st = get_bool(c, obj, "invert", path, &p.invert)) != LLM_OK) return st;
        if ((st = get_pattern(c, obj, path, &p.pattern)) != LLM_OK) return st;
        const llm_json *rx = llm_json_get(llm_json_get(obj, "pattern"), "Regex");
        if (rx && !p.invert) {
            size_t len;
            const char *s = llm_json_string(rx, &len);
            p.fast = tok_fast_split_detect(s, len);
        }
    } else if (strcmp(type, "ByteLevel") == 0) {
        p.type = TOK_PT_BYTE_LEVEL;
        p.add_prefix_space = 1;
        p.use_regex = 1;
        if ((st = get_bool(c, obj, "add_prefix_space", path, &p.add_prefix_space)) != LLM_OK) return st;
        if ((st = get_bool(c, obj, "use_regex", path, &p.use_regex)) != LLM_OK) return st;
        if (p.use_regex && (st = builtin_regex(c, &p.pattern, GPT2_PATTERN, path)) != LLM_OK) return st;
    } else if (strcmp(type, "Metaspace") == 0) {
        p.type = TOK_PT_METASPACE;
        p.split = 1;
        if ((st = get_char(c, obj, "replacement", path, 1, &p.replacement)) != LLM_OK) return st;
        p.repl_len = llm_utf8_encode(p.replacement, p.repl_utf8);
        if ((st = get_prepend_scheme(c, obj, path, &p.prepend_scheme)) != LLM_OK) return st;
        if ((st = get_bool(c, obj, "split", path, &p.split)) != LLM_OK) return st;
    } else if (strcmp(type, "Digits") == 0) {
        p.type = TOK_PT_DIGITS;
        if ((st = get_bool(c, obj, "individual_digits", path, &p.individual_digits)) != LLM_OK) return st;
    } else if (strcmp(type, "Whitespace") == 0) {
        p.type = TOK_PT_WHITESPACE;
        if ((st = builtin_regex(c, &p.pattern, WHITESPACE_PATTERN, path)) != LLM_OK) return st;
    } else if (strcmp(type, "WhitespaceSplit") == 0) {
        p.type = TOK_PT_WHITESPACE_SPLIT;
    } else if (strcmp(type, "Punctuation") == 0) {
        p.type = TOK_PT_PUNCTUATION;
        if ((st = get_behavior(c, obj, path, TOK_SPLIT_ISOLATED, &p.behavior)) != LLM_OK) return st;
    } else if (strcmp(type, "BertPreTokenizer") == 0) {
        /* = WhitespaceSplit, then Punctuation with Isolated */
        p.type = TOK_PT_WHITESPACE_SPLIT;
        if ((st = add_pretok(c, p)) != LLM_OK) return st;
        p.type = TOK_PT_PUNCTUATION;
        p.behavior = TOK_SPLIT_ISOLATED;
    } else if (strcmp(type, "CharDelimiterSplit") == 0) {
        p.type = TOK_PT_CHAR_DELIMITER;
        if ((st = get_char(c, obj, "delimiter", path, 1, &p.delimiter)) != LLM_OK) return st;
    } else {
        return fail_at(c, llm_json_get(obj, "type"), LLM_ERR_UNSUPPORTED, path,
                       "pre-tokenizer type \"%s\" is not supported", type);
    }
    return add_pretok(c, p);
}

/* ---------------------------------------------------------------------------------------------- */
/* Decoders                                                                                         */

static llm_status add_dec(ld *c, tok_decoder d) {
    llm_tokenizer *t = c->t;
    tok_decoder *v = realloc(t->decs, (t->n_decs + 1) * sizeof *v);
    if (!v) {
        tok_regex_free(&d.pattern);
        free(d.str);
        return oom(c);
    }
    t->decs = v;
    t->decs[t->n_decs++] = d;
    return LLM_OK;
}

static llm_status parse_decoder(ld *c, const llm_json *obj, const char *path, int depth) {
    if (absent(obj)) return LLM_OK;
    if (depth > 16) return fail_at(c, obj, LLM_ERR_UNSUPPORTED, path, "decoders nested too deeply");
    const char *type;
    llm_status st = get_type(c, obj, path, "decoder", &type);
    if (st != LLM_OK) return st;
    c->t->has_decoder = 1;
    tok_decoder d;
    memset(&d, 0, sizeof d);
    const char *s;
    size_t len;
    if (strcmp(type, "Sequence") == 0) {
        const llm_json *list = llm_json_get(obj, "decoders");
        char q[PATH_CAP];
        subpath(q, path, "decoders");
        if (!llm_json_is_array(list))
            return fail_at(c, list ? list : obj, LLM_ERR_BAD_FORMAT, q, "expected an array");
        for (size_t i = 0; i < llm_json_count(list); i++) {
            indexpath(q, path, "decoders", i);
            if ((st = parse_decoder(c, llm_json_value_at(list, i), q, depth + 1)) != LLM_OK) return st;
        }
        return LLM_OK;
    }
    if (strcmp(type, "ByteLevel") == 0)
        d.type = TOK_DEC_BYTE_LEVEL;
    else if (strcmp(type, "ByteFallback") == 0)
        d.type = TOK_DEC_BYTE_FALLBACK;
    else if (strcmp(type, "Fuse") == 0)
        d.type = TOK_DEC_FUSE;
    else if (strcmp(type, "Metaspace") == 0) {
        d.type = TOK_DEC_METASPACE;
        if ((st = get_char(c, obj, "replacement", path, 1, &d.cp)) != LLM_OK) return st;
        if ((st = get_prepend_scheme(c, obj, path, &d.prepend_scheme)) != LLM_OK) return st;
    } else if (strcmp(type, "Strip") == 0) {
        d.type = TOK_DEC_STRIP;
        if ((st = get_char(c, obj, "content", path, 1, &d.cp)) != LLM_OK) return st;
        if ((st = get_uint(c, obj, "start", path, 1 << 20, &d.start)) != LLM_OK) return st;
        if ((st = get_uint(c, obj, "stop", path, 1 << 20, &d.stop)) != LLM_OK) return st;
    } else if (strcmp(type, "Replace") == 0) {
        d.type = TOK_DEC_REPLACE;
        if ((st = get_str(c, obj, "content", path, 1, &s, &len)) != LLM_OK) return st;
        if ((st = get_pattern(c, obj, path, &d.pattern)) != LLM_OK) return st;
        if (!(d.str = dup_bytes(s, len))) {
            tok_regex_free(&d.pattern);
            return oom(c);
        }
        d.str_len = len;
    } else if (strcmp(type, "WordPiece") == 0) {
        d.type = TOK_DEC_WORDPIECE;
        d.cleanup = 1;
        if ((st = get_str(c, obj, "prefix", path, 0, &s, &len)) != LLM_OK) return st;
        if (!s) s = "##", len = 2;
        if ((st = get_bool(c, obj, "cleanup", path, &d.cleanup)) != LLM_OK) return st;
        if (!(d.str = dup_bytes(s, len))) return oom(c);
        d.str_len = len;
    } else if (strcmp(type, "BPEDecoder") == 0) {
        d.type = TOK_DEC_BPE;
        if ((st = get_str(c, obj, "suffix", path, 0, &s, &len)) != LLM_OK) return st;
        if (!s) s = "</w>", len = 4;
        if (!(d.str = dup_bytes(s, len))) return oom(c);
        d.str_len = len;
    } else {
        return fail_at(c, llm_json_get(obj, "type"), LLM_ERR_UNSUPPORTED, path,
                       "decoder type \"%s\" is not supported", type);
    }
    return add_dec(c, d);
}

/* ---------------------------------------------------------------------------------------------- */
/* Post-processors                                                                                  */

static llm_status ids_append(ld *c, int32_t **v, size_t *n, const int32_t *src, size_t k, int front) {
    if (k == 0) return LLM_OK;
    int32_t *nv = realloc(*v, (*n + k + 1) * sizeof *nv);
    if (!nv) return oom(c);
    if (front) {
        memmove(nv + k, nv, *n * sizeof *nv);
        memcpy(nv, src, k * sizeof *nv);
    } else {
        memcpy(nv + *n, src, k * sizeof *nv);
    }
    *v = nv;
    *n += k;
    return LLM_OK;
}

static llm_status check_id(ld *c, const llm_json *v, const char *path, int32_t *id) {
    int64_t x;
    if (llm_json_int64(v, &x) != 0 || x < 0 || x >= c->t->n_vocab)
        return fail_at(c, v, LLM_ERR_BAD_FORMAT, path, "token id must be an integer from 0 to %d",
                       c->t->n_vocab - 1);
    *id = (int32_t)x;
    return LLM_OK;
}

/* Wraps the current single-sequence template: new = prefix + old + suffix. */
static llm_status wrap_post(ld *c, const int32_t *pre, size_t npre, const int32_t *suf, size_t nsuf) {
    llm_status st = ids_append(c, &c->t->post.prefix, &c->t->post.n_prefix, pre, npre, 1);
    if (st == LLM_OK) st = ids_append(c, &c->t->post.suffix, &c->t->post.n_suffix, suf, nsuf, 0);
    return st;
}

/* RobertaProcessing / BertProcessing: "sep": ["</s>", 2], "cls": ["<s>", 0] */
static llm_status parse_pair_token(ld *c, const llm_json *obj, const char *key, const char *path,
                                   int32_t *id) {
    const llm_json *v = llm_json_get(obj, key);
    char p[PATH_CAP];
    subpath(p, path, key);
    if (!llm_json_is_array(v) || llm_json_count(v) != 2 || !llm_json_is_string(llm_json_value_at(v, 0)))
        return fail_at(c, v ? v : obj, LLM_ERR_BAD_FORMAT, p, "expected [\"token\", id]");
    char q[PATH_CAP];
    indexpath(q, path, key, 1);
    return check_id(c, llm_json_value_at(v, 1), q, id);
}

static llm_status parse_template(ld *c, const llm_json *obj, const char *path) {
    const llm_json *single = llm_json_get(obj, "single");
    const llm_json *specials = llm_json_get(obj, "special_tokens");
    char p[PATH_CAP];
    subpath(p, path, "single");
    if (!llm_json_is_array(single))
        return fail_at(c, single ? single : obj, LLM_ERR_BAD_FORMAT, p,
                       "expected an array of template pieces");
    int32_t *pre = NULL, *suf = NULL;
    size_t npre = 0, nsuf = 0;
    int seen_a = 0;
    llm_status st = LLM_OK;
    for (size_t i = 0; i < llm_json_count(single) && st == LLM_OK; i++) {
        const llm_json *piece = llm_json_value_at(single, i);
        char q[PATH_CAP];
        indexpath(q, path, "single", i);
        const llm_json *seq = llm_json_get(piece, "Sequence");
        const llm_json *sp = llm_json_get(piece, "SpecialToken");
        if (llm_json_is_object(seq)) {
            size_t len;
            const char *id = llm_json_string(llm_json_get(seq, "id"), &len);
            if (!id || strcmp(id, "A") != 0 || seen_a) {
                st = fail_at(c, seq, LLM_ERR_UNSUPPORTED, q,
                             "a single-sequence template must hold $A exactly once");
                break;
            }
            seen_a = 1;
        } else if (llm_json_is_object(sp)) {
            size_t len;
            const char *name = llm_json_string(llm_json_get(sp, "id"), &len);
            const llm_json *entry = name ? llm_json_get_n(specials, name, len) : NULL;
            if (!name) {
                st = fail_at(c, sp, LLM_ERR_BAD_FORMAT, q, "SpecialToken needs a string \"id\"");
                break;
            }
            if (!entry) {
                st = fail_at(c, sp, LLM_ERR_BAD_FORMAT, q, "special token \"%s\" is not in special_tokens",
                             name);
                break;
            }
            const llm_json *ids = llm_json_get(entry, "ids");
            char r[PATH_CAP];
            snprintf(r, sizeof r, "%s.special_tokens.%s.ids", path, name);
            if (!llm_json_is_array(ids)) {
                st = fail_at(c, entry, LLM_ERR_BAD_FORMAT, r, "expected an array of ids");
                break;
            }
            for (size_t k = 0; k < llm_json_count(ids) && st == LLM_OK; k++) {
                int32_t id = 0;
                char r2[PATH_CAP + 16];
                snprintf(r2, sizeof r2, "%s[%zu]", r, k);
                st = check_id(c, llm_json_value_at(ids, k), r2, &id);
                if (st == LLM_OK) st = ids_append(c, seen_a ? &suf : &pre, seen_a ? &nsuf : &npre, &id, 1, 0);
            }
        } else {
            st = fail_at(c, piece, LLM_ERR_BAD_FORMAT, q,
                         "expected {\"Sequence\": {...}} or {\"SpecialToken\": {...}}");
        }
    }
    if (st == LLM_OK && !seen_a)
        st = fail_at(c, single, LLM_ERR_UNSUPPORTED, p,
                     "a single-sequence template must hold $A exactly once");
    if (st == LLM_OK) st = wrap_post(c, pre, npre, suf, nsuf);
    free(pre);
    free(suf);
    return st;
}

static llm_status parse_post(ld *c, const llm_json *obj, const char *path, int depth) {
    if (absent(obj)) return LLM_OK;
    if (depth > 16) return fail_at(c, obj, LLM_ERR_UNSUPPORTED, path, "post-processors nested too deeply");
    const char *type;
    llm_status st = get_type(c, obj, path, "post-processor", &type);
    if (st != LLM_OK) return st;
    c->t->has_post = 1;
    if (strcmp(type, "Sequence") == 0) {
        const llm_json *list = llm_json_get(obj, "processors");
        char q[PATH_CAP];
        subpath(q, path, "processors");
        if (!llm_json_is_array(list))
            return fail_at(c, list ? list : obj, LLM_ERR_BAD_FORMAT, q, "expected an array");
        for (size_t i = 0; i < llm_json_count(list); i++) {
            indexpath(q, path, "processors", i);
            if ((st = parse_post(c, llm_json_value_at(list, i), q, depth + 1)) != LLM_OK) return st;
        }
        return LLM_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) return LLM_OK; /* only trims offsets */
    if (strcmp(type, "TemplateProcessing") == 0) return parse_template(c, obj, path);
    if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0) {
        int32_t cls = 0, sep = 0;
        if ((st = parse_pair_token(c, obj, "cls", path, &cls)) != LLM_OK) return st;
        if ((st = parse_pair_token(c, obj, "sep", path, &sep)) != LLM_OK) return st;
        return wrap_post(c, &cls, 1, &sep, 1);
    }
    return fail_at(c, llm_json_get(obj, "type"), LLM_ERR_UNSUPPORTED, path,
                   "post-processor type \"%s\" is not supported", type);
}

/* ---------------------------------------------------------------------------------------------- */
/* The BPE model                                                                                    */

static llm_status parse_vocab(ld *c, const llm_json *vocab) {
    llm_tokenizer *t = c->t;
    if (!llm_json_is_object(vocab))
        return fail_at(c, vocab, LLM_ERR_BAD_FORMAT, "model.vocab",
                       "expected an object mapping tokens to ids, got %s",
                       llm_json_type_name(llm_json_type_of(vocab)));
    size_t n = llm_json_count(vocab);
    if (n == 0) return fail_at(c, vocab, LLM_ERR_BAD_FORMAT, "model.vocab", "the vocabulary is empty");
    if (n > (size_t)INT32_MAX / 2)
        return fail_at(c, vocab, LLM_ERR_BAD_FORMAT, "model.vocab", "%zu entries are too many", n);
    if (tok_map_init(&t->vocab, n) != 0) return oom(c);
    t->model_size = (int32_t)n;
    t->piece_off = malloc(n * sizeof *t->piece_off);
    t->piece_len = malloc(n * sizeof *t->piece_len);
    if (!t->piece_off || !t->piece_len) return oom(c);
    for (size_t i = 0; i < n; i++) t->piece_len[i] = UINT32_MAX;
    for (size_t i = 0; i < n; i++) {
        size_t klen;
        const char *key = llm_json_key_at(vocab, i, &klen);
        const llm_json *v = llm_json_value_at(vocab, i);
        char p[PATH_CAP];
        snprintf(p, sizeof p, "model.vocab[\"%.60s\"]", key);
        int64_t id;
        if (llm_json_int64(v, &id) != 0 || id < 0)
            return fail_at(c, v, LLM_ERR_BAD_FORMAT, p, "expected a non-negative integer id");
        if (id >= (int64_t)n)
            return fail_at(c, v, LLM_ERR_BAD_FORMAT, p,
                           "id %lld is beyond the vocabulary (%zu entries; ids must be 0..%zu)",
                           (long long)id, n, n - 1);
        if (t->piece_len[id] != UINT32_MAX) {
            const char *other = t->vocab.pool + t->piece_off[id];
            return fail_at(c, v, LLM_ERR_BAD_FORMAT, p, "duplicate id %lld (also \"%.60s\")", (long long)id,
                           other);
        }
        uint32_t off;
        int32_t r = tok_map_put(&t->vocab, key, klen, (int32_t)id, &off);
        if (r == -2) return oom(c);
        if (r >= 0) return fail_at(c, v, LLM_ERR_BAD_FORMAT, p, "duplicate token (also id %d)", r);
        t->piece_off[id] = off;
        t->piece_len[id] = (uint32_t)klen;
    }
    return LLM_OK;
}

static llm_status merge_part(ld *c, const llm_json *at, const char *path, const char *s, size_t len,
                             int32_t *id) {
    *id = tok_map_get(&c->t->vocab, s, len);
    if (*id < 0)
        return fail_at(c, at, LLM_ERR_BAD_FORMAT, path, "\"%.*s\" is not in model.vocab",
                       (int)(len > 80 ? 80 : len), s);
    return LLM_OK;
}

static llm_status parse_merges(ld *c, const llm_json *merges) {
    llm_tokenizer *t = c->t;
    if (!llm_json_is_array(merges))
        return fail_at(c, merges, LLM_ERR_BAD_FORMAT, "model.merges", "expected an array, got %s",
                       llm_json_type_name(llm_json_type_of(merges)));
    size_t n = llm_json_count(merges);
    if (tok_merge_map_init(&t->merges, n) != 0 || tok_merge_map_init(&t->junctions, 1024) != 0) return oom(c);
    /* first and last code point of every vocabulary entry, for the junction table */
    t->first_cp = malloc((size_t)t->model_size * sizeof *t->first_cp);
    t->last_cp = malloc((size_t)t->model_size * sizeof *t->last_cp);
    if (!t->first_cp || !t->last_cp) return oom(c);
    for (int32_t id = 0; id < t->model_size; id++) {
        const uint8_t *p = (const uint8_t *)t->vocab.pool + t->piece_off[id];
        size_t len = t->piece_len[id];
        t->first_cp[id] = t->last_cp[id] = UINT32_MAX;
        if (!len) continue;
        tok_utf8_next(p, len, &t->first_cp[id]);
        size_t k = tok_utf8_last_len(p, len);
        tok_utf8_next(p + len - k, k, &t->last_cp[id]);
    }
    llm_strbuf joined = LLM_STRBUF_INIT;
    uint32_t rank = 0;
    llm_status st = LLM_OK;
    for (size_t i = 0; i < n && st == LLM_OK; i++) {
        const llm_json *m = llm_json_value_at(merges, i);
        char p[PATH_CAP];
        snprintf(p, sizeof p, "model.merges[%zu]", i);
        const char *a, *b;
        size_t alen, blen;
        if (llm_json_is_string(m)) {
            size_t len;
            const char *s = llm_json_string(m, &len);
            if (len >= 8 && memcmp(s, "#version", 8) == 0) continue; /* as HF's legacy reader */
            const char *sp = memchr(s, ' ', len);
            if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - s))) {
                st = fail_at(c, m, LLM_ERR_BAD_FORMAT, p, "\"%.*s\" is not two tokens separated by one space",
                             (int)(len > 80 ? 80 : len), s);
                break;
            }
            a = s, alen = (size_t)(sp - s);
            b = sp + 1, blen = len - alen - 1;
        } else if (llm_json_is_array(m) && llm_json_count(m) == 2 &&
                   llm_json_is_string(llm_json_value_at(m, 0)) &&
                   llm_json_is_string(llm_json_value_at(m, 1))) {
            a = llm_json_string(llm_json_value_at(m, 0), &alen);
            b = llm_json_string(llm_json_value_at(m, 1), &blen);
        } else {
            st = fail_at(c, m, LLM_ERR_BAD_FORMAT, p, "expected \"left right\" or [\"left\", \"right\"]");
            break;
        }
        int32_t ia, ib, inew;
        if ((st = merge_part(c, m, p, a, alen, &ia)) != LLM_OK) break;
        if ((st = merge_part(c, m, p, b, blen, &ib)) != LLM_OK) break;
        /* the merged token drops the right part's continuing_subword_prefix */
        size_t skip = t->cont_prefix_len;
        if (skip && (blen < skip || memcmp(b, t->cont_prefix, skip) != 0)) {
            st = fail_at(c, m, LLM_ERR_BAD_FORMAT, p,
                         "right part \"%.*s\" does not start with the continuing_subword_prefix",
                         (int)(blen > 80 ? 80 : blen), b);
            break;
        }
        llm_strbuf_clear(&joined);
        llm_strbuf_append(&joined, a, alen);
        llm_strbuf_append(&joined, b + skip, blen - skip);
        if (joined.oom) {
            st = oom(c);
            break;
        }
        inew = tok_map_get(&t->vocab, joined.data, joined.len);
        if (inew < 0) {
            st = fail_at(c, m, LLM_ERR_BAD_FORMAT, p, "the merged token \"%.*s\" is not in model.vocab",
                         (int)(joined.len > 80 ? 80 : joined.len), joined.data);
            break;
        }
        if (tok_merge_map_put(&t->merges, ia, ib, rank++, inew) != 0 ||
            tok_merge_map_put(&t->junctions, (int32_t)t->last_cp[ia], (int32_t)t->first_cp[ib], 0, 0) != 0)
            st = oom(c);
    }
    llm_strbuf_free(&joined);
    return st;
}

static llm_status parse_model(ld *c, const llm_json *model) {
    llm_tokenizer *t = c->t;
    if (!llm_json_is_object(model))
        return fail_at(c, model, LLM_ERR_BAD_FORMAT, "model", "expected an object, got %s",
                       llm_json_type_name(llm_json_type_of(model)));
    const char *type;
    size_t len;
    llm_status st = get_str(c, model, "type", "model", 0, &type, &len);
    if (st != LLM_OK) return st;
    if (type ? strcmp(type, "BPE") != 0 : !llm_json_get(model, "merges")) {
        if (!type)
            return fail_at(c, model, LLM_ERR_UNSUPPORTED, "model",
                           "a model without \"type\" or BPE merges is not supported");
        return fail_at(c, llm_json_get(model, "type"), LLM_ERR_UNSUPPORTED, "model.type",
                       "model type \"%s\" is not supported", type);
    }
    const llm_json *dropout = llm_json_get(model, "dropout");
    if (!absent(dropout) && !(llm_json_is_number(dropout) && llm_json_number(dropout) == 0.0))
        return fail_at(c, dropout, LLM_ERR_UNSUPPORTED, "model.dropout",
                       "BPE dropout is not supported (must be null)");
    if ((st = get_bool(c, model, "fuse_unk", "model", &t->fuse_unk)) != LLM_OK) return st;
    if ((st = get_bool(c, model, "byte_fallback", "model", &t->byte_fallback)) != LLM_OK) return st;
    if ((st = get_bool(c, model, "ignore_merges", "model", &t->ignore_merges)) != LLM_OK) return st;
    const char *s;
    if ((st = get_str(c, model, "unk_token", "model", 0, &s, &len)) != LLM_OK) return st;
    if (s && !(t->unk_token = dup_bytes(s, len))) return oom(c);
    if ((st = get_str(c, model, "continuing_subword_prefix", "model", 0, &s, &len)) != LLM_OK) return st;
    if (s && len) {
        if (!(t->cont_prefix = dup_bytes(s, len))) return oom(c);
        t->cont_prefix_len = len;
    }
    if ((st = get_str(c, model, "end_of_word_suffix", "model", 0, &s, &len)) != LLM_OK) return st;
    if (s && len) {
        if (!(t->eow_suffix = dup_bytes(s, len))) return oom(c);
        t->eow_suffix_len = len;
    }
    const llm_json *vocab = llm_json_get(model, "vocab");
    const llm_json *merges = llm_json_get(model, "merges");
    if (!vocab) return fail_at(c, model, LLM_ERR_BAD_FORMAT, "model", "required \"vocab\" is missing");
    if (!merges) return fail_at(c, model, LLM_ERR_BAD_FORMAT, "model", "required \"merges\" is missing");
    if ((st = parse_vocab(c, vocab)) != LLM_OK) return st;
    if ((st = parse_merges(c, merges)) != LLM_OK) return st;
    t->unk_id = t->unk_token ? tok_map_get(&t->vocab, t->unk_token, strlen(t->unk_token)) : -1;
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_fallback_id[b] = tok_map_get(&t->vocab, name, 6);
    }
    return LLM_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Added tokens                                                                                     */

static llm_status parse_added(ld *c, const llm_json *list) {
    llm_tokenizer *t = c->t;
    if (absent(list)) list = NULL;
    if (list && !llm_json_is_array(list))
        return fail_at(c, list, LLM_ERR_BAD_FORMAT, "added_tokens", "expected an array");
    size_t n = llm_json_count(list);
    if (tok_map_init(&t->added_map, n) != 0) return oom(c);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added) return oom(c);
    int32_t max_added = -1;
    for (size_t i = 0; i < n; i++) {
        const llm_json *o = llm_json_value_at(list, i);
        char p[PATH_CAP];
        snprintf(p, sizeof p, "added_tokens[%zu]", i);
        if (!llm_json_is_object(o)) return fail_at(c, o, LLM_ERR_BAD_FORMAT, p, "expected an object");
        const char *content;
        size_t len;
        llm_status st = get_str(c, o, "content", p, 1, &content, &len);
        if (st != LLM_OK) return st;
        int64_t file_id = -1;
        const llm_json *idv = llm_json_get(o, "id");
        if (llm_json_int64(idv, &file_id) != 0 || file_id < 0 || file_id > INT32_MAX - 1) {
            char q[PATH_CAP];
            subpath(q, p, "id");
            return fail_at(c, idv ? idv : o, LLM_ERR_BAD_FORMAT, q, "expected a non-negative integer id");
        }
        int special = 0, lstrip = 0, rstrip = 0, single_word = 0, normalized = -1;
        if ((st = get_bool(c, o, "special", p, &special)) != LLM_OK) return st;
        if ((st = get_bool(c, o, "lstrip", p, &lstrip)) != LLM_OK) return st;
        if ((st = get_bool(c, o, "rstrip", p, &rstrip)) != LLM_OK) return st;
        if ((st = get_bool(c, o, "single_word", p, &single_word)) != LLM_OK) return st;
        if ((st = get_bool(c, o, "normalized", p, &normalized)) != LLM_OK) return st;
        if (normalized < 0) normalized = !special;
        if (len == 0) continue; /* HF ignores empty added tokens */
        /* HF assigns the id itself: the id of the same content if known, else the next free one */
        int32_t idx = tok_map_get(&t->added_map, content, len);
        int32_t id;
        if (idx >= 0)
            id = t->added[idx].id;
        else {
            id = tok_map_get(&t->vocab, content, len);
            if (id < 0) id = max_added >= t->model_size ? max_added + 1 : t->model_size;
        }
        if (id != file_id)
            llm_log(&t->log, LLM_LOG_WARN,
                    "%s: %s: token \"%.60s\" has id %lld in the file but %d by the rules of HF tokenizers; "
                    "using %d",
                    c->name, p, content, (long long)file_id, id, id);
        if (id > max_added) max_added = id;
        tok_added *a;
        if (idx >= 0) {
            a = &t->added[idx]; /* the later definition's flags win; special never reverts */
            special |= a->special;
        } else {
            a = &t->added[t->n_added];
            if (!(a->content = dup_bytes(content, len))) return oom(c);
            a->len = len;
            if (tok_map_put(&t->added_map, content, len, (int32_t)t->n_added, NULL) == -2) return oom(c);
            t->n_added++;
        }
        a->id = id;
        a->special = (uint8_t)special;
        a->lstrip = (uint8_t)lstrip;
        a->rstrip = (uint8_t)rstrip;
        a->single_word = (uint8_t)single_word;
        a->normalized = (uint8_t)normalized;
    }
    return LLM_OK;
}

/* id -> string table over model vocabulary and added tokens; special flags; tries. */
static llm_status build_tables(ld *c) {
    llm_tokenizer *t = c->t;
    int32_t n_vocab = t->model_size;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].id + 1 > n_vocab) n_vocab = t->added[i].id + 1;
    t->n_vocab = n_vocab;
    uint32_t *off = realloc(t->piece_off, (size_t)n_vocab * sizeof *off);
    if (!off) return oom(c);
    t->piece_off = off;
    uint32_t *plen = realloc(t->piece_len, (size_t)n_vocab * sizeof *plen);
    if (!plen) return oom(c);
    t->piece_len = plen;
    t->special = calloc((size_t)n_vocab, 1);
    if (!t->special) return oom(c);
    /* model pieces live in the vocab map's pool; copy them and the added ones into one pool */
    llm_strbuf *pool = &t->pieces;
    if (llm_strbuf_reserve(pool, 1) != 0) return oom(c); /* data is never NULL, even if all tokens are "" */
    for (int32_t id = 0; id < n_vocab; id++) {
        if (id < t->model_size) {
            uint32_t o = t->piece_off[id], l = t->piece_len[id];
            t->piece_off[id] = (uint32_t)pool->len;
            llm_strbuf_append(pool, t->vocab.pool + o, l);
        } else {
            t->piece_len[id] = UINT32_MAX;
        }
    }
    for (size_t i = 0; i < t->n_added; i++) {
        tok_added *a = &t->added[i];
        if (a->id < t->model_size) continue; /* same content as the vocabulary entry */
        t->piece_off[a->id] = (uint32_t)pool->len;
        t->piece_len[a->id] = (uint32_t)a->len;
        llm_strbuf_append(pool, a->content, a->len);
    }
    if (pool->oom || pool->len > UINT32_MAX) return oom(c);
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].special) t->special[t->added[i].id] = 1;

    /* tries: special tokens first, then the others (HF's pattern order), by raw or normalized content */
    if (tok_trie_init(&t->trie_raw) != 0 || tok_trie_init(&t->trie_norm) != 0) return oom(c);
    int need_word_re = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < t->n_added; i++) {
            tok_added *a = &t->added[i];
            if ((pass == 0) != (a->special != 0)) continue;
            need_word_re |= a->single_word;
            if (!a->normalized) {
                if (tok_trie_add(&t->trie_raw, a->content, a->len, (int32_t)i) != 0) return oom(c);
                continue;
            }
            llm_strbuf nb = LLM_STRBUF_INIT;
            llm_status st = tok_normalize(t, a->content, a->len, &nb);
            if (st != LLM_OK) {
                llm_strbuf_free(&nb);
                return st;
            }
            if (nb.oom) return oom(c);
            a->norm = llm_strbuf_detach(&nb, &a->norm_len);
            if (!a->norm) return oom(c);
            if (a->norm_len && tok_trie_add(&t->trie_norm, a->norm, a->norm_len, (int32_t)i) != 0)
                return oom(c);
        }
    }
    if (need_word_re) {
        /* the regex crate's \w, which HF's single_word check uses */
        char where[PATH_CAP];
        snprintf(where, sizeof where, "%s: single_word check", c->name);
        static const char word[] = "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]";
        llm_status st = tok_regex_compile(&t->word_re, word, sizeof word - 1, 0, where, c->err);
        if (st != LLM_OK) return st;
        t->has_word_re = 1;
    }
    return LLM_OK;
}

/* ByteLevel as the last pre-tokenizer: let BPE start from the byte symbols directly. */
static llm_status setup_byte_level(ld *c) {
    llm_tokenizer *t = c->t;
    if (t->n_pretoks == 0 || t->pretoks[t->n_pretoks - 1].type != TOK_PT_BYTE_LEVEL) return LLM_OK;
    if (t->cont_prefix || t->eow_suffix) return LLM_OK;
    for (int b = 0; b < 256; b++) {
        char u[4];
        size_t n = llm_utf8_encode(tok_byte_to_cp((uint8_t)b), u);
        t->byte_level_id[b] = tok_map_get(&t->vocab, u, n);
        if (t->byte_level_id[b] < 0) return LLM_OK; /* a byte the vocabulary lacks: take the general path */
    }
    if (tok_map_init(&t->raw_vocab, (size_t)t->model_size) != 0) return oom(c);
    llm_strbuf raw = LLM_STRBUF_INIT;
    for (int32_t id = 0; id < t->model_size; id++) {
        const uint8_t *s = (const uint8_t *)t->pieces.data + t->piece_off[id];
        size_t len = t->piece_len[id], i = 0;
        llm_strbuf_clear(&raw);
        while (i < len) {
            uint32_t cp;
            i += tok_utf8_next(s + i, len - i, &cp);
            int b = tok_cp_to_byte(cp);
            if (b < 0) break;
            llm_strbuf_append_char(&raw, (char)b);
        }
        if (i < len || len == 0) continue; /* not made of byte characters only: BPE can never produce it */
        if (raw.oom || tok_map_put(&t->raw_vocab, raw.data, raw.len, id, NULL) == -2) {
            llm_strbuf_free(&raw);
            return oom(c);
        }
    }
    llm_strbuf_free(&raw);
    t->byte_level_mode = 1;
    t->pretoks[t->n_pretoks - 1].deferred = 1;
    return LLM_OK;
}

llm_status tok_load_tokenizer_json(llm_tokenizer *t, const char *name, const char *text, size_t len) {
    ld c = {t, name, text, len, &t->err};
    llm_json_doc *doc = NULL;
    char jerr[512];
    if (llm_json_parse(text, len, &doc, jerr, sizeof jerr) != 0)
        return llm_fail(&t->err, LLM_ERR_BAD_JSON, "%s: %s", name, jerr);
    const llm_json *root = llm_json_root(doc);
    llm_status st = LLM_OK;
    if (!llm_json_is_object(root)) {
        st = fail_at(&c, root, LLM_ERR_BAD_FORMAT, "", "expected a JSON object");
        goto done;
    }
    const llm_json *model = llm_json_get(root, "model");
    if (!model) {
        st = fail_at(&c, root, LLM_ERR_BAD_FORMAT, "", "required \"model\" is missing");
        goto done;
    }
    if (!absent(llm_json_get(root, "truncation")) || !absent(llm_json_get(root, "padding")))
        llm_log(&t->log, LLM_LOG_WARN, "%s: truncation and padding settings are ignored", name);
    if ((st = parse_model(&c, model)) != LLM_OK) goto done;
    if ((st = parse_normalizer(&c, llm_json_get(root, "normalizer"), "normalizer", 0)) != LLM_OK) goto done;
    if ((st = parse_pretok(&c, llm_json_get(root, "pre_tokenizer"), "pre_tokenizer", 0)) != LLM_OK) goto done;
    if ((st = parse_decoder(&c, llm_json_get(root, "decoder"), "decoder", 0)) != LLM_OK) goto done;
    if ((st = parse_added(&c, llm_json_get(root, "added_tokens"))) != LLM_OK) goto done;
    if ((st = build_tables(&c)) != LLM_OK) goto done;
    if ((st = parse_post(&c, llm_json_get(root, "post_processor"), "post_processor", 0)) != LLM_OK) goto done;
    if ((st = setup_byte_level(&c)) != LLM_OK) goto done;
done:
    llm_json_doc_free(doc);
    return st;
}

void tok_free_components(llm_tokenizer *t) {
    for (size_t i = 0; i < t->n_norms; i++) {
        tok_regex_free(&t->norms[i].pattern);
        free(t->norms[i].str);
    }
    free(t->norms);
    for (size_t i = 0; i < t->n_pretoks; i++) tok_regex_free(&t->pretoks[i].pattern);
    free(t->pretoks);
    for (size_t i = 0; i < t->n_decs; i++) {
        tok_regex_free(&t->decs[i].pattern);
        free(t->decs[i].str);
    }
    free(t->decs);
    free(t->post.prefix);
    free(t->post.suffix);
    for (size_t i = 0; i < t->n_added; i++) {
        free(t->added[i].content);
        free(t->added[i].norm);
    }
    free(t->added);
    tok_map_free(&t->added_map);
    tok_trie_free(&t->trie_raw);
    tok_trie_free(&t->trie_norm);
    tok_regex_free(&t->word_re);
    tok_map_free(&t->vocab);
    tok_map_free(&t->raw_vocab);
    tok_merge_map_free(&t->merges);
    tok_merge_map_free(&t->junctions);
    free(t->first_cp);
    free(t->last_cp);
    free(t->unk_token);
    free(t->cont_prefix);
    free(t->eow_suffix);
    free(t->piece_off);
    free(t->piece_len);
    llm_strbuf_free(&t->pieces);
    free(t->special);
}
