// Embedding lookup (table rows widened to float) and the row gather. One block per output row; 8
// elements per thread step (one 16-byte load of bf16/f16, two float4 of f32) where aligned.
// Widening is exact: bf16 -> float is a 16-bit shift, f16 -> float is __half2float (subnormals,
// infinities and NaN included), matching src/core/half.h.
#include <cuda_fp16.h>

#include "backend/cuda/kernels.cuh"

namespace {

constexpr int kThreads = 128;

__device__ __forceinline__ float widen(uint16_t h, int dt) {
    if (dt == LLM_DTYPE_BF16) return __uint_as_float((uint32_t)h << 16);
    return __half2float(__ushort_as_half(h));
}

__global__ void __launch_bounds__(kThreads) embed_kernel(float *__restrict__ out, const void *__restrict__ table,
                                                         int dt, const int32_t *__restrict__ ids, int dim) {
    const int64_t id = ids[blockIdx.x];
    float *dst = out + (size_t)blockIdx.x * dim;
    if (dt == LLM_DTYPE_F32) {
        const float *src = (const float *)table + (size_t)id * dim;
        if ((dim & 3) == 0 && ((uintptr_t)src & 15) == 0 && ((uintptr_t)dst & 15) == 0) {
            for (int i = threadIdx.x; i < dim / 4; i += kThreads)
                reinterpret_cast<float4 *>(dst)[i] = reinterpret_cast<const float4 *>(src)[i];
        } else {
            for (int i = threadIdx.x; i < dim; i += kThreads) dst[i] = src[i];
        }
        return;
    }
    const uint16_t *src = (const uint16_t *)table + (size_t)id * dim;
    if ((dim & 7) == 0 && ((uintptr_t)src & 15) == 0 && ((uintptr_t)dst & 15) == 0) {
        for (int i = threadIdx.x; i < dim / 8; i += kThreads) {
            const uint4 v = reinterpret_cast<const uint4 *>(src)[i];
            const uint32_t u[4] = {v.x, v.y, v.z, v.w};
            float f[8];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                f[2 * j] = widen((uint16_t)(u[j] & 0xffffu), dt);
                f[2 * j + 1] = widen((uint16_t)(u[j] >> 16), dt);
            }
            float4 *d = reinterpret_cast<float4 *>(dst + (size_t)i * 8);
            d[0] = make_float4(f[0], f[1], f[2], f[3]);
            d[1] = make_float4(f[4], f[5], f[6], f[7]);
        }
    } else {
        for (int i = threadIdx.x; i < dim; i += kThreads) dst[i] = widen(src[i], dt);
    }
}

// out and x must not overlap (the CPU uses memmove, but the model gathers into a separate buffer).
__global__ void __launch_bounds__(kThreads) get_rows_kernel(float *__restrict__ out, const float *__restrict__ x,
                                                            const int32_t *__restrict__ rows, int dim) {
    const float *src = x + (size_t)rows[blockIdx.x] * dim;
    float *dst = out + (size_t)blockIdx.x * dim;
    if ((dim & 3) == 0 && ((uintptr_t)src & 15) == 0 && ((uintptr_t)dst & 15) == 0) {
        for (int i = threadIdx.x; i < dim / 4; i += kThreads)
            reinterpret_cast<float4 *>(dst)[i] = reinterpret_cast<const float4 *>(src)[i];
    } else {
        for (int i = threadIdx.x; i < dim; i += kThreads) dst[i] = src[i];
    }
}

} // namespace

void cuda_embed(cudaStream_t s, float *out, const void *table, llm_dtype dt, const int32_t *ids, int n, int dim) {
    if (n <= 0 || dim <= 0) return;
    embed_kernel<<<(unsigned)n, kThreads, 0, s>>>(out, table, (int)dt, ids, dim);
}

void cuda_get_rows(cudaStream_t s, float *out, const float *x, const int32_t *rows, int n, int dim) {
    if (n <= 0 || dim <= 0) return;
    get_rows_kernel<<<(unsigned)n, kThreads, 0, s>>>(out, x, rows, dim);
}
