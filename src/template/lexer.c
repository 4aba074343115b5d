/* Lexer: template source -> tokens, reproducing jinja2's lexer as transformers configures it
 * (trim_blocks=True, lstrip_blocks=True):
 *   - text up to the first "{{", "{%" or "{#" is data;
 *   - "{%-" / "{{-" / "{#-" strip all whitespace (Python's str.isspace) before the tag;
 *   - otherwise, for "{%" and "{#" (not "{{") without "+", lstrip_blocks removes the spaces between
 *     the start of the line and the tag when nothing else precedes it on that line;
 *   - "-%}" / "-}}" / "-#}" strip all whitespace after the tag; "%}" and "#}" eat one following
 *     newline (trim_blocks); "+%}" keeps it;
 *   - "{% raw %}...{% endraw %}" is data;
 *   - inside a tag, "%}" / "}}" only end it while brackets are balanced.
 * Every token carries the line and column (in code points, 1-based) where it starts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/tpl.h"

typedef struct lexer {
    tpl_arena *arena;
    const char *s;
    size_t n;
    size_t lc_pos; /* position cache for line/column computation */
    int lc_line, lc_col;
    tpl_token *tok;
    size_t ntok, cap;
    tpl_error *err;
    int line_starting; /* jinja2's line_starting: the last match ended with a newline */
} lexer;

static void where(lexer *lx, size_t pos, int *line, int *col) {
    if (pos < lx->lc_pos) lx->lc_pos = 0, lx->lc_line = 1, lx->lc_col = 1;
    size_t i = lx->lc_pos;
    int l = lx->lc_line, c = lx->lc_col;
    for (; i < pos && i < lx->n; i++) {
        unsigned char b = (unsigned char)lx->s[i];
        if (b == '\n')
            l++, c = 1;
        else if ((b & 0xC0) != 0x80)
            c++;
    }
    lx->lc_pos = i, lx->lc_line = l, lx->lc_col = c;
    *line = l, *col = c;
}

static int fail_at(lexer *lx, size_t pos, const char *fmt, const char *arg) {
    int line, col;
    where(lx, pos, &line, &col);
    return tpl_error_set(lx->err, LLM_ERR_BAD_FORMAT, line, col, fmt, arg);
}

static tpl_token *push(lexer *lx, int type, size_t pos) {
    if (lx->ntok == lx->cap) {
        size_t cap = lx->cap ? lx->cap * 2 : 256;
        tpl_token *t = realloc(lx->tok, cap * sizeof *t);
        if (!t) {
            tpl_error_set(lx->err, LLM_ERR_OUT_OF_MEMORY, 0, 0, "out of memory while lexing");
            return NULL;
        }
        lx->tok = t, lx->cap = cap;
    }
    tpl_token *t = &lx->tok[lx->ntok++];
    memset(t, 0, sizeof *t);
    t->type = (uint8_t)type;
    where(lx, pos, &t->line, &t->col);
    return t;
}

static uint32_t cp_at(const lexer *lx, size_t p, size_t *next) {
    size_t i = p;
    uint32_t cp = tpl_utf8_next(lx->s, lx->n, &i);
    *next = i;
    return cp;
}

static size_t skip_space(const lexer *lx, size_t p) {
    while (p < lx->n) {
        size_t q;
        if (!tpl_py_isspace(cp_at(lx, p, &q))) break;
        p = q;
    }
    return p;
}

static int starts(const lexer *lx, size_t p, const char *lit) {
    size_t k = strlen(lit);
    return p + k <= lx->n && memcmp(lx->s + p, lit, k) == 0;
}

/* End of text[start, end) once trailing whitespace is removed (str.rstrip()). */
static size_t rstrip_end(const lexer *lx, size_t start, size_t end) {
    size_t keep = start, p = start;
    while (p < end) {
        size_t q;
        uint32_t cp = cp_at(lx, p, &q);
        if (!tpl_py_isspace(cp)) keep = q;
        p = q;
    }
    return keep;
}

/* Applies "-" stripping or lstrip_blocks to the data [start, end) before a tag; returns the new end. */
static size_t strip_before(lexer *lx, size_t start, size_t end, char sign, int lstrip_applies) {
    if (sign == '-') return rstrip_end(lx, start, end);
    if (sign == '+' || !lstrip_applies) return end;
    size_t l_pos = start;
    for (size_t i = end; i > start; i--)
        if (lx->s[i - 1] == '\n') {
            l_pos = i;
            break;
        }
    if (l_pos == start && !lx->line_starting) return end;
    if (l_pos == end) return end;
    for (size_t p = l_pos; p < end;) {
        size_t q;
        if (!tpl_py_isspace(cp_at(lx, p, &q))) return end;
        p = q;
    }
    return l_pos;
}

