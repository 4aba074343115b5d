/* Partial selection over the better-order (see select.h). */
#include "sample/select.h"

#include <string.h>

#include "sample/kernels.h"

/* Tokens checked at once before the scalar work; a plain counting loop the compiler vectorizes. */
#define CHUNK 64

static inline int32_t count_above(const float *z, float v) {
    int32_t c = 0;
    for (int l = 0; l < CHUNK; l++) c += z[l] > v;
    return c;
}

static inline int32_t count_in(const float *z, float lo, float hi) {
    int32_t c = 0;
    for (int l = 0; l < CHUNK; l++) c += (z[l] >= lo) & (z[l] < hi);
    return c;
}

/* Heaps over c[0..m): with `best_on_top` the root is the best candidate, otherwise the worst. */
static inline int above(llm_smp_cand a, llm_smp_cand b, int best_on_top) {
    return best_on_top ? llm_smp_better(a, b) : llm_smp_better(b, a);
}

static void sift_down(llm_smp_cand *c, int32_t m, int32_t i, int best_on_top) {
    const llm_smp_cand v = c[i];
    for (;;) {
        int32_t child = 2 * i + 1;
        if (child >= m) break;
        if (child + 1 < m && above(c[child + 1], c[child], best_on_top)) child++;
        if (!above(c[child], v, best_on_top)) break;
        c[i] = c[child];
        i = child;
    }
    c[i] = v;
}

static void heapify(llm_smp_cand *c, int32_t m, int best_on_top) {
    for (int32_t i = m / 2 - 1; i >= 0; i--) sift_down(c, m, i, best_on_top);
}

int32_t llm_smp_select_top(const float *z, int32_t n, int32_t k, llm_smp_cand *out) {
    if (k >= n) {
        for (int32_t i = 0; i < n; i++) out[i] = (llm_smp_cand){z[i], i};
        return n;
    }
    for (int32_t i = 0; i < k; i++) out[i] = (llm_smp_cand){z[i], i};
    heapify(out, k, 0); /* the worst kept token at the root */
    /* Tokens come in increasing id order, so one whose logit merely equals the root's loses the tie:
     * only a strictly higher logit gets in, and a block with none can be skipped whole. */
    int32_t i = k;
    for (; i + CHUNK <= n; i += CHUNK) {
        if (!count_above(z + i, out[0].z)) continue;
        for (int l = 0; l < CHUNK; l++)
            if (z[i + l] > out[0].z) {
                out[0] = (llm_smp_cand){z[i + l], i + l};
                sift_down(out, k, 0, 0);
            }
    }
    for (; i < n; i++)
        if (z[i] > out[0].z) {
            out[0] = (llm_smp_cand){z[i], i};
            sift_down(out, k, 0, 0);
        }
    return k;
}

int32_t llm_smp_collect_range(const float *z, int32_t n, float lo, float hi, llm_smp_cand *out) {
    int32_t m = 0, i = 0;
    for (; i + CHUNK <= n; i += CHUNK) {
        if (!count_in(z + i, lo, hi)) continue;
        for (int l = 0; l < CHUNK; l++)
            if (z[i + l] >= lo && z[i + l] < hi) out[m++] = (llm_smp_cand){z[i + l], i + l};
    }
    for (; i < n; i++)
        if (z[i] >= lo && z[i] < hi) out[m++] = (llm_smp_cand){z[i], i};
    return m;
}

void llm_smp_sort_best_first(llm_smp_cand *c, int32_t m) {
    heapify(c, m, 0);
    for (int32_t end = m - 1; end > 0; end--) {
        const llm_smp_cand worst = c[0];
        c[0] = c[end];
        c[end] = worst;
        sift_down(c, end, 0, 0);
    }
}

int32_t llm_smp_nucleus(llm_smp_cand *c, int32_t m, float zmax, float temp, double target) {
    /* Already in the better-order (equal logits in increasing id order, as a full tie collected in id
     * order is): the nucleus is a prefix as it stands. Spares the heap its worst case. */
    int32_t sorted = 1;
    for (int32_t j = 1; j < m && sorted; j++) sorted = llm_smp_better(c[j - 1], c[j]);
    if (sorted) {
        double cum = 0.0;
        for (int32_t j = 0; j < m; j++) {
            cum += (double)llm_smp_weight(c[j].z, zmax, temp);
            if (cum >= target) return j + 1;
        }
        return m;
    }
    heapify(c, m, 1);
    double cum = 0.0;
    int32_t end = m; /* c[0..end) is the heap; c[end..m) the popped tokens, best last */
    while (end > 0) {
        const llm_smp_cand best = c[0];
        c[0] = c[end - 1];
        c[--end] = best;
        sift_down(c, end, 0, 1);
        cum += (double)llm_smp_weight(best.z, zmax, temp);
        if (cum >= target) break;
    }
    const int32_t r = m - end;
    for (int32_t a = end, b = m - 1; a < b; a++, b--) {
        const llm_smp_cand t = c[a];
        c[a] = c[b];
        c[b] = t;
    }
    memmove(c, c + end, (size_t)r * sizeof *c);
    return r;
}
