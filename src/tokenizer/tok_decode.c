/* llm_detokenize: HF TokenizerImpl::decode. Ids become their token strings (special added tokens left
 * out when asked; ids no token has are skipped, as HF's filter_map does), the decoder chain maps that
 * list of strings to another (decode_chain), and the result is their concatenation; with no decoder,
 * the strings are joined with spaces.
 *
 * This is a direct transcription of the batch decoders; the streaming detokenizer (tok_stream.c) is an
 * independent incremental implementation, and the tests hold the two to the same output. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

int tok_piece(const llm_tokenizer *t, int32_t id, const char **s, size_t *len) {
    if (id < 0 || id >= t->n_vocab || t->piece_len[id] == UINT32_MAX) return 0;
    *s = t->pieces.data + t->piece_off[id];
    *len = t->piece_len[id];
    return 1;
}

/* A list of strings in one pool. */
typedef struct strlist {
    llm_strbuf pool;
    size_t *off, *len;
    size_t n, cap;
} strlist;

static int sl_push(strlist *l, const char *s, size_t len) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        size_t *o = realloc(l->off, cap * sizeof *o);
        if (!o) return -1;
        l->off = o;
        size_t *n = realloc(l->len, cap * sizeof *n);
        if (!n) return -1;
        l->len = n;
        l->cap = cap;
    }
    l->off[l->n] = l->pool.len;
    l->len[l->n] = len;
    l->n++;
    return llm_strbuf_append(&l->pool, s, len);
}

/* Starts an element whose bytes the caller appends to l->pool; sl_end closes it. */
static int sl_begin(strlist *l) {
    return sl_push(l, "", 0);
}
static void sl_end(strlist *l) {
    l->len[l->n - 1] = l->pool.len - l->off[l->n - 1];
}

static const char *sl_str(const strlist *l, size_t i) {
    return l->pool.data + l->off[i];
}

static void sl_clear(strlist *l) {
    llm_strbuf_clear(&l->pool);
    l->n = 0;
}

static void sl_free(strlist *l) {
    llm_strbuf_free(&l->pool);
    free(l->off);
    free(l->len);
}

static const char FFFD[] = "\xEF\xBF\xBD";

/* All occurrences of pat (non-overlapping, left to right) replaced by rep: Rust's str::replace. */
static void replace_all(llm_strbuf *out, const char *s, size_t len, const char *pat, size_t plen,
                        const char *rep, size_t rlen) {
    size_t i = 0;
    while (i < len) {
        const char *hit = plen && plen <= len - i ? memmem(s + i, len - i, pat, plen) : NULL;
        if (!hit) break;
        llm_strbuf_append(out, s + i, (size_t)(hit - (s + i)));
        llm_strbuf_append(out, rep, rlen);
        i = (size_t)(hit - s) + plen;
    }
    llm_strbuf_append(out, s + i, len - i);
}