static int emit_data(lexer *lx, size_t start, size_t end) {
    if (end <= start) return 0;
    tpl_token *t = push(lx, TK_DATA, start);
    if (!t) return -1;
    t->s.p = lx->s + start;
    t->s.n = end - start;
    return 0;
}

/* (\d+_)*\d+ at p: end, or 0 if no digit. */
static size_t scan_digits(const lexer *lx, size_t p, int (*isd)(int)) {
    if (p >= lx->n || !isd((unsigned char)lx->s[p])) return 0;
    for (;;) {
        while (p < lx->n && isd((unsigned char)lx->s[p])) p++;
        if (p + 1 < lx->n && lx->s[p] == '_' && isd((unsigned char)lx->s[p + 1])) {
            p++;
            continue;
        }
        return p;
    }
}
static int is_dec(int c) {
    return c >= '0' && c <= '9';
}
static int is_bin(int c) {
    return c == '0' || c == '1';
}
static int is_oct(int c) {
    return c >= '0' && c <= '7';
}
static int is_hex(int c) {
    return is_dec(c) || ((c | 32) >= 'a' && (c | 32) <= 'f');
}

static int lex_number(lexer *lx, size_t *pp) {
    size_t p = *pp;
    /* float: (?<!\.)(\d+_)*\d+ ((\.(\d+_)*\d+)? e[+-]?(\d+_)*\d+ | \.(\d+_)*\d+) */
    size_t end = 0;
    if (!(p > 0 && lx->s[p - 1] == '.')) {
        size_t m = scan_digits(lx, p, is_dec);
        size_t frac = 0;
        if (m < lx->n && lx->s[m] == '.') frac = scan_digits(lx, m + 1, is_dec);
        size_t q = frac ? frac : m;
        if (q < lx->n && (lx->s[q] | 32) == 'e') {
            size_t r = q + 1;
            if (r < lx->n && (lx->s[r] == '+' || lx->s[r] == '-')) r++;
            size_t e = scan_digits(lx, r, is_dec);
            if (e) end = e;
        }
        if (!end && frac) end = frac;
    }
    if (end) {
        char buf[128];
        size_t k = 0;
        for (size_t i = p; i < end && k + 1 < sizeof buf; i++)
            if (lx->s[i] != '_') buf[k++] = lx->s[i];
        buf[k] = 0;
        tpl_token *t = push(lx, TK_FLOAT, p);
        if (!t) return -1;
        t->f = strtod(buf, NULL);
        *pp = end;
        return 0;
    }
    int base = 10;
    size_t digits_at = p;
    if (lx->s[p] == '0' && p + 1 < lx->n) {
        char x = (char)(lx->s[p + 1] | 32);
        int (*isd)(int) = x == 'b' ? is_bin : x == 'o' ? is_oct : x == 'x' ? is_hex : NULL;
        if (isd) {
            size_t q = p + 2;
            if (q < lx->n && lx->s[q] == '_') q++;
            size_t e = scan_digits(lx, q, isd);
            if (e) {
                base = x == 'b' ? 2 : x == 'o' ? 8 : 16;
                digits_at = q;
                end = e;
            }
        }
    }
    if (!end) {
        if (lx->s[p] == '0') { /* 0(_?0)* */
            end = p + 1;
            while (end < lx->n &&
                   (lx->s[end] == '0' || (lx->s[end] == '_' && end + 1 < lx->n && lx->s[end + 1] == '0')))
                end += lx->s[end] == '_' ? 2 : 1;
        } else {
            end = scan_digits(lx, p, is_dec);
        }
    }
    uint64_t v = 0;
    for (size_t i = digits_at; i < end; i++) {
        int c = (unsigned char)lx->s[i];
        if (c == '_') continue;
        int d = is_dec(c) ? c - '0' : (c | 32) - 'a' + 10;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base ||
            v * (uint64_t)base + (uint64_t)d > (uint64_t)INT64_MAX)
            return fail_at(lx, p, "integer literal %s is too large (64-bit integers only)", "");
        v = v * (uint64_t)base + (uint64_t)d;
    }
    tpl_token *t = push(lx, TK_INT, p);
    if (!t) return -1;
    t->i = (int64_t)v;
    *pp = end;
    return 0;
}

