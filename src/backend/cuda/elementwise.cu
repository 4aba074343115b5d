// SwiGLU and the residual add: memory-bound grid-stride loops, float4 when every pointer is 16-byte
// aligned (always, for backend allocations), scalar otherwise and for the tail.
//
// SwiGLU mirrors the CPU's formula and rounding order: out = g / (1 + expf(-g)) * up, the division
// IEEE-rounded (__fdiv_rn: stays exact even under -use_fast_math) and no contraction. expf itself is
// CUDA's (max 2 ulp) rather than glibc's, so results can differ from the CPU by an ulp or two; do not
// build with -use_fast_math, which would swap in __expf.
#include "backend/cuda/kernels.cuh"

namespace {


__global__ void swiglu_kernel(float *out, const float *gate, const float *up, size_t n, bool vec) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    const size_t i0 = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t done = 0;
    if (vec) {
        const size_t n4 = n / 4;
        for (size_t j = i0; j < n4; j += stride) {
            const float4 g = reinterpret_cast<const float4 *>(gate)[j];
            const float4 u = reinterpret_cast<const float4 *>(up)[j];
            float4 o;
            o.x = cuda_silu_mul(g.x, u.x);
            o.y = cuda_silu_mul(g.y, u.y);
            o.z = cuda_silu_mul(g.z, u.z);
            o.w = cuda_silu_mul(g.w, u.w);
            reinterpret_cast<float4 *>(out)[j] = o;
        }
        done = n4 * 4;
    }
    for (size_t j = done + i0; j < n; j += stride) out[j] = cuda_silu_mul(gate[j], up[j]);
}

__global__ void add_kernel(float *x, const float *y, size_t n, bool vec) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    const size_t i0 = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t done = 0;
    if (vec) {
        const size_t n4 = n / 4;
        for (size_t j = i0; j < n4; j += stride) {
            float4 a = reinterpret_cast<float4 *>(x)[j];
            const float4 b = reinterpret_cast<const float4 *>(y)[j];
            a.x = __fadd_rn(a.x, b.x);
            a.y = __fadd_rn(a.y, b.y);
            a.z = __fadd_rn(a.z, b.z);
            a.w = __fadd_rn(a.w, b.w);
            reinterpret_cast<float4 *>(x)[j] = a;
        }
        done = n4 * 4;
    }
    for (size_t j = done + i0; j < n; j += stride) x[j] = __fadd_rn(x[j], y[j]);
}

bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

unsigned grid_for(size_t n) {
    size_t b = (n / 4 + 255) / 256;
    if (b > 132 * 16) b = 132 * 16; // a few waves on an H100; the loops stride over the rest
    return b ? (unsigned)b : 1u;
}

} // namespace

void cuda_swiglu(cudaStream_t s, float *out, const float *gate, const float *up, size_t n) {
    if (n == 0) return;
    const bool vec = aligned16(out) && aligned16(gate) && aligned16(up);
    swiglu_kernel<<<grid_for(n), 256, 0, s>>>(out, gate, up, n, vec);
}

void cuda_add(cudaStream_t s, float *x, const float *y, size_t n) {
    if (n == 0) return;
    const bool vec = aligned16(x) && aligned16(y);
    add_kernel<<<grid_for(n), 256, 0, s>>>(x, y, n, vec);
}
