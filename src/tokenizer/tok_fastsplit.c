/* A hand-written matcher for exactly the Llama-3 and Qwen2 pre-tokenizer patterns
 *
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 * ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *
 * (Qwen2: \p{N} instead of \p{N}{1,3}), for ASCII text. Every character starts a match of this
 * pattern (a letter, a number, white space, or anything else, which the fourth alternative takes), so
 * the matches tile the text and can be found one at a time at the current position, trying the
 * alternatives in order as the regex engine does. Whenever the outcome of a match depends on a
 * non-ASCII character (whose Unicode class this file does not decide), that one match is asked of
 * PCRE2, anchored at the same position. The result is therefore PCRE2's by construction for non-ASCII
 * input, and for ASCII the classes are unambiguous; test_tokenizer_fastsplit checks both against
 * PCRE2 on the corpus and on random strings. */
#include <string.h>

#include "tokenizer/tok_internal.h"

static const char LLAMA3[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                             "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                            "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

tok_fast_split tok_fast_split_detect(const char *pattern, size_t len) {
    if (len == sizeof LLAMA3 - 1 && memcmp(pattern, LLAMA3, len) == 0) return TOK_FAST_LLAMA3;
    if (len == sizeof QWEN2 - 1 && memcmp(pattern, QWEN2, len) == 0) return TOK_FAST_QWEN2;
    return TOK_FAST_NONE;
}

const char *tok_fast_split_pattern(tok_fast_split kind) {
    return kind == TOK_FAST_LLAMA3 ? LLAMA3 : kind == TOK_FAST_QWEN2 ? QWEN2 : NULL;
}

/* ASCII classes: bit 1 letter, 2 digit, 4 white space (\t..\r and space), 8 \r or \n. */
enum { C_L = 1, C_N = 2, C_S = 4, C_NL = 8 };

static inline unsigned cls(uint8_t c) {
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return C_L;
    if (c >= '0' && c <= '9') return C_N;
    if (c == ' ' || c == '\t' || c == 0x0B || c == 0x0C) return C_S;
    if (c == '\r' || c == '\n') return C_S | C_NL;
    return 0;
}

#define BAIL ((size_t)-1)

/* End of the match at p (p < n), or BAIL when a non-ASCII character would decide it. */
static size_t match_at(const uint8_t *s, size_t n, size_t p, int max_digits) {
    uint8_t c = s[p];
    if (c >= 0x80) return BAIL;
    unsigned k = cls(c);

    /* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
    if (c == '\'' && p + 1 < n) {
        uint8_t a = s[p + 1];
        if (a >= 0x80) return BAIL; /* e.g. U+017F folds to s */
        a |= 0x20;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return p + 2;
        if ((a == 'r' || a == 'v' || a == 'l') && p + 2 < n) {
            uint8_t b = s[p + 2];
            if (b >= 0x80) return BAIL;
            b |= 0x20;
            if ((a == 'l' && b == 'l') || (a != 'l' && b == 'e')) return p + 3;
        }
    }

    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    size_t q = BAIL;
    if (k & C_L)
        q = p;
    else if (!(k & (C_NL | C_N)) && p + 1 < n) {
        uint8_t d = s[p + 1];
        if (d >= 0x80) return BAIL;
        if (cls(d) & C_L) q = p + 1;
    }
    if (q != BAIL) {
        while (q < n && s[q] < 0x80 && (cls(s[q]) & C_L)) q++;
        if (q < n && s[q] >= 0x80) return BAIL; /* a non-ASCII letter would continue the run */
        return q;
    }

    /* \p{N}{1,3} or \p{N} */
    if (k & C_N) {
        q = p + 1;
        while (q < n && q < p + (size_t)max_digits && (s[q] >= 0x80 || (cls(s[q]) & C_N))) {
            if (s[q] >= 0x80) return BAIL;
            q++;
        }
        return q;
    }

    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    q = c == ' ' ? p + 1 : p;
    if (q < n) {
        if (s[q] >= 0x80) return BAIL;
        if (cls(s[q]) == 0) {
            while (q < n && (s[q] >= 0x80 || cls(s[q]) == 0)) {
                if (s[q] >= 0x80) return BAIL;
                q++;
            }
            while (q < n && (s[q] == '\r' || s[q] == '\n')) q++;
            return q;
        }
    }

    /* the rest start with white space: \s*[\r\n]+ | \s+(?!\S) | \s+ */
    size_t j = p;
    while (j < n && s[j] < 0x80 && (cls(s[j]) & C_S)) j++;
    if (j < n && s[j] >= 0x80) return BAIL; /* non-ASCII white space would extend the run */
    for (size_t i = j; i > p; i--)
        if (s[i - 1] == '\r' || s[i - 1] == '\n') return i;
    if (j == n) return j;
    if (j - p > 1) return j - 1;
    return j;
}

int tok_fast_split_matches(tok_fast_split kind, tok_regex *re, const char *text, size_t len,
                           tok_matchvec *out) {
    out->n = 0;
    if (len == 0) return tok_matchvec_push(out, 0, 0, 0);
    const uint8_t *s = (const uint8_t *)text;
    int max_digits = kind == TOK_FAST_QWEN2 ? 1 : 3;
    size_t p = 0;
    while (p < len) {
        size_t e = match_at(s, len, p, max_digits);
        if (e == BAIL) {
            int rc;
            if (re->jit)
                rc = pcre2_jit_match(re->code, (PCRE2_SPTR)text, len, p, PCRE2_NO_UTF_CHECK | PCRE2_ANCHORED,
                                     re->md, re->mctx);
            else
                rc = pcre2_match(re->code, (PCRE2_SPTR)text, len, p, PCRE2_NO_UTF_CHECK | PCRE2_ANCHORED,
                                 re->md, re->mctx);
            if (rc < 0) return -1;
            e = pcre2_get_ovector_pointer(re->md)[1];
            if (e <= p) return -1; /* cannot happen: every alternative consumes a character */
        }
        if (tok_matchvec_push(out, p, e, 1)) return -1;
        p = e;
    }
    return 0;
}
