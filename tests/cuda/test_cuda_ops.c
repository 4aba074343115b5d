/* The CUDA parity gate, op by op: every op of the CUDA backend against the CPU reference backend, on
 * fresh random inputs at several shapes, through the same op table the model uses. Errors are
 * normalised: max |cuda - cpu| / max(1, max |cpu|); thresholds per dtype (f32 paths are exact up to
 * summation order; with F16/BF16 weights the GPU rounds activations to the weights' type, as tensor
 * cores need, so the gate there is 2e-2).
 * Without a CUDA device (or in a build without CUDA) it prints why and exits 77 (skipped). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/half.h"
#include "test_util.h"

static llm_backend *cpu, *gpu;
static tu_rng rng;
static int n_fail;

static float frand(void) {
    return (float)((double)tu_rng_next(&rng) / 18446744073709551616.0 * 2.0 - 1.0);
}

static void fill(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = frand() * scale;
}

/* the same bytes on both backends */
typedef struct twin {
    void *c, *g;
    size_t bytes;
} twin;

static twin twin_new(const void *host, size_t bytes) {
    twin t = {cpu->ops->alloc(cpu, bytes), gpu->ops->alloc(gpu, bytes), bytes};
    if (host) {
        cpu->ops->from_host(cpu, t.c, host, bytes);
        gpu->ops->from_host(gpu, t.g, host, bytes);
    }
    return t;
}

static void twin_free(twin *t) {
    cpu->ops->release(cpu, t->c);
    gpu->ops->release(gpu, t->g);
}

/* weights of a dtype from floats */
static void *to_dtype(const float *x, size_t n, llm_dtype dt) {
    if (dt == LLM_DTYPE_F32) {
        float *o = malloc(n * 4);
        memcpy(o, x, n * 4);
        return o;
    }
    uint16_t *o = malloc(n * 2);
    for (size_t i = 0; i < n; i++) o[i] = dt == LLM_DTYPE_BF16 ? llm_f32_to_bf16(x[i]) : llm_f32_to_f16(x[i]);
    return o;
}

static size_t dt_size(llm_dtype dt) {
    return dt == LLM_DTYPE_F32 ? 4 : 2;
}

/* compares n floats of the two outputs; reports */
static void compare(const char *what, const twin *out, size_t n, double threshold) {
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    cpu->ops->to_host(cpu, a, out->c, n);
    gpu->ops->to_host(gpu, b, out->g, n);
    char msg[256];
    llm_status st = gpu->ops->status(gpu, msg, sizeof msg);
    const double err = st == LLM_OK ? tu_rel_diff(b, a, n) : INFINITY;
    const int ok = err <= threshold;
    printf("  %-58s error %.3g (gate %.0e) %s%s%s\n", what, err, threshold, ok ? "ok" : "FAIL",
           st == LLM_OK ? "" : ": ", st == LLM_OK ? "" : msg);
    if (!ok) n_fail++;
    TU_CHECK(ok, "%s: error %g > %g", what, err, threshold);
    free(a);
    free(b);
}

static const char *dname(llm_dtype d) {
    return llm_dtype_name(d);
}

