/* Cutting added tokens out of text, as HF's AddedVocabulary::find_matches does: leftmost-longest,
 * non-overlapping matches; a match that is skipped (a special token while special tokens are not
 * parsed, or a single_word token inside a word) still consumes its text; lstrip / rstrip widen the
 * token over neighbouring whitespace (Unicode White_Space). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

int tok_spanvec_push(tok_spanvec *sv, uint32_t start, uint32_t len, int32_t id, uint32_t orig0) {
    if (sv->n == sv->cap) {
        size_t cap = sv->cap ? sv->cap * 2 : 256;
        tok_span *v = realloc(sv->v, cap * sizeof *v);
        if (!v) return -1;
        sv->v = v;
        sv->cap = cap;
    }
    sv->v[sv->n++] = (tok_span){start, len, id, orig0};
    return 0;
}

/* The regex crate's \w on one character. */
static int is_word_char(llm_tokenizer *t, const uint8_t *s, size_t len) {
    return pcre2_match(t->word_re.code, (PCRE2_SPTR)s, len, 0, PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK,
                       t->word_re.md, t->word_re.mctx) > 0;
}

llm_status tok_split_added(llm_tokenizer *t, const tok_trie *trie, const char *base, uint32_t start,
                           uint32_t len, uint32_t orig0, int parse_special, tok_spanvec *out) {
    if (len == 0) return LLM_OK;
    const uint8_t *s = (const uint8_t *)base + start;
    size_t start_offset = 0, pos = 0;
    if (trie->n_patterns) {
        while (pos < len) {
            size_t p = pos;
            while (p < len && !trie->first_byte[s[p]]) p++;
            if (p >= len) break;
            int32_t idx = -1;
            size_t mlen = tok_trie_longest(trie, s + p, len - p, &idx);
            if (mlen == 0) {
                pos = p + 1;
                continue;
            }
            pos = p + mlen;
            const tok_added *a = &t->added[idx];
            if (!parse_special && a->special) continue;
            size_t mstart = p, mstop = p + mlen;
            if (a->single_word) {
                int start_space = 1, stop_space = 1;
                if (mstart > 0) {
                    size_t k = tok_utf8_last_len(s, mstart);
                    start_space = !is_word_char(t, s + mstart - k, k);
                }
                if (mstop < len) stop_space = !is_word_char(t, s + mstop, tok_utf8_len(s[mstop]));
                if (!start_space || !stop_space) continue;
            }
            if (a->lstrip) {
                size_t ns = mstart;
                while (ns > 0) {
                    size_t k = tok_utf8_last_len(s, ns);
                    uint32_t cp;
                    tok_utf8_next(s + ns - k, k, &cp);
                    if (!tok_is_whitespace(cp)) break;
                    ns -= k;
                }
                mstart = ns > start_offset ? ns : start_offset;
            }
            if (a->rstrip) {
                while (mstop < len) {
                    uint32_t cp;
                    size_t k = tok_utf8_next(s + mstop, len - mstop, &cp);
                    if (!tok_is_whitespace(cp)) break;
                    mstop += k;
                }
            }
            if (start_offset < mstart &&
                tok_spanvec_push(out, start + (uint32_t)start_offset, (uint32_t)(mstart - start_offset), -1,
                                 start_offset == 0 ? orig0 : 0))
                return LLM_ERR_OUT_OF_MEMORY;
            if (tok_spanvec_push(out, start + (uint32_t)mstart, 0, a->id, 0)) return LLM_ERR_OUT_OF_MEMORY;
            start_offset = mstop;
        }
    }
    if (start_offset < len &&
        tok_spanvec_push(out, start + (uint32_t)start_offset, (uint32_t)(len - start_offset), -1,
                         start_offset == 0 ? orig0 : 0))
        return LLM_ERR_OUT_OF_MEMORY;
    return LLM_OK;
}
