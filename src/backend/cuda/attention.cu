// Causal attention over the paged KV cache, and the KV write that feeds it (CUDA).
//
// Algorithm (split-K "flash-decoding", one warp per (row, group of query heads, split)):
//   * Every token row of the ragged batch is independent: it attends to positions 0..n_past+r of its
//     own sequence, reading K/V through that sequence's block table, so prefill chunks and decode rows
//     go through the same kernel in one launch.
//   * The key range of a row is cut into n_splits chunks of `chunk` keys (same cut for every row; a
//     row shorter than a chunk's start leaves that split empty). A warp walks its chunk KT keys at a
//     time: lane t resolves key t's cache row through the block table, the warp loads the KT key rows
//     and value rows (lane i holds head_dim elements i*NE..i*NE+NE-1, coalesced, vectorised when
//     head_dim is 32, 64, 128 or 256), reduces the KT dot products with shuffles, and updates an
//     online softmax (running max m, running sum l, accumulator acc rescaled by exp(m_old - m_new)).
//     All arithmetic is float, as in the CPU reference.
//   * With one split the warp writes out = acc / l. With several it writes (m, l, acc) to scratch and
//     a second kernel combines them: out = sum_s exp(m_s - M) acc_s / sum_s exp(m_s - M) l_s.
//   * The number of splits is chosen on the host from b->max_keys and the batch size alone (no device
//     data is read): enough to keep ~kTargetWarps warps busy, at least kMinChunk keys a split, and no
//     more than the scratch holds.
//   * GQA: query head h reads kv head h / (n_head / n_head_kv). One warp serves G query heads of the
//     same kv head (G = 4, 2 or 1 dividing the group), so each K/V element it loads feeds G dot
//     products from registers; the kWarps warps of a block are consecutive head groups of one row.
#include <math.h>
#include <stdint.h>

#include <cuda_bf16.h>

#include "backend/cuda/kernels.cuh"

