/* Pre-tokenizers: each one maps the current list of spans to a new one, as HF's
 * PreTokenizedString::split does (spans that already are tokens pass through; empty results are
 * dropped). Splitting follows NormalizedString::split: a pattern yields alternating match / non-match
 * ranges, and the delimiter behavior decides what becomes of the matches. */
#include <string.h>

#include "tokenizer/tok_internal.h"

/* HF's `Fn(char) -> bool` pattern: every matching character is a match of its own. */
typedef int (*char_pred)(const tok_pretok *p, uint32_t cp);

static int pred_numeric(const tok_pretok *p, uint32_t cp) {
    return (void)p, tok_is_numeric(cp);
}
static int pred_whitespace(const tok_pretok *p, uint32_t cp) {
    return (void)p, tok_is_whitespace(cp);
}
static int pred_punct(const tok_pretok *p, uint32_t cp) {
    return (void)p, tok_is_punctuation(cp);
}
static int pred_delim(const tok_pretok *p, uint32_t cp) {
    return cp == p->delimiter;
}
static int pred_repl(const tok_pretok *p, uint32_t cp) {
    return cp == p->replacement;
}

static int char_matches(const tok_pretok *p, char_pred pred, const char *s, size_t len, tok_matchvec *mv) {
    mv->n = 0;
    if (len == 0) return tok_matchvec_push(mv, 0, 0, 0);
    const uint8_t *u = (const uint8_t *)s;
    size_t last = 0, i = 0;
    while (i < len) {
        uint32_t cp;
        size_t k = tok_utf8_next(u + i, len - i, &cp);
        if (pred(p, cp)) {
            if (last < i && tok_matchvec_push(mv, last, i, 0)) return -1;
            if (tok_matchvec_push(mv, i, i + k, 1)) return -1;
            last = i + k;
        }
        i += k;
    }
    if (len > last && tok_matchvec_push(mv, last, len, 0)) return -1;
    return 0;
}

/* Applies the delimiter behavior to the matches of span `sp` (offsets relative to its start) and
 * appends the kept, non-empty pieces to out. */
static int split_by(const tok_matchvec *mv, tok_split_behavior behavior, int invert, const tok_span *sp,
                    tok_spanvec *out) {
    /* pieces as (start, end, removed) in a small growing pass over mv, written straight to out */
    size_t first_out = out->n;
    int prev_match = 0;
    for (size_t i = 0; i < mv->n; i++) {
        uint32_t s = mv->v[i].start, e = mv->v[i].end;
        int is_match = mv->v[i].is_match ^ (invert != 0);
        tok_span *last = out->n > first_out ? &out->v[out->n - 1] : NULL;
        switch (behavior) {
        case TOK_SPLIT_ISOLATED:
            if (tok_spanvec_push(out, s, e - s, -1, 0)) return -1;
            break;
        case TOK_SPLIT_REMOVED:
            if (!is_match && tok_spanvec_push(out, s, e - s, -1, 0)) return -1;
            break;
        case TOK_SPLIT_CONTIGUOUS:
            if (is_match == prev_match && last)
                last->len = e - last->start;
            else if (tok_spanvec_push(out, s, e - s, -1, 0))
                return -1;
            break;
        case TOK_SPLIT_MERGED_WITH_PREVIOUS:
            if (is_match && !prev_match && last)
                last->len = e - last->start;
            else if (tok_spanvec_push(out, s, e - s, -1, 0))
                return -1;
            break;
        case TOK_SPLIT_MERGED_WITH_NEXT:
            break; /* below */
        }
        prev_match = is_match;
    }
    if (behavior == TOK_SPLIT_MERGED_WITH_NEXT) {
        /* HF folds from the end: a match that follows a non-match (in reverse order) joins the piece
         * after it */
        prev_match = 0;
        for (size_t i = mv->n; i-- > 0;) {
            uint32_t s = mv->v[i].start, e = mv->v[i].end;
            int is_match = mv->v[i].is_match ^ (invert != 0);
            tok_span *last = out->n > first_out ? &out->v[out->n - 1] : NULL;
            if (is_match && !prev_match && last) {
                last->len = last->start + last->len - s;
                last->start = s;
            } else if (tok_spanvec_push(out, s, e - s, -1, 0)) {
                return -1;
            }
            prev_match = is_match;
        }
        /* reverse what was appended */
        for (size_t a = first_out, b = out->n; a + 1 < b; a++, b--) {
            tok_span tmp = out->v[a];
            out->v[a] = out->v[b - 1];
            out->v[b - 1] = tmp;
        }
    }
    /* drop empty pieces, make offsets absolute, carry orig0 to the piece at the span's start */
    size_t w = first_out;
    for (size_t r = first_out; r < out->n; r++) {
        tok_span x = out->v[r];
        if (x.len == 0) continue;
        x.orig0 = sp->orig0 && x.start == 0;
        x.start += sp->start;
        out->v[w++] = x;
    }
    out->n = w;
    return 0;
}

