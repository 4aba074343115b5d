// cuda_matmul: out[T][M] = x[T][K] · w[M][K]ᵀ (+ bias[M]).
//
// Two paths:
//
//  * T <= LLM_CUDA_GEMV_MAX_T (decode; 4): a memory-bound GEMV. Decode time is the time to stream
//    every weight once, so the kernel is built around HBM bandwidth: one 128-thread block per R output
//    rows, each thread streaming 16-byte vectors (8 bf16/f16, or 2x float4 of f32) of those rows with
//    non-allocating L1 loads, FMA'ing against all T token rows of x at once (x is small: read through
//    L1/L2), then a warp-shuffle butterfly and a fixed-order sum of the 4 warps' partials. Every
//    output element's summation order depends only on K, never on T or R: any T the GEMV path serves
//    gives bit-identical results for the same token row (batch invariance inside the path).
//
//  * Larger T (prefill): cuBLAS GEMM. x is rounded to the weights' type (bf16/f16, round-to-nearest-
//    even) in ctx->workspace, then cublasGemmEx with CUBLAS_COMPUTE_32F and float output; f32 weights
//    use the float x directly with FP32 compute. We assume the handle's math mode is the default
//    (CUBLAS_DEFAULT_MATH): TF32 is NOT enabled, so the f32 path is true FP32 (and NVIDIA_TF32_OVERRIDE
//    must not be set). The bias is pre-written into out and the GEMM runs with beta = 1, so it is
//    added once, in float, in cuBLAS's epilogue (acc + bias, as the CPU does).
//
//    NOTE: the cuBLAS path differs from the GEMV path (bf16-rounded activations, different summation
//    order), so a row's output differs (by ~1e-3 relative) between T <= 4 and T > 4. Building with
//    -DLLM_CUDA_GEMV_ONLY sends every T through the GEMV kernel in chunks of up to 8 tokens: batch
//    invariant, bit for bit, at the cost of re-reading the weights once per 8 tokens in prefill.
//
// When the cuBLAS path cannot run (no handle, workspace too small, dims over INT_MAX), the chunked
// GEMV serves instead: correct, slower.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <limits.h>

#include <type_traits>

#include "backend/cuda/kernels.cuh"

#ifndef LLM_CUDA_GEMV_MAX_T
// Tokens up to which the GEMV runs. Measured on an H200 (bf16, M=14336 K=4096): GEMV 31 us at T=1,
// 32 at T=2, 37 at T=4, 52 at T=8; cuBLAS ~34.5 us for any T up to ~16. Above 4 cuBLAS is faster; at 4
// and below the GEMV is as fast or faster and keeps the activations in float.
#define LLM_CUDA_GEMV_MAX_T 4
#endif

namespace {

#ifndef GEMV_WARPS
#define GEMV_WARPS 8
#endif
constexpr int kWarps = GEMV_WARPS; // warps per GEMV block (each block shares its rows among them)
constexpr int kMaxGroup = CUDA_MATMUL_MAX_GROUP;

__device__ __forceinline__ float bf16_bits_to_f32(uint32_t h) { return __uint_as_float(h << 16); }
__device__ __forceinline__ float f16_bits_to_f32(uint32_t h) {
    return __half2float(__ushort_as_half((unsigned short)h));
}

// One element of a 1-D tensor (the bias) widened exactly.
__device__ __forceinline__ float elem_f32(const void *p, int dt, int64_t i) {
    if (dt == LLM_DTYPE_F32) return ((const float *)p)[i];
    const uint16_t h = ((const uint16_t *)p)[i];
    return dt == LLM_DTYPE_BF16 ? bf16_bits_to_f32(h) : f16_bits_to_f32(h);
}

// Streaming 16-byte load for weights: each byte is used once per call, so keep it out of L1 (which
// holds x) and ask L2 to fetch 256-byte sectors ahead (the lanes of a warp read 512 contiguous bytes).
__device__ __forceinline__ uint4 ld_stream(const void *p) {
    uint4 r;
    asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
        : "l"(p));
    return r;
}