static void test_matmul(void) {
    const struct {
        int M, K, T;
    } shapes[] = {{4096, 4096, 1}, {1024, 4096, 3},   {100, 77, 9},    {14336, 4096, 1}, {4096, 14336, 2},
                  {512, 256, 64},  {4096, 4096, 512}, {257, 1000, 17}, {1, 64, 5}};
    const llm_dtype dts[] = {LLM_DTYPE_F32, LLM_DTYPE_F16, LLM_DTYPE_BF16};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t d = 0; d < 3; d++) {
            const int M = shapes[s].M, K = shapes[s].K, T = shapes[s].T;
            const llm_dtype dt = dts[d];
            float *w = malloc((size_t)M * K * 4), *x = malloc((size_t)T * K * 4),
                  *bias = malloc((size_t)M * 4);
            fill(w, (size_t)M * K, 0.05f);
            fill(x, (size_t)T * K, 1.0f);
            fill(bias, (size_t)M, 0.5f);
            void *wd = to_dtype(w, (size_t)M * K, dt), *bd = to_dtype(bias, (size_t)M, dt);
            twin tw = twin_new(wd, (size_t)M * K * dt_size(dt)), tb = twin_new(bd, (size_t)M * dt_size(dt));
            twin tx = twin_new(x, (size_t)T * K * 4), to = twin_new(NULL, (size_t)T * M * 4);
            const int with_bias = (s + d) % 2;
            llm_tensor wc = {tw.c, dt, M, K, "w"}, wg = {tw.g, dt, M, K, "w"};
            llm_tensor bc = {tb.c, dt, 1, M, "b"}, bg = {tb.g, dt, 1, M, "b"};
            cpu->ops->matmul(cpu, to.c, tx.c, &wc, with_bias ? &bc : NULL, T);
            gpu->ops->matmul(gpu, to.g, tx.g, &wg, with_bias ? &bg : NULL, T);
            char what[96];
            snprintf(what, sizeof what, "matmul %s M=%d K=%d T=%d%s", dname(dt), M, K, T,
                     with_bias ? " +bias" : "");
            compare(what, &to, (size_t)T * M, dt == LLM_DTYPE_F32 ? 1e-4 : 2e-2);
            twin_free(&tw), twin_free(&tb), twin_free(&tx), twin_free(&to);
            free(w), free(x), free(bias), free(wd), free(bd);
        }
}

/* n floats of two GPU buffers equal bit for bit */
static void gpu_same(const char *what, const void *a_dev, const void *b_dev, size_t n) {
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    gpu->ops->to_host(gpu, a, a_dev, n);
    gpu->ops->to_host(gpu, b, b_dev, n);
    const int same = memcmp(a, b, n * sizeof *a) == 0;
    printf("  %-58s %s\n", what, same ? "bit-identical ok" : "DIFFER: FAIL");
    if (!same) n_fail++;
    TU_CHECK(same, "%s: fused and unfused results differ", what);
    free(a);
    free(b);
}

/* matmul_multi (q, k, v in one launch at decode sizes) and matmul_swiglu (gate, up and SwiGLU in one
 * GEMV): vs the CPU, and bit-identical to the unfused GPU ops they replace */