static int hexval(const char *s, int k, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < k; i++) {
        int c = (unsigned char)s[i];
        if (!is_hex(c)) return -1;
        v = v * 16 + (uint32_t)(is_dec(c) ? c - '0' : (c | 32) - 'a' + 10);
    }
    *out = v;
    return 0;
}

/* A quoted string with Python's unicode-escape rules (what jinja2 applies to string literals). */
static int lex_string(lexer *lx, size_t *pp) {
    size_t p = *pp;
    char q = lx->s[p];
    size_t i = p + 1;
    while (i < lx->n && lx->s[i] != q) i += lx->s[i] == '\\' ? 2 : 1;
    if (i >= lx->n) return fail_at(lx, p, "unterminated string literal%s", "");
    size_t end = i; /* closing quote */
    char *buf = tpl_alloc(lx->arena, end - p + 1);
    if (!buf) return tpl_error_set(lx->err, LLM_ERR_OUT_OF_MEMORY, 0, 0, "out of memory while lexing");
    size_t k = 0;
    for (i = p + 1; i < end;) {
        char c = lx->s[i];
        if (c != '\\') {
            buf[k++] = c;
            i++;
            continue;
        }
        char e = lx->s[i + 1];
        size_t at = i;
        i += 2;
        uint32_t cp;
        switch (e) {
        case '\n':
            continue;
        case '\\':
            buf[k++] = '\\';
            continue;
        case '\'':
            buf[k++] = '\'';
            continue;
        case '"':
            buf[k++] = '"';
            continue;
        case 'a':
            buf[k++] = '\a';
            continue;
        case 'b':
            buf[k++] = '\b';
            continue;
        case 'f':
            buf[k++] = '\f';
            continue;
        case 'n':
            buf[k++] = '\n';
            continue;
        case 'r':
            buf[k++] = '\r';
            continue;
        case 't':
            buf[k++] = '\t';
            continue;
        case 'v':
            buf[k++] = '\v';
            continue;
        case 'x':
        case 'u':
        case 'U': {
            int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            if (i + (size_t)nd > end || hexval(lx->s + i, nd, &cp) != 0)
                return fail_at(lx, at, "truncated \\%s escape in string literal",
                               e == 'x'   ? "xXX"
                               : e == 'u' ? "uXXXX"
                                          : "UXXXXXXXX");
            if (cp > 0x10FFFF) return fail_at(lx, at, "illegal Unicode character in string literal%s", "");
            i += (size_t)nd;
            break;
        }
        case 'N':
            return fail_at(lx, at, "\\N{...} escapes are not supported%s", "");
        default:
            if (e >= '0' && e <= '7') {
                cp = 0;
                i--;
                for (int d = 0; d < 3 && i < end && is_oct((unsigned char)lx->s[i]); d++, i++)
                    cp = cp * 8 + (uint32_t)(lx->s[i] - '0');
                break;
            }
            buf[k++] = '\\'; /* unknown escapes stay as written */
            i--;
            continue;
        }
        char u[4];
        size_t un = tpl_utf8_put(cp, u);
        memcpy(buf + k, u, un); /* \xXX (4 bytes) -> at most 2 bytes; \uXXXX -> 3; \U -> 4 */
        k += un;
    }
    tpl_token *t = push(lx, TK_STRING, p);
    if (!t) return -1;
    t->s.p = buf;
    t->s.n = k;
    *pp = end + 1;
    return 0;
}

static const struct {
    const char *text;
    int op;
} OPS[] = {
    {"//", OP_FLOORDIV}, {"**", OP_POW},   {"==", OP_EQ},      {"!=", OP_NE},      {">=", OP_GTEQ},
    {"<=", OP_LTEQ},     {"+", OP_ADD},    {"-", OP_SUB},      {"/", OP_DIV},      {"*", OP_MUL},
    {"%", OP_MOD},       {"~", OP_TILDE},  {"[", OP_LBRACKET}, {"]", OP_RBRACKET}, {"(", OP_LPAREN},
    {")", OP_RPAREN},    {"{", OP_LBRACE}, {"}", OP_RBRACE},   {">", OP_GT},       {"<", OP_LT},
    {"=", OP_ASSIGN},    {".", OP_DOT},    {":", OP_COLON},    {"|", OP_PIPE},     {",", OP_COMMA},
    {";", OP_SEMICOLON},
};

