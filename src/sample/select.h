/* Choosing the best tokens without sorting the vocabulary.
 *
 * "Better" is one total order used by every truncation and by top_logprobs: a higher logit wins, and
 * of equal logits the lower token id. Top-k keeps the first k tokens of that order, top-p the
 * shortest prefix of it with enough probability mass; both are prefixes, so both reduce to partial
 * selection: a bounded heap for top-k (O(n) scan that skips blocks no better than the heap's worst),
 * and for top-p a heap over the candidates that is popped only as far as the nucleus reaches. */
#ifndef LLM_SAMPLE_SELECT_H
#define LLM_SAMPLE_SELECT_H

#include <stdint.h>

typedef struct llm_smp_cand {
    float z;
    int32_t id;
} llm_smp_cand;

static inline int llm_smp_better(llm_smp_cand a, llm_smp_cand b) {
    return a.z > b.z || (a.z == b.z && a.id < b.id);
}

/* The min(k, n) best tokens of z[0..n) into out[] (any order; k >= 1), returned count. */
int32_t llm_smp_select_top(const float *z, int32_t n, int32_t k, llm_smp_cand *out);

/* Every token with lo <= z < hi into out[] in id order; returns the count. */
int32_t llm_smp_collect_range(const float *z, int32_t n, float lo, float hi, llm_smp_cand *out);

/* Sorts c[0..m) best first. */
void llm_smp_sort_best_first(llm_smp_cand *c, int32_t m);

/* The nucleus of candidates c[0..m) (which must hold the best token of the distribution): reorders c so
 * that c[0..r) are, best first, the shortest prefix of the better-order whose weights
 * llm_smp_weight(z, zmax, temp) sum (in double, in that order) to >= target; returns r (m if the sum
 * of all of them stays below target, which only rounding can cause when target is within the mass
 * of c). Costs O(m + r log m). */
int32_t llm_smp_nucleus(llm_smp_cand *c, int32_t m, float zmax, float temp, double target);

#endif
