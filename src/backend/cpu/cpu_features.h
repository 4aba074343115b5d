/* What this CPU can run, probed once with cpuid, and the kernel level the CPU backend dispatches to.
 *
 * Levels are ordered: a machine that runs a level runs every lower one. REF is the reference path
 * (the parity tests run on it: f32 math in a fixed order, batch invariant); the others are the fast
 * kernels, portable C or SIMD. Any level the machine supports can be forced, for tests and benchmarks. */
#ifndef LLM_BACKEND_CPU_FEATURES_H
#define LLM_BACKEND_CPU_FEATURES_H

typedef enum llm_cpu_level {
    LLM_CPU_LEVEL_REF = 0,      /* the reference kernels */
    LLM_CPU_LEVEL_PORTABLE = 1, /* fast kernels in plain C */
    LLM_CPU_LEVEL_AVX2 = 2,     /* AVX2 + FMA + F16C */
    LLM_CPU_LEVEL_AVX512 = 3,   /* AVX-512 F/BW/VL (+ BF16 dot products and VNNI where present) */
    LLM_CPU_LEVEL_COUNT
} llm_cpu_level;

typedef struct llm_cpu_features {
    int avx2, fma, f16c;
    int avx512f, avx512bw, avx512vl, avx512_bf16, avx512_vnni;
    int avx_vnni; /* AVX2-encoded VNNI (Alder Lake, Zen 5) */
} llm_cpu_features;

/* Probes cpuid and xgetbv (the OS must save the wide registers); all zero on other architectures. */
void llm_cpu_features_detect(llm_cpu_features *f);

/* The best level f supports. */
llm_cpu_level llm_cpu_best_level(const llm_cpu_features *f);

/* Whether f can run level. REF and PORTABLE run everywhere. */
int llm_cpu_level_supported(const llm_cpu_features *f, llm_cpu_level level);

/* "ref", "portable", "avx2", "avx512"; NULL for other values. */
const char *llm_cpu_level_name(llm_cpu_level level);

/* The level named s (the names above, or "auto" → -1); -2 for an unknown name. */
int llm_cpu_level_parse(const char *s);

#endif
