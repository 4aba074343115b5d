/* Normalizers: Unicode normal forms (utf8proc), Lowercase, Strip, StripAccents, Prepend, Append,
 * Replace — each a string -> string function, applied in order. Only the resulting text matters for
 * encoding, so alignments are not tracked. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer/tok_internal.h"

/* Unicode normal form of s[0..len) appended to out. ASCII needs no work and cannot interact with its
 * neighbours (no composition or reordering involves an ASCII character after another character), so
 * only each non-ASCII run, with the one character before it (which may compose with the run's first
 * mark), goes through utf8proc. */
static llm_status normal_form(const char *s, size_t len, utf8proc_option_t opts, llm_strbuf *out) {
    size_t i = 0;
    while (i < len) {
        size_t a = i;
        while (i < len && (uint8_t)s[i] < 0x80) i++;
        if (i == len) {
            llm_strbuf_append(out, s + a, i - a);
            break;
        }
        size_t start = i > a ? i - 1 : i; /* the ASCII character before the run joins it */
        llm_strbuf_append(out, s + a, start - a);
        size_t end = i;
        while (end < len && (uint8_t)s[end] >= 0x80) end++;
        utf8proc_uint8_t *dst = NULL;
        utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s + start,
                                          (utf8proc_ssize_t)(end - start), &dst, opts | UTF8PROC_STABLE);
        if (n < 0) {
            free(dst);
            return n == UTF8PROC_ERROR_NOMEM ? LLM_ERR_OUT_OF_MEMORY : LLM_ERR_INTERNAL;
        }
        llm_strbuf_append(out, dst, (size_t)n);
        free(dst);
        i = end;
    }
    return out->oom ? LLM_ERR_OUT_OF_MEMORY : LLM_OK;
}

/* Rust's char::to_lowercase: the simple mapping, except U+0130, the one character whose unconditional
 * lowercase is two characters. */
static void lowercase(const char *s, size_t len, llm_strbuf *out) {
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) {
            char c = (char)p[i];
            llm_strbuf_append_char(out, (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c);
            i++;
            continue;
        }
        uint32_t cp;
        i += tok_utf8_next(p + i, len - i, &cp);
        char u[8];
        size_t n;
        if (cp == 0x130) {
            n = llm_utf8_encode('i', u);
            n += llm_utf8_encode(0x307, u + n);
        } else {
            n = llm_utf8_encode((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), u);
        }
        llm_strbuf_append(out, u, n);
    }
}

static void strip_accents(const char *s, size_t len, llm_strbuf *out) {
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t k = tok_utf8_next(p + i, len - i, &cp);
        utf8proc_category_t c = cp < 0x80 ? UTF8PROC_CATEGORY_LL : utf8proc_category((utf8proc_int32_t)cp);
        if (c != UTF8PROC_CATEGORY_MN && c != UTF8PROC_CATEGORY_MC && c != UTF8PROC_CATEGORY_ME)
            llm_strbuf_append(out, s + i, k);
        i += k;
    }
}

static void strip(const char *s, size_t len, int left, int right, llm_strbuf *out) {
    const uint8_t *p = (const uint8_t *)s;
    size_t a = 0, b = len;
    while (left && a < b) {
        uint32_t cp;
        size_t k = tok_utf8_next(p + a, b - a, &cp);
        if (!tok_is_whitespace(cp)) break;
        a += k;
    }
    while (right && b > a) {
        size_t k = tok_utf8_last_len(p + a, b - a);
        uint32_t cp;
        tok_utf8_next(p + b - k, k, &cp);
        if (!tok_is_whitespace(cp)) break;
        b -= k;
    }
    llm_strbuf_append(out, s + a, b - a);
}

static llm_status apply_one(llm_tokenizer *t, const tok_normalizer *n, const char *s, size_t len,
                            llm_strbuf *out) {
    switch (n->type) {
    case TOK_NORM_NFC:
        return normal_form(s, len, UTF8PROC_COMPOSE, out);
    case TOK_NORM_NFD:
        return normal_form(s, len, UTF8PROC_DECOMPOSE, out);
    case TOK_NORM_NFKC:
        return normal_form(s, len, UTF8PROC_COMPOSE | UTF8PROC_COMPAT, out);
    case TOK_NORM_NFKD:
        return normal_form(s, len, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, out);
    case TOK_NORM_LOWERCASE:
        lowercase(s, len, out);
        break;
    case TOK_NORM_STRIP_ACCENTS:
        strip_accents(s, len, out);
        break;
    case TOK_NORM_STRIP:
        strip(s, len, n->strip_left, n->strip_right, out);
        break;
    case TOK_NORM_PREPEND:
        if (len) llm_strbuf_append(out, n->str, n->str_len);
        llm_strbuf_append(out, s, len);
        break;
    case TOK_NORM_APPEND:
        llm_strbuf_append(out, s, len);
        if (len) llm_strbuf_append(out, n->str, n->str_len);
        break;
    case TOK_NORM_REPLACE: {
        llm_status st = tok_regex_find_matches((tok_regex *)&n->pattern, s, len, &t->matches, &t->err);
        if (st != LLM_OK) return st;
        for (size_t i = 0; i < t->matches.n; i++) {
            const tok_match *m = &t->matches.v[i];
            if (m->is_match)
                llm_strbuf_append(out, n->str, n->str_len);
            else
                llm_strbuf_append(out, s + m->start, m->end - m->start);
        }
        break;
    }
    }
    return out->oom ? LLM_ERR_OUT_OF_MEMORY : LLM_OK;
}

llm_status tok_normalize(llm_tokenizer *t, const char *s, size_t len, llm_strbuf *out) {
    if (t->n_norms == 0) {
        llm_strbuf_append(out, s, len);
        return out->oom ? LLM_ERR_OUT_OF_MEMORY : LLM_OK;
    }
    const char *src = s;
    size_t src_len = len;
    for (size_t i = 0; i < t->n_norms; i++) {
        llm_strbuf *dst = i + 1 == t->n_norms ? out : &t->ntmp[i & 1];
        if (dst != out) llm_strbuf_clear(dst);
        llm_status st = apply_one(t, &t->norms[i], src, src_len, dst);
        if (st != LLM_OK) return st;
        if (dst == out) break;
        src = dst->data ? dst->data : "";
        src_len = dst->len;
    }
    return LLM_OK;
}