namespace {

constexpr int kWarps = 4;               // warps (head groups of one row) per block of the split kernel
constexpr int kMinChunk = 64;           // fewest keys worth a split of their own (a single decode row
                                         // needs many short splits to occupy the GPU: 256 left a
                                         // 600-key decode on 24 warps)
constexpr long long kTargetWarps = 8192; // about the resident warps of an H100 (132 SMs x 64)
constexpr int kMaxHeadDim = 256;
constexpr int kMaxG = 4;                // most query heads one warp serves (see heads_per_warp)
constexpr unsigned kFull = 0xffffffffu;

struct AttnParams {
    float *out;
    const float *q;
    const void *kc, *vc; // float, or bf16 bits when the cache is BF16 (the kernels' KV16)
    const int32_t *row_seq, *seq_row, *seq_n_past, *block_table;
    int max_blocks, n_tokens, n_head, n_head_kv, group, head_dim, block_size;
    float scale;
    int chunk, n_splits;
    float *part_acc, *part_m, *part_l; // scratch, only used when n_splits > 1
};

// One head_dim-long row spread over a warp: lane i holds elements i*NE .. i*NE+NE-1. VEC means
// head_dim == 32*NE with NE in {1,2,4,8} and 16-byte aligned rows, so a lane's part is one or two
// vector loads; otherwise elements past head_dim are masked off (they read as 0).
template <int NE, bool VEC>
__device__ __forceinline__ void load_row(float (&x)[NE], const float *__restrict__ p, int lane, int hd) {
    if constexpr (VEC && NE == 8) {
        const float4 a = reinterpret_cast<const float4 *>(p)[lane * 2];
        const float4 b = reinterpret_cast<const float4 *>(p)[lane * 2 + 1];
        x[0] = a.x; x[1] = a.y; x[2] = a.z; x[3] = a.w;
        x[4] = b.x; x[5] = b.y; x[6] = b.z; x[7] = b.w;
    } else if constexpr (VEC && NE == 4) {
        const float4 a = reinterpret_cast<const float4 *>(p)[lane];
        x[0] = a.x; x[1] = a.y; x[2] = a.z; x[3] = a.w;
    } else if constexpr (VEC && NE == 2) {
        const float2 a = reinterpret_cast<const float2 *>(p)[lane];
        x[0] = a.x; x[1] = a.y;
    } else {
#pragma unroll
        for (int e = 0; e < NE; e++) {
            const int d = lane * NE + e;
            x[e] = (VEC || d < hd) ? p[d] : 0.0f;
        }
    }
}

template <int NE, bool VEC>
__device__ __forceinline__ void store_row(float *__restrict__ p, const float (&x)[NE], int lane, int hd) {
    if constexpr (VEC && NE == 8) {
        reinterpret_cast<float4 *>(p)[lane * 2] = make_float4(x[0], x[1], x[2], x[3]);
        reinterpret_cast<float4 *>(p)[lane * 2 + 1] = make_float4(x[4], x[5], x[6], x[7]);
    } else if constexpr (VEC && NE == 4) {
        reinterpret_cast<float4 *>(p)[lane] = make_float4(x[0], x[1], x[2], x[3]);
    } else if constexpr (VEC && NE == 2) {
        reinterpret_cast<float2 *>(p)[lane] = make_float2(x[0], x[1]);
    } else {
#pragma unroll
        for (int e = 0; e < NE; e++) {
            const int d = lane * NE + e;
            if (VEC || d < hd) p[d] = x[e];
        }
    }
}

// A cache row of head_dim elements into a lane's NE floats: float rows through load_row, bf16 rows
// (KV16) as NE 16-bit values per lane, widened exactly (bf16 is the top half of a float).
__device__ __forceinline__ float bf16_bits(uint32_t h) { return __uint_as_float(h << 16); }

template <int NE, bool VEC, bool KV16>
__device__ __forceinline__ void load_kv(float (&x)[NE], const void *__restrict__ base, size_t elem, int lane, int hd) {
    if constexpr (!KV16) {
        load_row<NE, VEC>(x, static_cast<const float *>(base) + elem, lane, hd);
    } else {
        const uint16_t *p = static_cast<const uint16_t *>(base) + elem;
        if constexpr (VEC && NE == 8) {
            const uint4 a = reinterpret_cast<const uint4 *>(p)[lane];
            const uint32_t u[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
            for (int i = 0; i < 4; i++) x[2 * i] = bf16_bits(u[i] & 0xffffu), x[2 * i + 1] = bf16_bits(u[i] >> 16);
        } else if constexpr (VEC && NE == 4) {
            const uint2 a = reinterpret_cast<const uint2 *>(p)[lane];
            x[0] = bf16_bits(a.x & 0xffffu), x[1] = bf16_bits(a.x >> 16);
            x[2] = bf16_bits(a.y & 0xffffu), x[3] = bf16_bits(a.y >> 16);
        } else if constexpr (VEC && NE == 2) {
            const uint32_t a = reinterpret_cast<const uint32_t *>(p)[lane];
            x[0] = bf16_bits(a & 0xffffu), x[1] = bf16_bits(a >> 16);
        } else {
#pragma unroll
            for (int e = 0; e < NE; e++) {
                const int d = lane * NE + e;
                x[e] = (VEC || d < hd) ? bf16_bits(p[d]) : 0.0f;
            }
        }
    }
}

// KT keys per step: enough independent loads in flight to cover memory latency, few enough that the
// KT key rows and KT value rows (2*KT*NE registers) plus G heads' q and acc do not spill.
// G query heads of one kv head per warp (G divides the GQA group): each K/V element loaded once
// serves G heads from registers instead of G warps each waiting on the same cache lines.
template <int NE, bool VEC, int KT, int G, bool KV16>
__global__ void __launch_bounds__(kWarps * 32) attn_split_kernel(const AttnParams p) {
    const int lane = threadIdx.x & 31;
    const int h0 = (blockIdx.y * kWarps + (threadIdx.x >> 5)) * G;
    if (h0 >= p.n_head) return; // whole warps only; the kernel has no block-wide barrier
    const int row = blockIdx.x, split = blockIdx.z;
    const int hd = p.head_dim, bs = p.block_size, nkv = p.n_head_kv;
    const int seq = p.row_seq[row];
    const int n_keys = p.seq_n_past[seq] + (row - p.seq_row[seq]) + 1;
    const int kbeg = split * p.chunk;
    const int kend = min(kbeg + p.chunk, n_keys);
    const int kvh = h0 / p.group; // same for h0..h0+G-1: G divides the group
    const size_t qoff = ((size_t)row * p.n_head + h0) * hd;
    const int32_t *bt = p.block_table + (size_t)seq * p.max_blocks;

    float q[G][NE], acc[G][NE], m[G], l[G];
#pragma unroll
    for (int g = 0; g < G; g++) {
        load_row<NE, VEC>(q[g], p.q + qoff + (size_t)g * hd, lane, hd);
#pragma unroll
        for (int e = 0; e < NE; e++) acc[g][e] = 0.0f;
        m[g] = -INFINITY;
        l[g] = 0.0f;
    }

    for (int j0 = kbeg; j0 < kend; j0 += KT) {
        // Lane t < KT resolves key j0+t to its cache row (block-table read and division once per
        // key, in parallel); the rows are then broadcast. Row index in units of head_dim floats.
        int myrow = 0;
        {
            const int pos = j0 + (lane % KT);
            if (pos < kend) myrow = (bt[pos / bs] * nkv + kvh) * bs + pos % bs;
        }
        float kx[KT][NE], vx[KT][NE];
#pragma unroll
        for (int t = 0; t < KT; t++) {
            const int r = __shfl_sync(kFull, myrow, t);
            if (j0 + t < kend) { // warp-uniform
                load_kv<NE, VEC, KV16>(kx[t], p.kc, (size_t)r * hd, lane, hd);
                load_kv<NE, VEC, KV16>(vx[t], p.vc, (size_t)r * hd, lane, hd);
            } else {
#pragma unroll
                for (int e = 0; e < NE; e++) kx[t][e] = vx[t][e] = 0.0f;
            }
        }
        float s[G][KT];
#pragma unroll
        for (int g = 0; g < G; g++)
#pragma unroll
            for (int t = 0; t < KT; t++) {
                float d = 0.0f;
#pragma unroll
                for (int e = 0; e < NE; e++) d = fmaf(q[g][e], kx[t][e], d);
                s[g][t] = d;
            }
        // Butterfly reductions, interleaved across the G*KT dot products so the shuffles pipeline;
        // every lane ends with every score.
#pragma unroll
        for (int off = 16; off > 0; off >>= 1)
#pragma unroll
            for (int g = 0; g < G; g++)
#pragma unroll
                for (int t = 0; t < KT; t++) s[g][t] += __shfl_xor_sync(kFull, s[g][t], off);
#pragma unroll
        for (int g = 0; g < G; g++) {
            float tmax = -INFINITY;
#pragma unroll
            for (int t = 0; t < KT; t++) {
                s[g][t] = (j0 + t < kend) ? s[g][t] * p.scale : -INFINITY;
                tmax = fmaxf(tmax, s[g][t]);
            }
            const float mnew = fmaxf(m[g], tmax); // finite: key j0 is always valid
            const float corr = expf(m[g] - mnew); // exp(-inf) = 0 on the first step
            l[g] *= corr;
#pragma unroll
            for (int e = 0; e < NE; e++) acc[g][e] *= corr;
#pragma unroll
            for (int t = 0; t < KT; t++) {
                const float pt = expf(s[g][t] - mnew); // 0 for masked keys
                l[g] += pt;
#pragma unroll
                for (int e = 0; e < NE; e++) acc[g][e] = fmaf(pt, vx[t][e], acc[g][e]);
            }
            m[g] = mnew;
        }
    }

#pragma unroll
    for (int g = 0; g < G; g++) {
        if (p.n_splits == 1) {
            const float inv = 1.0f / l[g];
#pragma unroll
            for (int e = 0; e < NE; e++) acc[g][e] *= inv;
            store_row<NE, VEC>(p.out + qoff + (size_t)g * hd, acc[g], lane, hd);
        } else {
            // Always written, empty splits included (m = -inf, l = 0, acc = 0): scratch is not cleared.
            const size_t item = ((size_t)split * p.n_tokens + row) * p.n_head + h0 + g;
            store_row<NE, VEC>(p.part_acc + item * hd, acc[g], lane, hd);
            if (lane == 0) {
                p.part_m[item] = m[g];
                p.part_l[item] = l[g];
            }
        }
    }
}

// One block per (row, head): rescales each split's partial result to the global max and normalises.
__global__ void attn_combine_kernel(const AttnParams p) {
    const size_t item = blockIdx.x; // row * n_head + h
    const size_t stride = (size_t)p.n_tokens * p.n_head;
    const int hd = p.head_dim;
    float M = -INFINITY;
    for (int s = 0; s < p.n_splits; s++) M = fmaxf(M, p.part_m[s * stride + item]);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float num = 0.0f, den = 0.0f;
        for (int s = 0; s < p.n_splits; s++) {
            const float ms = p.part_m[s * stride + item];
            const float w = ms == -INFINITY ? 0.0f : expf(ms - M); // empty split: no keys
            num = fmaf(w, p.part_acc[(s * stride + item) * hd + d], num);
            den = fmaf(w, p.part_l[s * stride + item], den);
        }
        p.out[item * hd + d] = num / den;
    }
}

// One thread per (row, kv head, W-float group of head_dim).
template <int W, bool KV16>
__global__ void kv_write_kernel(void *__restrict__ kc, void *__restrict__ vc, const float *__restrict__ k,
                                const float *__restrict__ v, const int32_t *__restrict__ row_seq,
                                const int32_t *__restrict__ seq_row, const int32_t *__restrict__ seq_n_past,
                                const int32_t *__restrict__ block_table, int max_blocks, int n_tokens, int nkv,
                                int hd, int bs) {
    const int groups = hd / W;
    const size_t total = (size_t)n_tokens * nkv * groups;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int g = (int)(i % groups);
        const size_t rh = i / groups; // row * nkv + kv head
        const int h = (int)(rh % nkv);
        const int row = (int)(rh / nkv);
        const int seq = row_seq[row];
        const int pos = seq_n_past[seq] + (row - seq_row[seq]);
        const int32_t blk = block_table[(size_t)seq * max_blocks + pos / bs];
        const size_t dst = (((size_t)blk * nkv + h) * bs + pos % bs) * hd + (size_t)g * W;
        const size_t src = rh * hd + (size_t)g * W;
        if constexpr (KV16) { // round to nearest even, as the CPU's llm_f32_to_bf16
            uint16_t *kd = static_cast<uint16_t *>(kc) + dst, *vd = static_cast<uint16_t *>(vc) + dst;
#pragma unroll
            for (int e = 0; e < W; e++) {
                kd[e] = __bfloat16_as_ushort(__float2bfloat16_rn(k[src + e]));
                vd[e] = __bfloat16_as_ushort(__float2bfloat16_rn(v[src + e]));
            }
        } else if constexpr (W == 4) {
            *reinterpret_cast<float4 *>(static_cast<float *>(kc) + dst) = *reinterpret_cast<const float4 *>(k + src);
            *reinterpret_cast<float4 *>(static_cast<float *>(vc) + dst) = *reinterpret_cast<const float4 *>(v + src);
        } else {
            static_cast<float *>(kc)[dst] = k[src];
            static_cast<float *>(vc)[dst] = v[src];
        }
    }
}