/* Which buffer a new base text goes to: any of the three that is not the current base. */
static llm_strbuf *other_buf(llm_tokenizer *t, const char *base) {
    for (int k = 0; k < 3; k++)
        if (t->buf[k].data != base) return &t->buf[k];
    return &t->buf[0];
}

/* Metaspace: spaces become the replacement, the prefix is added per the scheme, then the text is
 * split before each replacement character (MergedWithNext). */
static llm_status metaspace_span(llm_tokenizer *t, const tok_pretok *p, const char *base, const tok_span *sp,
                                 llm_strbuf *nb, tok_spanvec *out) {
    const char *s = base + sp->start;
    size_t start = nb->len;
    /* HF checks "starts with the replacement" after spaces were replaced */
    int starts =
        (sp->len > 0 && s[0] == ' ') || (sp->len >= p->repl_len && memcmp(s, p->repl_utf8, p->repl_len) == 0);
    int prepend = !starts && (p->prepend_scheme == TOK_PREPEND_ALWAYS ||
                              (p->prepend_scheme == TOK_PREPEND_FIRST && sp->orig0));
    if (prepend) llm_strbuf_append(nb, p->repl_utf8, p->repl_len);
    for (size_t i = 0; i < sp->len; i++) {
        if (s[i] == ' ')
            llm_strbuf_append(nb, p->repl_utf8, p->repl_len);
        else
            llm_strbuf_append_char(nb, s[i]);
    }
    if (nb->oom) return LLM_ERR_OUT_OF_MEMORY;
    tok_span ns = {(uint32_t)start, (uint32_t)(nb->len - start), -1, sp->orig0};
    if (!p->split)
        return tok_spanvec_push(out, ns.start, ns.len, -1, ns.orig0) ? LLM_ERR_OUT_OF_MEMORY : LLM_OK;
    if (char_matches(p, pred_repl, nb->data + start, ns.len, &t->matches) ||
        split_by(&t->matches, TOK_SPLIT_MERGED_WITH_NEXT, 0, &ns, out))
        return LLM_ERR_OUT_OF_MEMORY;
    return LLM_OK;
}

static llm_status split_span(llm_tokenizer *t, const tok_pretok *p, const char *base, const tok_span *sp,
                             tok_spanvec *out) {
    const char *s = base + sp->start;
    int r = 0;
    switch (p->type) {
    case TOK_PT_SPLIT:
    case TOK_PT_WHITESPACE:
    case TOK_PT_BYTE_LEVEL:
        if (p->fast != TOK_FAST_NONE) {
            if (tok_fast_split_matches(p->fast, (tok_regex *)&p->pattern, s, sp->len, &t->matches))
                return llm_fail(&t->err, LLM_ERR_INTERNAL,
                                "pre-tokenizer split failed (out of memory or a regex limit)");
        } else {
            llm_status st =
                tok_regex_find_matches((tok_regex *)&p->pattern, s, sp->len, &t->matches, &t->err);
            if (st != LLM_OK) return st;
        }
        if (p->type == TOK_PT_SPLIT)
            r = split_by(&t->matches, p->behavior, p->invert, sp, out);
        else if (p->type == TOK_PT_WHITESPACE)
            r = split_by(&t->matches, TOK_SPLIT_REMOVED, 1, sp, out);
        else
            r = split_by(&t->matches, TOK_SPLIT_ISOLATED, 0, sp, out);
        break;
    case TOK_PT_DIGITS:
        r = char_matches(p, pred_numeric, s, sp->len, &t->matches) ||
            split_by(&t->matches, p->individual_digits ? TOK_SPLIT_ISOLATED : TOK_SPLIT_CONTIGUOUS, 0, sp,
                     out);
        break;
    case TOK_PT_WHITESPACE_SPLIT:
        r = char_matches(p, pred_whitespace, s, sp->len, &t->matches) ||
            split_by(&t->matches, TOK_SPLIT_REMOVED, 0, sp, out);
        break;
    case TOK_PT_PUNCTUATION:
        r = char_matches(p, pred_punct, s, sp->len, &t->matches) ||
            split_by(&t->matches, p->behavior, 0, sp, out);
        break;
    case TOK_PT_CHAR_DELIMITER:
        r = char_matches(p, pred_delim, s, sp->len, &t->matches) ||
            split_by(&t->matches, TOK_SPLIT_REMOVED, 0, sp, out);
        break;
    default:
        break;
    }
    return r ? LLM_ERR_OUT_OF_MEMORY : LLM_OK;
}

