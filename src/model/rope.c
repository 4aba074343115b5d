/* RoPE inverse frequencies, as transformers' rope init functions compute them. */
#include <math.h>

#include "model/model_gguf.h"

void llm_rope_inv_freq(const llm_hparams *hp, double *inv_freq) {
    const int dim = hp->head_dim;
    const int half = dim / 2;
    for (int i = 0; i < half; i++) {
        /* transformers computes this in float32: base ** (arange(0, dim, 2).float() / dim) */
        float expo = (float)(2 * i) / (float)dim;
        inv_freq[i] = (double)(1.0f / (float)pow(hp->rope_theta, (double)expo));
    }
    if (hp->rope_kind == LLM_ROPE_FREQ_FACTORS) { /* llama.cpp: theta_i = pos * base^(-2i/d) / factor_i */
        for (int i = 0; i < half; i++) inv_freq[i] /= (double)hp->rope_freq_factors[i];
        return;
    }
    if (hp->rope_kind == LLM_ROPE_LINEAR) { /* position interpolation: positions divided by the factor */
        for (int i = 0; i < half; i++) inv_freq[i] /= hp->rope_factor;
        return;
    }
    if (hp->rope_kind != LLM_ROPE_LLAMA3) return;
    /* Llama 3.1 scaling: long wavelengths are divided by `factor`, short ones kept, and the band
     * between the two thresholds interpolated smoothly. */
    const double factor = hp->rope_factor;
    const double low = hp->rope_low_freq_factor, high = hp->rope_high_freq_factor;
    const double old_ctx = hp->rope_orig_ctx;
    const double low_freq_wavelen = old_ctx / low;
    const double high_freq_wavelen = old_ctx / high;
    for (int i = 0; i < half; i++) {
        double f = inv_freq[i];
        double wavelen = 2.0 * M_PI / f;
        double scaled = wavelen > low_freq_wavelen ? f / factor : f;
        double smooth = (old_ctx / wavelen - low) / (high - low);
        double smoothed = (1.0 - smooth) * scaled / factor + smooth * scaled;
        int medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
        inv_freq[i] = medium ? smoothed : scaled;
    }
}

void llm_rope_llama3_factors(const llm_hparams *hp, float *factors) {
    /* llama.cpp's converter: the same base frequencies (float32), and for each the divisor that maps
     * it to its Llama 3.1-scaled value: 1 above the high-frequency band, `factor` below the low one,
     * and in between 1 / ((1 - smooth) / factor + smooth). */
    const int dim = hp->head_dim, half = dim / 2;
    const double factor = hp->rope_factor, low = hp->rope_low_freq_factor, high = hp->rope_high_freq_factor;
    const double old_ctx = hp->rope_orig_ctx;
    const double low_freq_wavelen = old_ctx / low, high_freq_wavelen = old_ctx / high;
    for (int i = 0; i < half; i++) {
        const float expo = (float)(2 * i) / (float)dim;
        const double freq = (double)(1.0f / (float)pow(hp->rope_theta, (double)expo));
        const double wavelen = 2.0 * M_PI / freq;
        double f;
        if (wavelen < high_freq_wavelen)
            f = 1.0;
        else if (wavelen > low_freq_wavelen)
            f = factor;
        else {
            const double smooth = (old_ctx / wavelen - low) / (high - low);
            f = 1.0 / ((1.0 - smooth) / factor + smooth);
        }
        factors[i] = (float)f;
    }
}
