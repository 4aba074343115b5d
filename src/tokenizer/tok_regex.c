/* HF patterns on PCRE2.
 *
 * HF `tokenizers` compiles Split / Replace patterns with Oniguruma (Ruby syntax, UTF-8). PCRE2 with
 * UTF + UCP agrees with it on everything the real pre-tokenizer patterns use (\p{..} classes,
 * (?i:...) with Unicode case folding, lookahead, greedy alternation order) except a few escapes whose
 * Unicode meaning differs; those are rewritten before compiling:
 *   \s  Oniguruma: White_Space.     PCRE2 (10.42): also U+180E.   -> an explicit White_Space class
 *   \d  both \p{Nd}                                                 -> \p{Nd} (independent of UCP)
 *   \w  Oniguruma: Alphabetic, M, Nd, Pc, Join_Control.  PCRE2: L, N, _   -> explicit class
 *   \h  Oniguruma (Ruby): a hex digit.  PCRE2: horizontal space          -> [0-9A-Fa-f]
 *   \uHHHH (Ruby) -> \x{HHHH};  (?m) (Ruby: dot matches newline) -> (?s)
 * and ^ / $ match at line boundaries as in Ruby (PCRE2_MULTILINE). Negated escapes inside a character
 * class (\S, \W, \H in [...]) keep PCRE2's meaning. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

#define WS_RANGES                                                                                            \
    "\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
#define WORD_RANGES "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}"
#define HEX_RANGES  "0-9A-Fa-f"

static int is_hex(char c) {
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* Rewrites an Oniguruma pattern for PCRE2 into out. */
static void translate(const char *p, size_t n, llm_strbuf *out) {
    int depth = 0; /* character class nesting */
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char e = p[i + 1];
            const char *rep = NULL;
            if (depth == 0) {
                switch (e) {
                case 's':
                    rep = "[" WS_RANGES "]";
                    break;
                case 'S':
                    rep = "[^" WS_RANGES "]";
                    break;
                case 'd':
                    rep = "\\p{Nd}";
                    break;
                case 'D':
                    rep = "\\P{Nd}";
                    break;
                case 'w':
                    rep = "[" WORD_RANGES "]";
                    break;
                case 'W':
                    rep = "[^" WORD_RANGES "]";
                    break;
                case 'h':
                    rep = "[" HEX_RANGES "]";
                    break;
                case 'H':
                    rep = "[^" HEX_RANGES "]";
                    break;
                default:
                    break;
                }
            } else {
                switch (e) {
                case 's':
                    rep = WS_RANGES;
                    break;
                case 'd':
                    rep = "\\p{Nd}";
                    break;
                case 'D':
                    rep = "\\P{Nd}";
                    break;
                case 'w':
                    rep = WORD_RANGES;
                    break;
                case 'h':
                    rep = HEX_RANGES;
                    break;
                default:
                    break;
                }
            }
            if (rep) {
                llm_strbuf_append_str(out, rep);
                i++;
                continue;
            }
            if (e == 'u' && i + 5 < n && is_hex(p[i + 2]) && is_hex(p[i + 3]) && is_hex(p[i + 4]) &&
                is_hex(p[i + 5])) {
                llm_strbuf_appendf(out, "\\x{%.4s}", p + i + 2);
                i += 5;
                continue;
            }
            /* any other escape: copy it whole (the escaped character may be multi-byte) */
            size_t k = tok_utf8_len((uint8_t)e);
            if (i + 1 + k > n) k = n - i - 1;
            llm_strbuf_append(out, p + i, 1 + k);
            i += k;
            continue;
        }
        if (c == '[') {
            if (depth > 0 && i + 1 < n && p[i + 1] == ':') {
                /* POSIX class inside a class: copy through ":]" */
                const char *end = NULL;
                for (size_t j = i + 2; j + 1 < n; j++)
                    if (p[j] == ':' && p[j + 1] == ']') {
                        end = p + j + 2;
                        break;
                    }
                if (end) {
                    llm_strbuf_append(out, p + i, (size_t)(end - (p + i)));
                    i = (size_t)(end - p) - 1;
                    continue;
                }
            }
            depth++;
            llm_strbuf_append_char(out, c);
            /* a ']' right after '[' or '[^' is a literal */
            if (i + 1 < n && p[i + 1] == '^') {
                llm_strbuf_append_char(out, '^');
                i++;
            }
            if (i + 1 < n && p[i + 1] == ']') {
                llm_strbuf_append_str(out, "\\]");
                i++;
            }
            continue;
        }
        if (c == ']' && depth > 0) {
            depth--;
            llm_strbuf_append_char(out, c);
            continue;
        }
        if (c == '(' && depth == 0 && i + 2 < n && p[i + 1] == '?') {
            /* option group "(?imx-imx)" or "(?imx-imx:": Ruby's m is PCRE's s */
            size_t j = i + 2;
            while (j < n && (p[j] == 'i' || p[j] == 'm' || p[j] == 'x' || p[j] == '-')) j++;
            if (j > i + 2 && j < n && (p[j] == ':' || p[j] == ')')) {
                llm_strbuf_append_str(out, "(?");
                for (size_t k = i + 2; k < j; k++) llm_strbuf_append_char(out, p[k] == 'm' ? 's' : p[k]);
                i = j - 1;
                continue;
            }
        }
        llm_strbuf_append_char(out, c);
    }
}