static void test_fused_matmuls(void) {
    const int K = 1024, Ms[3] = {1024, 256, 256}, F = 2816, Ts[] = {1, 2, 4, 7};
    const llm_dtype dts[] = {LLM_DTYPE_BF16, LLM_DTYPE_F32};
    for (size_t d = 0; d < 2; d++)
        for (size_t ti = 0; ti < 4; ti++) {
            const int T = Ts[ti];
            const llm_dtype dt = dts[d];
            float *x = malloc((size_t)T * K * 4);
            fill(x, (size_t)T * K, 1.0f);
            twin tx = twin_new(x, (size_t)T * K * 4), tw[3], tb[3], to[3], tu[3];
            llm_tensor wc[3], wg[3], bc[3], bg[3];
            for (int i = 0; i < 3; i++) {
                float *w = malloc((size_t)Ms[i] * K * 4), *b = malloc((size_t)Ms[i] * 4);
                fill(w, (size_t)Ms[i] * K, 0.05f);
                fill(b, (size_t)Ms[i], 0.5f);
                void *wd = to_dtype(w, (size_t)Ms[i] * K, dt), *bd = to_dtype(b, (size_t)Ms[i], dt);
                tw[i] = twin_new(wd, (size_t)Ms[i] * K * dt_size(dt));
                tb[i] = twin_new(bd, (size_t)Ms[i] * dt_size(dt));
                to[i] = twin_new(NULL, (size_t)T * Ms[i] * 4);
                tu[i] = twin_new(NULL, (size_t)T * Ms[i] * 4);
                wc[i] = (llm_tensor){tw[i].c, dt, Ms[i], K, "w"}, wg[i] = (llm_tensor){tw[i].g, dt, Ms[i], K, "w"};
                bc[i] = (llm_tensor){tb[i].c, dt, 1, Ms[i], "b"}, bg[i] = (llm_tensor){tb[i].g, dt, 1, Ms[i], "b"};
                free(w), free(b), free(wd), free(bd);
            }
            float *const oc[3] = {to[0].c, to[1].c, to[2].c}, *const og[3] = {to[0].g, to[1].g, to[2].g};
            const llm_tensor *const wcp[3] = {&wc[0], &wc[1], &wc[2]}, *const wgp[3] = {&wg[0], &wg[1], &wg[2]};
            const llm_tensor *const bcp[3] = {&bc[0], NULL, &bc[2]}, *const bgp[3] = {&bg[0], NULL, &bg[2]};
            cpu->ops->matmul_multi(cpu, 3, oc, tx.c, wcp, bcp, T);
            gpu->ops->matmul_multi(gpu, 3, og, tx.g, wgp, bgp, T);
            for (int i = 0; i < 3; i++) gpu->ops->matmul(gpu, tu[i].g, tx.g, wgp[i], bgp[i], T);
            char what[96];
            for (int i = 0; i < 3; i++) {
                snprintf(what, sizeof what, "matmul_multi %s [%d] M=%d T=%d", dname(dt), i, Ms[i], T);
                compare(what, &to[i], (size_t)T * Ms[i], dt == LLM_DTYPE_F32 ? 1e-4 : 2e-2);
                snprintf(what, sizeof what, "matmul_multi %s [%d] T=%d == matmul", dname(dt), i, T);
                gpu_same(what, to[i].g, tu[i].g, (size_t)T * Ms[i]);
            }
            /* gate/up: F rows each, reusing buffers sized for F */
            float *wgf = malloc((size_t)F * K * 4), *wuf = malloc((size_t)F * K * 4);
            fill(wgf, (size_t)F * K, 0.05f);
            fill(wuf, (size_t)F * K, 0.05f);
            void *wgd = to_dtype(wgf, (size_t)F * K, dt), *wud = to_dtype(wuf, (size_t)F * K, dt);
            twin tg = twin_new(wgd, (size_t)F * K * dt_size(dt)), tup = twin_new(wud, (size_t)F * K * dt_size(dt));
            twin o1 = twin_new(NULL, (size_t)T * F * 4), s1 = twin_new(NULL, (size_t)T * F * 4),
                 o2 = twin_new(NULL, (size_t)T * F * 4);
            llm_tensor gc = {tg.c, dt, F, K, "gate"}, gg = {tg.g, dt, F, K, "gate"}, uc = {tup.c, dt, F, K, "up"},
                       ug = {tup.g, dt, F, K, "up"};
            cpu->ops->matmul_swiglu(cpu, o1.c, s1.c, tx.c, &gc, NULL, &uc, NULL, T);
            gpu->ops->matmul_swiglu(gpu, o1.g, s1.g, tx.g, &gg, NULL, &ug, NULL, T);
            snprintf(what, sizeof what, "matmul_swiglu %s F=%d T=%d", dname(dt), F, T);
            compare(what, &o1, (size_t)T * F, dt == LLM_DTYPE_F32 ? 1e-4 : 2e-2);
            gpu->ops->matmul(gpu, o2.g, tx.g, &gg, NULL, T);
            gpu->ops->matmul(gpu, s1.g, tx.g, &ug, NULL, T);
            gpu->ops->swiglu(gpu, o2.g, o2.g, s1.g, (size_t)T * F);
            snprintf(what, sizeof what, "matmul_swiglu %s T=%d == matmul x2 + swiglu", dname(dt), T);
            gpu_same(what, o1.g, o2.g, (size_t)T * F);
            twin_free(&tg), twin_free(&tup), twin_free(&o1), twin_free(&s1), twin_free(&o2);
            free(wgf), free(wuf), free(wgd), free(wud);
            for (int i = 0; i < 3; i++) twin_free(&tw[i]), twin_free(&tb[i]), twin_free(&to[i]), twin_free(&tu[i]);
            twin_free(&tx);
            free(x);
        }
}