/* Tokens of one {{ ... }} or {% ... %} tag from *pp (just after the opener and its sign). */
static int lex_tag(lexer *lx, size_t *pp, int is_block, size_t open_pos) {
    char stack[TPL_MAX_PARSE_DEPTH];
    int sp = 0;
    size_t p = *pp;
    for (;;) {
        if (sp == 0) {
            size_t end_at = p, after = 0;
            if (is_block) {
                if (starts(lx, p, "+%}"))
                    after = p + 3;
                else if (starts(lx, p, "-%}"))
                    after = skip_space(lx, p + 3);
                else if (starts(lx, p, "%}"))
                    after = p + 2 + (p + 2 < lx->n && lx->s[p + 2] == '\n');
            } else {
                if (starts(lx, p, "-}}"))
                    after = skip_space(lx, p + 3);
                else if (starts(lx, p, "}}"))
                    after = p + 2;
            }
            if (after) {
                if (!push(lx, is_block ? TK_BLOCK_END : TK_VAR_END, end_at)) return -1;
                lx->line_starting = lx->s[after - 1] == '\n';
                *pp = after;
                return 0;
            }
        }
        if (p >= lx->n)
            return fail_at(lx, open_pos, "unexpected end of template: this '%s' is never closed",
                           is_block ? "{%" : "{{");
        size_t q;
        uint32_t cp = cp_at(lx, p, &q);
        if (tpl_py_isspace(cp)) {
            p = q;
            continue;
        }
        int rc;
        if (cp >= '0' && cp <= '9') {
            rc = lex_number(lx, &p);
        } else if (cp == '_' || (cp < 0x80 && tpl_cp_is_alpha(cp)) || (cp >= 0x80 && tpl_cp_is_alpha(cp))) {
            size_t e = q;
            while (e < lx->n) {
                size_t f;
                uint32_t d = cp_at(lx, e, &f);
                if (!tpl_cp_is_word(d)) break;
                e = f;
            }
            tpl_token *t = push(lx, TK_NAME, p);
            if (!t) return -1;
            t->s.p = lx->s + p;
            t->s.n = e - p;
            p = e;
            rc = 0;
        } else if (cp == '\'' || cp == '"') {
            rc = lex_string(lx, &p);
        } else {
            int op = 0;
            size_t len = 0;
            for (size_t k = 0; k < sizeof OPS / sizeof OPS[0]; k++)
                if (starts(lx, p, OPS[k].text)) {
                    op = OPS[k].op;
                    len = strlen(OPS[k].text);
                    break;
                }
            if (!op) {
                char ch[8] = {0};
                memcpy(ch, lx->s + p, q - p);
                return fail_at(lx, p, "unexpected character '%s'", ch);
            }
            if (op == OP_LPAREN || op == OP_LBRACKET || op == OP_LBRACE) {
                if (sp == (int)sizeof stack) return fail_at(lx, p, "brackets nested too deeply%s", "");
                stack[sp++] = op == OP_LPAREN ? ')' : op == OP_LBRACKET ? ']' : '}';
            } else if (op == OP_RPAREN || op == OP_RBRACKET || op == OP_RBRACE) {
                char closer = lx->s[p];
                if (sp == 0) {
                    char ch[2] = {closer, 0};
                    return fail_at(lx, p, "unexpected '%s' (no bracket is open)", ch);
                }
                if (stack[sp - 1] != closer) {
                    char msg[64];
                    snprintf(msg, sizeof msg, "'%c', expected '%c'", closer, stack[sp - 1]);
                    return fail_at(lx, p, "unexpected %s", msg);
                }
                sp--;
            }
            tpl_token *t = push(lx, TK_OP, p);
            if (!t) return -1;
            t->op = (uint8_t)op;
            p += len;
            rc = 0;
        }
        if (rc) return -1;
    }
}

/* Position just after a raw-begin tag starting at p ("{%", sign, "raw", "%}"), or 0. */
static size_t match_raw(const lexer *lx, size_t p, const char *word) {
    size_t q = p + 2;
    if (q < lx->n && (lx->s[q] == '-' || lx->s[q] == '+')) q++;
    q = skip_space(lx, q);
    size_t wl = strlen(word);
    if (!starts(lx, q, word)) return 0;
    q = skip_space(lx, q + wl);
    if (starts(lx, q, "-%}")) return skip_space(lx, q + 3);
    if (starts(lx, q, "%}")) return q + 2;
    return 0;
}

