/* The machine's f32 compute peak, probed: what bench divides the prefill's FLOP rate by. */
#ifndef LLAMA_CLI_PEAK_H
#define LLAMA_CLI_PEAK_H

/* What the prefill's matmuls multiply with: f32 FMAs (F32/F16 weights, or BF16 without AVX512_BF16),
 * bf16 pair dot products (BF16 weights where the CPU has AVX512_BF16: the kernels round activations to
 * bf16 there), int8 dot products (Q8_0 / Q4_K weights meet int8 activation blocks). */
typedef enum cli_peak_kind { CLI_PEAK_F32_FMA, CLI_PEAK_BF16_DOT, CLI_PEAK_INT8_DOT } cli_peak_kind;

/* Operations per second (a multiply-add counts 2, as matmul FLOPs do) of independent instructions of
 * that kind on n_threads threads (best of 3 short runs, a few ms each), with the widest form this CPU
 * has: AVX-512 (vfmadd / vdpbf16ps / vpdpbusd), else AVX2+FMA f32 FMAs, else scalar multiply + add;
 * a kind the CPU has no instruction for is measured as f32 FMAs. *what (static storage) names what was
 * measured. 0 if it cannot be measured. */
double cli_probe_peak_flops(int n_threads, cli_peak_kind kind, const char **what);

#endif
