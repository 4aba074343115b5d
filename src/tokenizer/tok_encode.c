/* llm_tokenize: the encode pipeline (see tok_internal.h for the stages). */
#include <string.h>

#include "tokenizer/tok_internal.h"

/* Steps 1-3: the pieces the model will see, in t->spans[*which] over *base. */
static llm_status pieces(llm_tokenizer *t, const char *text, size_t len, unsigned flags,
                         const char **base_out, int *which_out) {
    int parse_special = (flags & LLM_TOKENIZE_PARSE_SPECIAL) != 0;
    tok_spanvec *sv = &t->spans[0];
    sv->n = 0;
    t->out.n = 0;

    /* 1. added tokens matched on the raw text */
    llm_status st = tok_split_added(t, &t->trie_raw, text, 0, (uint32_t)len, 1, parse_special, sv);
    if (st != LLM_OK) return st;
    const char *base = text;
    int which = 0;

    /* 2. normalization of the other pieces, then added tokens matched on the normalized text */
    if (t->n_norms || t->trie_norm.n_patterns) {
        llm_strbuf *nb = &t->buf[0];
        llm_strbuf_clear(nb);
        if (llm_strbuf_reserve(nb, len + 16)) return LLM_ERR_OUT_OF_MEMORY;
        tok_spanvec *out = &t->spans[1];
        out->n = 0;
        for (size_t i = 0; i < sv->n; i++) {
            tok_span sp = sv->v[i];
            if (sp.id >= 0) {
                if (tok_spanvec_push(out, 0, 0, sp.id, 0)) return LLM_ERR_OUT_OF_MEMORY;
                continue;
            }
            size_t start = nb->len;
            if ((st = tok_normalize(t, text + sp.start, sp.len, nb)) != LLM_OK) return st;
            if (nb->len - start > UINT32_MAX / 2)
                return llm_fail(&t->err, LLM_ERR_INVALID_ARGUMENT, "text too long");
            st = tok_split_added(t, &t->trie_norm, nb->data, (uint32_t)start, (uint32_t)(nb->len - start),
                                 sp.orig0, parse_special, out);
            if (st != LLM_OK) return st;
        }
        base = nb->data;
        which = 1;
    }

    /* 3. pre-tokenization */
    if ((st = tok_pretokenize(t, &base, &which)) != LLM_OK) return st;
    *base_out = base;
    *which_out = which;
    return LLM_OK;
}

static llm_status encode(llm_tokenizer *t, const char *text, size_t len, unsigned flags) {
    const char *base;
    int which;
    llm_status st = pieces(t, text, len, flags, &base, &which);
    if (st != LLM_OK) return st;

    /* 4. the model */
    tok_spanvec *sv = &t->spans[which];
    if (tok_ids_reserve(&t->out, sv->n + 16)) return LLM_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < sv->n; i++) {
        const tok_span *sp = &sv->v[i];
        if (sp->id >= 0) {
            if (tok_ids_push(&t->out, sp->id)) return LLM_ERR_OUT_OF_MEMORY;
        } else if ((st = tok_bpe_piece(t, base + sp->start, sp->len, &t->out)) != LLM_OK) {
            return st;
        }
    }
    return LLM_OK;
}

llm_status llm_tokenize(llm_tokenizer *tok, const char *text, size_t len, unsigned flags, int32_t *ids,
                        size_t cap, size_t *n_ids) {
    if (n_ids) *n_ids = 0;
    if (!tok) return LLM_ERR_INVALID_ARGUMENT;
    llm_error_clear(&tok->err);
    if (!n_ids || (!text && len) || (!ids && cap))
        return llm_fail(&tok->err, LLM_ERR_INVALID_ARGUMENT, "llm_tokenize: NULL text, ids or n_ids");
    if (flags & ~(LLM_TOKENIZE_ADD_SPECIAL | LLM_TOKENIZE_PARSE_SPECIAL))
        return llm_fail(&tok->err, LLM_ERR_INVALID_ARGUMENT, "llm_tokenize: unknown flags 0x%x", flags);
    if (len > UINT32_MAX / 4)
        return llm_fail(&tok->err, LLM_ERR_INVALID_ARGUMENT, "llm_tokenize: text of %zu bytes is too long",
                        len);
    if (!text) text = "";
    size_t bad = tok_utf8_check(text, len);
    if (bad < len)
        return llm_fail(&tok->err, LLM_ERR_INVALID_ARGUMENT,
                        "llm_tokenize: invalid UTF-8 at byte offset %zu (0x%02X)", bad,
                        (unsigned)(uint8_t)text[bad]);
    llm_status st = encode(tok, text, len, flags);
    if (st != LLM_OK) {
        if (tok->err.status == LLM_OK) llm_fail(&tok->err, st, "llm_tokenize: %s", llm_strerror(st));
        return st;
    }
    const tok_post *pp = &tok->post;
    int post = (flags & LLM_TOKENIZE_ADD_SPECIAL) && tok->has_post;
    size_t total = tok->out.n + (post ? pp->n_prefix + pp->n_suffix : 0);
    *n_ids = total;
    if (total > cap)
        return llm_fail(&tok->err, LLM_ERR_BUFFER_TOO_SMALL, "llm_tokenize: %zu ids do not fit in %zu", total,
                        cap);
    size_t k = 0;
    if (post && pp->n_prefix) {
        memcpy(ids, pp->prefix, pp->n_prefix * sizeof *ids);
        k = pp->n_prefix;
    }
    if (tok->out.n) memcpy(ids + k, tok->out.v, tok->out.n * sizeof *ids);
    k += tok->out.n;
    if (post && pp->n_suffix) memcpy(ids + k, pp->suffix, pp->n_suffix * sizeof *ids);
    return LLM_OK;
}

llm_status tok_debug_pieces(llm_tokenizer *t, const char *text, size_t len, unsigned flags, llm_strbuf *out) {
    const char *base;
    int which;
    t->out.n = 0;
    llm_status st = pieces(t, text, len, flags, &base, &which);
    if (st != LLM_OK) return st;
    const tok_spanvec *sv = &t->spans[which];
    for (size_t i = 0; i < sv->n; i++) {
        const tok_span *sp = &sv->v[i];
        if (i) llm_strbuf_append_char(out, '|');
        if (sp->id >= 0) {
            llm_strbuf_appendf(out, "#%d", sp->id);
            continue;
        }
        for (uint32_t k = 0; k < sp->len; k++) {
            uint8_t b = (uint8_t)base[sp->start + k];
            if (t->byte_level_mode) { /* show what HF materializes */
                char u[4];
                llm_strbuf_append(out, u, llm_utf8_encode(tok_byte_to_cp(b), u));
            } else {
                llm_strbuf_append_char(out, (char)b);
            }
        }
    }
    return out->oom ? LLM_ERR_OUT_OF_MEMORY : LLM_OK;
}