static void test_small_ops(void) {
    const llm_dtype dts[] = {LLM_DTYPE_F32, LLM_DTYPE_F16, LLM_DTYPE_BF16};
    for (size_t d = 0; d < 3; d++) {
        const int rows = 7, dims[] = {64, 100, 4096};
        for (int k = 0; k < 3; k++) {
            const int dim = dims[k];
            float *x = malloc((size_t)rows * dim * 4), *w = malloc((size_t)dim * 4);
            fill(x, (size_t)rows * dim, 3.0f);
            fill(w, (size_t)dim, 1.0f);
            void *wd = to_dtype(w, (size_t)dim, dts[d]);
            twin tx = twin_new(x, (size_t)rows * dim * 4), tw = twin_new(wd, (size_t)dim * dt_size(dts[d]));
            twin to = twin_new(NULL, (size_t)rows * dim * 4);
            llm_tensor wc = {tw.c, dts[d], 1, dim, "norm"}, wg = {tw.g, dts[d], 1, dim, "norm"};
            cpu->ops->rmsnorm(cpu, to.c, tx.c, &wc, rows, dim, 1e-5f);
            gpu->ops->rmsnorm(gpu, to.g, tx.g, &wg, rows, dim, 1e-5f);
            char what[96];
            snprintf(what, sizeof what, "rmsnorm %s rows=%d dim=%d", dname(dts[d]), rows, dim);
            compare(what, &to, (size_t)rows * dim, 1e-5);
            /* in place, as the model uses it for q/k norms */
            cpu->ops->rmsnorm(cpu, tx.c, tx.c, &wc, rows, dim, 1e-6f);
            gpu->ops->rmsnorm(gpu, tx.g, tx.g, &wg, rows, dim, 1e-6f);
            snprintf(what, sizeof what, "rmsnorm in place %s dim=%d", dname(dts[d]), dim);
            compare(what, &tx, (size_t)rows * dim, 1e-5);
            /* the fused residual add + norm, output over y as the model runs it: both the updated
             * residual and the normed rows must match */
            float *y = malloc((size_t)rows * dim * 4);
            fill(y, (size_t)rows * dim, 5.0f);
            twin ty = twin_new(y, (size_t)rows * dim * 4);
            cpu->ops->add_rmsnorm(cpu, ty.c, tx.c, ty.c, &wc, rows, dim, 1e-5f);
            gpu->ops->add_rmsnorm(gpu, ty.g, tx.g, ty.g, &wg, rows, dim, 1e-5f);
            snprintf(what, sizeof what, "add_rmsnorm residual %s dim=%d", dname(dts[d]), dim);
            compare(what, &tx, (size_t)rows * dim, 0);
            snprintf(what, sizeof what, "add_rmsnorm out %s dim=%d", dname(dts[d]), dim);
            compare(what, &ty, (size_t)rows * dim, 1e-5);
            twin_free(&ty);
            free(y);
            twin_free(&tx), twin_free(&tw), twin_free(&to);
            free(x), free(w), free(wd);
        }
        /* embed: a table of each dtype, random ids */
        const int V = 1000, D = 384, n = 37;
        float *tab = malloc((size_t)V * D * 4);
        fill(tab, (size_t)V * D, 1.0f);
        void *td = to_dtype(tab, (size_t)V * D, dts[d]);
        twin tt = twin_new(td, (size_t)V * D * dt_size(dts[d])), to = twin_new(NULL, (size_t)n * D * 4);
        int32_t ids[37];
        for (int i = 0; i < n; i++) ids[i] = (int32_t)tu_rng_below(&rng, V);
        llm_tensor ec = {tt.c, dts[d], V, D, "embed"}, eg = {tt.g, dts[d], V, D, "embed"};
        cpu->ops->embed(cpu, to.c, &ec, ids, n);
        gpu->ops->embed(gpu, to.g, &eg, ids, n);
        char what[64];
        snprintf(what, sizeof what, "embed %s V=%d D=%d n=%d", dname(dts[d]), V, D, n);
        compare(what, &to, (size_t)n * D, 0);
        twin_free(&tt), twin_free(&to);
        free(tab), free(td);
    }
    /* swiglu, add, get_rows */
    const size_t N = 3 * 14336 + 5;
    float *a = malloc(N * 4), *b = malloc(N * 4);
    fill(a, N, 8.0f);
    fill(b, N, 2.0f);
    twin ta = twin_new(a, N * 4), tb = twin_new(b, N * 4), to = twin_new(NULL, N * 4);
    cpu->ops->swiglu(cpu, to.c, ta.c, tb.c, N);
    gpu->ops->swiglu(gpu, to.g, ta.g, tb.g, N);
    compare("swiglu n=43013", &to, N, 1e-6);
    cpu->ops->add(cpu, ta.c, tb.c, N);
    gpu->ops->add(gpu, ta.g, tb.g, N);
    compare("add n=43013", &ta, N, 0);
    int32_t rows[5] = {3, 0, 2, 2, 1};
    twin tr = twin_new(NULL, 5 * 1000 * 4);
    cpu->ops->get_rows(cpu, tr.c, ta.c, rows, 5, 1000);
    gpu->ops->get_rows(gpu, tr.g, ta.g, rows, 5, 1000);
    compare("get_rows 5 of [43][1000]", &tr, 5000, 0);
    twin_free(&ta), twin_free(&tb), twin_free(&to), twin_free(&tr);
    free(a), free(b);
}

