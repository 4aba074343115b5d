/* The streaming detokenizer: the decoder chain as a pipeline of incremental stages.
 *
 * In HF's batch decode every decoder maps a list of strings to a list of strings. ByteLevel and Fuse
 * join the whole list into one string; the stages after a join therefore see one growing string
 * ("string mode": they receive fragments of it), the stages before it see the token strings one by one
 * ("list mode"). Each stage keeps back exactly what later input can still change:
 *   ByteLevel    the trailing bytes of an incomplete UTF-8 sequence;
 *   ByteFallback a run of <0xXX> tokens, until a non-byte token ends it (the run decodes as a whole,
 *                or as one U+FFFD per byte if it is not valid UTF-8);
 *   BPEDecoder   the last token (its suffix becomes "" only at the very end);
 *   Strip        (string mode) trailing `content` characters, up to `stop` of them;
 *   Metaspace, WordPiece  only whether the first element went by.
 * Stages in string mode whose batch behaviour depends on the whole string (Replace, WordPiece,
 * BPEDecoder, ByteFallback, ByteLevel after a join) hold everything until the end of the stream. Since
 * every stage emits the same text as its batch counterpart, in the same order, the concatenation of
 * all that the stream emits equals llm_detokenize of the same ids; every emitted piece is whole
 * characters, so each step is valid UTF-8.
 *
 * End of stream (llm_detok_stream_flush): every stage releases what it holds exactly as batch decoding
 * ends, e.g. an incomplete UTF-8 sequence becomes one U+FFFD. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

typedef struct sstage {
    int string_mode;
    int started;   /* list mode: an element went through */
    int have;      /* BPEDecoder: an element is held */
    int lead_done; /* Strip (string mode): past the leading characters */
    size_t count;  /* Strip (string mode): leading characters stripped / trailing ones held */
    llm_strbuf held;
} sstage;

struct llm_detok_stream {
    llm_tokenizer *tok;
    unsigned flags;
    size_t n;
    sstage *st;
    sstage *snap;
    int any_elem, snap_any_elem;
    llm_strbuf emit;
};

static const char FFFD[] = "\xEF\xBF\xBD";

static void push_elem(llm_detok_stream *s, size_t k, const char *str, size_t len);
static void push_frag(llm_detok_stream *s, size_t k, const char *str, size_t len);

/* The per-token conversion of the ByteLevel decoder: mapped characters -> bytes, or the token's own
 * bytes when a character is outside the table. */
static void byte_level_bytes(llm_strbuf *out, const char *str, size_t len) {
    size_t mark = out->len, k = 0;
    const uint8_t *u = (const uint8_t *)str;
    while (k < len) {
        uint32_t cp;
        k += tok_utf8_next(u + k, len - k, &cp);
        int b = tok_cp_to_byte(cp);
        if (b < 0) {
            out->len = mark;
            llm_strbuf_append(out, str, len);
            return;
        }
        llm_strbuf_append_char(out, (char)b);
    }
}

/* Metaspace on one string; drop = the replacement disappears instead of becoming a space. */
static void metaspace_map(llm_strbuf *out, const char *str, size_t len, uint32_t repl, int drop) {
    const uint8_t *u = (const uint8_t *)str;
    size_t k = 0, run = 0;
    while (k < len) {
        uint32_t cp;
        size_t n = tok_utf8_next(u + k, len - k, &cp);
        if (cp == repl) {
            llm_strbuf_append(out, str + run, k - run);
            if (!drop) llm_strbuf_append_char(out, ' ');
            run = k + n;
        }
        k += n;
    }
    llm_strbuf_append(out, str + run, len - run);
}

/* Batch replace of every occurrence of a literal (Rust str::replace). */
static void replace_lit(llm_strbuf *out, const char *s, size_t len, const char *pat, size_t plen,
                        const char *rep, size_t rlen) {
    size_t i = 0;
    while (i < len && plen) {
        const char *hit = plen <= len - i ? memmem(s + i, len - i, pat, plen) : NULL;
        if (!hit) break;
        llm_strbuf_append(out, s + i, (size_t)(hit - (s + i)));
        llm_strbuf_append(out, rep, rlen);
        i = (size_t)(hit - s) + plen;
    }
    llm_strbuf_append(out, s + i, len - i);
}