// Splits wanted for a batch: enough (row, head group, split) warps to fill the GPU, none shorter
// than kMinChunk keys. Depends only on host values, so the scratch bound below can replay it. Fewer
// warps (more heads per warp) want more splits, so the bound assumes the most heads per warp.
int wanted_splits(long long n_tokens, int warps_per_row, int max_keys) {
    const long long items = n_tokens * (long long)warps_per_row;
    if (items <= 0 || max_keys <= kMinChunk) return 1;
    const long long by_len = (max_keys + kMinChunk - 1) / kMinChunk;
    const long long by_fill = (kTargetWarps + items - 1) / items;
    long long s = by_len < by_fill ? by_len : by_fill;
    if (s > 65535) s = 65535; // gridDim.z limit
    return s < 1 ? 1 : (int)s;
}

size_t split_scratch_bytes(long long n_tokens, int n_head, int head_dim, int n_splits) {
    if (n_splits <= 1) return 0;
    return (size_t)n_splits * (size_t)n_tokens * (size_t)n_head * ((size_t)head_dim + 2) * sizeof(float);
}

bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

// Heads per warp for a GQA group: the largest of 4, 2, 1 dividing it, capped so G*NE <= 16 (q and
// acc of G heads stay in registers). Unvectorised (odd) head sizes keep G = 1 to bound the number of
// instantiations.
int heads_per_warp(int group, int ne, bool vec) {
    if (!vec) return 1;
    for (int g = kMaxG; g > 1; g /= 2)
        if (group % g == 0 && g * ne <= 16) return g;
    return 1;
}

