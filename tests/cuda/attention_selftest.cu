// Standalone self-test and micro-benchmark of src/backend/cuda/attention.cu (not part of the build).
//
//   nvcc -std=c++17 -O3 -arch=sm_90 -Iinclude -Isrc tests/cuda/attention_selftest.cu
//        src/backend/cuda/attention.cu -o /tmp/att && /tmp/att
//
// Correctness: random paged caches (shuffled blocks, unused block-table entries -1, ragged batches
// mixing prefill chunks and decode rows), cuda_kv_write + cuda_attention on the GPU against a plain
// CPU implementation with double accumulation. Each case runs three times: with the full scratch the
// launcher asked for, with half of it and with none (so split-K, capped split-K and no split are all
// checked), and a guard region after the scratch must stay untouched. Error = max |gpu - ref| / max
// |ref|; PASS below 1e-4. Exit status 1 if any case fails.
//
// Speed: a decode batch (64 sequences x 4096 context, 32 heads, head_dim 128, block 16; GQA 32/8 and
// MHA 32/32) reported as GB/s of unique K/V bytes read, and a 512-row prefill reported as TFLOP/s
// (4 * head_dim flops per (row, head, key): QK dot and PV accumulate).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "backend/cuda/kernels.cuh"

#define CHECK(x)                                                                                        \
    do {                                                                                                \
        cudaError_t err_ = (x);                                                                         \
        if (err_ != cudaSuccess) {                                                                      \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(err_));       \
            exit(2);                                                                                    \
        }                                                                                               \
    } while (0)

struct SeqSpec {
    int n_past, n_rows;
};

struct Case {
    const char *name;
    int head_dim, n_head, n_head_kv, block_size;
    float scale_mult; // multiplies 1/sqrt(head_dim): larger makes the softmax peaky
    std::vector<SeqSpec> seqs;
};

template <typename T>
static T *to_dev(const std::vector<T> &h) {
    T *d = nullptr;
    CHECK(cudaMalloc(&d, std::max<size_t>(1, h.size()) * sizeof(T)));
    if (!h.empty()) CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
    return d;
}

// Host-side description of a batch plus its device mirror.
struct Batch {
    std::vector<int32_t> row_seq, seq_row, seq_n_rows, seq_n_past, positions, tokens, block_table;
    int T = 0, S = 0, max_blocks = 0, max_keys = 0, n_blocks = 0;
    cuda_batch dev{};
    std::vector<void *> allocs;

    void build(const std::vector<SeqSpec> &seqs, int bs, std::mt19937 &rng, int spare_blocks) {
        S = (int)seqs.size();
        for (int s = 0; s < S; s++) {
            const int keys = seqs[s].n_past + seqs[s].n_rows;
            max_keys = std::max(max_keys, keys);
            const int nb = (keys + bs - 1) / bs;
            max_blocks = std::max(max_blocks, nb);
            n_blocks += nb;
            seq_row.push_back(T);
            seq_n_rows.push_back(seqs[s].n_rows);
            seq_n_past.push_back(seqs[s].n_past);
            for (int r = 0; r < seqs[s].n_rows; r++) {
                row_seq.push_back(s);
                positions.push_back(seqs[s].n_past + r);
                tokens.push_back(0);
            }
            T += seqs[s].n_rows;
        }
        n_blocks += spare_blocks; // blocks no sequence owns, so a wrong lookup reads garbage
        std::vector<int32_t> perm(n_blocks);
        std::iota(perm.begin(), perm.end(), 0);
        std::shuffle(perm.begin(), perm.end(), rng);
        block_table.assign((size_t)S * max_blocks, -1);
        int next = 0;
        for (int s = 0; s < S; s++) {
            const int nb = (seqs[s].n_past + seqs[s].n_rows + bs - 1) / bs;
            for (int i = 0; i < nb; i++) block_table[(size_t)s * max_blocks + i] = perm[next++];
        }
    }
    void upload() {
        dev.n_tokens = T;
        dev.n_seqs = S;
        dev.tokens = track(to_dev(tokens));
        dev.positions = track(to_dev(positions));
        dev.row_seq = track(to_dev(row_seq));
        dev.seq_row = track(to_dev(seq_row));
        dev.seq_n_rows = track(to_dev(seq_n_rows));
        dev.seq_n_past = track(to_dev(seq_n_past));
        dev.block_table = track(to_dev(block_table));
        dev.max_blocks = max_blocks;
        dev.max_keys = max_keys;
    }
    template <typename T2>
    T2 *track(T2 *p) {
        allocs.push_back((void *)p);
        return p;
    }
    ~Batch() {
        for (void *p : allocs) cudaFree(p);
    }
};

