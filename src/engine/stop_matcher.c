#include "engine/stop_matcher.h"

#include <string.h>

void llm_stop_matcher_init(llm_stop_matcher *m, const char *const *stops, size_t n_stops) {
    memset(m, 0, sizeof *m);
    m->stops = stops;
    m->n_stops = n_stops;
}

void llm_stop_matcher_free(llm_stop_matcher *m) {
    llm_strbuf_free(&m->held);
    llm_strbuf_free(&m->out);
}

/* Length of the longest suffix of s[0..n) that is a proper prefix of some stop string. */
static size_t longest_partial(const llm_stop_matcher *m, const char *s, size_t n) {
    size_t best = 0;
    for (size_t i = 0; i < m->n_stops; i++) {
        size_t sl = strlen(m->stops[i]);
        size_t max = sl - 1 < n ? sl - 1 : n;
        for (size_t k = max; k > best; k--)
            if (memcmp(s + n - k, m->stops[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

int llm_stop_matcher_push(llm_stop_matcher *m, const char *text, size_t len) {
    llm_strbuf_clear(&m->out);
    if (llm_strbuf_append(&m->held, text, len) != 0) return -1;
    const char *h = m->held.data ? m->held.data : "";
    const size_t n = m->held.len;
    /* earliest complete match among all stop strings */
    size_t first = n;
    for (size_t i = 0; i < m->n_stops; i++) {
        const char *hit = memmem(h, n, m->stops[i], strlen(m->stops[i]));
        if (hit && (size_t)(hit - h) < first) first = (size_t)(hit - h);
    }
    if (first < n) {
        if (llm_strbuf_append(&m->out, h, first) != 0) return -1;
        llm_strbuf_clear(&m->held);
        return 1;
    }
    const size_t keep = longest_partial(m, h, n);
    if (llm_strbuf_append(&m->out, h, n - keep) != 0) return -1;
    if (m->held.data) {
        memmove(m->held.data, h + n - keep, keep);
        m->held.len = keep;
        m->held.data[keep] = '\0';
    }
    return 0;
}

void llm_stop_matcher_finish(llm_stop_matcher *m) {
    llm_strbuf_clear(&m->out);
    if (m->held.len) llm_strbuf_append(&m->out, m->held.data, m->held.len);
    llm_strbuf_clear(&m->held);
}