int warps_per_row(int n_head, int g) { return (n_head / g + kWarps - 1) / kWarps * kWarps; }

template <int NE, bool VEC, int G>
void launch_g(cudaStream_t s, const AttnParams &p, bool kv16) {
    constexpr int KT = (NE <= 4 ? 8 : 4) / (G > 2 ? 2 : 1);
    // a bf16 cache row is half the bytes per load: twice the keys in flight where registers allow
    constexpr int KT16 = G > 2 ? 2 * KT : KT;
    const dim3 grid((unsigned)p.n_tokens, (unsigned)((p.n_head / G + kWarps - 1) / kWarps), (unsigned)p.n_splits);
    if (kv16)
        attn_split_kernel<NE, VEC, KT16, G, true><<<grid, kWarps * 32, 0, s>>>(p);
    else
        attn_split_kernel<NE, VEC, KT, G, false><<<grid, kWarps * 32, 0, s>>>(p);
}

template <int NE>
void launch_split(cudaStream_t s, const AttnParams &p, bool vec, int g, bool kv16) {
    constexpr bool kCanVec = NE == 1 || NE == 2 || NE == 4 || NE == 8;
    if constexpr (kCanVec) {
        if (vec) {
            if (g == 4) {
                if constexpr (NE <= 4) launch_g<NE, true, 4>(s, p, kv16);
            } else if (g == 2) {
                launch_g<NE, true, 2>(s, p, kv16);
            } else {
                launch_g<NE, true, 1>(s, p, kv16);
            }
            return;
        }
    }
    launch_g<NE, false, 1>(s, p, kv16);
}

} // namespace

