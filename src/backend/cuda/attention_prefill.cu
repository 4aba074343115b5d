// Causal attention for prefill: flash-attention-style tiles over the paged KV cache (CUDA).
//
// The split kernel (attention.cu) gives every query row its own warp, which re-reads a row's keys
// from L2 once per row: fine for decode, quadratic traffic for a long prompt. Here one block takes a
// tile of kRows consecutive query rows of ONE sequence (and one query head), and walks that
// sequence's keys kKeys at a time: each K/V tile is loaded into shared memory once (through the block
// table) and used by all kRows rows, with an online softmax per row (running max m, sum l, output
// accumulator rescaled by exp(m_old - m_new)), as in FlashAttention. All arithmetic is float (the CPU
// reference's), with the scores and the P·V products accumulated in a fixed order per element.
//
// Thread layout (128 threads = 8 row groups x 16 columns):
//   scores S[kRows][kKeys]: thread (ty, tx) owns rows ty*4 + i (i < 4) and keys tx + 16 j (j < 2), so
//     one step over the head dimension loads 4 Q values and 2 K values for 8 FMAs;
//   output O[kRows][HD]:    thread (ty, tx) owns rows ty*4 + i and dims tx + 16 k (k < HD/16).
// A row's 16 owners are 16 lanes of one warp: the row max and sum of a tile reduce with shuffles.
// Shared memory: Q tile [kRows][HD+1], K tile [kKeys][HD+1] (the +1 keeps a warp's column reads on
// distinct banks), V tile [kKeys][HD], P tile [kRows][kKeys+1].
//
// The tile list (sequence, first row, rows) is built on the host from the batch in begin_batch, so
// every row of the batch is covered, decode rows too (a tile of one row), and the launch needs no
// device data to size its grid.
#include <math.h>
#include <stdint.h>

#include "backend/cuda/kernels.cuh"

namespace {

constexpr int kRows = CUDA_PREFILL_TILE_ROWS; // query rows per tile (32)
constexpr int kKeys = 32;                     // keys per shared-memory tile
constexpr int kThreads = 128;
constexpr int kRowsPerThread = kRows / 8;  // 4
constexpr int kKeysPerThread = kKeys / 16; // 2

struct PrefillParams {
    float *out;
    const float *q;
    const void *kc, *vc; // float, or bf16 bits (KV16)
    const int32_t *tiles; // [n_tiles][3]: sequence, first row, rows
    const int32_t *seq_row, *seq_n_past, *block_table;
    int max_blocks, n_head, group, n_head_kv, block_size;
    float scale;
};

template <int HD>
constexpr size_t smem_floats() {
    return (size_t)kRows * (HD + 1) + (size_t)kKeys * (HD + 1) + (size_t)kKeys * HD + (size_t)kRows * (kKeys + 1);
}

// 4 consecutive cache elements from element offset off, widened (bf16 exactly: the top half of a float).
template <bool KV16> __device__ __forceinline__ float4 load4(const void *base, size_t off) {
    if constexpr (KV16) {
        const uint2 u = *reinterpret_cast<const uint2 *>(static_cast<const uint16_t *>(base) + off);
        return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u), __uint_as_float(u.y << 16),
                           __uint_as_float(u.y & 0xffff0000u));
    } else {
        return *reinterpret_cast<const float4 *>(static_cast<const float *>(base) + off);
    }
}