static void regex_replace(llm_detok_stream *s, const tok_decoder *d, llm_strbuf *out, const char *str,
                          size_t len) {
    llm_tokenizer *t = s->tok;
    if (tok_regex_find_matches((tok_regex *)&d->pattern, str, len, &t->matches, &t->err) != LLM_OK) {
        out->oom = 1; /* reported as a failure of the call */
        return;
    }
    for (size_t i = 0; i < t->matches.n; i++) {
        const tok_match *m = &t->matches.v[i];
        if (m->is_match)
            llm_strbuf_append(out, d->str, d->str_len);
        else
            llm_strbuf_append(out, str + m->start, m->end - m->start);
    }
}

static void wordpiece_cleanup_all(llm_strbuf *out, const char *s, size_t len) {
    static const char *const pairs[][2] = {
        {" .", "."},   {" ?", "?"},           {" !", "!"},   {" ,", ","},     {" ' ", "'"},   {" n't", "n't"},
        {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    llm_strbuf a = LLM_STRBUF_INIT, b = LLM_STRBUF_INIT;
    llm_strbuf_append(&a, s, len);
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
        llm_strbuf_clear(&b);
        replace_lit(&b, a.data ? a.data : "", a.len, pairs[k][0], strlen(pairs[k][0]), pairs[k][1],
                    strlen(pairs[k][1]));
        llm_strbuf tmp = a;
        a = b;
        b = tmp;
    }
    llm_strbuf_append(out, a.data ? a.data : "", a.len);
    if (a.oom || b.oom) out->oom = 1;
    llm_strbuf_free(&a);
    llm_strbuf_free(&b);
}

/* Strip in string mode on a fragment (whole characters). */
static void strip_frag(llm_detok_stream *s, size_t k, const tok_decoder *d, const char *str, size_t len) {
    sstage *g = &s->st[k];
    const uint8_t *u = (const uint8_t *)str;
    llm_strbuf out = LLM_STRBUF_INIT;
    size_t i = 0;
    char cu[4];
    size_t clen = llm_utf8_encode(d->cp, cu);
    while (i < len) {
        uint32_t cp;
        size_t n = tok_utf8_next(u + i, len - i, &cp);
        if (!g->lead_done) {
            if (g->count < d->start && cp == d->cp) {
                g->count++;
                i += n;
                continue;
            }
            g->lead_done = 1;
            g->count = 0; /* from now on: trailing content characters held */
        }
        if (cp == d->cp) {
            llm_strbuf_append(&g->held, str + i, n);
            g->count++;
        } else {
            llm_strbuf_append(&out, g->held.data ? g->held.data : "", g->held.len);
            llm_strbuf_clear(&g->held);
            g->count = 0;
            llm_strbuf_append(&out, str + i, n);
        }
        i += n;
    }
    /* only the last `stop` of the held characters can still be stripped */
    if (g->lead_done && g->count > d->stop) {
        size_t release = g->count - d->stop;
        llm_strbuf_append(&out, g->held.data, release * clen);
        memmove(g->held.data, g->held.data + release * clen, g->held.len - release * clen);
        g->held.len -= release * clen;
        g->held.data[g->held.len] = '\0';
        g->count = d->stop;
    }
    if (out.oom) s->emit.oom = 1;
    if (out.len) push_frag(s, k + 1, out.data, out.len);
    llm_strbuf_free(&out);
}

/* Flushes ByteFallback's pending byte run as list elements. */
static void byte_run_out(llm_detok_stream *s, size_t k) {
    sstage *g = &s->st[k];
    if (!g->held.len) return;
    llm_strbuf run = g->held; /* take it: pushing may not touch this stage again */
    g->held = (llm_strbuf)LLM_STRBUF_INIT;
    if (tok_utf8_check(run.data, run.len) == run.len)
        push_elem(s, k + 1, run.data, run.len);
    else
        for (size_t i = 0; i < run.len; i++) push_elem(s, k + 1, FFFD, 3);
    llm_strbuf_clear(&run);
    g->held = run; /* keep the allocation */
}

static void push_elem(llm_detok_stream *s, size_t k, const char *str, size_t len) {
    llm_tokenizer *t = s->tok;
    if (k == s->n) {
        if (!t->has_decoder && s->any_elem) llm_strbuf_append_char(&s->emit, ' ');
        s->any_elem = 1;
        llm_strbuf_append(&s->emit, str, len);
        return;
    }
    const tok_decoder *d = &t->decs[k];
    sstage *g = &s->st[k];
    llm_strbuf o = LLM_STRBUF_INIT;
    int first = !g->started;
    g->started = 1;
    switch (d->type) {
    case TOK_DEC_BYTE_LEVEL: {
        byte_level_bytes(&g->held, str, len);
        size_t keep = tok_utf8_lossy(&o, (const uint8_t *)(g->held.data ? g->held.data : ""), g->held.len, 0);
        if (g->held.data) {
            memmove(g->held.data, g->held.data + g->held.len - keep, keep);
            g->held.len = keep;
            g->held.data[keep] = '\0';
        }
        if (o.len) push_frag(s, k + 1, o.data, o.len);
        break;
    }
    case TOK_DEC_FUSE:
        push_frag(s, k + 1, str, len);
        break;
    case TOK_DEC_METASPACE:
        metaspace_map(&o, str, len, d->cp, first && d->prepend_scheme != TOK_PREPEND_NEVER);
        push_elem(s, k + 1, o.data ? o.data : "", o.len);
        break;
    case TOK_DEC_BYTE_FALLBACK: {
        int b = tok_byte_token(str, len);
        if (b >= 0) {
            llm_strbuf_append_char(&g->held, (char)b);
            break;
        }
        byte_run_out(s, k);
        push_elem(s, k + 1, str, len);
        break;
    }
    case TOK_DEC_STRIP: {
        const uint8_t *u = (const uint8_t *)str;
        size_t a = 0, e = len;
        for (size_t c = 0; c < d->start && a < len; c++) {
            uint32_t cp;
            size_t n = tok_utf8_next(u + a, len - a, &cp);
            if (cp != d->cp) break;
            a += n;
        }
        for (size_t c = 0; c < d->stop && e > a; c++) {
            size_t n = tok_utf8_last_len(u, e);
            uint32_t cp;
            tok_utf8_next(u + e - n, n, &cp);
            if (cp != d->cp) break;
            e -= n;
        }
        push_elem(s, k + 1, str + a, e - a);
        break;
    }
    case TOK_DEC_REPLACE:
        regex_replace(s, d, &o, str, len);
        push_elem(s, k + 1, o.data ? o.data : "", o.len);
        break;
    case TOK_DEC_WORDPIECE: {
        llm_strbuf w = LLM_STRBUF_INIT;
        if (!first) {
            if (len >= d->str_len && memcmp(str, d->str, d->str_len) == 0) {
                str += d->str_len;
                len -= d->str_len;
            } else {
                llm_strbuf_append_char(&w, ' ');
            }
        }
        llm_strbuf_append(&w, str, len);
        if (d->cleanup)
            wordpiece_cleanup_all(&o, w.data ? w.data : "", w.len);
        else
            llm_strbuf_append(&o, w.data ? w.data : "", w.len);
        if (w.oom) o.oom = 1;
        llm_strbuf_free(&w);
        push_elem(s, k + 1, o.data ? o.data : "", o.len);
        break;
    }
    case TOK_DEC_BPE:
        if (g->have)
            replace_lit(&o, g->held.data ? g->held.data : "", g->held.len, d->str, d->str_len, " ", 1);
        llm_strbuf_clear(&g->held);
        llm_strbuf_append(&g->held, str, len);
        if (g->have) push_elem(s, k + 1, o.data ? o.data : "", o.len);
        g->have = 1;
        break;
    }
    if (o.oom || g->held.oom) s->emit.oom = 1;
    llm_strbuf_free(&o);
}

static void push_frag(llm_detok_stream *s, size_t k, const char *str, size_t len) {
    if (k == s->n) {
        llm_strbuf_append(&s->emit, str, len);
        return;
    }
    const tok_decoder *d = &s->tok->decs[k];
    sstage *g = &s->st[k];
    llm_strbuf o = LLM_STRBUF_INIT;
    switch (d->type) {
    case TOK_DEC_FUSE:
        push_frag(s, k + 1, str, len);
        break;
    case TOK_DEC_METASPACE:
        /* the joined string is element 0 */
        metaspace_map(&o, str, len, d->cp, d->prepend_scheme != TOK_PREPEND_NEVER);
        if (o.len) push_frag(s, k + 1, o.data, o.len);
        break;
    case TOK_DEC_STRIP:
        strip_frag(s, k, d, str, len);
        break;
    default:
        llm_strbuf_append(&g->held, str, len);
        break; /* whole-string stages: wait for the end */
    }
    if (o.oom || g->held.oom) s->emit.oom = 1;
    llm_strbuf_free(&o);
}

/* End of stream from stage k on. */
static void finish(llm_detok_stream *s, size_t k) {
    if (k == s->n) return;
    const tok_decoder *d = &s->tok->decs[k];
    sstage *g = &s->st[k];
    llm_strbuf o = LLM_STRBUF_INIT;
    const char *h = g->held.data ? g->held.data : "";
    if (!g->string_mode) {
        switch (d->type) {
        case TOK_DEC_BYTE_LEVEL:
            tok_utf8_lossy(&o, (const uint8_t *)h, g->held.len, 1);
            if (o.len) push_frag(s, k + 1, o.data, o.len);
            break;
        case TOK_DEC_BYTE_FALLBACK:
            byte_run_out(s, k);
            break;
        case TOK_DEC_BPE:
            if (g->have) {
                replace_lit(&o, h, g->held.len, d->str, d->str_len, "", 0);
                push_elem(s, k + 1, o.data ? o.data : "", o.len);
            }
            break;
        default:
            break;
        }
    } else {
        switch (d->type) {
        case TOK_DEC_REPLACE:
            regex_replace(s, d, &o, h, g->held.len);
            break;
        case TOK_DEC_WORDPIECE:
            if (d->cleanup)
                wordpiece_cleanup_all(&o, h, g->held.len);
            else
                llm_strbuf_append(&o, h, g->held.len);
            break;
        case TOK_DEC_BPE:
            replace_lit(&o, h, g->held.len, d->str, d->str_len, "", 0);
            break;
        case TOK_DEC_BYTE_FALLBACK: {
            int b = tok_byte_token(h, g->held.len);
            if (b < 0)
                llm_strbuf_append(&o, h, g->held.len);
            else if (b < 0x80)
                llm_strbuf_append_char(&o, (char)b);
            else
                llm_strbuf_append(&o, FFFD, 3);
            break;
        }
        case TOK_DEC_BYTE_LEVEL: {
            llm_strbuf bytes = LLM_STRBUF_INIT;
            byte_level_bytes(&bytes, h, g->held.len);
            tok_utf8_lossy(&o, (const uint8_t *)(bytes.data ? bytes.data : ""), bytes.len, 1);
            if (bytes.oom) o.oom = 1;
            llm_strbuf_free(&bytes);
            break;
        }
        default:
            break; /* Strip's held trailing characters are stripped; Fuse and Metaspace hold nothing */
        }
        if (o.len) push_frag(s, k + 1, o.data, o.len);
    }
    if (o.oom) s->emit.oom = 1;
    llm_strbuf_free(&o);
    finish(s, k + 1);
}

static void reset(llm_detok_stream *s) {
    for (size_t k = 0; k < s->n; k++) {
        sstage *g = &s->st[k];
        g->started = g->have = g->lead_done = 0;
        g->count = 0;
        llm_strbuf_clear(&g->held);
    }
    s->any_elem = 0;
}

static int save(llm_detok_stream *s) {
    s->snap_any_elem = s->any_elem;
    for (size_t k = 0; k < s->n; k++) {
        sstage *g = &s->st[k], *c = &s->snap[k];
        llm_strbuf held = c->held;
        *c = *g;
        c->held = held;
        llm_strbuf_clear(&c->held);
        llm_strbuf_append(&c->held, g->held.data ? g->held.data : "", g->held.len);
        if (c->held.oom) return -1;
    }
    return 0;
}

static void restore(llm_detok_stream *s) {
    s->any_elem = s->snap_any_elem;
    for (size_t k = 0; k < s->n; k++) {
        sstage *g = &s->st[k], *c = &s->snap[k];
        llm_strbuf held = g->held;
        *g = *c;
        g->held = held;
        llm_strbuf_clear(&g->held);
        llm_strbuf_append(&g->held, c->held.data ? c->held.data : "", c->held.len);
    }
}

llm_status llm_detok_stream_create(llm_tokenizer *tok, unsigned flags, llm_detok_stream **out) {
    if (!out) return LLM_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!tok || (flags & ~LLM_DETOKENIZE_SKIP_SPECIAL)) return LLM_ERR_INVALID_ARGUMENT;
    llm_detok_stream *s = calloc(1, sizeof *s);
    if (!s) return LLM_ERR_OUT_OF_MEMORY;
    s->tok = tok;
    s->flags = flags;
    s->n = tok->n_decs;
    s->st = calloc(s->n + 1, sizeof *s->st);
    s->snap = calloc(s->n + 1, sizeof *s->snap);
    if (!s->st || !s->snap) {
        llm_detok_stream_free(s);
        return LLM_ERR_OUT_OF_MEMORY;
    }
    int joined = 0;
    for (size_t k = 0; k < s->n; k++) {
        s->st[k].string_mode = joined;
        if (tok->decs[k].type == TOK_DEC_BYTE_LEVEL || tok->decs[k].type == TOK_DEC_FUSE) joined = 1;
    }
    *out = s;
    return LLM_OK;
}

