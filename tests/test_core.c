/* Core building blocks: half-precision conversions, the string map, the thread pool, the KV block pool. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/half.h"
#include "core/strmap.h"
#include "core/threadpool.h"
#include "kv/kv_cache.h"
#include "test_util.h"

static void test_half(tu_rng *rng) {
    /* exhaustive: every f16 and bf16 value widens and narrows back to itself (NaNs stay NaN) */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = llm_f16_to_f32((uint16_t)h);
        uint16_t back = llm_f32_to_f16(f);
        if (isnan(f))
            TU_CHECK(isnan(llm_f16_to_f32(back)), "f16 NaN 0x%04x", h);
        else
            TU_CHECK(back == h, "f16 0x%04x -> %g -> 0x%04x", h, f, back);
        float g = llm_bf16_to_f32((uint16_t)h);
        if (!isnan(g)) TU_CHECK(llm_f32_to_bf16(g) == h, "bf16 0x%04x round trip", h);
    }
    TU_CHECK(llm_f16_to_f32(0x3c00) == 1.0f && llm_f16_to_f32(0xc000) == -2.0f, "f16 constants");
    TU_CHECK(llm_f16_to_f32(0x0001) == ldexpf(1.0f, -24), "smallest f16 subnormal");
    TU_CHECK(llm_bf16_to_f32(0x3f80) == 1.0f, "bf16 one");
    /* narrowing rounds to nearest: the result is never farther than half an ulp */
    for (int i = 0; i < 100000; i++) {
        float f = (float)((double)(tu_rng_next(rng) % 2000001) / 1000.0 - 1000.0);
        float r = llm_f16_to_f32(llm_f32_to_f16(f));
        float up = llm_f16_to_f32((uint16_t)(llm_f32_to_f16(f) + 1));
        TU_CHECK(fabsf(r - f) <= fabsf(up - r) / 2 + 1e-12f || fabsf(f) > 1000, "f16 rounding of %g", f);
    }
}

static void test_strmap(tu_rng *rng) {
    llm_strmap m;
    TU_CHECK(llm_strmap_init(&m, 4) == 0, "init");
    enum { N = 5000 };
    static char keys[N][24];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d.%llu", i, (unsigned long long)(tu_rng_next(rng) % 1000));
        TU_CHECK(llm_strmap_put(&m, keys[i], i) == -1, "new key %s", keys[i]);
    }
    for (int i = 0; i < N; i++) TU_CHECK(llm_strmap_get(&m, keys[i]) == i, "get %s", keys[i]);
    TU_CHECK(llm_strmap_put(&m, keys[7], 70) == 7, "replace returns old value");
    TU_CHECK(llm_strmap_get(&m, "absent") == -1, "absent key");
    llm_strmap_free(&m);
}

typedef struct {
    _Atomic long sum;
    long n;
} pool_job;

static void pool_task(void *p, int ith, int nth) {
    pool_job *j = p;
    long b, e, s = 0;
    llm_split_range(j->n, ith, nth, &b, &e);
    for (long i = b; i < e; i++) s += i;
    atomic_fetch_add(&j->sum, s);
}

static void test_threadpool(void) {
    for (int nt = 1; nt <= 4; nt++) {
        llm_threadpool *pool = llm_threadpool_create(nt);
        TU_CHECK(pool && llm_threadpool_size(pool) == nt, "pool of %d", nt);
        for (long n = 0; n < 2000; n += 97) {
            pool_job j = {0, n};
            llm_threadpool_run(pool, pool_task, &j);
            TU_CHECK(atomic_load(&j.sum) == n * (n - 1) / 2, "sum 0..%ld with %d threads", n - 1, nt);
        }
        llm_threadpool_free(pool);
    }
    /* split_range covers [0, n) exactly, in order */
    for (int nth = 1; nth <= 7; nth++)
        for (long n = 0; n < 50; n++) {
            long prev = 0;
            for (int i = 0; i < nth; i++) {
                long b, e;
                llm_split_range(n, i, nth, &b, &e);
                TU_CHECK(b == prev && e >= b, "split %ld/%d", n, nth);
                prev = e;
            }
            TU_CHECK(prev == n, "split covers %ld", n);
        }
}