template <int HD, bool KV16>
__global__ void __launch_bounds__(kThreads) attn_prefill_kernel(const PrefillParams p) {
    constexpr int kDims = HD / 16; // output dims per thread
    extern __shared__ float smem[];
    float *Qs = smem;                          // [kRows][HD+1]
    float *Ks = Qs + kRows * (HD + 1);         // [kKeys][HD+1]
    float *Vs = Ks + kKeys * (HD + 1);         // [kKeys][HD]
    float *Ps = Vs + kKeys * HD;               // [kRows][kKeys+1]

    const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
    const int seq = p.tiles[blockIdx.x * 3], row0 = p.tiles[blockIdx.x * 3 + 1], n_rows = p.tiles[blockIdx.x * 3 + 2];
    const int h = blockIdx.y, kvh = h / p.group;
    const int n_past = p.seq_n_past[seq];
    const int pos0 = n_past + (row0 - p.seq_row[seq]); // position of the tile's first row
    const int last_key = pos0 + n_rows - 1;           // the tile's last row sees keys 0..last_key
    const int32_t *bt = p.block_table + (size_t)seq * p.max_blocks;
    const int bs = p.block_size, nkv = p.n_head_kv;

    // Q tile; rows past n_rows repeat the last row (computed, never stored), so no row is all-masked.
    for (int i = tid; i < kRows * HD; i += kThreads) {
        const int r = i / HD, d = i % HD;
        const int rr = r < n_rows ? r : n_rows - 1;
        Qs[r * (HD + 1) + d] = p.q[((size_t)(row0 + rr) * p.n_head + h) * HD + d];
    }
    int my_pos[kRowsPerThread];
    float m[kRowsPerThread], l[kRowsPerThread], acc[kRowsPerThread][kDims];
#pragma unroll
    for (int i = 0; i < kRowsPerThread; i++) {
        const int r = ty * kRowsPerThread + i;
        my_pos[i] = pos0 + (r < n_rows ? r : n_rows - 1);
        m[i] = -INFINITY;
        l[i] = 0.0f;
#pragma unroll
        for (int k = 0; k < kDims; k++) acc[i][k] = 0.0f;
    }

    for (int j0 = 0; j0 <= last_key; j0 += kKeys) {
        __syncthreads(); // the previous tile's readers are done with Ks/Vs/Ps (and Qs is written)
        // K and V tiles: float4 loads, 4-float groups of a key row per thread; key j's cache row via
        // the block table. Keys past last_key load as zeros (masked below anyway).
        for (int i = tid; i < kKeys * (HD / 4); i += kThreads) {
            const int t = i / (HD / 4), d = (i % (HD / 4)) * 4;
            const int j = j0 + t;
            float4 kv4 = make_float4(0.f, 0.f, 0.f, 0.f), vv4 = kv4;
            if (j <= last_key) {
                const size_t off = ((size_t)(bt[j / bs] * nkv + kvh) * bs + j % bs) * HD + d;
                kv4 = load4<KV16>(p.kc, off);
                vv4 = load4<KV16>(p.vc, off);
            }
            float *kd = Ks + t * (HD + 1) + d;
            kd[0] = kv4.x, kd[1] = kv4.y, kd[2] = kv4.z, kd[3] = kv4.w;
            *reinterpret_cast<float4 *>(Vs + t * HD + d) = vv4;
        }
        __syncthreads();

        // S = Q K^T for this thread's 4 rows x 2 keys
        float s[kRowsPerThread][kKeysPerThread];
#pragma unroll
        for (int i = 0; i < kRowsPerThread; i++)
#pragma unroll
            for (int j = 0; j < kKeysPerThread; j++) s[i][j] = 0.0f;
#pragma unroll 8
        for (int d = 0; d < HD; d++) {
            float qv[kRowsPerThread], kv[kKeysPerThread];
#pragma unroll
            for (int i = 0; i < kRowsPerThread; i++) qv[i] = Qs[(ty * kRowsPerThread + i) * (HD + 1) + d];
#pragma unroll
            for (int j = 0; j < kKeysPerThread; j++) kv[j] = Ks[(tx + 16 * j) * (HD + 1) + d];
#pragma unroll
            for (int i = 0; i < kRowsPerThread; i++)
#pragma unroll
                for (int j = 0; j < kKeysPerThread; j++) s[i][j] = fmaf(qv[i], kv[j], s[i][j]);
        }

        // Online softmax per row: the row's 16 owners (lanes sharing ty within the warp) reduce.
#pragma unroll
        for (int i = 0; i < kRowsPerThread; i++) {
            float tmax = -INFINITY;
#pragma unroll
            for (int j = 0; j < kKeysPerThread; j++) {
                const int key = j0 + tx + 16 * j;
                s[i][j] = key <= my_pos[i] ? s[i][j] * p.scale : -INFINITY;
                tmax = fmaxf(tmax, s[i][j]);
            }
#pragma unroll
            for (int o = 8; o > 0; o >>= 1) tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, o));
            const float mnew = fmaxf(m[i], tmax); // finite: key 0 is in the first tile of every row
            const float corr = expf(m[i] - mnew);
            float psum = 0.0f;
#pragma unroll
            for (int j = 0; j < kKeysPerThread; j++) {
                const float pv = expf(s[i][j] - mnew); // 0 for masked keys
                Ps[(ty * kRowsPerThread + i) * (kKeys + 1) + tx + 16 * j] = pv;
                psum += pv;
            }
#pragma unroll
            for (int o = 8; o > 0; o >>= 1) psum += __shfl_xor_sync(0xffffffffu, psum, o);
            l[i] = l[i] * corr + psum;
            m[i] = mnew;
#pragma unroll
            for (int k = 0; k < kDims; k++) acc[i][k] *= corr;
        }
        __syncwarp(); // a row's P values come from lanes of the same warp

        // O += P V for this thread's 4 rows x HD/16 dims
