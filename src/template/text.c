/* Text helpers with Python's semantics: UTF-8 code points, str.isspace(), case mapping, and the
 * exact spelling of repr(float), repr(str) and json.dumps strings. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "template/tpl.h"

uint32_t tpl_utf8_next(const char *s, size_t n, size_t *i) {
    const unsigned char *u = (const unsigned char *)s;
    size_t k = *i;
    uint32_t c = u[k];
    if (c < 0x80) {
        *i = k + 1;
        return c;
    }
    if (c < 0xC0) { /* stray continuation byte: never happens for validated strings */
        *i = k + 1;
        return 0xFFFD;
    }
    int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    if (k + (size_t)len > n) { /* truncated: never happens for validated strings */
        *i = k + 1;
        return 0xFFFD;
    }
    uint32_t cp = c & (0x7F >> len);
    for (int j = 1; j < len; j++) cp = (cp << 6) | (u[k + j] & 0x3F);
    *i = k + (size_t)len;
    return cp;
}

size_t tpl_utf8_put(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD; /* lone surrogates have no UTF-8 form */
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp > 0x10FFFF) cp = 0xFFFD;
    if (cp < 0x10000) return tpl_utf8_put(cp, out);
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int tpl_utf8_valid(const char *s, size_t n, size_t *bad_offset) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t min;
        if (c >= 0xC2 && c <= 0xDF)
            len = 2, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF)
            len = 3, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4)
            len = 4, min = 0x10000;
        else
            goto bad;
        if (i + len > n) goto bad;
        uint32_t cp = c & (0x7F >> len);
        for (size_t j = 1; j < len; j++) {
            if ((u[i + j] & 0xC0) != 0x80) goto bad;
            cp = (cp << 6) | (u[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) goto bad;
        i += len;
    }
    return 1;
bad:
    if (bad_offset) *bad_offset = i;
    return 0;
}

size_t tpl_utf8_count(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

size_t tpl_utf8_offset(const char *s, size_t n, size_t cp_index) {
    size_t i = 0, k = 0;
    while (i < n && k < cp_index) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
        k++;
    }
    return i;
}

int tpl_is_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) return 0;
    return 1;
}