/* WordPiece's cleanup: a fixed sequence of replacements. */
static void wordpiece_cleanup(llm_strbuf *out, const char *s, size_t len, llm_strbuf *tmp) {
    static const char *const pairs[][2] = {
        {" .", "."},   {" ?", "?"},           {" !", "!"},   {" ,", ","},     {" ' ", "'"},   {" n't", "n't"},
        {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    llm_strbuf a = LLM_STRBUF_INIT;
    llm_strbuf_append(&a, s, len);
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
        llm_strbuf_clear(tmp);
        replace_all(tmp, a.data ? a.data : "", a.len, pairs[k][0], strlen(pairs[k][0]), pairs[k][1],
                    strlen(pairs[k][1]));
        llm_strbuf_clear(&a);
        llm_strbuf_append(&a, tmp->data ? tmp->data : "", tmp->len);
    }
    llm_strbuf_append(out, a.data ? a.data : "", a.len);
    if (a.oom) out->oom = 1;
    llm_strbuf_free(&a);
}

/* ByteFallback's byte tokens: "<0xXX>" where XX parses as a u8 in base 16 (Rust's from_str_radix
 * also takes a leading '+'). */
int tok_byte_token(const char *s, size_t len) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int k = 3; k < 5; k++) {
        char c = s[k];
        if (k == 3 && c == '+') continue;
        int d = c >= '0' && c <= '9'                     ? c - '0'
                : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10
                                                         : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Strip decoder on one string: up to `start` leading and `stop` trailing `content` characters. */
static void strip_one(llm_strbuf *out, const char *s, size_t len, uint32_t content, size_t start,
                      size_t stop) {
    const uint8_t *u = (const uint8_t *)s;
    size_t a = 0, b = len;
    for (size_t k = 0; k < start && a < len; k++) {
        uint32_t cp;
        size_t n = tok_utf8_next(u + a, len - a, &cp);
        if (cp != content) break;
        a += n;
    }
    for (size_t k = 0; k < stop && b > a; k++) {
        size_t n = tok_utf8_last_len(u, b);
        uint32_t cp;
        tok_utf8_next(u + b - n, n, &cp);
        if (cp != content) break;
        b -= n;
    }
    llm_strbuf_append(out, s + a, b - a);
}

static llm_status apply_decoder(llm_tokenizer *t, const tok_decoder *d, const strlist *in, strlist *out,
                                llm_strbuf *tmp) {
    sl_clear(out);
    switch (d->type) {
    case TOK_DEC_BYTE_LEVEL: {
        llm_strbuf_clear(tmp);
        for (size_t i = 0; i < in->n; i++) {
            const uint8_t *s = (const uint8_t *)sl_str(in, i);
            size_t len = in->len[i], k = 0, mark = tmp->len;
            int all = 1;
            while (k < len) {
                uint32_t cp;
                k += tok_utf8_next(s + k, len - k, &cp);
                int b = tok_cp_to_byte(cp);
                if (b < 0) {
                    all = 0;
                    break;
                }
                llm_strbuf_append_char(tmp, (char)b);
            }
            if (!all) { /* a character outside the table: the token passes as its own bytes */
                tmp->len = mark;
                llm_strbuf_append(tmp, s, len);
            }
        }
        sl_begin(out);
        tok_utf8_lossy(&out->pool, (const uint8_t *)(tmp->data ? tmp->data : ""), tmp->len, 1);
        sl_end(out);
        break;
    }
    case TOK_DEC_FUSE:
        sl_begin(out);
        for (size_t i = 0; i < in->n; i++) llm_strbuf_append(&out->pool, sl_str(in, i), in->len[i]);
        sl_end(out);
        break;
    case TOK_DEC_METASPACE:
        for (size_t i = 0; i < in->n; i++) {
            const uint8_t *s = (const uint8_t *)sl_str(in, i);
            size_t len = in->len[i], k = 0;
            sl_begin(out);
            while (k < len) {
                uint32_t cp;
                size_t n = tok_utf8_next(s + k, len - k, &cp);
                if (cp == d->cp) {
                    if (!(i == 0 && d->prepend_scheme != TOK_PREPEND_NEVER))
                        llm_strbuf_append_char(&out->pool, ' ');
                } else {
                    llm_strbuf_append(&out->pool, s + k, n);
                }
                k += n;
            }
            sl_end(out);
        }
        break;
    case TOK_DEC_BYTE_FALLBACK: {
        llm_strbuf_clear(tmp); /* the pending byte tokens */
        for (size_t i = 0; i <= in->n; i++) {
            int b = i < in->n ? tok_byte_token(sl_str(in, i), in->len[i]) : -1;
            if (b >= 0) {
                llm_strbuf_append_char(tmp, (char)b);
                continue;
            }
            if (tmp->len) {
                if (tok_utf8_check(tmp->data, tmp->len) == tmp->len)
                    sl_push(out, tmp->data, tmp->len);
                else
                    for (size_t k = 0; k < tmp->len; k++) sl_push(out, FFFD, 3);
                llm_strbuf_clear(tmp);
            }
            if (i < in->n) sl_push(out, sl_str(in, i), in->len[i]);
        }
        break;
    }
    case TOK_DEC_STRIP:
        for (size_t i = 0; i < in->n; i++) {
            sl_begin(out);
            strip_one(&out->pool, sl_str(in, i), in->len[i], d->cp, d->start, d->stop);
            sl_end(out);
        }
        break;
    case TOK_DEC_REPLACE:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = sl_str(in, i);
            llm_status st =
                tok_regex_find_matches((tok_regex *)&d->pattern, s, in->len[i], &t->matches, &t->err);
            if (st != LLM_OK) return st;
            sl_begin(out);
            for (size_t k = 0; k < t->matches.n; k++) {
                const tok_match *m = &t->matches.v[k];
                if (m->is_match)
                    llm_strbuf_append(&out->pool, d->str, d->str_len);
                else
                    llm_strbuf_append(&out->pool, s + m->start, m->end - m->start);
            }
            sl_end(out);
        }
        break;
    case TOK_DEC_WORDPIECE:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = sl_str(in, i);
            size_t len = in->len[i];
            llm_strbuf_clear(tmp);
            if (i != 0) {
                if (len >= d->str_len && memcmp(s, d->str, d->str_len) == 0) {
                    s += d->str_len;
                    len -= d->str_len;
                } else {
                    llm_strbuf_append_char(tmp, ' ');
                }
            }
            llm_strbuf_append(tmp, s, len);
            sl_begin(out);
            if (d->cleanup) {
                llm_strbuf tmp2 = LLM_STRBUF_INIT;
                wordpiece_cleanup(&out->pool, tmp->data ? tmp->data : "", tmp->len, &tmp2);
                llm_strbuf_free(&tmp2);
            } else {
                llm_strbuf_append(&out->pool, tmp->data ? tmp->data : "", tmp->len);
            }
            sl_end(out);
        }
        break;
    case TOK_DEC_BPE:
        for (size_t i = 0; i < in->n; i++) {
            sl_begin(out);
            replace_all(&out->pool, sl_str(in, i), in->len[i], d->str, d->str_len, " ",
                        i + 1 == in->n ? 0 : 1);
            sl_end(out);
        }
        break;
    }
    if (out->pool.oom || tmp->oom) return LLM_ERR_OUT_OF_MEMORY;
    return LLM_OK;
}