void llm_detok_stream_free(llm_detok_stream *s) {
    if (!s) return;
    for (size_t k = 0; s->st && k < s->n; k++) llm_strbuf_free(&s->st[k].held);
    for (size_t k = 0; s->snap && k < s->n; k++) llm_strbuf_free(&s->snap[k].held);
    free(s->st);
    free(s->snap);
    llm_strbuf_free(&s->emit);
    free(s);
}

/* Copies what this step produced; on a short buffer the state goes back to before the step. */
static llm_status deliver(llm_detok_stream *s, char *out, size_t cap, size_t *len) {
    llm_tokenizer *t = s->tok;
    if (s->emit.oom) {
        restore(s);
        return llm_fail(&t->err, t->err.status != LLM_OK ? t->err.status : LLM_ERR_OUT_OF_MEMORY,
                        "llm_detok_stream: %s", t->err.status != LLM_OK ? t->err.msg : "out of memory");
    }
    *len = s->emit.len;
    if (s->emit.len + 1 > cap) {
        restore(s);
        if (out && cap) out[0] = '\0';
        return llm_fail(&t->err, LLM_ERR_BUFFER_TOO_SMALL,
                        "llm_detok_stream: %zu bytes (plus the NUL) do not fit in %zu", s->emit.len, cap);
    }
    if (s->emit.len) memcpy(out, s->emit.data, s->emit.len);
    out[s->emit.len] = '\0';
    return LLM_OK;
}

