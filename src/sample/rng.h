/* The sampler's random stream: xoshiro256** seeded through splitmix64.
 *
 * Each sampler owns one state, so draws depend only on its seed and how many draws it has made.
 * splitmix64 spreads any 64-bit seed (0 included) over the 256-bit state, which xoshiro needs to be
 * non-zero; four outputs of splitmix64 are never all zero. */
#ifndef LLM_SAMPLE_RNG_H
#define LLM_SAMPLE_RNG_H

#include <stdint.h>

typedef struct llm_smp_rng {
    uint64_t s[4];
} llm_smp_rng;

static inline uint64_t llm_smp_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline void llm_smp_rng_seed(llm_smp_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = llm_smp_splitmix64(&x);
}

static inline uint64_t llm_smp_rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t llm_smp_rng_next(llm_smp_rng *r) {
    uint64_t *s = r->s;
    const uint64_t result = llm_smp_rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = llm_smp_rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits (every value a multiple of 2^-53). */
static inline double llm_smp_rng_uniform(llm_smp_rng *r) {
    return (double)(llm_smp_rng_next(r) >> 11) * 0x1.0p-53;
}

#endif
