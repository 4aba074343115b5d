/* cpuid probing for the CPU backend's run-time kernel dispatch. */
#include "backend/cpu/cpu_features.h"

#include <stdio.h>
#include <string.h>

#include "llamac.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>

static unsigned long long xgetbv0(void) {
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

void llm_cpu_features_detect(llm_cpu_features *f) {
    memset(f, 0, sizeof *f);
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    const int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx) return;
    const unsigned long long xcr0 = xgetbv0();
    const int ymm_ok = (xcr0 & 0x6) == 0x6, zmm_ok = (xcr0 & 0xe6) == 0xe6;
    if (!ymm_ok) return;
    unsigned a7 = 0, b7 = 0, c7 = 0, d7 = 0, a71 = 0, b71 = 0, c71 = 0, d71 = 0;
    __cpuid_count(7, 0, a7, b7, c7, d7);
    __cpuid_count(7, 1, a71, b71, c71, d71);
    (void)d7, (void)b71, (void)c71, (void)d71;
    f->fma = fma;
    f->f16c = f16c;
    f->avx2 = (b7 >> 5) & 1;
    f->avx_vnni = (a71 >> 4) & 1;
    if (zmm_ok) {
        f->avx512f = (b7 >> 16) & 1;
        f->avx512bw = (b7 >> 30) & 1;
        f->avx512vl = (b7 >> 31) & 1;
        f->avx512_vnni = (c7 >> 11) & 1;
        f->avx512_bf16 = (a71 >> 5) & 1;
    }
}
#else
void llm_cpu_features_detect(llm_cpu_features *f) {
    memset(f, 0, sizeof *f);
}
#endif

int llm_cpu_level_supported(const llm_cpu_features *f, llm_cpu_level level) {
    switch (level) {
    case LLM_CPU_LEVEL_REF:
    case LLM_CPU_LEVEL_PORTABLE:
        return 1;
    case LLM_CPU_LEVEL_AVX2:
        return f->avx2 && f->fma && f->f16c;
    case LLM_CPU_LEVEL_AVX512:
        return f->avx2 && f->fma && f->f16c && f->avx512f && f->avx512bw && f->avx512vl;
    case LLM_CPU_LEVEL_COUNT:
        break;
    }
    return 0;
}

llm_cpu_level llm_cpu_best_level(const llm_cpu_features *f) {
    for (int l = LLM_CPU_LEVEL_COUNT - 1; l > LLM_CPU_LEVEL_PORTABLE; l--)
        if (llm_cpu_level_supported(f, (llm_cpu_level)l)) return (llm_cpu_level)l;
    return LLM_CPU_LEVEL_PORTABLE;
}

const char *llm_cpu_level_name(llm_cpu_level level) {
    static const char *const names[LLM_CPU_LEVEL_COUNT] = {"ref", "portable", "avx2", "avx512"};
    return (int)level >= 0 && level < LLM_CPU_LEVEL_COUNT ? names[level] : NULL;
}

int llm_cpu_level_parse(const char *s) {
    if (!s) return -2;
    if (strcmp(s, "auto") == 0) return -1;
    for (int l = 0; l < LLM_CPU_LEVEL_COUNT; l++)
        if (strcmp(s, llm_cpu_level_name((llm_cpu_level)l)) == 0) return l;
    return -2;
}

/* The public face of the levels (include/llamac.h): llm_cpu_kernels is llm_cpu_level + 1, 0 = auto. */

const char *llm_cpu_kernels_name(llm_cpu_kernels kernels) {
    if (kernels == LLM_CPU_KERNELS_AUTO) return "auto";
    return (int)kernels > 0 ? llm_cpu_level_name((llm_cpu_level)(kernels - 1)) : NULL;
}

/* The features of f that level needs and f lacks, as "avx2 fma", into buf. */
static void missing_features(const llm_cpu_features *f, llm_cpu_level level, char *buf, size_t cap) {
    const struct {
        const char *name;
        int have;
        llm_cpu_level from;
    } need[] = {
        {"avx2", f->avx2, LLM_CPU_LEVEL_AVX2},           {"fma", f->fma, LLM_CPU_LEVEL_AVX2},
        {"f16c", f->f16c, LLM_CPU_LEVEL_AVX2},           {"avx512f", f->avx512f, LLM_CPU_LEVEL_AVX512},
        {"avx512bw", f->avx512bw, LLM_CPU_LEVEL_AVX512}, {"avx512vl", f->avx512vl, LLM_CPU_LEVEL_AVX512}};
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        if (need[i].have || level < need[i].from) continue;
        int w = snprintf(buf + used, cap - used, "%s%s", used ? " " : "", need[i].name);
        if (w < 0 || (size_t)w >= cap - used) break;
        used += (size_t)w;
    }
}

llm_cpu_kernels llm_cpu_kernels_resolve(llm_cpu_kernels kernels, char *why, size_t why_cap) {
    llm_cpu_features f;
    llm_cpu_features_detect(&f);
    if (kernels == LLM_CPU_KERNELS_AUTO) return (llm_cpu_kernels)(llm_cpu_best_level(&f) + 1);
    const int level = (int)kernels - 1;
    if (level < 0 || level >= LLM_CPU_LEVEL_COUNT) {
        if (why && why_cap) snprintf(why, why_cap, "unknown cpu kernels %d", (int)kernels);
        return LLM_CPU_KERNELS_AUTO;
    }
    if (llm_cpu_level_supported(&f, (llm_cpu_level)level)) return kernels;
    if (why && why_cap) {
        char miss[96];
        missing_features(&f, (llm_cpu_level)level, miss, sizeof miss);
#if defined(__x86_64__)
        snprintf(why, why_cap, "cpu kernels '%s' need CPU features this CPU lacks: %s",
                 llm_cpu_kernels_name(kernels), miss);
#else
        snprintf(why, why_cap, "cpu kernels '%s' exist only on x86-64 (this CPU lacks: %s)",
                 llm_cpu_kernels_name(kernels), miss);
#endif
    }
    return LLM_CPU_KERNELS_AUTO;
}
