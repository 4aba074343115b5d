// Self-test of the CUDA kernel launchers (kernels.cuh) against CPU references, plus GEMV / GEMM timings.
// Not part of the build. On a machine with a GPU:
//
//   nvcc -std=c++17 -O3 -arch=sm_90 -Iinclude -Isrc tests/cuda/kernels_selftest.cu src/backend/cuda/{matmul,norm,rope,elementwise,embed}.cu -lcublas -o /tmp/k && /tmp/k
//
// (/tmp/k --bench: the timings only.)
//
// Errors are "normalised": max |gpu - ref| / max |ref| over the output. Gates:
//   * f32 paths (norm, rope, swiglu, add, GEMV at T <= 8, cuBLAS with f32 weights): 1e-5
//     (the references accumulate dot products in double, so this bounds the kernels' float error).
//   * embed / get_rows: 0 (exact copies / exact widenings).
//   * cuBLAS with bf16/f16 weights (T > 8): the activations are rounded to the weights' type before
//     the GEMM (relative error 2^-9 for bf16, 2^-12 for f16 per element), so vs the exact reference
//     the gate is 1e-2. The error vs a reference that uses the same rounded activations ("rx") is
//     printed too and gated at 1e-5: it isolates the GEMM itself (transposes, bias, accumulation).
//   * GEMV batch invariance: row 0 of every T <= 8 result must equal the T = 1 result bit for bit.
// Exit status 0 when every check passes.
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "backend/cuda/kernels.cuh"
#include "core/half.h"

#define CK(x)                                                                                                       \
    do {                                                                                                            \
        cudaError_t e_ = (x);                                                                                       \
        if (e_ != cudaSuccess) {                                                                                    \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));                     \
            exit(2);                                                                                                \
        }                                                                                                           \
    } while (0)

static int g_fail = 0, g_checks = 0;

static void report(const char *what, double err, double gate) {
    const bool ok = err <= gate;
    g_checks++;
    if (!ok) g_fail++;
    printf("%-4s %-64s err %.3e (gate %.0e)\n", ok ? "PASS" : "FAIL", what, err, gate);
}

// ---- random numbers and host conversions ----
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static float frand() { // uniform [-1, 1)
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}
static uint32_t urand() {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 32);
}
static uint16_t to_f16(float f) { return __half_as_ushort(__float2half_rn(f)); }
static size_t dsize(llm_dtype d) { return d == LLM_DTYPE_F32 ? 4 : 2; }
static const char *dname(llm_dtype d) { return d == LLM_DTYPE_F32 ? "f32" : d == LLM_DTYPE_F16 ? "f16" : "bf16"; }

// A tensor of n random values in [-scale, scale) stored as dtype d; vals gets the stored values widened.
static std::vector<uint8_t> make_tensor(llm_dtype d, size_t n, float scale, std::vector<float> &vals) {
    std::vector<uint8_t> raw(n * dsize(d));
    vals.resize(n);
    for (size_t i = 0; i < n; i++) {
        const float f = frand() * scale;
        if (d == LLM_DTYPE_F32) {
            memcpy(&raw[i * 4], &f, 4);
            vals[i] = f;
        } else {
            const uint16_t h = d == LLM_DTYPE_BF16 ? llm_f32_to_bf16(f) : to_f16(f);
            memcpy(&raw[i * 2], &h, 2);
            vals[i] = d == LLM_DTYPE_BF16 ? llm_bf16_to_f32(h) : llm_f16_to_f32(h);
        }
    }
    return raw;
}

static float round_to(llm_dtype d, float f) {
    if (d == LLM_DTYPE_BF16) return llm_bf16_to_f32(llm_f32_to_bf16(f));
    if (d == LLM_DTYPE_F16) return llm_f16_to_f32(to_f16(f));
    return f;
}

