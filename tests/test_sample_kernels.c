/* The sampler's vocabulary passes and selections (src/sample/kernels.h, select.h) against plain scalar
 * loops written here, on fresh random inputs of sizes around every lane, chunk and block boundary. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sample/kernels.h"
#include "sample/select.h"
#include "test_util.h"

static int better(float za, int ia, float zb, int ib) {
    return za > zb || (za == zb && ia < ib);
}

typedef struct {
    float z;
    int id;
} pair;

static int cmp_pair(const void *a, const void *b) {
    const pair *x = a, *y = b;
    return better(x->z, x->id, y->z, y->id) ? -1 : better(y->z, y->id, x->z, x->id) ? 1 : 0;
}

static void fill(tu_rng *rng, float *z, int n) {
    const int mode = (int)tu_rng_below(rng, 3);
    for (int i = 0; i < n; i++) {
        const double u = (double)tu_rng_below(rng, 1000001) / 1e6;
        z[i] = mode == 0 ? (float)(u * 30 - 15) : mode == 1 ? (float)(floor(u * 6) - 3) : (float)(u * 0.1);
        if (tu_rng_below(rng, 50) == 0) z[i] = -INFINITY;
    }
    if (tu_rng_below(rng, 2)) z[tu_rng_below(rng, (uint32_t)n)] = 20.0f; /* a clear maximum */
}

static int close_rel(double a, double b, double tol) {
    return fabs(a - b) <= tol * fmax(fabs(a), fabs(b)) + 1e-300;
}

