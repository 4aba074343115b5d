/* UTF-8 validation, lossy decoding the way Rust does it, and the character classes HF's Rust code
 * uses (char::is_whitespace, char::is_numeric, ...). */
#include <string.h>
#include <utf8proc.h>

#include "tokenizer/tok_internal.h"

/* The second byte's range depends on the lead byte (Unicode Table 3-7: no overlongs, no surrogates,
 * nothing above U+10FFFF). */
size_t tok_utf8_seq(const uint8_t *s, size_t n, int *incomplete, size_t *bad) {
    *incomplete = 0;
    *bad = 1;
    uint8_t b = s[0];
    if (b < 0x80) return 1;
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF)
        need = 2;
    else if (b >= 0xE0 && b <= 0xEF) {
        need = 3;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 4;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
    } else
        return 0; /* 80..C1, F5..FF: never valid */
    for (size_t k = 1; k < need; k++) {
        if (k >= n) {
            *incomplete = 1;
            return 0;
        }
        uint8_t c = s[k];
        if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) {
            *bad = k;
            return 0;
        }
    }
    return need;
}

size_t tok_utf8_check(const char *s, size_t len) {
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        /* ASCII runs, 8 bytes at a time */
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= len) break;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        int inc;
        size_t bad;
        size_t k = tok_utf8_seq(p + i, len - i, &inc, &bad);
        if (!k) return i;
        i += k;
    }
    return len;
}

size_t tok_utf8_lossy(llm_strbuf *out, const uint8_t *s, size_t n, int final) {
    static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
    size_t i = 0, run = 0; /* run: start of the pending valid stretch */
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int inc;
        size_t bad;
        size_t k = tok_utf8_seq(s + i, n - i, &inc, &bad);
        if (k) {
            i += k;
            continue;
        }
        llm_strbuf_append(out, s + run, i - run);
        if (inc && !final) return n - i; /* keep the tail: it may still complete */
        llm_strbuf_append(out, fffd, 3);
        i += inc ? n - i : bad;
        run = i;
    }
    llm_strbuf_append(out, s + run, n - run);
    return 0;
}

int tok_is_whitespace(uint32_t cp) {
    if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
    if (cp < 0x85) return 0;
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

int tok_is_numeric(uint32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

int tok_is_letter(uint32_t cp) {
    if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
}

int tok_is_punctuation(uint32_t cp) {
    if (cp < 0x80)
        return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60) ||
               (cp >= 0x7B && cp <= 0x7E);
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

/* GPT-2's table: printable Latin-1 bytes stand for themselves, the other 68 are shifted to U+0100.. in
 * byte order. */
static int byte_is_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* The 68 others, in byte order: 0x00..0x20 (33), 0x7F..0xA0 (34), 0xAD (1). */
uint32_t tok_byte_to_cp(uint8_t b) {
    if (byte_is_printable(b)) return b;
    if (b <= 0x20) return 0x100u + b;
    if (b >= 0x7F && b <= 0xA0) return 0x100u + 33u + (b - 0x7Fu);
    return 0x100u + 67u; /* 0xAD */
}

int tok_cp_to_byte(uint32_t cp) {
    if (cp < 0x100) return byte_is_printable(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68) return -1;
    uint32_t k = cp - 0x100;
    if (k < 33) return (int)k;
    if (k < 67) return (int)(0x7F + (k - 33));
    return 0xAD;
}