template <class T> static T *dev_upload(const T *h, size_t n) {
    T *d = nullptr;
    CK(cudaMalloc((void **)&d, n * sizeof(T) + 64)); // +64: room for deliberately misaligned views
    if (n) CK(cudaMemcpy(d, h, n * sizeof(T), cudaMemcpyHostToDevice));
    return d;
}
static std::vector<float> dev_download(const float *d, size_t n) {
    std::vector<float> h(n);
    CK(cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
}

static double norm_err(const std::vector<float> &got, const std::vector<double> &ref) {
    double mx = 0.0, me = 0.0;
    for (size_t i = 0; i < ref.size(); i++) {
        mx = fmax(mx, fabs(ref[i]));
        const double e = fabs((double)got[i] - ref[i]);
        me = fmax(me, isnan(e) ? INFINITY : e);
    }
    return me / (mx > 0 ? mx : 1.0);
}

// ---- matmul ----
static cudaStream_t g_s;
static cuda_matmul_ctx g_ctx;

// Must match matmul.cu's LLM_CUDA_GEMV_MAX_T (pass the same -D to both if you change it).
#ifndef LLM_CUDA_GEMV_MAX_T
#define LLM_CUDA_GEMV_MAX_T 4
#endif

// no_blas: run with a context that has no cuBLAS handle, so every T takes the GEMV path (in chunks of
// up to 8 token rows above 8): tests the GEMV at T = 5..8 and the fallback.
static void test_matmul(int64_t M, int64_t K, llm_dtype wt, bool with_bias, llm_dtype bt, const int *Ts, int nT,
                        bool misalign_w, bool no_blas = false) {
    cuda_matmul_ctx no_ctx = {nullptr, nullptr, 0};
    cuda_matmul_ctx *ctx = no_blas ? &no_ctx : &g_ctx;
    std::vector<float> wv, bv;
    std::vector<uint8_t> wraw = make_tensor(wt, (size_t)(M * K), 1.0f, wv);
    std::vector<uint8_t> braw = make_tensor(bt, (size_t)M, 1.0f, bv);
    uint8_t *dw0 = nullptr; // +64 bytes: room for a misaligned copy
    CK(cudaMalloc((void **)&dw0, wraw.size() + 64));
    const void *dw = dw0 + (misalign_w ? 2 : 0); // a 2-byte-offset copy forces the scalar GEMV path
    CK(cudaMemcpy((void *)dw, wraw.data(), wraw.size(), cudaMemcpyHostToDevice));
    uint8_t *db = dev_upload(braw.data(), braw.size());
    const int Tmax = Ts[nT - 1];
    std::vector<float> xv((size_t)Tmax * K);
    for (auto &f : xv) f = frand();
    float *dx = dev_upload(xv.data(), xv.size());
    float *dout = nullptr;
    CK(cudaMalloc((void **)&dout, (size_t)Tmax * M * sizeof(float)));

    std::vector<float> row0_t1; // GEMV T = 1 result, for the batch-invariance check
    for (int ti = 0; ti < nT; ti++) {
        const int T = Ts[ti];
        CK(cudaMemset(dout, 0xff, (size_t)T * M * sizeof(float))); // NaN: catches unwritten outputs
        const int rc = cuda_matmul(g_s, ctx, dout, dx, dw, wt, M, K, with_bias ? db : nullptr, bt, T);
        CK(cudaStreamSynchronize(g_s));
        CK(cudaGetLastError());
        std::vector<float> got = dev_download(dout, (size_t)T * M);
        std::vector<double> ref((size_t)T * M), ref_rx((size_t)T * M);
        const bool blas = T > LLM_CUDA_GEMV_MAX_T && !no_blas;
        for (int t = 0; t < T; t++)
            for (int64_t m = 0; m < M; m++) {
                double a = 0.0, arx = 0.0;
                const float *w = &wv[(size_t)(m * K)];
                const float *x = &xv[(size_t)t * K];
                for (int64_t k = 0; k < K; k++) {
                    a += (double)w[k] * x[k];
                    arx += (double)w[k] * round_to(wt, x[k]);
                }
                const double b = with_bias ? bv[(size_t)m] : 0.0;
                ref[(size_t)t * M + m] = a + b;
                ref_rx[(size_t)t * M + m] = arx + b;
            }
        char what[160];
        snprintf(what, sizeof what, "matmul %-4s M=%-5lld K=%-5lld T=%-3d%s%s%s %s", dname(wt), (long long)M,
                 (long long)K, T, with_bias ? " bias=" : "", with_bias ? dname(bt) : "", misalign_w ? " misaligned" : "",
                 blas ? "cuBLAS" : no_blas ? "GEMV (no cuBLAS)" : "GEMV");
        if (rc != 0) {
            printf("FAIL %s: cuda_matmul returned %d\n", what, rc);
            g_fail++, g_checks++;
            continue;
        }
        const double e = norm_err(got, ref);
        if (!blas || wt == LLM_DTYPE_F32) {
            report(what, e, 1e-5);
        } else {
            report(what, e, 1e-2);
            char w2[200];
            snprintf(w2, sizeof w2, "  same, vs reference on %s-rounded x", dname(wt));
            report(w2, norm_err(got, ref_rx), 1e-5);
        }
        if (!blas) {
            std::vector<float> r0(got.begin(), got.begin() + M);
            if (T == 1) row0_t1 = r0;
            else if (!row0_t1.empty()) {
                const bool same = memcmp(r0.data(), row0_t1.data(), (size_t)M * sizeof(float)) == 0;
                snprintf(what, sizeof what, "  GEMV batch invariance: row 0 at T=%d == T=1 (bitwise)", T);
                report(what, same ? 0.0 : 1.0, 0.0);
            }
        }
    }
    CK(cudaFree(dw0));
    CK(cudaFree(db));
    CK(cudaFree(dx));
    CK(cudaFree(dout));
}

// ---- rmsnorm ----
static void test_rmsnorm(int rows, int dim, llm_dtype wt, bool alias) {
    std::vector<float> wv;
    std::vector<uint8_t> wraw = make_tensor(wt, (size_t)dim, 2.0f, wv);
    std::vector<float> xv((size_t)rows * dim);
    for (auto &f : xv) f = frand() * 3.0f;
    const float eps = 1e-5f;
    uint8_t *dw = dev_upload(wraw.data(), wraw.size());
    float *dx = dev_upload(xv.data(), xv.size());
    float *dout = alias ? dx : nullptr;
    if (!alias) CK(cudaMalloc((void **)&dout, xv.size() * sizeof(float)));
    cuda_rmsnorm(g_s, dout, dx, dw, wt, rows, dim, eps);
    CK(cudaStreamSynchronize(g_s));
    CK(cudaGetLastError());
    std::vector<float> got = dev_download(dout, xv.size());
    std::vector<double> ref(xv.size());
    size_t bit_diff = 0;
    for (int r = 0; r < rows; r++) { // the CPU backend's exact formula
        const float *xr = &xv[(size_t)r * dim];
        double ss = 0.0;
        for (int i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
        const float inv = (float)(1.0 / sqrt(ss / dim + eps));
        for (int i = 0; i < dim; i++) {
            volatile float p = xr[i] * inv; // volatile: no contraction in the reference either
            const float o = wv[(size_t)i] * p;
            ref[(size_t)r * dim + i] = o;
            if (o != got[(size_t)r * dim + i]) bit_diff++;
        }
    }
    char what[160];
    snprintf(what, sizeof what, "rmsnorm rows=%d dim=%d w=%s%s (%zu not bit-equal to CPU)", rows, dim, dname(wt),
             alias ? " in-place" : "", bit_diff);
    report(what, norm_err(got, ref), 1e-5);
    CK(cudaFree(dw));
    CK(cudaFree(dx));
    if (!alias) CK(cudaFree(dout));
}

// ---- rope ----
static void test_rope(int n, int n_heads, int head_dim) {
    const int half = head_dim / 2;
    std::vector<int32_t> pos((size_t)n);
    for (int i = 0; i < n; i++) pos[(size_t)i] = i == 0 ? 0 : (int32_t)(urand() % 300000u);
    std::vector<float> inv_freq((size_t)half);
    for (int i = 0; i < half; i++) inv_freq[(size_t)i] = (float)pow(500000.0, -2.0 * i / head_dim);
    std::vector<float> xv((size_t)n * n_heads * head_dim);
    for (auto &f : xv) f = frand() * 4.0f;

    int32_t *dpos = dev_upload(pos.data(), pos.size());
    float *dif = dev_upload(inv_freq.data(), inv_freq.size());
    float *dx = dev_upload(xv.data(), xv.size());
    float *dc = nullptr, *ds = nullptr;
    CK(cudaMalloc((void **)&dc, (size_t)n * half * sizeof(float)));
    CK(cudaMalloc((void **)&ds, (size_t)n * half * sizeof(float)));
    cuda_rope_table(g_s, dc, ds, dpos, n, dif, half);
    cuda_rope(g_s, dx, n, n_heads, head_dim, dc, ds);
    CK(cudaStreamSynchronize(g_s));
    CK(cudaGetLastError());
    std::vector<float> gc = dev_download(dc, (size_t)n * half), gs = dev_download(ds, (size_t)n * half);
    std::vector<float> gx = dev_download(dx, xv.size());

    std::vector<double> rc(gc.size()), rs(gs.size()), rx(xv.size());
    std::vector<float> fc(gc.size()), fs(gs.size());
    size_t bit_diff = 0;
    for (int t = 0; t < n; t++)
        for (int i = 0; i < half; i++) {
            const double angle = (double)inv_freq[(size_t)i] * (double)pos[(size_t)t];
            const size_t j = (size_t)t * half + i;
            fc[j] = (float)cos(angle), fs[j] = (float)sin(angle);
            rc[j] = fc[j], rs[j] = fs[j];
            bit_diff += (fc[j] != gc[j]) + (fs[j] != gs[j]);
        }
    char what[160];
    snprintf(what, sizeof what, "rope_table n=%d half=%d (%zu not bit-equal to CPU)", n, half, bit_diff);
    report(what, fmax(norm_err(gc, rc), norm_err(gs, rs)), 1e-6);
    // rotation from the CPU's own table, so this isolates cuda_rope
    size_t xdiff = 0;
    for (int t = 0; t < n; t++)
        for (int h = 0; h < n_heads; h++)
            for (int i = 0; i < half; i++) {
                const size_t b = ((size_t)t * n_heads + h) * head_dim;
                const float c = fc[(size_t)t * half + i], s = fs[(size_t)t * half + i];
                const float x0 = xv[b + i], x1 = xv[b + i + half];
                volatile float p0 = x0 * c, p1 = x1 * s, p2 = x1 * c, p3 = x0 * s;
                const float o0 = p0 - p1, o1 = p2 + p3;
                rx[b + i] = o0, rx[b + i + half] = o1;
                xdiff += (o0 != gx[b + i]) + (o1 != gx[b + i + half]);
            }
    snprintf(what, sizeof what, "rope n=%d heads=%d head_dim=%d (%zu not bit-equal to CPU)", n, n_heads, head_dim,
             xdiff);
    report(what, norm_err(gx, rx), 1e-5);
    CK(cudaFree(dpos));
    CK(cudaFree(dif));
    CK(cudaFree(dx));
    CK(cudaFree(dc));
    CK(cudaFree(ds));
}

// ---- swiglu, add ----
// A device copy of h placed `offset` floats into its allocation (offset 1: not 16-byte aligned).
static float *dev_at(const std::vector<float> &h, int offset, float **base) {
    CK(cudaMalloc((void **)base, (h.size() + 16) * sizeof(float)));
    CK(cudaMemcpy(*base + offset, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice));
    return *base + offset;
}

static void test_elementwise(size_t n, int offset) {
    std::vector<float> g(n), u(n), a(n);
    for (size_t i = 0; i < n; i++) g[i] = frand() * 12.0f, u[i] = frand() * 3.0f, a[i] = frand();
    float *bg, *bu, *ba, *bo;
    float *dg = dev_at(g, offset, &bg), *du = dev_at(u, offset, &bu), *da = dev_at(a, offset, &ba);
    float *dout = dev_at(a, offset, &bo);
    cuda_swiglu(g_s, dout, dg, du, n);
    cuda_add(g_s, da, du, n);
    CK(cudaStreamSynchronize(g_s));
    CK(cudaGetLastError());
    std::vector<float> gs = dev_download(dout, n), ga = dev_download(da, n);
    std::vector<double> rs(n), ra(n);
    size_t sdiff = 0, adiff = 0;
    for (size_t i = 0; i < n; i++) { // the CPU's formula, with its roundings (no contraction)
        volatile float den = 1.0f + expf(-g[i]);
        volatile float q = g[i] / den;
        const float o = q * u[i];
        rs[i] = o;
        sdiff += o != gs[i];
        const float s = a[i] + u[i];
        ra[i] = s;
        adiff += s != ga[i];
    }
    char what[160];
    snprintf(what, sizeof what, "swiglu n=%zu%s (%zu not bit-equal to CPU)", n, offset ? " unaligned" : "", sdiff);
    report(what, norm_err(gs, rs), 1e-5);
    snprintf(what, sizeof what, "add n=%zu%s (%zu not bit-equal to CPU)", n, offset ? " unaligned" : "", adiff);
    report(what, norm_err(ga, ra), 0.0);
    CK(cudaFree(bg));
    CK(cudaFree(bu));
    CK(cudaFree(ba));
    CK(cudaFree(bo));
}

// ---- embed, get_rows ----
static void test_embed(int V, int dim, int n, llm_dtype dt) {
    std::vector<float> tv;
    std::vector<uint8_t> traw = make_tensor(dt, (size_t)V * dim, 5.0f, tv);
    if (dt != LLM_DTYPE_F32 && V * dim >= 4) { // special values: subnormal, -0, inf
        const uint16_t sp[4] = {0x0001, 0x8000, (uint16_t)(dt == LLM_DTYPE_F16 ? 0x7c00 : 0x7f80), 0x0200};
        for (int i = 0; i < 4; i++) {
            memcpy(&traw[(size_t)i * 2], &sp[i], 2);
            tv[(size_t)i] = dt == LLM_DTYPE_BF16 ? llm_bf16_to_f32(sp[i]) : llm_f16_to_f32(sp[i]);
        }
    }
    std::vector<int32_t> ids((size_t)n);
    for (int i = 0; i < n; i++) ids[(size_t)i] = i == 0 ? 0 : (int32_t)(urand() % (uint32_t)V);
    uint8_t *dtab = dev_upload(traw.data(), traw.size());
    int32_t *dids = dev_upload(ids.data(), ids.size());
    float *dout = nullptr;
    CK(cudaMalloc((void **)&dout, (size_t)n * dim * sizeof(float)));
    cuda_embed(g_s, dout, dtab, dt, dids, n, dim);
    CK(cudaStreamSynchronize(g_s));
    CK(cudaGetLastError());
    std::vector<float> got = dev_download(dout, (size_t)n * dim);
    size_t bad = 0;
    for (int i = 0; i < n; i++)
        for (int d = 0; d < dim; d++) {
            const float r = tv[(size_t)ids[(size_t)i] * dim + d], g = got[(size_t)i * dim + d];
            if (memcmp(&r, &g, 4) != 0) bad++;
        }
    char what[160];
    snprintf(what, sizeof what, "embed %s V=%d dim=%d n=%d (elements not bit-equal)", dname(dt), V, dim, n);
    report(what, (double)bad, 0.0);

    // get_rows: x[R][dim] -> out[n][dim] with rows[i] < R
    const int R = n + 5;
    std::vector<float> xv((size_t)R * dim);
    for (auto &f : xv) f = frand();
    std::vector<int32_t> rows((size_t)n);
    for (int i = 0; i < n; i++) rows[(size_t)i] = (int32_t)(urand() % (uint32_t)R);
    float *dx = dev_upload(xv.data(), xv.size());
    int32_t *drows = dev_upload(rows.data(), rows.size());
    cuda_get_rows(g_s, dout, dx, drows, n, dim);
    CK(cudaStreamSynchronize(g_s));
    CK(cudaGetLastError());
    got = dev_download(dout, (size_t)n * dim);
    bad = 0;
    for (int i = 0; i < n; i++)
        bad += memcmp(&got[(size_t)i * dim], &xv[(size_t)rows[(size_t)i] * dim], (size_t)dim * 4) != 0;
    snprintf(what, sizeof what, "get_rows R=%d dim=%d n=%d (rows not bit-equal)", R, dim, n);
    report(what, (double)bad, 0.0);
    CK(cudaFree(dtab));
    CK(cudaFree(dids));
    CK(cudaFree(dout));
    CK(cudaFree(dx));
    CK(cudaFree(drows));
}

// ---- timings ----
static void time_matmul(int64_t M, int64_t K, llm_dtype wt, int T, int iters, bool no_blas = false) {
    cuda_matmul_ctx no_ctx = {nullptr, nullptr, 0};
    cuda_matmul_ctx *ctx = no_blas ? &no_ctx : &g_ctx;
    std::vector<float> wv;
    // random bytes are fine for timing; keep values finite: build a small tile and repeat it
    const size_t n = (size_t)(M * K);
    std::vector<uint8_t> tile = make_tensor(wt, 1 << 16, 1.0f, wv);
    std::vector<uint8_t> raw(n * dsize(wt));
    for (size_t i = 0; i < raw.size(); i += tile.size())
        memcpy(&raw[i], tile.data(), raw.size() - i < tile.size() ? raw.size() - i : tile.size());
    uint8_t *dw = dev_upload(raw.data(), raw.size());
    std::vector<float> xv((size_t)T * K);
    for (auto &f : xv) f = frand();
    float *dx = dev_upload(xv.data(), xv.size());
    float *dout = nullptr;
    CK(cudaMalloc((void **)&dout, (size_t)T * M * sizeof(float)));
    for (int i = 0; i < 5; i++) cuda_matmul(g_s, ctx, dout, dx, dw, wt, M, K, nullptr, wt, T);
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    CK(cudaEventRecord(a, g_s));
    for (int i = 0; i < iters; i++) cuda_matmul(g_s, ctx, dout, dx, dw, wt, M, K, nullptr, wt, T);
    CK(cudaEventRecord(b, g_s));
    CK(cudaEventSynchronize(b));
    CK(cudaGetLastError());
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    const double s = ms / 1e3 / iters;
    const double bytes = (double)raw.size() + (double)xv.size() * 4 + (double)T * M * 4;
    const double flops = 2.0 * T * M * K;
    printf("TIME matmul %-4s M=%-6lld K=%-6lld T=%-4d %8.2f us  %7.1f GB/s (%5.1f%% of 3350)  %7.2f TFLOP/s  [%s]\n",
           dname(wt), (long long)M, (long long)K, T, s * 1e6, bytes / s / 1e9, bytes / s / 1e9 / 3350 * 100,
           flops / s / 1e12, T <= LLM_CUDA_GEMV_MAX_T || no_blas ? "GEMV" : "cuBLAS");
    CK(cudaEventDestroy(a));
    CK(cudaEventDestroy(b));
    CK(cudaFree(dw));
    CK(cudaFree(dx));
    CK(cudaFree(dout));
}

int main(int argc, char **argv) {
    const bool quick = argc > 1 && strcmp(argv[1], "--bench") == 0; // timings only
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s, %d SMs, %.1f GiB\n", prop.name, prop.multiProcessorCount, prop.totalGlobalMem / 1073741824.0);
    CK(cudaStreamCreateWithFlags(&g_s, cudaStreamNonBlocking));
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "cublasCreate failed\n");
        return 2;
    }
    cublasSetStream(h, g_s); // as backend.cu does; default math mode (no TF32)
    g_ctx.cublas = h;
    g_ctx.workspace_bytes = (size_t)512 * 14336 * 2;
    CK(cudaMalloc(&g_ctx.workspace, g_ctx.workspace_bytes));

    if (!quick) {
        const int Ts[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 64, 512};
        const int nT = (int)(sizeof Ts / sizeof Ts[0]);
        const int Ts_small[] = {1, 2, 3, 8, 9, 64};
        const llm_dtype dts[] = {LLM_DTYPE_F32, LLM_DTYPE_F16, LLM_DTYPE_BF16};
        struct {
            int64_t M, K;
        } shapes[] = {{1, 7}, {1, 256}, {3, 8}, {33, 100}, {64, 129}, {257, 256}, {300, 1032}, {129, 4104}};
        int si = 0;
        for (auto sh : shapes)
            for (llm_dtype wt : dts) {
                const bool bias = (si++ % 2) == 0;
                test_matmul(sh.M, sh.K, wt, bias, wt, Ts, nT, false);
            }
        test_matmul(67, 64, LLM_DTYPE_BF16, true, LLM_DTYPE_F32, Ts_small, 6, false); // f32 bias, bf16 weights
        test_matmul(67, 64, LLM_DTYPE_F16, true, LLM_DTYPE_BF16, Ts_small, 6, true);  // misaligned weights
        for (llm_dtype wt : dts) { // the GEMV at every T (chunked above 8), with and without alignment
            test_matmul(70, 1032, wt, true, wt, Ts, nT - 1, false, true);
            test_matmul(21, 33, wt, false, wt, Ts, nT - 1, false, true);
        }
        const int Ts_gemv[] = {1, 2, 5, 8, 13};
        test_matmul(4099, 4096, LLM_DTYPE_BF16, true, LLM_DTYPE_BF16, Ts_gemv, 5, false, true);
        test_matmul(14336, 4096, LLM_DTYPE_BF16, false, LLM_DTYPE_BF16, Ts_small, 3, false); // the 8B FFN shape
        test_matmul(4096, 14336, LLM_DTYPE_BF16, true, LLM_DTYPE_BF16, Ts_small, 2, false);

        for (llm_dtype wt : dts) {
            test_rmsnorm(1, 4096, wt, false);
            test_rmsnorm(17, 4096, wt, true);
            test_rmsnorm(3, 7, wt, false);
            test_rmsnorm(5, 130, wt, true);
        }
        test_rope(1, 32, 128);
        test_rope(37, 8, 128);
        test_rope(513, 32, 64);
        test_rope(5, 3, 6);
        test_rope(2, 1, 2);
        for (size_t n : {(size_t)1, (size_t)3, (size_t)1000, (size_t)(1 << 20) + 3}) {
            test_elementwise(n, 0);
            test_elementwise(n, 1);
        }
        for (llm_dtype dt : dts) {
            test_embed(1000, 4096, 37, dt);
            test_embed(50, 7, 9, dt);
            test_embed(300, 100, 1, dt);
        }
    }

    // Timings. Weights (117 MB) exceed the 50 MB L2, so the GEMV numbers are HBM streaming rates.
    time_matmul(14336, 4096, LLM_DTYPE_BF16, 1, 200);
    time_matmul(4096, 14336, LLM_DTYPE_BF16, 1, 200);
    time_matmul(4096, 4096, LLM_DTYPE_BF16, 1, 200);
    time_matmul(1024, 4096, LLM_DTYPE_BF16, 1, 200);
    time_matmul(128256, 4096, LLM_DTYPE_BF16, 1, 50);
    for (int T : {2, 3, 4, 5, 8, 16}) time_matmul(14336, 4096, LLM_DTYPE_BF16, T, 100);
    for (int T : {5, 8}) time_matmul(14336, 4096, LLM_DTYPE_BF16, T, 100, true); // GEMV forced
    time_matmul(14336, 4096, LLM_DTYPE_F16, 1, 100);
    time_matmul(14336, 4096, LLM_DTYPE_F32, 1, 50);
    time_matmul(4096, 4096, LLM_DTYPE_BF16, 512, 50);
    time_matmul(14336, 4096, LLM_DTYPE_BF16, 512, 50);

    if (!quick) printf("%s: %d of %d checks failed\n", g_fail ? "FAIL" : "PASS", g_fail, g_checks);
    cublasDestroy(h);
    CK(cudaFree(g_ctx.workspace));
    CK(cudaStreamDestroy(g_s));
    return g_fail ? 1 : 0;
}