static void test_kv_pool(tu_rng *rng) {
    llm_backend_config bc = {.n_threads = 1, .max_row = 64};
    llm_backend *be = llm_backend_cpu_create(&bc);
    llm_kv_cache kv;
    TU_CHECK(llm_kv_init(&kv, be, 2, 2, 8, 16, 10, LLM_DTYPE_F32) == LLM_OK, "kv init");
    int32_t held[10];
    int n = 0;
    for (int i = 0; i < 1000; i++) {
        if (n < 10 && (n == 0 || tu_rng_below(rng, 2))) {
            int32_t b = llm_kv_block_alloc(&kv);
            TU_CHECK(b >= 0 && b < 10, "alloc %d", b);
            for (int j = 0; j < n; j++) TU_CHECK(held[j] != b, "block %d handed out twice", b);
            held[n++] = b;
        } else {
            int k = (int)tu_rng_below(rng, (uint32_t)n);
            llm_kv_block_unref(&kv, held[k]);
            held[k] = held[--n];
        }
        TU_CHECK(llm_kv_blocks_used(&kv) == n, "used %d vs held %d", llm_kv_blocks_used(&kv), n);
    }
    while (n < 10) held[n++] = llm_kv_block_alloc(&kv);
    TU_CHECK(llm_kv_block_alloc(&kv) == -1, "exhausted pool returns -1");
    llm_kv_release(&kv, be);
    be->ops->free(be);
}

static float rnd(tu_rng *rng, float scale) {
    return ((float)tu_rng_below(rng, 1u << 24) / (float)(1u << 23) - 1.0f) * scale;
}

/* The fused residual add + RMSNorm gives exactly add then rmsnorm (output over y, as the forward runs
 * it); interleaved RoPE on rows permuted as llama.cpp permutes Llama's Q/K gives exactly the permuted
 * rotate-half result. */
static void test_cpu_fused_ops(tu_rng *rng) {
    enum { R = 5, D = 96, H = 3, HD = 32, HALF = HD / 2 };
    llm_backend_config bc = {.n_threads = 1, .max_row = D};
    llm_backend *be = llm_backend_cpu_create(&bc);
    float x1[R * D], x2[R * D], y1[R * D], y2[R * D], w[D], ref[R * D];
    for (int i = 0; i < R * D; i++) x1[i] = x2[i] = rnd(rng, 4.0f), y1[i] = y2[i] = rnd(rng, 2.0f);
    for (int i = 0; i < D; i++) w[i] = rnd(rng, 1.5f);
    llm_tensor wt = {w, LLM_DTYPE_F32, 1, D, "w"};
    be->ops->add(be, x1, y1, R * D);
    be->ops->rmsnorm(be, ref, x1, &wt, R, D, 1e-6f);
    be->ops->add_rmsnorm(be, y2, x2, y2, &wt, R, D, 1e-6f);
    TU_CHECK(memcmp(x1, x2, sizeof x1) == 0, "add_rmsnorm: residual differs from add");
    TU_CHECK(memcmp(ref, y2, sizeof ref) == 0, "add_rmsnorm: output differs from add + rmsnorm");

    int32_t pos[R];
    float inv[HALF], cs[R * HALF], sn[R * HALF], q[R * H * HD], qp[R * H * HD];
    for (int t = 0; t < R; t++) pos[t] = (int32_t)tu_rng_below(rng, 100000);
    for (int i = 0; i < HALF; i++) inv[i] = powf(10000.0f, -2.0f * i / HD);
    be->ops->rope_table(be, cs, sn, pos, R, inv, HALF);
    for (int i = 0; i < R * H * HD; i++) q[i] = rnd(rng, 3.0f);
    for (int th = 0; th < R * H; th++) /* new row 2i = old row i, new 2i+1 = old half + i */
        for (int i = 0; i < HALF; i++)
            qp[th * HD + 2 * i] = q[th * HD + i], qp[th * HD + 2 * i + 1] = q[th * HD + HALF + i];
    be->ops->rope(be, q, R, H, HD, cs, sn, 0);
    be->ops->rope(be, qp, R, H, HD, cs, sn, 1);
    int same = 1;
    for (int th = 0; th < R * H; th++)
        for (int i = 0; i < HALF; i++)
            same &= qp[th * HD + 2 * i] == q[th * HD + i] && qp[th * HD + 2 * i + 1] == q[th * HD + HALF + i];
    TU_CHECK(same, "interleaved rope on permuted rows != permuted rotate-half rope");
    be->ops->free(be);
}

int main(void) {
    tu_rng rng = {tu_fresh_seed("test_core")};
    test_half(&rng);
    test_strmap(&rng);
    test_threadpool();
    test_kv_pool(&rng);
    test_cpu_fused_ops(&rng);
    return tu_finish("test_core");
}
