/* An FMA throughput loop: enough independent accumulators to cover the FMA latency (4 cycles) times the
 * FMA units (2) of current x86 cores, so the loop runs at the issue rate, which is the f32 peak. The
 * bandwidth probe in cli_bench.c measures the other roofline the same way, in the same run. */
#include "cli_peak.h"

#include <pthread.h>
#include <time.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PEAK_X86 1
#endif

#define ACCS  12      /* independent chains */
#define ITERS 2000000 /* per thread per run: ~24M vector FMAs */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct peak_arg {
    int level; /* 4: AVX512-VNNI int8, 3: AVX512-BF16, 2: AVX-512, 1: AVX2+FMA, 0: scalar */
    float sink;
} peak_arg;

#ifdef PEAK_X86
__attribute__((target("avx512f"))) static float run_avx512(void) {
    __m512 acc[ACCS];
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < ACCS; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long n = 0; n < ITERS; n++)
        for (int i = 0; i < ACCS; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    float s = 0;
    for (int i = 0; i < ACCS; i++) s += _mm512_reduce_add_ps(acc[i]);
    return s;
}

/* vdpbf16ps: per f32 lane, two bf16 products added to the accumulator (4 operations) */
__attribute__((target("avx512f,avx512bf16"))) static float run_bf16(void) {
    __m512 acc[ACCS];
    const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = (__m512bh)_mm512_set1_epi32(0x33d633d6);
    for (int i = 0; i < ACCS; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long n = 0; n < ITERS; n++)
        for (int i = 0; i < ACCS; i++) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
    float s = 0;
    for (int i = 0; i < ACCS; i++) s += _mm512_reduce_add_ps(acc[i]);
    return s;
}

/* vpdpbusd: per int32 lane, four u8 x s8 products added to the accumulator (8 operations) */
__attribute__((target("avx512f,avx512vnni"))) static float run_vnni(void) {
    __m512i acc[ACCS];
    const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
    for (int i = 0; i < ACCS; i++) acc[i] = _mm512_set1_epi32(i);
    for (long n = 0; n < ITERS; n++)
        for (int i = 0; i < ACCS; i++) acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
    float s = 0;
    for (int i = 0; i < ACCS; i++) s += (float)_mm512_reduce_add_epi32(acc[i]);
    return s;
}

__attribute__((target("avx2,fma"))) static float run_avx2(void) {
    __m256 acc[ACCS];
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < ACCS; i++) acc[i] = _mm256_set1_ps((float)i);
    for (long n = 0; n < ITERS; n++)
        for (int i = 0; i < ACCS; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    float out[8], s = 0;
    for (int i = 0; i < ACCS; i++) {
        _mm256_storeu_ps(out, acc[i]);
        for (int k = 0; k < 8; k++) s += out[k];
    }
    return s;
}
#endif

static float run_scalar(void) {
    float acc[ACCS];
    for (int i = 0; i < ACCS; i++) acc[i] = (float)i;
    for (long n = 0; n < ITERS / 8; n++)
        for (int i = 0; i < ACCS; i++) acc[i] = acc[i] * 0.999999f + 1e-7f;
    float s = 0;
    for (int i = 0; i < ACCS; i++) s += acc[i];
    return s;
}

static void *peak_thread(void *p) {
    peak_arg *a = p;
#ifdef PEAK_X86
    if (a->level == 4)
        a->sink = run_vnni();
    else if (a->level == 3)
        a->sink = run_bf16();
    else if (a->level == 2)
        a->sink = run_avx512();
    else if (a->level == 1)
        a->sink = run_avx2();
    else
#endif
        a->sink = run_scalar();
    return NULL;
}

double cli_probe_peak_flops(int n_threads, cli_peak_kind kind, const char **what) {
    int level = 0;
    double ops_per_iter = 2.0; /* operations per accumulator per loop iteration */
    long iters = ITERS / 8;
    *what = "scalar f32 multiply + add";
#ifdef PEAK_X86
    __builtin_cpu_init();
    if (kind == CLI_PEAK_INT8_DOT && __builtin_cpu_supports("avx512vnni")) {
        level = 4, ops_per_iter = 16 * 4 * 2, iters = ITERS;
        *what = "AVX512-VNNI int8 dot products (vpdpbusd)";
    } else if (kind == CLI_PEAK_BF16_DOT && __builtin_cpu_supports("avx512bf16")) {
        level = 3, ops_per_iter = 16 * 2 * 2, iters = ITERS;
        *what = "AVX512-BF16 dot products (vdpbf16ps)";
    } else if (__builtin_cpu_supports("avx512f")) {
        level = 2, ops_per_iter = 16 * 2, iters = ITERS;
        *what = "AVX-512 f32 FMA";
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        level = 1, ops_per_iter = 8 * 2, iters = ITERS;
        *what = "AVX2 f32 FMA";
    }
#else
    (void)kind;
#endif
    const int nt = n_threads < 1 ? 1 : n_threads > 256 ? 256 : n_threads;
    pthread_t th[256];
    peak_arg args[256];
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        int started = 1;
        const double t0 = now();
        for (int i = 1; i < nt; i++) {
            args[i] = (peak_arg){level, 0};
            if (pthread_create(&th[i], NULL, peak_thread, &args[i]) != 0) break;
            started++;
        }
        args[0] = (peak_arg){level, 0};
        peak_thread(&args[0]);
        for (int i = 1; i < started; i++) pthread_join(th[i], NULL);
        const double dt = now() - t0;
        if (started != nt || dt <= 0) return 0;
        const double flops = ops_per_iter * (double)iters * ACCS * nt / dt;
        if (flops > best) best = flops;
    }
    float sink = 0;
    for (int i = 0; i < nt; i++) sink += args[i].sink;
    return sink == 42.0f ? best * (1 + 1e-12) : best; /* uses the results: the loops cannot be dropped */
}