// 8 consecutive weights of a row, as raw bits: 16 bytes for bf16/f16, 32 bytes for f32.
template <int DT> struct WVec {
    uint4 a;
};
template <> struct WVec<LLM_DTYPE_F32> {
    uint4 a, b;
};

// Activations meet 16-bit weights rounded to the weights' type, on every path: cuBLAS needs it for
// the tensor cores, and the GEMV does the same so that a row's result does not depend on how many
// rows share the call (batched == alone up to summation order). F32 weights keep float activations.
__device__ __forceinline__ float round_act(float v, int dt) {
    if (dt == LLM_DTYPE_BF16) return __bfloat162float(__float2bfloat16_rn(v));
    if (dt == LLM_DTYPE_F16) return __half2float(__float2half_rn(v));
    return v;
}

template <int DT> __device__ __forceinline__ WVec<DT> load_wvec(const void *row, int64_t v) {
    WVec<DT> r;
    if constexpr (DT == LLM_DTYPE_F32) {
        const char *p = (const char *)row + v * 32;
        r.a = ld_stream(p);
        r.b = ld_stream(p + 16);
    } else {
        r.a = ld_stream((const char *)row + v * 16);
    }
    return r;
}

template <int DT> __device__ __forceinline__ void widen(const WVec<DT> &w, float f[8]) {
    if constexpr (DT == LLM_DTYPE_F32) {
        f[0] = __uint_as_float(w.a.x), f[1] = __uint_as_float(w.a.y);
        f[2] = __uint_as_float(w.a.z), f[3] = __uint_as_float(w.a.w);
        f[4] = __uint_as_float(w.b.x), f[5] = __uint_as_float(w.b.y);
        f[6] = __uint_as_float(w.b.z), f[7] = __uint_as_float(w.b.w);
    } else {
        const uint32_t u[4] = {w.a.x, w.a.y, w.a.z, w.a.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            if constexpr (DT == LLM_DTYPE_BF16) { // exact: bf16 is the top half of a float
                f[2 * i] = __uint_as_float(u[i] << 16);
                f[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
            } else {
                const float2 h = __half22float2(*reinterpret_cast<const __half2 *>(&u[i]));
                f[2 * i] = h.x;
                f[2 * i + 1] = h.y;
            }
        }
    }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Vector GEMV: K % 8 == 0, w and x 16-byte aligned. Block b owns rows b*R .. b*R+R-1; its kWarps*32
// threads split each row's 8-element vectors round-robin (thread i takes v = i, i + 128, ...), so a
// block streams 2 KB-contiguous spans of each row. A row is spread over a whole block, not one warp,
// so the last wave of blocks is short: with M/R blocks over ~2100 resident slots, a slot handles ~7
// rows and the tail costs a few percent, where a warp per row (1.7 rows per warp at M = 14336) would
// idle ~15% of the machine at the end. Each thread loads U vectors per row before using any, keeping
// U*R 16-byte loads in flight. Reduction: warp butterfly, then the kWarps partial sums in warp order
// through shared memory; the order depends only on K, never on T or R.
template <int DT, int T, int NR, int U>
__device__ __forceinline__ void gemv_partials(const char *const (&rows)[NR], const float *__restrict__ x, int64_t K,
                                              float (*part)[NR * T]) {
    constexpr int kThreads = kWarps * 32;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t nvec = K >> 3;
    float acc[NR][T];
#pragma unroll
    for (int r = 0; r < NR; r++)
#pragma unroll
        for (int t = 0; t < T; t++) acc[r][t] = 0.0f;

    for (int64_t v0 = threadIdx.x; v0 < nvec; v0 += kThreads * U) {
        WVec<DT> wv[U][NR];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int64_t v = v0 + kThreads * u;
            if (v < nvec) {
#pragma unroll
                for (int r = 0; r < NR; r++) wv[u][r] = load_wvec<DT>(rows[r], v);
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int64_t v = v0 + kThreads * u;
            if (v < nvec) {
                float wf[NR][8];
#pragma unroll
                for (int r = 0; r < NR; r++) widen<DT>(wv[u][r], wf[r]);
#pragma unroll
                for (int t = 0; t < T; t++) {
                    const float4 *xp = reinterpret_cast<const float4 *>(x + (size_t)t * K + v * 8);
                    const float4 xa = __ldg(xp), xb = __ldg(xp + 1);
                    const float xf[8] = {round_act(xa.x, DT), round_act(xa.y, DT), round_act(xa.z, DT),
                                         round_act(xa.w, DT), round_act(xb.x, DT), round_act(xb.y, DT),
                                         round_act(xb.z, DT), round_act(xb.w, DT)};
#pragma unroll
                    for (int r = 0; r < NR; r++)
#pragma unroll
                        for (int e = 0; e < 8; e++) acc[r][t] = fmaf(wf[r][e], xf[e], acc[r][t]);
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < NR; r++)
#pragma unroll
        for (int t = 0; t < T; t++) {
            const float sum = warp_sum(acc[r][t]); // every lane holds the sum; one stores it
            if (lane == ((r * T + t) & 31)) part[warp][r * T + t] = sum;
        }
    __syncthreads();
}

// The kWarps partial sums of result j, in warp order (the order depends only on K).
template <int NRT> __device__ __forceinline__ float gemv_total(const float (*part)[NRT], int j) {
    float sum = part[0][j];
#pragma unroll
    for (int q = 1; q < kWarps; q++) sum += part[q][j];
    return sum;
}

template <int DT, int T, int R, int U>
__global__ void __launch_bounds__(kWarps * 32) gemv_vec(float *__restrict__ out, const float *__restrict__ x,
                                                         const void *__restrict__ w, const void *__restrict__ bias,
                                                         int bt, int64_t M, int64_t K) {
    const int64_t row0 = (int64_t)blockIdx.x * R;
    const size_t row_bytes = (size_t)K * (DT == LLM_DTYPE_F32 ? 4 : 2);
    const char *rows[R];
#pragma unroll
    for (int r = 0; r < R; r++) // rows past M repeat row0: loaded, never stored
        rows[r] = (const char *)w + (size_t)(row0 + r < M ? row0 + r : row0) * row_bytes;
    __shared__ float part[kWarps][R * T];
    gemv_partials<DT, T, R, U>(rows, x, K, part);
    for (int j = threadIdx.x; j < R * T; j += kWarps * 32) {
        const int r = j / T, t = j % T;
        const int64_t m = row0 + r;
        if (m >= M) continue;
        out[(size_t)t * M + m] = gemv_total<R * T>(part, j) + (bias != nullptr ? elem_f32(bias, bt, m) : 0.0f);
    }
}

// Several matrices of the same input and dtype in one launch (q, k, v): block b serves the segment
// whose block range holds it, exactly as gemv_vec would (same rows per block, same sums), so the
// results are bit-identical to separate launches, while the small k/v matrices no longer leave most
// of the GPU idle on a launch of their own.
struct GemvSeg {
    float *out;
    const void *w, *bias;
    int64_t M;
    int64_t first_block;
};
struct GemvGroup {
    GemvSeg seg[kMaxGroup];
    int n;
};

template <int DT, int T, int R, int U>
__global__ void __launch_bounds__(kWarps * 32) gemv_group(const GemvGroup g, const float *__restrict__ x, int bt,
                                                           int64_t K) {
    // The segment's fields picked with compile-time indices only: a dynamic index into the kernel
    // parameters would copy them to local memory (measured: ~10% slower decode).
    GemvSeg sg = g.seg[0];
#pragma unroll
    for (int i = 1; i < kMaxGroup; i++)
        if (i < g.n && (int64_t)blockIdx.x >= g.seg[i].first_block) sg = g.seg[i];
    const int64_t row0 = ((int64_t)blockIdx.x - sg.first_block) * R, M = sg.M;
    const size_t row_bytes = (size_t)K * (DT == LLM_DTYPE_F32 ? 4 : 2);
    const char *rows[R];
#pragma unroll
    for (int r = 0; r < R; r++)
        rows[r] = (const char *)sg.w + (size_t)(row0 + r < M ? row0 + r : row0) * row_bytes;
    __shared__ float part[kWarps][R * T];
    gemv_partials<DT, T, R, U>(rows, x, K, part);
    for (int j = threadIdx.x; j < R * T; j += kWarps * 32) {
        const int r = j / T, t = j % T;
        const int64_t m = row0 + r;
        if (m >= M) continue;
        sg.out[(size_t)t * M + m] =
            gemv_total<R * T>(part, j) + (sg.bias != nullptr ? elem_f32(sg.bias, bt, m) : 0.0f);
    }
}

// out = silu(x Wg^T + bg) * (x Wu^T + bu): R rows of the gate and the same R rows of the up
// projection per block, each row summed exactly as gemv_vec sums it, then SwiGLU with the
// elementwise kernel's formula: bit-identical to two GEMVs and cuda_swiglu, in one pass.
template <int DT, int T, int R, int U>
__global__ void __launch_bounds__(kWarps * 32) gemv_swiglu(float *__restrict__ out, const float *__restrict__ x,
                                                            const void *__restrict__ wg, const void *__restrict__ bg,
                                                            const void *__restrict__ wu, const void *__restrict__ bu,
                                                            int bt, int64_t M, int64_t K) {
    const int64_t row0 = (int64_t)blockIdx.x * R;
    const size_t row_bytes = (size_t)K * (DT == LLM_DTYPE_F32 ? 4 : 2);
    const char *rows[2 * R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        const size_t off = (size_t)(row0 + r < M ? row0 + r : row0) * row_bytes;
        rows[r] = (const char *)wg + off;
        rows[R + r] = (const char *)wu + off;
    }
    __shared__ float part[kWarps][2 * R * T];
    gemv_partials<DT, T, 2 * R, U>(rows, x, K, part);
    for (int j = threadIdx.x; j < R * T; j += kWarps * 32) {
        const int r = j / T, t = j % T;
        const int64_t m = row0 + r;
        if (m >= M) continue;
        const float gv = gemv_total<2 * R * T>(part, j) + (bg != nullptr ? elem_f32(bg, bt, m) : 0.0f);
        const float uv = gemv_total<2 * R * T>(part, R * T + j) + (bu != nullptr ? elem_f32(bu, bt, m) : 0.0f);
        out[(size_t)t * M + m] = cuda_silu_mul(gv, uv);
    }
}

// Scalar fallback for K % 8 != 0 or unaligned pointers (odd test shapes, never the model's): one
// warp per row, lane l summing elements l, l+32, ... Correct, not fast.
template <int T>
__global__ void __launch_bounds__(kWarps * 32) gemv_scalar(float *__restrict__ out, const float *__restrict__ x,
                                                            const void *__restrict__ w, int wt,
                                                            const void *__restrict__ bias, int bt, int64_t M,
                                                            int64_t K) {
    const int lane = threadIdx.x & 31;
    const int64_t m = (int64_t)blockIdx.x * kWarps + (threadIdx.x >> 5);
    if (m >= M) return;
    float acc[T];
#pragma unroll
    for (int t = 0; t < T; t++) acc[t] = 0.0f;
    for (int64_t k = lane; k < K; k += 32) {
        const float wk = elem_f32(w, wt, m * K + k);
#pragma unroll
        for (int t = 0; t < T; t++) acc[t] = fmaf(wk, round_act(x[(size_t)t * K + k], wt), acc[t]);
    }
    const float b = bias != nullptr ? elem_f32(bias, bt, m) : 0.0f;
#pragma unroll
    for (int t = 0; t < T; t++) {
        const float s = warp_sum(acc[t]);
        if (lane == 0) out[(size_t)t * M + m] = s + b;
    }
}

// Rows per block (R) and loads in flight per row (U) by T: more rows amortise each x load over more
// weights (x bytes read per weight byte = 2T/R), fewer loads per row keep the registers (R*T
// accumulators + 4*U*R for the vectors) in budget. Picked from H200 runs of R in {1,2,4,8}, U in
// {1,2,4,8}, 2/4/8 warps per block: all within ~5% at T <= 2; R=8 helps at T=8, U=2 at T=4.
#ifndef GEMV_R1 // rows per block at T = 1 (a build-time knob for sweeps; decode of the 8B shape on an
                // H200, cold weights from HBM: R1/U4/4 warps 139.7 tok/s, R2/U4/8 warps 146.1)
#define GEMV_R1 2
#endif
#ifndef GEMV_U1
#define GEMV_U1 4
#endif
#ifndef GEMV_R
#define GEMV_R(T) ((T) <= 1 ? GEMV_R1 : (T) <= 2 ? 2 : (T) <= 4 ? 4 : 8)
#endif
#ifndef GEMV_U
#define GEMV_U(T) ((T) <= 1 ? GEMV_U1 : (T) <= 4 ? 2 : 1)
#endif
template <int DT, int T> void launch_vec(cudaStream_t s, float *out, const float *x, const void *w, const void *bias,
                                         int bt, int64_t M, int64_t K) {
    constexpr int R = GEMV_R(T);
    constexpr int U = GEMV_U(T);
    const unsigned blocks = (unsigned)((M + R - 1) / R);
    gemv_vec<DT, T, R, U><<<blocks, kWarps * 32, 0, s>>>(out, x, w, bias, bt, M, K);
}

template <int T> void launch_t(cudaStream_t s, float *out, const float *x, const void *w, llm_dtype wt,
                                const void *bias, llm_dtype bt, int64_t M, int64_t K, bool vec) {
    if (!vec) {
        const unsigned blocks = (unsigned)((M + kWarps - 1) / kWarps);
        gemv_scalar<T><<<blocks, kWarps * 32, 0, s>>>(out, x, w, (int)wt, bias, (int)bt, M, K);
        return;
    }
    switch (wt) {
    case LLM_DTYPE_BF16:
        launch_vec<LLM_DTYPE_BF16, T>(s, out, x, w, bias, (int)bt, M, K);
        break;
    case LLM_DTYPE_F16:
        launch_vec<LLM_DTYPE_F16, T>(s, out, x, w, bias, (int)bt, M, K);
        break;
    default:
        launch_vec<LLM_DTYPE_F32, T>(s, out, x, w, bias, (int)bt, M, K);
        break;
    }
}

// GEMV over any T, in chunks of up to 8 token rows (each chunk re-reads the weights).
void gemv(cudaStream_t s, float *out, const float *x, const void *w, llm_dtype wt, int64_t M, int64_t K,
          const void *bias, llm_dtype bt, int T) {
    const bool vec = K % 8 == 0 && ((uintptr_t)w & 15) == 0 && ((uintptr_t)x & 15) == 0;
    for (int t0 = 0; t0 < T; t0 += 8) {
        const int n = T - t0 < 8 ? T - t0 : 8;
        float *o = out + (size_t)t0 * M;
        const float *xx = x + (size_t)t0 * K;
        switch (n) {
        case 1: launch_t<1>(s, o, xx, w, wt, bias, bt, M, K, vec); break;
        case 2: launch_t<2>(s, o, xx, w, wt, bias, bt, M, K, vec); break;
        case 3: launch_t<3>(s, o, xx, w, wt, bias, bt, M, K, vec); break;
        case 4: launch_t<4>(s, o, xx, w, wt, bias, bt, M, K, vec); break;
        case 5: launch_t<5>(s, o, xx, w, wt, bias, bt, M, K, vec); break;
        case 6: launch_t<6>(s, o, xx, w, wt, bias, bt, M, K, vec); break;
        case 7: launch_t<7>(s, o, xx, w, wt, bias, bt, M, K, vec); break;
        default: launch_t<8>(s, o, xx, w, wt, bias, bt, M, K, vec); break;
        }
    }
}

// x (float) -> bf16/f16, round to nearest even, 4 at a time where aligned.
template <bool BF16> __global__ void to_half_kernel(uint16_t *__restrict__ dst, const float *__restrict__ src, size_t n) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const bool vec = ((uintptr_t)src & 15) == 0 && ((uintptr_t)dst & 7) == 0;
    auto cvt = [](float f) -> uint16_t {
        if constexpr (BF16) return __bfloat16_as_ushort(__float2bfloat16_rn(f));
        else return __half_as_ushort(__float2half_rn(f));
    };
    if (vec) {
        const size_t n4 = n / 4;
        for (size_t j = i; j < n4; j += stride) {
            const float4 v = reinterpret_cast<const float4 *>(src)[j];
            uint2 o;
            o.x = (uint32_t)cvt(v.x) | ((uint32_t)cvt(v.y) << 16);
            o.y = (uint32_t)cvt(v.z) | ((uint32_t)cvt(v.w) << 16);
            reinterpret_cast<uint2 *>(dst)[j] = o;
        }
        for (size_t j = n4 * 4 + i; j < n; j += stride) dst[j] = cvt(src[j]);
    } else {
        for (size_t j = i; j < n; j += stride) dst[j] = cvt(src[j]);
    }
}

// out[t][m] = bias[m]: the C operand of the GEMM with beta = 1.
__global__ void fill_bias_kernel(float *__restrict__ out, const void *__restrict__ bias, int bt, int64_t M, int T) {
    const size_t n = (size_t)M * T;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = elem_f32(bias, bt, (int64_t)(i % (size_t)M));
}

template <int DT, int T> void launch_group(cudaStream_t s, const GemvGroup &g, int64_t total_blocks, const float *x,
                                           int bt, int64_t K) {
    gemv_group<DT, T, GEMV_R(T), GEMV_U(T)><<<(unsigned)total_blocks, kWarps * 32, 0, s>>>(g, x, bt, K);
}

// The fused gate/up GEMV streams 2R rows per block: half the plain GEMV's R keeps the same number of
// 16-byte loads in flight per thread (registers) as the plain kernel.
template <int DT, int T> void launch_swiglu(cudaStream_t s, float *out, const float *x, const void *wg, const void *bg,
                                            const void *wu, const void *bu, int bt, int64_t M, int64_t K) {
    constexpr int R = GEMV_R(T) > 1 ? GEMV_R(T) / 2 : 1;
    gemv_swiglu<DT, T, R, GEMV_U(T)><<<(unsigned)((M + R - 1) / R), kWarps * 32, 0, s>>>(out, x, wg, bg, wu, bu, bt,
                                                                                         M, K);
}

template <int T> int rows_per_block() { return GEMV_R(T); }

int gemv_rows_per_block(int T) {
    switch (T) {
    case 1: return rows_per_block<1>();
    case 2: return rows_per_block<2>();
    case 3: return rows_per_block<3>();
    default: return rows_per_block<4>();
    }
}

// Calls f(dtype, T) with both as compile-time constants (std::integral_constant): the weight dtype
// (BF16, F16, else F32) and T in 1..4 (the fused GEMVs' token counts), so each launcher is written once.
template <typename F> void with_dtype_and_t(llm_dtype wt, int T, F &&f) {
    auto by_t = [&](auto dt) {
        switch (T) {
        case 1: f(dt, std::integral_constant<int, 1>{}); break;
        case 2: f(dt, std::integral_constant<int, 2>{}); break;
        case 3: f(dt, std::integral_constant<int, 3>{}); break;
        default: f(dt, std::integral_constant<int, 4>{}); break;
        }
    };
    if (wt == LLM_DTYPE_BF16)
        by_t(std::integral_constant<int, LLM_DTYPE_BF16>{});
    else if (wt == LLM_DTYPE_F16)
        by_t(std::integral_constant<int, LLM_DTYPE_F16>{});
    else
        by_t(std::integral_constant<int, LLM_DTYPE_F32>{});
}

// Whether the fused GEMV kernels serve this call: the vector GEMV's conditions, at decode sizes.
bool fused_gemv_ok(const float *x, int64_t K, int T) {
    return T >= 1 && T <= LLM_CUDA_GEMV_MAX_T && K % 8 == 0 && ((uintptr_t)x & 15) == 0;
}

unsigned grid_for(size_t n, int threads) {
    size_t b = (n + threads - 1) / threads;
    if (b > 132 * 32) b = 132 * 32; // grid-stride beyond a few waves of an H100
    return b ? (unsigned)b : 1u;
}

} // namespace

// x_ready: the previous call on this stream converted the same x (same T, K, weight dtype) into
// ctx->workspace, so this one skips the conversion (q/k/v and gate/up share their input).
static int matmul_impl(cudaStream_t s, cuda_matmul_ctx *ctx, float *out, const float *x, const void *w, llm_dtype wt,
                       int64_t M, int64_t K, const void *bias, llm_dtype bt, int T, bool x_ready) {
    if (T <= 0 || M <= 0) return 0;
    if (K <= 0) { // empty dot products: out = bias (or 0)
        if (bias) fill_bias_kernel<<<grid_for((size_t)M * T, 256), 256, 0, s>>>(out, bias, (int)bt, M, T);
        else cudaMemsetAsync(out, 0, (size_t)M * T * sizeof(float), s);
        return 0;
    }
#ifndef LLM_CUDA_GEMV_ONLY
    const bool half_w = wt == LLM_DTYPE_BF16 || wt == LLM_DTYPE_F16;
    const bool can_blas = ctx != nullptr && ctx->cublas != nullptr && M <= INT_MAX && K <= INT_MAX &&
                          (!half_w || (ctx->workspace != nullptr && (size_t)T * (size_t)K * 2 <= ctx->workspace_bytes));
    if (T > LLM_CUDA_GEMV_MAX_T && can_blas) {
        cublasHandle_t h = (cublasHandle_t)ctx->cublas;
        // The backend sets the handle's stream once; set it only if it differs (cublasSetStream also
        // resets any user workspace set with cublasSetWorkspace, so don't call it needlessly).
        cudaStream_t hs = nullptr;
        if (cublasGetStream(h, &hs) != CUBLAS_STATUS_SUCCESS) return -1;
        if (hs != s && cublasSetStream(h, s) != CUBLAS_STATUS_SUCCESS) return -1;

        const void *b_mat = x;
        cudaDataType_t ab_type = CUDA_R_32F;
        if (half_w) {
            const size_t n = (size_t)T * (size_t)K;
            uint16_t *xh = (uint16_t *)ctx->workspace;
            if (wt == LLM_DTYPE_BF16) {
                if (!x_ready) to_half_kernel<true><<<grid_for(n / 4 + 1, 256), 256, 0, s>>>(xh, x, n);
                ab_type = CUDA_R_16BF;
            } else {
                if (!x_ready) to_half_kernel<false><<<grid_for(n / 4 + 1, 256), 256, 0, s>>>(xh, x, n);
                ab_type = CUDA_R_16F;
            }
            b_mat = xh;
        }
        float beta = 0.0f;
        if (bias) {
            fill_bias_kernel<<<grid_for((size_t)M * T, 256), 256, 0, s>>>(out, bias, (int)bt, M, T);
            beta = 1.0f;
        }
        const float alpha = 1.0f;
        // Column-major view: row-major W[M][K] is Wc = K x M (ld K), row-major x[T][K] is Xc = K x T
        // (ld K), row-major out[T][M] is Oc = M x T (ld M). out = x Wᵀ  <=>  Oc = Wcᵀ · Xc: op(A) = T
        // on W, op(B) = N on x ("TN", cuBLAS's preferred layout for tensor cores).
        const cublasStatus_t st =
            cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)M, T, (int)K, &alpha, w, ab_type, (int)K, b_mat, ab_type,
                         (int)K, &beta, out, CUDA_R_32F, (int)M, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        return st == CUBLAS_STATUS_SUCCESS ? 0 : -1;
    }
#else
    (void)ctx;
    (void)x_ready;
#endif
    gemv(s, out, x, w, wt, M, K, bias, bt, T);
    return 0;
}

int cuda_matmul(cudaStream_t s, cuda_matmul_ctx *ctx, float *out, const float *x, const void *w, llm_dtype wt,
                int64_t M, int64_t K, const void *bias, llm_dtype bt, int T) {
    return matmul_impl(s, ctx, out, x, w, wt, M, K, bias, bt, T, false);
}

int cuda_matmul_group(cudaStream_t s, cuda_matmul_ctx *ctx, int n, float *const outs[], const float *x,
                      const void *const ws[], const int64_t Ms[], const void *const biases[], llm_dtype wt,
                      llm_dtype bt, int64_t K, int T) {
    bool fused = n >= 1 && n <= kMaxGroup && fused_gemv_ok(x, K, T);
    for (int i = 0; fused && i < n; i++) fused = ((uintptr_t)ws[i] & 15) == 0 && Ms[i] > 0;
    if (!fused) {
        for (int i = 0; i < n; i++) // one conversion of x serves every GEMM (the previous one made it,
                                    // unless its M sent it down the GEMV fallback)
            if (matmul_impl(s, ctx, outs[i], x, ws[i], wt, Ms[i], K, biases[i], bt, T, i > 0 && Ms[i - 1] <= INT_MAX) !=
                0)
                return -1;
        return 0;
    }
    GemvGroup g = {};
    g.n = n;
    const int R = gemv_rows_per_block(T);
    int64_t blocks = 0;
    for (int i = 0; i < n; i++) {
        g.seg[i] = GemvSeg{outs[i], ws[i], biases[i], Ms[i], blocks};
        blocks += (Ms[i] + R - 1) / R;
    }
    with_dtype_and_t(wt, T, [&](auto dt, auto t) {
        launch_group<decltype(dt)::value, decltype(t)::value>(s, g, blocks, x, (int)bt, K);
    });
    return 0;
}

int cuda_matmul_swiglu(cudaStream_t s, cuda_matmul_ctx *ctx, float *out, float *scratch, const float *x,
                       const void *wg, const void *bg, const void *wu, const void *bu, llm_dtype wt, llm_dtype bt,
                       int64_t M, int64_t K, int T) {
    if (!fused_gemv_ok(x, K, T) || ((uintptr_t)wg & 15) != 0 || ((uintptr_t)wu & 15) != 0 || M <= 0) {
        if (matmul_impl(s, ctx, out, x, wg, wt, M, K, bg, bt, T, false) != 0) return -1;
        if (matmul_impl(s, ctx, scratch, x, wu, wt, M, K, bu, bt, T, true) != 0) return -1;
        cuda_swiglu(s, out, out, scratch, (size_t)M * (size_t)T);
        return 0;
    }
    with_dtype_and_t(wt, T, [&](auto dt, auto t) {
        launch_swiglu<decltype(dt)::value, decltype(t)::value>(s, out, x, wg, bg, wu, bu, (int)bt, M, K);
    });
    return 0;
}