static void cpu_kv_write(std::vector<float> &kc, std::vector<float> &vc, const std::vector<float> &k,
                         const std::vector<float> &v, const Batch &b, int nkv, int hd, int bs) {
    for (int row = 0; row < b.T; row++) {
        const int s = b.row_seq[row];
        const int pos = b.seq_n_past[s] + row - b.seq_row[s];
        const int blk = b.block_table[(size_t)s * b.max_blocks + pos / bs];
        for (int h = 0; h < nkv; h++)
            for (int i = 0; i < hd; i++) {
                const size_t dst = (((size_t)blk * nkv + h) * bs + pos % bs) * hd + i;
                kc[dst] = k[((size_t)row * nkv + h) * hd + i];
                vc[dst] = v[((size_t)row * nkv + h) * hd + i];
            }
    }
}

// Two-pass softmax in double: the plain definition, independent of the kernel's online scheme.
static void cpu_attention(std::vector<float> &out, const std::vector<float> &q, const std::vector<float> &kc,
                          const std::vector<float> &vc, const Batch &b, int n_head, int nkv, int hd, int bs,
                          float scale) {
    std::vector<double> sc, acc(hd);
    for (int row = 0; row < b.T; row++) {
        const int s = b.row_seq[row];
        const int n_keys = b.seq_n_past[s] + row - b.seq_row[s] + 1;
        sc.resize(n_keys);
        for (int h = 0; h < n_head; h++) {
            const int kvh = h / (n_head / nkv);
            const float *qr = &q[((size_t)row * n_head + h) * hd];
            double mx = -INFINITY;
            for (int j = 0; j < n_keys; j++) {
                const int blk = b.block_table[(size_t)s * b.max_blocks + j / bs];
                const float *kr = &kc[(((size_t)blk * nkv + kvh) * bs + j % bs) * hd];
                double d = 0;
                for (int i = 0; i < hd; i++) d += (double)qr[i] * kr[i];
                sc[j] = d * scale;
                mx = std::max(mx, sc[j]);
            }
            double sum = 0;
            std::fill(acc.begin(), acc.end(), 0.0);
            for (int j = 0; j < n_keys; j++) {
                const int blk = b.block_table[(size_t)s * b.max_blocks + j / bs];
                const float *vr = &vc[(((size_t)blk * nkv + kvh) * bs + j % bs) * hd];
                const double p = std::exp(sc[j] - mx);
                sum += p;
                for (int i = 0; i < hd; i++) acc[i] += p * vr[i];
            }
            float *o = &out[((size_t)row * n_head + h) * hd];
            for (int i = 0; i < hd; i++) o[i] = (float)(acc[i] / sum);
        }
    }
}

static void fill(std::vector<float> &x, std::mt19937 &rng) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (float &f : x) f = u(rng);
}