int tpl_py_isspace(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static int category(uint32_t cp) {
    return (int)utf8proc_category((utf8proc_int32_t)cp);
}

uint32_t tpl_cp_upper(uint32_t cp) {
    if (cp < 0x80) return (cp >= 'a' && cp <= 'z') ? cp - 32 : cp;
    return (uint32_t)utf8proc_toupper((utf8proc_int32_t)cp);
}
uint32_t tpl_cp_lower(uint32_t cp) {
    if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    return (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
}
uint32_t tpl_cp_title(uint32_t cp) {
    if (cp < 0x80) return tpl_cp_upper(cp);
    return (uint32_t)utf8proc_totitle((utf8proc_int32_t)cp);
}
int tpl_cp_is_upper(uint32_t cp) {
    if (cp < 0x80) return cp >= 'A' && cp <= 'Z';
    int k = category(cp);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LT;
}
int tpl_cp_is_lower(uint32_t cp) {
    if (cp < 0x80) return cp >= 'a' && cp <= 'z';
    return category(cp) == UTF8PROC_CATEGORY_LL;
}
int tpl_cp_is_cased(uint32_t cp) {
    return tpl_cp_is_upper(cp) || tpl_cp_is_lower(cp);
}
int tpl_cp_is_alpha(uint32_t cp) {
    if (cp < 0x80) return (cp | 32) >= 'a' && (cp | 32) <= 'z';
    int k = category(cp);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}
int tpl_cp_is_decimal(uint32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    return category(cp) == UTF8PROC_CATEGORY_ND;
}
int tpl_cp_is_digit(uint32_t cp) {
    if (tpl_cp_is_decimal(cp)) return 1;
    /* superscripts and circled digits count as digits in Python */
    return cp == 0xB2 || cp == 0xB3 || cp == 0xB9 ||
           (cp >= 0x2070 && cp <= 0x2079 && cp != 0x2071 && cp != 0x2072 && cp != 0x2073) ||
           (cp >= 0x2080 && cp <= 0x2089) || (cp >= 0x2460 && cp <= 0x2468);
}
int tpl_cp_is_alnum(uint32_t cp) {
    if (cp < 0x80) return tpl_cp_is_alpha(cp) || tpl_cp_is_decimal(cp);
    int k = category(cp);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
           (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}
int tpl_cp_is_word(uint32_t cp) {
    return cp == '_' || tpl_cp_is_alnum(cp);
}
int tpl_cp_printable(uint32_t cp) {
    if (cp < 0x80) return cp >= 0x20 && cp < 0x7F;
    if (cp < 0xA0) return 0;
    int k = category(cp);
    return !(k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CS ||
             k == UTF8PROC_CATEGORY_CO || k == UTF8PROC_CATEGORY_CN || k == UTF8PROC_CATEGORY_ZL ||
             k == UTF8PROC_CATEGORY_ZP || k == UTF8PROC_CATEGORY_ZS);
}

void tpl_format_float(llm_strbuf *sb, double x) {
    if (isnan(x)) {
        llm_strbuf_append_str(sb, "nan");
        return;
    }
    if (isinf(x)) {
        llm_strbuf_append_str(sb, x < 0 ? "-inf" : "inf");
        return;
    }
    if (x == 0) {
        llm_strbuf_append_str(sb, signbit(x) ? "-0.0" : "0.0");
        return;
    }
    /* shortest digits that round-trip: what Python's repr (David Gay's algorithm) produces, since
     * %.*e rounds correctly and the first precision that round-trips is the shortest */
    char buf[64];
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, sizeof buf, "%.*e", p - 1, x);
        if (strtod(buf, NULL) == x) break;
    }
    const char *q = buf;
    int neg = 0;
    if (*q == '-') neg = 1, q++;
    char digits[32];
    int nd = 0;
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9') digits[nd++] = *q;
    int e10 = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    int decpt = e10 + 1;
    if (neg) llm_strbuf_append_char(sb, '-');
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            llm_strbuf_append_str(sb, "0.");
            for (int i = 0; i < -decpt; i++) llm_strbuf_append_char(sb, '0');
            llm_strbuf_append(sb, digits, (size_t)nd);
        } else if (decpt >= nd) {
            llm_strbuf_append(sb, digits, (size_t)nd);
            for (int i = nd; i < decpt; i++) llm_strbuf_append_char(sb, '0');
            llm_strbuf_append_str(sb, ".0");
        } else {
            llm_strbuf_append(sb, digits, (size_t)decpt);
            llm_strbuf_append_char(sb, '.');
            llm_strbuf_append(sb, digits + decpt, (size_t)(nd - decpt));
        }
    } else {
        llm_strbuf_append_char(sb, digits[0]);
        if (nd > 1) {
            llm_strbuf_append_char(sb, '.');
            llm_strbuf_append(sb, digits + 1, (size_t)(nd - 1));
        }
        int e = decpt - 1;
        llm_strbuf_appendf(sb, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
}

void tpl_format_repr_str(llm_strbuf *sb, const char *s, size_t n) {
    int has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char quote = (has_sq && !has_dq) ? '"' : '\'';
    llm_strbuf_append_char(sb, quote);
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        uint32_t cp = tpl_utf8_next(s, n, &i);
        if (cp == (uint32_t)quote || cp == '\\') {
            llm_strbuf_append_char(sb, '\\');
            llm_strbuf_append_char(sb, (char)cp);
        } else if (cp == '\n') {
            llm_strbuf_append_str(sb, "\\n");
        } else if (cp == '\r') {
            llm_strbuf_append_str(sb, "\\r");
        } else if (cp == '\t') {
            llm_strbuf_append_str(sb, "\\t");
        } else if (tpl_cp_printable(cp)) {
            llm_strbuf_append(sb, s + start, i - start);
        } else if (cp < 0x100) {
            llm_strbuf_appendf(sb, "\\x%02x", (unsigned)cp);
        } else if (cp < 0x10000) {
            llm_strbuf_appendf(sb, "\\u%04x", (unsigned)cp);
        } else {
            llm_strbuf_appendf(sb, "\\U%08x", (unsigned)cp);
        }
    }
    llm_strbuf_append_char(sb, quote);
}

void tpl_format_json_str(llm_strbuf *sb, const char *s, size_t n, int ensure_ascii) {
    llm_strbuf_append_char(sb, '"');
    size_t i = 0, run = 0;
    while (i < n) {
        unsigned char b = (unsigned char)s[i];
        if (b >= 0x20 && b != '"' && b != '\\' && (b < 0x7F || (!ensure_ascii && b >= 0x7F))) {
            i++;
            continue;
        }
        llm_strbuf_append(sb, s + run, i - run);
        if (b == '"')
            llm_strbuf_append_str(sb, "\\\""), i++;
        else if (b == '\\')
            llm_strbuf_append_str(sb, "\\\\"), i++;
        else if (b == '\n')
            llm_strbuf_append_str(sb, "\\n"), i++;
        else if (b == '\r')
            llm_strbuf_append_str(sb, "\\r"), i++;
        else if (b == '\t')
            llm_strbuf_append_str(sb, "\\t"), i++;
        else if (b == '\b')
            llm_strbuf_append_str(sb, "\\b"), i++;
        else if (b == '\f')
            llm_strbuf_append_str(sb, "\\f"), i++;
        else if (b < 0x80)
            llm_strbuf_appendf(sb, "\\u%04x", (unsigned)b), i++;
        else {
            uint32_t cp = tpl_utf8_next(s, n, &i);
            if (cp >= 0x10000) {
                uint32_t v = cp - 0x10000;
                llm_strbuf_appendf(sb, "\\u%04x\\u%04x", (unsigned)(0xD800 | (v >> 10)),
                                   (unsigned)(0xDC00 | (v & 0x3FF)));
            } else {
                llm_strbuf_appendf(sb, "\\u%04x", (unsigned)cp);
            }
        }
        run = i;
    }
    llm_strbuf_append(sb, s + run, n - run);
    llm_strbuf_append_char(sb, '"');
}