void cuda_kv_write(cudaStream_t s, void *k_cache, void *v_cache, bool kv16, int n_head_kv, int head_dim,
                   int block_size, const float *k, const float *v, const cuda_batch *b) {
    if (b->n_tokens <= 0) return;
    const bool vec = head_dim % 4 == 0 && aligned16(k_cache) && aligned16(v_cache) && aligned16(k) && aligned16(v);
    const int W = vec ? 4 : 1;
    const size_t total = (size_t)b->n_tokens * n_head_kv * (head_dim / W);
    const int threads = 256;
    size_t blocks = (total + threads - 1) / threads;
    if (blocks > 65535u * 16u) blocks = 65535u * 16u; // grid-stride loop covers the rest
#define LLM_KV_WRITE(W, KV16)                                                                                        \
    kv_write_kernel<W, KV16><<<(unsigned)blocks, threads, 0, s>>>(k_cache, v_cache, k, v, b->row_seq, b->seq_row, \
                                                                  b->seq_n_past, b->block_table, b->max_blocks,  \
                                                                  b->n_tokens, n_head_kv, head_dim, block_size)
    if (vec && kv16)
        LLM_KV_WRITE(4, true);
    else if (vec)
        LLM_KV_WRITE(4, false);
    else if (kv16)
        LLM_KV_WRITE(1, true);
    else
        LLM_KV_WRITE(1, false);
#undef LLM_KV_WRITE
}