int tpl_lex(tpl_arena *a, const char *src, size_t len, tpl_token **out, size_t *n_out, tpl_error *err) {
    lexer lx = {.arena = a,
                .s = src,
                .n = len,
                .lc_pos = 0,
                .lc_line = 1,
                .lc_col = 1,
                .err = err,
                .line_starting = 1};
    size_t pos = 0;
    while (pos < len) {
        /* the next "{{", "{%" or "{#" */
        size_t tag = len;
        for (const char *b = memchr(src + pos, '{', len - pos); b;
             b = memchr(b + 1, '{', (size_t)(src + len - b - 1))) {
            size_t i = (size_t)(b - src);
            if (i + 1 < len && (src[i + 1] == '{' || src[i + 1] == '%' || src[i + 1] == '#')) {
                tag = i;
                break;
            }
            if (i + 1 >= len) break;
        }
        if (tag == len) {
            if (emit_data(&lx, pos, len)) goto fail;
            break;
        }
        char kind = src[tag + 1];
        char sign = (tag + 2 < len && (src[tag + 2] == '-' || src[tag + 2] == '+')) ? src[tag + 2] : 0;
        size_t raw_end = kind == '%' ? match_raw(&lx, tag, "raw") : 0;
        size_t data_end = strip_before(&lx, pos, tag, sign, kind != '{');
        if (emit_data(&lx, pos, data_end)) goto fail;
        size_t p = tag + 2 + (sign ? 1 : 0);
        if (raw_end) {
            lx.line_starting = src[raw_end - 1] == '\n';
            /* find "{%" [-+]? \s* endraw \s* ("+%}" | "-%}"\s* | "%}"\n?) */
            size_t q = raw_end, found = 0, after = 0;
            for (;;) {
                const char *b = q < len ? memchr(src + q, '{', len - q) : NULL;
                if (!b) break;
                size_t i = (size_t)(b - src);
                if (i + 1 < len && src[i + 1] == '%') {
                    size_t r = i + 2;
                    if (r < len && (src[r] == '-' || src[r] == '+')) r++;
                    r = skip_space(&lx, r);
                    if (starts(&lx, r, "endraw")) {
                        r = skip_space(&lx, r + 6);
                        if (starts(&lx, r, "+%}"))
                            after = r + 3;
                        else if (starts(&lx, r, "-%}"))
                            after = skip_space(&lx, r + 3);
                        else if (starts(&lx, r, "%}"))
                            after = r + 2 + (r + 2 < len && src[r + 2] == '\n');
                        if (after) {
                            found = i;
                            break;
                        }
                    }
                }
                q = i + 1;
            }
            if (!after) {
                fail_at(&lx, tag, "'{%% raw %%}' block is never closed by '{%% endraw %%}'%s", "");
                goto fail;
            }
            char esign = (src[found + 2] == '-' || src[found + 2] == '+') ? src[found + 2] : 0;
            if (emit_data(&lx, raw_end, strip_before(&lx, raw_end, found, esign, 1))) goto fail;
            lx.line_starting = src[after - 1] == '\n';
            pos = after;
            continue;
        }
        lx.line_starting = 0;
        if (kind == '#') {
            /* the earliest "+#}", "-#}" or "#}" after the opener */
            size_t i = p, found = len;
            for (; i + 1 < len; i++)
                if (src[i] == '#' && src[i + 1] == '}') {
                    found = i;
                    break;
                }
            if (found == len) {
                fail_at(&lx, tag, "comment is never closed (missing '#}')%s", "");
                goto fail;
            }
            size_t after;
            if (found > p && src[found - 1] == '+')
                after = found + 2;
            else if (found > p && src[found - 1] == '-')
                after = skip_space(&lx, found + 2);
            else
                after = found + 2 + (found + 2 < len && src[found + 2] == '\n');
            lx.line_starting = src[after - 1] == '\n';
            pos = after;
            continue;
        }
        int is_block = kind == '%';
        if (!push(&lx, is_block ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, tag)) goto fail;
        if (lex_tag(&lx, &p, is_block, tag)) goto fail;
        pos = p;
    }
    if (!push(&lx, TK_EOF, len)) goto fail;
    *out = tpl_alloc(a, lx.ntok * sizeof(tpl_token));
    if (!*out) {
        tpl_error_set(err, LLM_ERR_OUT_OF_MEMORY, 0, 0, "out of memory while lexing");
        goto fail;
    }
    memcpy(*out, lx.tok, lx.ntok * sizeof(tpl_token));
    *n_out = lx.ntok;
    free(lx.tok);
    return 0;
fail:
    free(lx.tok);
    return -1;
}