static bool run_case(const Case &c, std::mt19937 &rng) {
    const int hd = c.head_dim, H = c.n_head, nkv = c.n_head_kv, bs = c.block_size;
    const float scale = c.scale_mult / std::sqrt((float)hd);
    Batch b;
    b.build(c.seqs, bs, rng, 5);
    b.upload();
    const size_t cache_n = (size_t)b.n_blocks * nkv * bs * hd;
    std::vector<float> kc(cache_n), vc(cache_n), q((size_t)b.T * H * hd), k((size_t)b.T * nkv * hd),
        v((size_t)b.T * nkv * hd);
    fill(kc, rng);
    fill(vc, rng);
    fill(q, rng);
    fill(k, rng);
    fill(v, rng);

    float *d_kc = to_dev(kc), *d_vc = to_dev(vc), *d_q = to_dev(q), *d_k = to_dev(k), *d_v = to_dev(v);
    float *d_out = nullptr;
    CHECK(cudaMalloc(&d_out, q.size() * sizeof(float)));
    cudaStream_t st;
    CHECK(cudaStreamCreate(&st));

    cuda_kv_write(st, d_kc, d_vc, nkv, hd, bs, d_k, d_v, &b.dev);
    CHECK(cudaGetLastError());
    cpu_kv_write(kc, vc, k, v, b, nkv, hd, bs);
    std::vector<float> got_kc(cache_n), got_vc(cache_n);
    CHECK(cudaMemcpyAsync(got_kc.data(), d_kc, cache_n * sizeof(float), cudaMemcpyDeviceToHost, st));
    CHECK(cudaMemcpyAsync(got_vc.data(), d_vc, cache_n * sizeof(float), cudaMemcpyDeviceToHost, st));
    CHECK(cudaStreamSynchronize(st));
    const bool kv_ok = got_kc == kc && got_vc == vc;

    std::vector<float> ref(q.size());
    cpu_attention(ref, q, kc, vc, b, H, nkv, hd, bs, scale);
    double max_ref = 0;
    for (float x : ref) max_ref = std::max(max_ref, (double)std::fabs(x));

    const size_t full = cuda_attention_scratch_bytes(b.T, H, hd, b.max_keys);
    const size_t guard = 4096;
    char *d_scratch = nullptr;
    CHECK(cudaMalloc(&d_scratch, full + guard));
    bool ok = kv_ok;
    double worst = 0;
    const size_t budgets[3] = {full, full / 2, 0};
    for (int variant = 0; variant < 3; variant++) {
        const size_t sb = budgets[variant];
        CHECK(cudaMemsetAsync(d_scratch + sb, 0xAB, full + guard - sb, st));
        CHECK(cudaMemsetAsync(d_out, 0xFF, q.size() * sizeof(float), st)); // NaNs where nothing is written
        cuda_attention(st, d_out, d_q, d_kc, d_vc, nkv, hd, bs, &b.dev, H, scale, sb ? d_scratch : nullptr, sb);
        CHECK(cudaGetLastError());
        std::vector<float> got(q.size());
        std::vector<unsigned char> g(full + guard - sb);
        CHECK(cudaMemcpyAsync(got.data(), d_out, got.size() * sizeof(float), cudaMemcpyDeviceToHost, st));
        CHECK(cudaMemcpyAsync(g.data(), d_scratch + sb, g.size(), cudaMemcpyDeviceToHost, st));
        CHECK(cudaStreamSynchronize(st));
        const bool guard_ok = std::all_of(g.begin(), g.end(), [](unsigned char x) { return x == 0xAB; });
        double err = 0;
        for (size_t i = 0; i < got.size(); i++) {
            const double e = std::fabs((double)got[i] - ref[i]);
            err = std::isnan(e) ? INFINITY : std::max(err, e);
        }
        err /= max_ref;
        worst = std::max(worst, err);
        ok = ok && guard_ok && err < 1e-4;
        if (!guard_ok) printf("    scratch budget %zu: wrote past the scratch\n", sb);
    }
    printf("%-44s T=%4d S=%2d max_keys=%5d hd=%3d H=%2d/%2d bs=%2d  kv_write %s  max rel err %.3e  %s\n", c.name,
           b.T, b.S, b.max_keys, hd, H, nkv, bs, kv_ok ? "ok" : "MISMATCH", worst, ok ? "PASS" : "FAIL");
    cudaFree(d_kc);
    cudaFree(d_vc);
    cudaFree(d_q);
    cudaFree(d_k);
    cudaFree(d_v);
    cudaFree(d_out);
    cudaFree(d_scratch);
    cudaStreamDestroy(st);
    return ok;
}

// Deterministic pseudo-random fill on the device (the timed caches are too big to fill from the host).
__global__ void init_kernel(float *x, size_t n, uint32_t seed) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed;
        h ^= h >> 15;
        h *= 2246822519u;
        h ^= h >> 13;
        x[i] = (float)(h & 0xffff) / 32768.0f - 1.0f;
    }
}

static float *dev_random(size_t n, uint32_t seed) {
    float *d = nullptr;
    CHECK(cudaMalloc(&d, n * sizeof(float)));
    init_kernel<<<4096, 256>>>(d, n, seed);
    CHECK(cudaGetLastError());
    return d;
}

// Times cuda_attention on the given batch; returns milliseconds per call.
static double time_attention(const std::vector<SeqSpec> &seqs, int H, int nkv, int hd, int bs, std::mt19937 &rng) {
    Batch b;
    b.build(seqs, bs, rng, 0);
    b.upload();
    const size_t cache_n = (size_t)b.n_blocks * nkv * bs * hd;
    float *kc = dev_random(cache_n, 1), *vc = dev_random(cache_n, 2), *q = dev_random((size_t)b.T * H * hd, 3);
    float *out = nullptr;
    CHECK(cudaMalloc(&out, (size_t)b.T * H * hd * sizeof(float)));
    const size_t sb = cuda_attention_scratch_bytes(b.T, H, hd, b.max_keys);
    void *scratch = nullptr;
    if (sb) CHECK(cudaMalloc(&scratch, sb));
    cudaStream_t st;
    CHECK(cudaStreamCreate(&st));
    const float scale = 1.0f / std::sqrt((float)hd);
    for (int i = 0; i < 3; i++) cuda_attention(st, out, q, kc, vc, nkv, hd, bs, &b.dev, H, scale, scratch, sb);
    CHECK(cudaGetLastError());
    cudaEvent_t e0, e1;
    CHECK(cudaEventCreate(&e0));
    CHECK(cudaEventCreate(&e1));
    const int iters = 20;
    CHECK(cudaEventRecord(e0, st));
    for (int i = 0; i < iters; i++) cuda_attention(st, out, q, kc, vc, nkv, hd, bs, &b.dev, H, scale, scratch, sb);
    CHECK(cudaEventRecord(e1, st));
    CHECK(cudaEventSynchronize(e1));
    CHECK(cudaGetLastError());
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, e0, e1));
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaStreamDestroy(st);
    cudaFree(kc);
    cudaFree(vc);
    cudaFree(q);
    cudaFree(out);
    cudaFree(scratch);
    return ms / iters;
}