/* rope_table + rope, at positions up to 500k (llama3 contexts) */
static void test_rope(void) {
    const int n = 40, half = 64, hd = 128, H = 8;
    int32_t pos[40];
    for (int i = 0; i < n; i++) pos[i] = i < 20 ? i : (int32_t)tu_rng_below(&rng, 500000);
    float inv[64];
    for (int i = 0; i < half; i++) inv[i] = (float)pow(500000.0, -2.0 * i / hd);
    twin tc = twin_new(NULL, (size_t)n * half * 4), ts = twin_new(NULL, (size_t)n * half * 4);
    cpu->ops->rope_table(cpu, tc.c, ts.c, pos, n, inv, half);
    gpu->ops->rope_table(gpu, tc.g, ts.g, pos, n, inv, half);
    compare("rope_table cos, positions to 500k", &tc, (size_t)n * half, 1e-6);
    compare("rope_table sin", &ts, (size_t)n * half, 1e-6);
    float *x = malloc((size_t)n * H * hd * 4);
    fill(x, (size_t)n * H * hd, 2.0f);
    twin tx = twin_new(x, (size_t)n * H * hd * 4);
    cpu->ops->rope(cpu, tx.c, n, H, hd, tc.c, ts.c, 0);
    gpu->ops->rope(gpu, tx.g, n, H, hd, tc.g, ts.g, 0);
    compare("rope n=40 heads=8 hd=128", &tx, (size_t)n * H * hd, 1e-6);
    cpu->ops->rope(cpu, tx.c, n, H, hd, tc.c, ts.c, 1);
    gpu->ops->rope(gpu, tx.g, n, H, hd, tc.g, ts.g, 1);
    compare("rope interleaved (GGUF Llama pairs)", &tx, (size_t)n * H * hd, 1e-6);
    twin_free(&tc), twin_free(&ts), twin_free(&tx);
    free(x);
}

/* kv_write and paged attention over a ragged batch: prefill chunks and decode rows of several
 * sequences, shuffled block tables, GQA */
/* kv16: the GPU keeps a BF16 cache; the CPU reference gets the same values rounded to bf16 in its float
 * cache (initial contents and the new rows), so both attend over identical keys and values */
static void bf16_round(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = llm_bf16_to_f32(llm_f32_to_bf16(x[i]));
}