#pragma unroll 4
        for (int t = 0; t < kKeys; t++) {
            float pv[kRowsPerThread];
#pragma unroll
            for (int i = 0; i < kRowsPerThread; i++) pv[i] = Ps[(ty * kRowsPerThread + i) * (kKeys + 1) + t];
#pragma unroll
            for (int k = 0; k < kDims; k++) {
                const float v = Vs[t * HD + tx + 16 * k];
#pragma unroll
                for (int i = 0; i < kRowsPerThread; i++) acc[i][k] = fmaf(pv[i], v, acc[i][k]);
            }
        }
    }

#pragma unroll
    for (int i = 0; i < kRowsPerThread; i++) {
        const int r = ty * kRowsPerThread + i;
        if (r >= n_rows) continue;
        const float inv = 1.0f / l[i];
        float *o = p.out + ((size_t)(row0 + r) * p.n_head + h) * HD;
#pragma unroll
        for (int k = 0; k < kDims; k++) o[tx + 16 * k] = acc[i][k] * inv;
    }
}

template <int HD, bool KV16>
bool launch(cudaStream_t s, const PrefillParams &p, int n_tiles) {
    constexpr size_t bytes = smem_floats<HD>() * sizeof(float);
    // above 48 KiB a kernel must opt in; the attribute is per function, cheap to set again
    if (cudaFuncSetAttribute(attn_prefill_kernel<HD, KV16>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             (int)bytes) != cudaSuccess)
        return false;
    attn_prefill_kernel<HD, KV16><<<dim3((unsigned)n_tiles, (unsigned)p.n_head), kThreads, bytes, s>>>(p);
    return true;
}

bool aligned16(const void *q) { return ((uintptr_t)q & 15u) == 0; }

} // namespace

bool cuda_attention_prefill_supported(int head_dim) {
    return head_dim == 64 || head_dim == 128;
}

bool cuda_attention_prefill(cudaStream_t s, float *out, const float *q, const void *k_cache, const void *v_cache,
                            bool kv16, int n_head_kv, int head_dim, int block_size, const cuda_batch *b, int n_head,
                            float scale) {
    if (b->n_tiles <= 0 || !cuda_attention_prefill_supported(head_dim) || !aligned16(k_cache) ||
        !aligned16(v_cache) || n_head <= 0 || n_head_kv <= 0 || n_head % n_head_kv != 0)
        return false;
    PrefillParams p;
    p.out = out;
    p.q = q;
    p.kc = k_cache;
    p.vc = v_cache;
    p.tiles = b->tiles;
    p.seq_row = b->seq_row;
    p.seq_n_past = b->seq_n_past;
    p.block_table = b->block_table;
    p.max_blocks = b->max_blocks;
    p.n_head = n_head;
    p.group = n_head / n_head_kv;
    p.n_head_kv = n_head_kv;
    p.block_size = block_size;
    p.scale = scale;
    if (head_dim == 64) return kv16 ? launch<64, true>(s, p, b->n_tiles) : launch<64, false>(s, p, b->n_tiles);
    return kv16 ? launch<128, true>(s, p, b->n_tiles) : launch<128, false>(s, p, b->n_tiles);
}