static void test_sizes(tu_rng *rng) {
    const int sizes[] = {1, 2, 15, 16, 17, 63, 64, 65, 127, 255, 256, 257, 511, 1000, 4099};
    float *z = malloc(5000 * sizeof *z), *dst = malloc(5000 * sizeof *dst);
    llm_smp_cand *c = malloc(5000 * sizeof *c), *c2 = malloc(5000 * sizeof *c2);
    pair *ref = malloc(5000 * sizeof *ref);
    double *bs = malloc(64 * sizeof *bs);
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int rep = 0; rep < 6; rep++) {
            const int n = sizes[si];
            fill(rng, z, n);
            /* max, the NaN/+inf check, copy */
            float m = -INFINITY;
            for (int i = 0; i < n; i++) m = z[i] > m ? z[i] : m;
            int64_t bad;
            TU_CHECK(llm_smp_max(z, n, &bad) == m && bad == -1, "max n %d", n);
            memset(dst, 0, (size_t)n * sizeof *dst);
            TU_CHECK(llm_smp_copy_max(z, dst, n, &bad) == m && bad == -1, "copy_max n %d", n);
            TU_CHECK(memcmp(z, dst, (size_t)n * sizeof *z) == 0, "copy n %d", n);
            const int j = (int)tu_rng_below(rng, (uint32_t)n);
            z[j] = rep % 2 ? NAN : INFINITY;
            if (j + 1 < n) z[n - 1] = NAN; /* a later bad one does not hide the first */
            llm_smp_max(z, n, &bad);
            TU_CHECK(bad == j, "bad index %lld, want %d (n %d)", (long long)bad, j, n);
            fill(rng, z, n); /* fresh again */
            m = -INFINITY;
            for (int i = 0; i < n; i++) m = z[i] > m ? z[i] : m;
            if (m == -INFINITY) continue;
            int first = -1;
            for (int i = 0; i < n && first < 0; i++)
                if (z[i] == m) first = i;
            TU_CHECK(llm_smp_first_equal(z, n, m) == first, "first_equal n %d", n);
            TU_CHECK(llm_smp_first_equal(z, n, 1e9f) == -1, "first_equal absent");

            /* weights and their sums */
            const float temp = (float)(0.1 + (double)tu_rng_below(rng, 3000) / 1000.0);
            double all = 0, all_exact = 0;
            for (int i = 0; i < n; i++) {
                all += llm_smp_weight(z[i], m, temp);
                all_exact += exp(((double)z[i] - m) / temp);
            }
            TU_CHECK(close_rel(llm_smp_exp_sum(z, n, m, temp), all, 1e-12), "exp_sum n %d", n);
            TU_CHECK(close_rel(all, all_exact, 1e-6), "weights vs exp n %d: %.9g %.9g", n, all, all_exact);

            /* block sums of the kept weights, with a random boundary token and min-p */
            const int b = (int)tu_rng_below(rng, (uint32_t)n);
            const llm_smp_keep keep = {(float)((double)tu_rng_below(rng, 100) / 1000.0), z[b], b};
            double total;
            llm_smp_exp_blocks(z, n, m, temp, keep, bs, &total);
            TU_CHECK(close_rel(total, all, 1e-12), "exp_blocks total n %d", n);
            for (int blk = 0; blk * LLM_SMP_BLOCK < n; blk++) {
                double want = 0;
                for (int i = blk * LLM_SMP_BLOCK; i < n && i < (blk + 1) * LLM_SMP_BLOCK; i++) {
                    const float q = llm_smp_weight(z[i], m, temp);
                    const int kept = q >= keep.qmin && (z[i] > keep.zb || (z[i] == keep.zb && i <= keep.idb));
                    if (kept) want += q;
                }
                TU_CHECK(close_rel(bs[blk], want, 1e-12), "block %d of n %d: %.17g vs %.17g", blk, n, bs[blk],
                         want);
            }

            /* masses above cuts */
            float cut[LLM_SMP_NCUT];
            for (int k = 0; k < LLM_SMP_NCUT; k++) cut[k] = z[tu_rng_below(rng, (uint32_t)n)];
            double mass[LLM_SMP_NCUT];
            int64_t count[LLM_SMP_NCUT];
            llm_smp_exp_masses(z, n, m, temp, cut, &total, mass, count);
            TU_CHECK(close_rel(total, all, 1e-12), "exp_masses total");
            for (int k = 0; k < LLM_SMP_NCUT; k++) {
                double wm = 0;
                int64_t wc = 0;
                for (int i = 0; i < n; i++)
                    if (z[i] >= cut[k]) wm += llm_smp_weight(z[i], m, temp), wc++;
                TU_CHECK(close_rel(mass[k], wm, 1e-12) && count[k] == wc, "mass/count above cut %d, n %d", k,
                         n);
            }

            /* the better-order by sorting */
            for (int i = 0; i < n; i++) ref[i] = (pair){z[i], i};
            qsort(ref, (size_t)n, sizeof *ref, cmp_pair);

            /* top-k selection */
            const int ks[] = {1, 2, 5, 40, n - 1, n, n + 3};
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
                const int k = ks[ki];
                if (k < 1) continue;
                const int got = llm_smp_select_top(z, n, k, c);
                TU_CHECK(got == (k < n ? k : n), "select_top count");
                llm_smp_sort_best_first(c, got);
                for (int i = 0; i < got; i++)
                    TU_CHECK(c[i].id == ref[i].id && c[i].z == ref[i].z, "top %d of n %d: [%d] = %d, want %d",
                             k, n, i, c[i].id, ref[i].id);
            }

            /* collect a range */
            const float lo = z[tu_rng_below(rng, (uint32_t)n)], hi = tu_rng_below(rng, 2) ? INFINITY : m;
            const int got = llm_smp_collect_range(z, n, lo, hi, c);
            int w = 0, ok = 1;
            for (int i = 0; i < n; i++)
                if (z[i] >= lo && z[i] < hi) ok &= w < got && c[w].id == i && c[w].z == z[i], w++;
            TU_CHECK(ok && w == got, "collect_range n %d: %d vs %d", n, got, w);

            /* nucleus: the shortest prefix of the order with weight >= target; from sorted input (the
             * fast path) and from shuffled input (the heap) */
            const double target = all * (double)tu_rng_below(rng, 1001) / 1000.0;
            double cum = 0;
            int want_r = n;
            for (int i = 0; i < n; i++) {
                cum += llm_smp_weight(ref[i].z, m, temp);
                if (cum >= target) {
                    want_r = i + 1;
                    break;
                }
            }
            for (int shuffled = 0; shuffled < 2; shuffled++) {
                for (int i = 0; i < n; i++) c2[i] = (llm_smp_cand){ref[i].z, ref[i].id};
                if (shuffled)
                    for (int i = n - 1; i > 0; i--) {
                        const int r = (int)tu_rng_below(rng, (uint32_t)i + 1);
                        const llm_smp_cand t = c2[i];
                        c2[i] = c2[r];
                        c2[r] = t;
                    }
                const int r = llm_smp_nucleus(c2, n, m, temp, target);
                TU_CHECK(r == want_r, "nucleus n %d shuffled %d: %d, want %d", n, shuffled, r, want_r);
                for (int i = 0; i < r && i < want_r; i++)
                    TU_CHECK(c2[i].id == ref[i].id, "nucleus order n %d [%d]", n, i);
            }
        }
    free(z);
    free(dst);
    free(c);
    free(c2);
    free(ref);
    free(bs);
}

int main(void) {
    tu_rng rng = {tu_fresh_seed("test_sample_kernels")};
    test_sizes(&rng);
    return tu_finish("test_sample_kernels");
}