static void test_attention_kv(int n_head, int n_head_kv, int hd, int bs, int kv16) {
    enum { S = 6 };
    const int n_past[S] = {0, 37, 1000, 5, 3000, 200}, n_rows[S] = {50, 1, 1, 17, 1, 120};
    int T = 0, max_blocks = 0;
    for (int s = 0; s < S; s++) {
        T += n_rows[s];
        const int nb = (n_past[s] + n_rows[s] + bs - 1) / bs;
        if (nb > max_blocks) max_blocks = nb;
    }
    const int n_blocks = S * max_blocks + 7;
    /* block tables: a random permutation of the pool */
    int32_t *perm = malloc((size_t)n_blocks * 4);
    for (int i = 0; i < n_blocks; i++) perm[i] = i;
    for (int i = n_blocks - 1; i > 0; i--) {
        int j = (int)tu_rng_below(&rng, (uint32_t)i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    int32_t *tables = malloc((size_t)S * max_blocks * 4);
    for (int s = 0; s < S; s++)
        for (int b = 0; b < max_blocks; b++) tables[s * max_blocks + b] = perm[s * max_blocks + b];
    const size_t cache = (size_t)n_blocks * n_head_kv * bs * hd;
    float *k0 = malloc(cache * 4), *v0 = malloc(cache * 4);
    fill(k0, cache, 1.0f);
    fill(v0, cache, 1.0f);
    twin tk = twin_new(k0, cache * 4), tv = twin_new(v0, cache * 4);
    if (kv16) { /* the GPU's cache: the bf16 bits of the CPU's rounded values */
        bf16_round(k0, cache), bf16_round(v0, cache);
        cpu->ops->from_host(cpu, tk.c, k0, cache * 4), cpu->ops->from_host(cpu, tv.c, v0, cache * 4);
        uint16_t *h = malloc(cache * 2);
        for (size_t i = 0; i < cache; i++) h[i] = llm_f32_to_bf16(k0[i]);
        gpu->ops->from_host(gpu, tk.g, h, cache * 2);
        for (size_t i = 0; i < cache; i++) h[i] = llm_f32_to_bf16(v0[i]);
        gpu->ops->from_host(gpu, tv.g, h, cache * 2);
        free(h);
    }
    int32_t *tok = malloc((size_t)T * 4), *pos = malloc((size_t)T * 4);
    llm_batch_seq seqs[S];
    int row = 0;
    for (int s = 0; s < S; s++) {
        seqs[s] = (llm_batch_seq){row, n_rows[s], n_past[s], tables + s * max_blocks};
        for (int r = 0; r < n_rows[s]; r++) tok[row + r] = 1, pos[row + r] = n_past[s] + r;
        row += n_rows[s];
    }
    llm_batch b = {T, tok, pos, S, seqs};
    float *q = malloc((size_t)T * n_head * hd * 4), *kn = malloc((size_t)T * n_head_kv * hd * 4),
          *vn = malloc((size_t)T * n_head_kv * hd * 4);
    fill(q, (size_t)T * n_head * hd, 1.0f);
    fill(kn, (size_t)T * n_head_kv * hd, 1.0f);
    fill(vn, (size_t)T * n_head_kv * hd, 1.0f);
    twin tq = twin_new(q, (size_t)T * n_head * hd * 4), tkn = twin_new(kn, (size_t)T * n_head_kv * hd * 4),
         tvn = twin_new(vn, (size_t)T * n_head_kv * hd * 4), to = twin_new(NULL, (size_t)T * n_head * hd * 4);
    if (kv16) { /* the CPU stores the rounded rows; the GPU rounds the float rows as it stores them */
        bf16_round(kn, (size_t)T * n_head_kv * hd), bf16_round(vn, (size_t)T * n_head_kv * hd);
        cpu->ops->from_host(cpu, tkn.c, kn, (size_t)T * n_head_kv * hd * 4);
        cpu->ops->from_host(cpu, tvn.c, vn, (size_t)T * n_head_kv * hd * 4);
    }
    llm_kv_view vc = {tk.c, tv.c, n_head_kv, hd, bs, LLM_DTYPE_F32},
                vg = {tk.g, tv.g, n_head_kv, hd, bs, kv16 ? LLM_DTYPE_BF16 : LLM_DTYPE_F32};
    gpu->ops->begin_batch(gpu, &b);
    cpu->ops->kv_write(cpu, &vc, tkn.c, tvn.c, &b);
    gpu->ops->kv_write(gpu, &vg, tkn.g, tvn.g, &b);
    const float scale = (float)(1.0 / sqrt((double)hd));
    cpu->ops->attention(cpu, to.c, tq.c, &vc, &b, n_head, scale);
    gpu->ops->attention(gpu, to.g, tq.g, &vg, &b, n_head, scale);
    char what[96];
    if (kv16) { /* the GPU's bf16 cache holds exactly the CPU's rounded floats */
        const twin *caches[2] = {&tk, &tv};
        float *fc = malloc(cache * 4);
        uint16_t *hg = malloc(cache * 2);
        for (int c = 0; c < 2; c++) {
            cpu->ops->to_host(cpu, fc, caches[c]->c, cache);
            gpu->ops->to_host(gpu, (float *)(void *)hg, caches[c]->g, cache / 2);
            size_t bad = 0;
            for (size_t i = 0; i < cache; i++) bad += llm_bf16_to_f32(hg[i]) != fc[i];
            printf("  %-58s %s\n", c ? "kv_write V (bf16 cache)" : "kv_write K (bf16 cache)",
                   bad ? "FAIL" : "ok, bit-identical to the rounded floats");
            if (bad) n_fail++;
            TU_CHECK(bad == 0, "bf16 kv_write: %zu elements differ", bad);
        }
        free(fc), free(hg);
    } else {
        snprintf(what, sizeof what, "kv_write K, heads %d/%d hd %d block %d", n_head, n_head_kv, hd, bs);
        compare(what, &tk, cache, 0);
        snprintf(what, sizeof what, "kv_write V");
        compare(what, &tv, cache, 0);
    }
    snprintf(what, sizeof what, "attention T=%d heads %d/%d hd %d block %d%s", T, n_head, n_head_kv, hd, bs,
             kv16 ? " bf16 KV" : "");
    compare(what, &to, (size_t)T * n_head * hd, 1e-5);
    twin_free(&tk), twin_free(&tv), twin_free(&tq), twin_free(&tkn), twin_free(&tvn), twin_free(&to);
    free(perm), free(tables), free(k0), free(v0), free(tok), free(pos), free(q), free(kn), free(vn);
}

static void test_attention(int n_head, int n_head_kv, int hd, int bs) {
    test_attention_kv(n_head, n_head_kv, hd, bs, 0);
    test_attention_kv(n_head, n_head_kv, hd, bs, 1);
}

int main(void) {
    char why[256];
    if (!llm_cuda_probe(why, sizeof why)) {
        printf("test_cuda_ops: skipped: %s\n", why);
        return getenv("LLAMAC_REQUIRE_CUDA") ? 1 : 77; /* make test-cuda: a skip is a failure */
    }
    printf("test_cuda_ops: %s\n", why);
    rng.s = tu_fresh_seed("test_cuda_ops") | 1;
    llm_backend_config bc = {.n_threads = 2,
                             .max_row = 14336,
                             .max_tokens = 600,
                             .max_ctx = 8192,
                             .n_head = 32,
                             .head_dim = 128,
                             .max_blocks_per_seq = 1024,
                             .max_seqs = 64};
    cpu = llm_backend_cpu_create(&bc);
    gpu = llm_backend_cuda_create(&bc, why, sizeof why);
    TU_CHECK(gpu != NULL, "cuda backend: %s", why);
    if (gpu) {
        test_matmul();
        test_fused_matmuls();
        test_small_ops();
        test_rope();
        /* this batch has prompt chunks of 50, 17 and 120 rows: head_dim 64/128 run the tiled prefill
         * kernel (whose tiles also cover the decode rows), 256 the split-K kernel */
        test_attention(32, 8, 128, 16);
        test_attention(8, 1, 64, 7);
        test_attention(4, 4, 256, 16);
        test_attention(12, 4, 64, 16);
        gpu->ops->free(gpu);
    }
    /* the same batches through each kernel forced, so both are gated whatever the default picks */
    const char *modes[] = {"split", "tiled"};
    for (int m = 0; m < 2; m++) {
        setenv("LLAMAC_CUDA_ATTN", modes[m], 1);
        gpu = llm_backend_cuda_create(&bc, why, sizeof why);
        TU_CHECK(gpu != NULL, "cuda backend (%s attention): %s", modes[m], why);
        if (!gpu) continue;
        printf("attention forced to %s:\n", modes[m]);
        test_attention(32, 8, 128, 16);
        test_attention(8, 1, 64, 7);
        gpu->ops->free(gpu);
    }
    unsetenv("LLAMAC_CUDA_ATTN");
    cpu->ops->free(cpu);
    return tu_finish("test_cuda_ops");
}
