#include "core/half.h"

/* Round-to-nearest-even narrowing, including half subnormals. */
uint16_t llm_f32_to_f16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    uint32_t sign = (bits >> 16) & 0x8000u;
    uint32_t abs = bits & 0x7fffffffu;
    if (abs > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);  /* NaN */
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to infinity */
    if (abs < 0x38800000u) {                                   /* result is a half subnormal or zero */
        uint32_t e = abs >> 23;
        if (e < 102) return (uint16_t)sign; /* below half of the smallest subnormal */
        uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
        uint32_t s = 126 - e; /* value = mant * 2^(e-150) = half_mant * 2^-24 */
        uint32_t half_mant = mant >> s;
        uint32_t rem = mant & ((1u << s) - 1u);
        uint32_t halfway = 1u << (s - 1);
        if (rem > halfway || (rem == halfway && (half_mant & 1u))) half_mant++;
        return (uint16_t)(sign | half_mant);
    }
    uint32_t h = (abs >> 13) - (112u << 10);
    uint32_t rem = abs & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}