llm_status llm_detok_stream_feed(llm_detok_stream *s, int32_t id, char *out, size_t cap, size_t *len) {
    if (len) *len = 0;
    if (!s || !len || (!out && cap)) return LLM_ERR_INVALID_ARGUMENT;
    llm_tokenizer *t = s->tok;
    llm_error_clear(&t->err);
    if (id < 0 || id >= t->n_vocab)
        return llm_fail(&t->err, LLM_ERR_INVALID_ARGUMENT, "llm_detok_stream_feed: id %d is not in 0..%d", id,
                        t->n_vocab - 1);
    llm_strbuf_clear(&s->emit);
    if (save(s) != 0) return llm_fail(&t->err, LLM_ERR_OUT_OF_MEMORY, "llm_detok_stream_feed: out of memory");
    const char *piece;
    size_t plen;
    if (tok_piece(t, id, &piece, &plen) && !((s->flags & LLM_DETOKENIZE_SKIP_SPECIAL) && t->special[id]))
        push_elem(s, 0, piece, plen);
    return deliver(s, out, cap, len);
}

llm_status llm_detok_stream_flush(llm_detok_stream *s, char *out, size_t cap, size_t *len) {
    if (len) *len = 0;
    if (!s || !len || (!out && cap)) return LLM_ERR_INVALID_ARGUMENT;
    llm_error_clear(&s->tok->err);
    llm_strbuf_clear(&s->emit);
    if (save(s) != 0)
        return llm_fail(&s->tok->err, LLM_ERR_OUT_OF_MEMORY, "llm_detok_stream_flush: out of memory");
    finish(s, 0);
    llm_status st = deliver(s, out, cap, len);
    if (st == LLM_OK) reset(s);
    return st;
}
