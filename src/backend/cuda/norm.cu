// cuda_rmsnorm: out[r] = w * (x[r] * inv), inv = 1 / sqrt(mean(x[r]^2) + eps), one block per row.
// cuda_add_rmsnorm: the residual add before it fused in (x[r] += y[r] first, stored back), so a layer's
// "x += f(x); h = norm(x)" is one pass over the row instead of two kernels and three.
//
// The sum of squares is accumulated in double, as the CPU reference does: each (double)x*x product is
// exact (24+24 bits < 53) and the double sum keeps ~29 bits of margin, so the tree order here and the
// CPU's sequential order almost always round to the same float inv, making out bit-identical to the
// CPU's (w * (x * inv), the same two float multiplies in the same order). H100 double throughput is
// ample for a memory-bound row reduction.
#include <cuda_fp16.h>

#include "backend/cuda/kernels.cuh"

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float elem_f32(const void *p, int dt, int i) {
    if (dt == LLM_DTYPE_F32) return ((const float *)p)[i];
    const uint16_t h = ((const uint16_t *)p)[i];
    if (dt == LLM_DTYPE_BF16) return __uint_as_float((uint32_t)h << 16); // exact widening
    return __half2float(__ushort_as_half(h));
}

// out may alias x: each thread reads x[i] for the sum, then (after the block-wide reduction) reads
// x[i] again and writes out[i] for the same i, so no element is written before every read of it.
// Hence no __restrict__ on x/out.
// With kAdd, x[i] += y[i] first (one rounding, as the CPU's add), each thread storing the sums it will
// read again in the second pass; out may alias y (read only in the first pass), not x.
template <bool kAdd>
__global__ void __launch_bounds__(kThreads) rmsnorm_kernel(float *out, float *x, const float *y, const void *w,
                                                           int wt, int dim, float eps) {
    const size_t base = (size_t)blockIdx.x * dim;
    float *xr = x + base;
    const float *yr = kAdd ? y + base : nullptr;
    float *orow = out + base;
    const bool vec = (dim & 3) == 0 && ((uintptr_t)xr & 15) == 0 && ((uintptr_t)orow & 15) == 0 &&
                     (!kAdd || ((uintptr_t)yr & 15) == 0);

    double ss = 0.0;
    if (vec) {
        for (int i = threadIdx.x * 4; i < dim; i += kThreads * 4) {
            float4 v = *reinterpret_cast<const float4 *>(xr + i);
            if (kAdd) {
                const float4 u = *reinterpret_cast<const float4 *>(yr + i);
                v.x = __fadd_rn(v.x, u.x), v.y = __fadd_rn(v.y, u.y), v.z = __fadd_rn(v.z, u.z),
                v.w = __fadd_rn(v.w, u.w);
                *reinterpret_cast<float4 *>(xr + i) = v;
            }
            ss += (double)v.x * v.x;
            ss += (double)v.y * v.y;
            ss += (double)v.z * v.z;
            ss += (double)v.w * v.w;
        }
    } else {
        for (int i = threadIdx.x; i < dim; i += kThreads) {
            float v = xr[i];
            if (kAdd) xr[i] = v = __fadd_rn(v, yr[i]);
            ss += (double)v * v;
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    __shared__ double part[kThreads / 32];
    __shared__ float inv_s;
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int i = 0; i < kThreads / 32; i++) t += part[i];
        // Same expression as the CPU: double mean + eps, double sqrt and divide, then one rounding.
        inv_s = (float)(1.0 / sqrt(t / dim + (double)eps));
    }
    __syncthreads();
    const float inv = inv_s;

    if (vec) {
        for (int i = threadIdx.x * 4; i < dim; i += kThreads * 4) {
            const float4 v = *reinterpret_cast<const float4 *>(xr + i);
            float4 o;
            // __fmul_rn: two separate roundings, in the CPU's order, whatever the contraction flags.
            o.x = __fmul_rn(elem_f32(w, wt, i + 0), __fmul_rn(v.x, inv));
            o.y = __fmul_rn(elem_f32(w, wt, i + 1), __fmul_rn(v.y, inv));
            o.z = __fmul_rn(elem_f32(w, wt, i + 2), __fmul_rn(v.z, inv));
            o.w = __fmul_rn(elem_f32(w, wt, i + 3), __fmul_rn(v.w, inv));
            *reinterpret_cast<float4 *>(orow + i) = o;
        }
    } else {
        for (int i = threadIdx.x; i < dim; i += kThreads)
            orow[i] = __fmul_rn(elem_f32(w, wt, i), __fmul_rn(xr[i], inv));
    }
}

} // namespace

void cuda_rmsnorm(cudaStream_t s, float *out, const float *x, const void *w, llm_dtype wt, int rows, int dim,
                  float eps) {
    if (rows <= 0 || dim <= 0) return;
    rmsnorm_kernel<false><<<(unsigned)rows, kThreads, 0, s>>>(out, const_cast<float *>(x), nullptr, w, (int)wt, dim,
                                                              eps);
}

void cuda_add_rmsnorm(cudaStream_t s, float *out, float *x, const float *y, const void *w, llm_dtype wt, int rows,
                      int dim, float eps) {
    if (rows <= 0 || dim <= 0) return;
    rmsnorm_kernel<true><<<(unsigned)rows, kThreads, 0, s>>>(out, x, y, w, (int)wt, dim, eps);
}