/* Decodes into t->dec_text. */
static llm_status decode(llm_tokenizer *t, const int32_t *ids, size_t n, unsigned flags) {
    strlist a = {0}, b = {0};
    llm_strbuf tmp = LLM_STRBUF_INIT;
    llm_status st = LLM_OK;
    llm_strbuf_clear(&t->dec_text);
    for (size_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        if (!tok_piece(t, ids[i], &s, &len)) continue;
        if ((flags & LLM_DETOKENIZE_SKIP_SPECIAL) && t->special[ids[i]]) continue;
        if (sl_push(&a, s, len)) st = LLM_ERR_OUT_OF_MEMORY;
    }
    strlist *cur = &a, *nxt = &b;
    for (size_t k = 0; k < t->n_decs && st == LLM_OK; k++) {
        st = apply_decoder(t, &t->decs[k], cur, nxt, &tmp);
        strlist *x = cur;
        cur = nxt;
        nxt = x;
    }
    if (st == LLM_OK) {
        for (size_t i = 0; i < cur->n; i++) {
            if (!t->has_decoder && i) llm_strbuf_append_char(&t->dec_text, ' ');
            llm_strbuf_append(&t->dec_text, sl_str(cur, i), cur->len[i]);
        }
        if (t->dec_text.oom || cur->pool.oom) st = LLM_ERR_OUT_OF_MEMORY;
    }
    sl_free(&a);
    sl_free(&b);
    llm_strbuf_free(&tmp);
    return st;
}

static llm_status copy_out(llm_tokenizer *t, const char *s, size_t n, char *text, size_t cap, size_t *len,
                           const char *fn) {
    *len = n;
    if (n + 1 > cap) {
        if (text && cap) text[0] = '\0';
        return llm_fail(&t->err, LLM_ERR_BUFFER_TOO_SMALL, "%s: %zu bytes (plus the NUL) do not fit in %zu",
                        fn, n, cap);
    }
    if (n) memcpy(text, s, n);
    text[n] = '\0';
    return LLM_OK;
}

llm_status llm_detokenize(llm_tokenizer *tok, const int32_t *ids, size_t n_ids, unsigned flags, char *text,
                          size_t cap, size_t *len) {
    if (len) *len = 0;
    if (!tok) return LLM_ERR_INVALID_ARGUMENT;
    llm_error_clear(&tok->err);
    if (!len || (!ids && n_ids) || (!text && cap))
        return llm_fail(&tok->err, LLM_ERR_INVALID_ARGUMENT, "llm_detokenize: NULL ids, text or len");
    if (flags & ~LLM_DETOKENIZE_SKIP_SPECIAL)
        return llm_fail(&tok->err, LLM_ERR_INVALID_ARGUMENT, "llm_detokenize: unknown flags 0x%x", flags);
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= tok->n_vocab)
            return llm_fail(&tok->err, LLM_ERR_INVALID_ARGUMENT,
                            "llm_detokenize: ids[%zu] = %d is not in 0..%d", i, ids[i], tok->n_vocab - 1);
    llm_status st = decode(tok, ids, n_ids, flags);
    if (st != LLM_OK) {
        if (tok->err.status == LLM_OK) llm_fail(&tok->err, st, "llm_detokenize: %s", llm_strerror(st));
        return st;
    }
    return copy_out(tok, tok->dec_text.data ? tok->dec_text.data : "", tok->dec_text.len, text, cap, len,
                    "llm_detokenize");
}

llm_status llm_token_to_piece(const llm_tokenizer *tok, int32_t id, char *buf, size_t cap, size_t *len) {
    if (len) *len = 0;
    if (!tok || !len || (!buf && cap)) return LLM_ERR_INVALID_ARGUMENT;
    const char *s;
    size_t n;
    if (!tok_piece(tok, id, &s, &n)) return LLM_ERR_INVALID_ARGUMENT;
    *len = n;
    if (n + 1 > cap) {
        if (buf && cap) buf[0] = '\0';
        return LLM_ERR_BUFFER_TOO_SMALL;
    }
    if (n) memcpy(buf, s, n);
    buf[n] = '\0';
    return LLM_OK;
}