/* ByteLevel: optional prefix space per span, optional GPT-2 split, then (unless BPE does it) each byte
 * becomes its stand-in character. The steps ping-pong between the two span vectors; the result ends in
 * *out. */
static llm_status byte_level(llm_tokenizer *t, const tok_pretok *p, const char **base, tok_spanvec *in,
                             tok_spanvec *out) {
    const char *b = *base;
    tok_spanvec *src = in, *dst = out;
    if (p->add_prefix_space) {
        llm_strbuf *nb = other_buf(t, b);
        llm_strbuf_clear(nb);
        if (llm_strbuf_reserve(nb, 1)) return LLM_ERR_OUT_OF_MEMORY;
        dst->n = 0;
        for (size_t i = 0; i < src->n; i++) {
            tok_span sp = src->v[i];
            if (sp.id >= 0) {
                if (tok_spanvec_push(dst, 0, 0, sp.id, 0)) return LLM_ERR_OUT_OF_MEMORY;
                continue;
            }
            size_t start = nb->len;
            if (b[sp.start] != ' ') llm_strbuf_append_char(nb, ' ');
            llm_strbuf_append(nb, b + sp.start, sp.len);
            if (nb->oom || tok_spanvec_push(dst, (uint32_t)start, (uint32_t)(nb->len - start), -1, sp.orig0))
                return LLM_ERR_OUT_OF_MEMORY;
        }
        b = nb->data;
        tok_spanvec *x = src;
        src = dst;
        dst = x;
    }
    if (p->use_regex) {
        dst->n = 0;
        for (size_t i = 0; i < src->n; i++) {
            if (src->v[i].id >= 0) {
                if (tok_spanvec_push(dst, 0, 0, src->v[i].id, 0)) return LLM_ERR_OUT_OF_MEMORY;
                continue;
            }
            llm_status st = split_span(t, p, b, &src->v[i], dst);
            if (st != LLM_OK) return st;
        }
        tok_spanvec *x = src;
        src = dst;
        dst = x;
    }
    if (src != out) { /* the result is in *in: exchange the two vectors */
        tok_spanvec x = *in;
        *in = *out;
        *out = x;
    }
    *base = b;
    if (p->deferred) return LLM_OK;
    /* materialize the byte -> character mapping */
    llm_strbuf *nb = other_buf(t, b);
    llm_strbuf_clear(nb);
    if (llm_strbuf_reserve(nb, 1)) return LLM_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < out->n; i++) {
        tok_span *sp = &out->v[i];
        if (sp->id >= 0) continue;
        size_t start = nb->len;
        for (uint32_t k = 0; k < sp->len; k++) {
            char u[4];
            llm_strbuf_append(nb, u, llm_utf8_encode(tok_byte_to_cp((uint8_t)b[sp->start + k]), u));
        }
        sp->start = (uint32_t)start;
        sp->len = (uint32_t)(nb->len - start);
    }
    if (nb->oom) return LLM_ERR_OUT_OF_MEMORY;
    *base = nb->data;
    return LLM_OK;
}

llm_status tok_pretokenize(llm_tokenizer *t, const char **base, int *which) {
    for (size_t k = 0; k < t->n_pretoks; k++) {
        const tok_pretok *p = &t->pretoks[k];
        tok_spanvec *in = &t->spans[*which];
        tok_spanvec *out = &t->spans[1 - *which];
        out->n = 0;
        llm_status st = LLM_OK;
        if (p->type == TOK_PT_BYTE_LEVEL) {
            st = byte_level(t, p, base, in, out);
        } else if (p->type == TOK_PT_METASPACE) {
            llm_strbuf *nb = other_buf(t, *base);
            llm_strbuf_clear(nb);
            if (llm_strbuf_reserve(nb, 1)) return LLM_ERR_OUT_OF_MEMORY;
            for (size_t i = 0; i < in->n && st == LLM_OK; i++) {
                if (in->v[i].id >= 0) {
                    if (tok_spanvec_push(out, 0, 0, in->v[i].id, 0)) st = LLM_ERR_OUT_OF_MEMORY;
                    continue;
                }
                st = metaspace_span(t, p, *base, &in->v[i], nb, out);
            }
            *base = nb->data;
        } else {
            for (size_t i = 0; i < in->n && st == LLM_OK; i++) {
                if (in->v[i].id >= 0) {
                    if (tok_spanvec_push(out, 0, 0, in->v[i].id, 0)) st = LLM_ERR_OUT_OF_MEMORY;
                    continue;
                }
                st = split_span(t, p, *base, &in->v[i], out);
            }
        }
        if (st != LLM_OK) return st;
        *which = 1 - *which;
    }
    return LLM_OK;
}