size_t cuda_attention_scratch_bytes(int max_tokens, int n_head, int head_dim, int max_ctx) {
    // The worst case over every batch size the launcher may see (splits shrink as the batch grows).
    size_t worst = 0;
    const int wpr = (n_head / kMaxG + kWarps - 1) / kWarps * kWarps; // fewest warps a row can get
    for (int t = 1; t <= max_tokens; t++) {
        const int splits = wanted_splits(t, wpr > 0 ? wpr : 1, max_ctx);
        const size_t need = split_scratch_bytes(t, n_head, head_dim, splits);
        if (need > worst) worst = need;
        if (splits == 1) break; // and it stays 1 for larger batches
    }
    return worst;
}

void cuda_attention(cudaStream_t s, float *out, const float *q, const void *k_cache, const void *v_cache, bool kv16,
                    int n_head_kv, int head_dim, int block_size, const cuda_batch *b, int n_head, float scale,
                    void *scratch, size_t scratch_bytes) {
    if (b->n_tokens <= 0 || n_head <= 0) return;
    AttnParams p;
    p.out = out;
    p.q = q;
    p.kc = k_cache;
    p.vc = v_cache;
    p.row_seq = b->row_seq;
    p.seq_row = b->seq_row;
    p.seq_n_past = b->seq_n_past;
    p.block_table = b->block_table;
    p.max_blocks = b->max_blocks;
    p.n_tokens = b->n_tokens;
    p.n_head = n_head;
    p.n_head_kv = n_head_kv;
    p.group = n_head / n_head_kv;
    p.head_dim = head_dim;
    p.block_size = block_size;
    p.scale = scale;

    const int ne = head_dim > 0 && head_dim <= kMaxHeadDim ? (head_dim + 31) / 32 : 0;
    const bool vec = ne > 0 && head_dim == 32 * ne && (ne == 1 || ne == 2 || ne == 4 || ne == 8) &&
                     aligned16(out) && aligned16(q) && aligned16(k_cache) && aligned16(v_cache) &&
                     aligned16(scratch);
    const int g = heads_per_warp(p.group, ne, vec);
    int splits = wanted_splits(b->n_tokens, warps_per_row(n_head, g), b->max_keys);
    if (scratch == nullptr) splits = 1;
    while (splits > 1 && split_scratch_bytes(b->n_tokens, n_head, head_dim, splits) > scratch_bytes) splits--;
    const int max_keys = b->max_keys > 0 ? b->max_keys : 1;
    p.n_splits = splits;
    p.chunk = (max_keys + splits - 1) / splits;
    const size_t items = (size_t)b->n_tokens * n_head;
    p.part_acc = static_cast<float *>(scratch);
    p.part_m = p.part_acc + (size_t)splits * items * head_dim;
    p.part_l = p.part_m + (size_t)splits * items;

    switch (ne) {
    case 1: launch_split<1>(s, p, vec, g, kv16); break;
    case 2: launch_split<2>(s, p, vec, g, kv16); break;
    case 3: launch_split<3>(s, p, vec, g, kv16); break;
    case 4: launch_split<4>(s, p, vec, g, kv16); break;
    case 5: launch_split<5>(s, p, vec, g, kv16); break;
    case 6: launch_split<6>(s, p, vec, g, kv16); break;
    case 7: launch_split<7>(s, p, vec, g, kv16); break;
    case 8: launch_split<8>(s, p, vec, g, kv16); break;
    default:
        // head_dim > kMaxHeadDim (or <= 0) is unsupported. A launch with an empty grid fails with
        // cudaErrorInvalidConfiguration, which the backend's cudaGetLastError() check makes sticky, so
        // the caller sees an error instead of silently wrong output.
        attn_combine_kernel<<<0, 1, 0, s>>>(p);
        return;
    }
    if (splits > 1) attn_combine_kernel<<<(unsigned)items, head_dim <= 64 ? 64 : 128, 0, s>>>(p);
}