llm_status tok_regex_compile(tok_regex *re, const char *pattern, size_t len, int literal, const char *where,
                             llm_error *err) {
    memset(re, 0, sizeof *re);
    if (len == 0) return llm_fail(err, LLM_ERR_UNSUPPORTED, "%s: empty pattern", where);
    llm_strbuf src = LLM_STRBUF_INIT;
    uint32_t opts = PCRE2_UTF;
    if (literal) {
        llm_strbuf_append(&src, pattern, len);
        opts |= PCRE2_LITERAL;
    } else {
        translate(pattern, len, &src);
        opts |= PCRE2_UCP | PCRE2_MULTILINE;
    }
    if (src.oom) {
        llm_strbuf_free(&src);
        return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory", where);
    }
    pcre2_compile_context *cctx = pcre2_compile_context_create(NULL);
    if (!cctx) {
        llm_strbuf_free(&src);
        return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory", where);
    }
    pcre2_set_newline(cctx, PCRE2_NEWLINE_LF);
    int ecode = 0;
    PCRE2_SIZE eoff = 0;
    re->code = pcre2_compile((PCRE2_SPTR)src.data, src.len, opts, &ecode, &eoff, cctx);
    pcre2_compile_context_free(cctx);
    if (!re->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ecode, msg, sizeof msg);
        /* report the offset in the translated pattern when it was rewritten */
        int same = src.len == len && memcmp(src.data, pattern, len) == 0;
        llm_status st = llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: bad regex %s%.*s%s: %s at offset %zu%s", where,
                                 "\"", (int)(len > 200 ? 200 : len), pattern, "\"", (const char *)msg,
                                 (size_t)eoff, same ? "" : " (of the pattern as rewritten for PCRE2)");
        llm_strbuf_free(&src);
        return st;
    }
    llm_strbuf_free(&src);
    re->jit = pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE) == 0;
    re->md = pcre2_match_data_create(1, NULL);
    re->mctx = pcre2_match_context_create(NULL);
    if (!re->md || !re->mctx) {
        tok_regex_free(re);
        return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory", where);
    }
    if (re->jit) {
        re->jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
        if (re->jit_stack) pcre2_jit_stack_assign(re->mctx, NULL, re->jit_stack);
    }
    return LLM_OK;
}

void tok_regex_free(tok_regex *re) {
    if (!re) return;
    if (re->md) pcre2_match_data_free(re->md);
    if (re->mctx) pcre2_match_context_free(re->mctx);
    if (re->jit_stack) pcre2_jit_stack_free(re->jit_stack);
    if (re->code) pcre2_code_free(re->code);
    memset(re, 0, sizeof *re);
}

int tok_matchvec_push(tok_matchvec *mv, size_t start, size_t end, int is_match) {
    if (mv->n == mv->cap) {
        size_t cap = mv->cap ? mv->cap * 2 : 64;
        tok_match *v = realloc(mv->v, cap * sizeof *v);
        if (!v) return -1;
        mv->v = v;
        mv->cap = cap;
    }
    mv->v[mv->n++] = (tok_match){(uint32_t)start, (uint32_t)end, (uint8_t)is_match};
    return 0;
}

/* Next match at or after `from`: 1 and [*ms, *me), 0 for none, -1 on a matching error. */
static int next_match(tok_regex *re, const char *s, size_t len, size_t from, size_t *ms, size_t *me,
                      int *ecode) {
    int rc;
    if (re->jit)
        rc = pcre2_jit_match(re->code, (PCRE2_SPTR)s, len, from, PCRE2_NO_UTF_CHECK, re->md, re->mctx);
    else
        rc = pcre2_match(re->code, (PCRE2_SPTR)s, len, from, PCRE2_NO_UTF_CHECK, re->md, re->mctx);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) {
        /* JIT stack exhausted on a pathological input: retry with the interpreter */
        if (re->jit) {
            rc = pcre2_match(re->code, (PCRE2_SPTR)s, len, from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, re->md,
                             re->mctx);
            if (rc == PCRE2_ERROR_NOMATCH) return 0;
        }
        if (rc < 0) {
            *ecode = rc;
            return -1;
        }
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(re->md);
    *ms = ov[0];
    *me = ov[1];
    return 1;
}

llm_status tok_regex_find_matches(tok_regex *re, const char *s, size_t len, tok_matchvec *out,
                                  llm_error *err) {
    out->n = 0;
    if (len == 0) return tok_matchvec_push(out, 0, 0, 0) ? LLM_ERR_OUT_OF_MEMORY : LLM_OK;
    size_t prev = 0, from = 0, last_match_end = 0;
    int have_last = 0;
    while (from <= len) {
        size_t ms, me;
        int ecode = 0;
        int r = next_match(re, s, len, from, &ms, &me, &ecode);
        if (r == 0) break;
        if (r < 0) {
            PCRE2_UCHAR msg[200];
            pcre2_get_error_message(ecode, msg, sizeof msg);
            return llm_fail(err, LLM_ERR_INTERNAL, "regex matching failed at byte %zu: %s", from,
                            (const char *)msg);
        }
        /* Oniguruma's find_iter: an empty match right where the previous match ended is skipped by
         * moving on one character */
        if (ms == me && have_last && last_match_end == me) {
            from += from < len ? tok_utf8_len((uint8_t)s[from]) : 1;
            continue;
        }
        from = me;
        last_match_end = me;
        have_last = 1;
        if (prev != ms && tok_matchvec_push(out, prev, ms, 0)) return LLM_ERR_OUT_OF_MEMORY;
        if (tok_matchvec_push(out, ms, me, 1)) return LLM_ERR_OUT_OF_MEMORY;
        prev = me;
    }
    if (prev != len && tok_matchvec_push(out, prev, len, 0)) return LLM_ERR_OUT_OF_MEMORY;
    return LLM_OK;
}
