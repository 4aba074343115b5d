// Rotary position embedding: the cos/sin table and the in-place rotate-half rotation.
//
// The table mirrors the CPU exactly: angle = (double)inv_freq[i] * (double)pos[t], then cos/sin in
// double, rounded once to float. (kernels.cuh's comment mentions a float angle: the CPU computes in
// double because float angles at positions of 10^5 are off by hundredths of a radian.) CUDA's double
// cos/sin are within 2 ulp of double, far below float's rounding, so the floats match the CPU's except
// in astronomically rare ties. The table is n*half entries, so double throughput does not matter.
#include "backend/cuda/kernels.cuh"

namespace {

__global__ void rope_table_kernel(float *__restrict__ cos_out, float *__restrict__ sin_out,
                                  const int32_t *__restrict__ pos, int n, const float *__restrict__ inv_freq,
                                  int half) {
    const size_t total = (size_t)n * half;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x; j < total; j += stride) {
        const int t = (int)(j / half), i = (int)(j % half);
        const double angle = (double)inv_freq[i] * (double)pos[t];
        double sv, cv;
        sincos(angle, &sv, &cv);
        cos_out[j] = (float)cv;
        sin_out[j] = (float)sv;
    }
}

// One thread per rotated pair (t, h, i), i < half: v[i] = x0*c - x1*s, v[i+half] = x1*c + x0*s with
// the CPU's roundings (products rounded, then the sum: no FMA contraction, hence the _rn intrinsics).
// Interleaved (GGUF Llama): the pair is (2i, 2i+1) instead of (i, i+half).
__global__ void rope_kernel(float *__restrict__ x, int n, int n_heads, int head_dim, const float *__restrict__ cos_t,
                            const float *__restrict__ sin_t, int interleaved) {
    const int half = head_dim / 2;
    const int a = interleaved ? 2 : 1, b = interleaved ? 1 : half;
    const size_t total = (size_t)n * n_heads * half;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x; j < total; j += stride) {
        const int i = (int)(j % half);
        const size_t th = j / half; // t * n_heads + h
        const size_t t = th / n_heads;
        float *v = x + th * head_dim;
        const float c = cos_t[t * half + i], s = sin_t[t * half + i];
        const float x0 = v[i * a], x1 = v[i * a + b];
        v[i * a] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
        v[i * a + b] = __fadd_rn(__fmul_rn(x1, c), __fmul_rn(x0, s));
    }
}

unsigned grid_for(size_t n) {
    size_t b = (n + 255) / 256;
    if (b > 132 * 16) b = 132 * 16;
    return b ? (unsigned)b : 1u;
}

} // namespace

void cuda_rope_table(cudaStream_t s, float *cos_out, float *sin_out, const int32_t *pos, int n, const float *inv_freq,
                     int half) {
    if (n <= 0 || half <= 0) return;
    rope_table_kernel<<<grid_for((size_t)n * half), 256, 0, s>>>(cos_out, sin_out, pos, n, inv_freq, half);
}

void cuda_rope(cudaStream_t s, float *x, int n, int n_heads, int head_dim, const float *cos_t, const float *sin_t,
               int interleaved) {
    if (n <= 0 || n_heads <= 0 || head_dim < 2) return;
    rope_kernel<<<grid_for((size_t)n * n_heads * (head_dim / 2)), 256, 0, s>>>(x, n, n_heads, head_dim, cos_t,
                                                                                 sin_t, interleaved);
}