static std::vector<SeqSpec> random_mix(std::mt19937 &rng, int n_seqs) {
    std::vector<SeqSpec> v;
    for (int i = 0; i < n_seqs; i++) {
        if (rng() % 2) v.push_back({(int)(rng() % 8000), 1}); // decode, context up to 8000
        else v.push_back({(int)(rng() % 2001), 1 + (int)(rng() % 300)}); // prefill chunk
    }
    return v;
}

int main() {
    cudaDeviceProp prop;
    CHECK(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s (%d SMs)\n", prop.name, prop.multiProcessorCount);
    std::mt19937 rng(12345);

    std::vector<SeqSpec> mix = {{0, 300}, {1500, 57}, {7999, 1}, {3000, 1}, {0, 1}, {2000, 1}, {123, 200}};
    std::vector<Case> cases = {
        {"mixed, GQA 32/8, hd128, bs16", 128, 32, 8, 16, 1.0f, mix},
        {"mixed, GQA 32/8, hd64, bs7", 64, 32, 8, 7, 1.0f, mix},
        {"mixed, MQA 32/1, hd128, bs7", 128, 32, 1, 7, 1.0f, mix},
        {"mixed, MQA 16/1, hd64, bs16", 64, 16, 1, 16, 1.0f, mix},
        {"decode only (split-K), GQA 32/8, hd128, bs16", 128, 32, 8, 16, 1.0f, {{7999, 1}, {4095, 1}, {17, 1}, {5000, 1}}},
        {"decode only (split-K), MQA 8/1, hd64, bs7", 64, 8, 1, 7, 1.0f, {{7999, 1}, {256, 1}, {0, 1}}},
        {"single row, ctx 1", 128, 4, 4, 16, 1.0f, {{0, 1}}},
        {"peaky softmax (scale x10), hd128, bs16", 128, 32, 8, 16, 10.0f, {{2500, 40}, {6000, 1}}},
        {"odd head_dim 80 (unvectorised), 8/2, bs16", 80, 8, 2, 16, 1.0f, {{1000, 30}, {4000, 1}}},
        {"head_dim 256, 4/4, bs7", 256, 4, 4, 7, 1.0f, {{700, 50}, {3000, 1}}},
        {"head_dim 32, 8/8, block 1", 32, 8, 8, 1, 1.0f, {{300, 20}, {900, 1}}},
        {"head_dim 96, block 256", 96, 12, 4, 256, 1.0f, {{600, 100}, {2000, 1}}},
    };
    for (int i = 0; i < 4; i++) {
        const int hd = i % 2 ? 64 : 128, bs = i < 2 ? 16 : 7, nkv = i == 3 ? 1 : 8;
        cases.push_back({"random mix", hd, 32, nkv, bs, 1.0f, random_mix(rng, 2 + (int)(rng() % 7))});
    }
    int failed = 0;
    for (const Case &c : cases) failed += !run_case(c, rng);
    printf("%s: %d of %zu cases failed\n\n", failed ? "FAIL" : "PASS", failed, cases.size());

    // Decode: 64 sequences x 4096 context (n_past 4095 + the new row).
    for (int nkv : {8, 32}) {
        std::vector<SeqSpec> dec(64, SeqSpec{4095, 1});
        const double ms = time_attention(dec, 32, nkv, 128, 16, rng);
        const double bytes = 64.0 * nkv * 4096 * 128 * sizeof(float) * 2;
        printf("decode  64 seq x 4096 ctx, 32/%2d heads, hd128, bs16: %8.3f ms  %7.1f GB/s of K/V (HBM peak: H100 SXM ~3350, H200 ~4800)\n",
               nkv, ms, bytes / (ms * 1e-3) / 1e9);
    }
    // Prefill: one sequence, 512 rows from n_past 0 (causal), and a 512-row chunk after 3584 tokens.
    for (int n_past : {0, 3584}) {
        std::vector<SeqSpec> pre = {{n_past, 512}};
        const double ms = time_attention(pre, 32, 8, 128, 16, rng);
        double pairs = 0;
        for (int r = 0; r < 512; r++) pairs += n_past + r + 1;
        const double flops = pairs * 32 * 4.0 * 128;
        printf("prefill 512 rows, n_past %4d, 32/8 heads, hd128, bs16: %8.3f ms  %6.2f TFLOP/s\n", n_past, ms,
               flops / (ms * 1e-3) / 1e12);
    }
    return failed ? 1 : 0;
}
