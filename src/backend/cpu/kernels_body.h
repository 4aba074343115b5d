/* Plain-C bodies of the fast row kernels (RMSNorm, attention), written with explicit accumulator lanes
 * so that the compiler vectorises them; included once per level, inside that level's target attribute.
 *
 * The includer defines:
 *   LLM_KFN        the storage class and target attribute of every function here
 *   LLM_KNAME(x)   x with the level's suffix
 *   LLM_KNAME(exp_n)(float *dst, const float *src, int n)   dst[i] = exp(src[i])
 * No include guard: this file is meant to be included more than once. */

#define LLM_KB_LANES 16

/* Sum of squares of x[D] in LLM_KB_LANES lanes (lane l takes elements l, l+16, ...), reduced by a fixed
 * tree. */
LLM_KFN float LLM_KNAME(sumsq)(const float *restrict x, int dim) {
    float a[LLM_KB_LANES] = {0};
    int i = 0;
    for (; i + LLM_KB_LANES <= dim; i += LLM_KB_LANES)
        for (int l = 0; l < LLM_KB_LANES; l++) a[l] += x[i + l] * x[i + l];
    for (int l = 0; i + l < dim; l++) a[l] += x[i + l] * x[i + l];
    for (int w = LLM_KB_LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++) a[l] += a[l + w];
    return a[0];
}

/* out[D] = x[D] * inv * w[D] */
LLM_KFN void LLM_KNAME(scale_mul)(float *out, const float *x, const float *restrict w, float inv, int dim) {
    for (int i = 0; i < dim; i++) out[i] = w[i] * (x[i] * inv);
}

LLM_KFN void LLM_KNAME(rmsnorm_row)(float *out, const float *x, const float *w, int dim, float eps) {
    const float inv = 1.0f / sqrtf(LLM_KNAME(sumsq)(x, dim) / (float)dim + eps);
    LLM_KNAME(scale_mul)(out, x, w, inv, dim);
}

LLM_KFN void LLM_KNAME(add_rmsnorm_row)(float *out, float *restrict x, const float *y, const float *w,
                                        int dim, float eps) {
    for (int i = 0; i < dim; i++) x[i] += y[i];
    LLM_KNAME(rmsnorm_row)(out, x, w, dim, eps);
}

/* q·k over hd floats, lanes as in sumsq. */
LLM_KFN float LLM_KNAME(dot)(const float *restrict q, const float *restrict k, int hd) {
    float a[LLM_KB_LANES] = {0};
    int i = 0;
    for (; i + LLM_KB_LANES <= hd; i += LLM_KB_LANES)
        for (int l = 0; l < LLM_KB_LANES; l++) a[l] += q[i + l] * k[i + l];
    for (int l = 0; i + l < hd; l++) a[l] += q[i + l] * k[i + l];
    for (int w = LLM_KB_LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++) a[l] += a[l + w];
    return a[0];
}

/* gcc at -O2 cannot see that exp_n reads only the cnt scores written just before (its tail is a masked
 * or one-at-a-time load) and warns that s may be used uninitialized; -O3 does not. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
/* Shape: q[hd], k[cnt][hd], v[cnt][hd], st->acc[hd]; cnt <= 256. */
LLM_KFN void LLM_KNAME(attn_block)(llm_attn_state *st, const float *q, const float *k, const float *v,
                                   int cnt, int hd, float scale) {
    float s[256], p[256];
    float bmax = -INFINITY;
    for (int j = 0; j < cnt; j++) {
        s[j] = LLM_KNAME(dot)(q, k + (size_t)j * hd, hd) * scale;
        if (s[j] > bmax) bmax = s[j];
    }
    const float nmax = bmax > st->max ? bmax : st->max;
    for (int j = 0; j < cnt; j++) s[j] -= nmax;
    LLM_KNAME(exp_n)(p, s, cnt);
    float corr[1] = {st->max - nmax}; /* exp(-inf) = 0 on the first block */
    LLM_KNAME(exp_n)(corr, corr, 1);
    float *restrict acc = st->acc;
    if (corr[0] != 1.0f)
        for (int i = 0; i < hd; i++) acc[i] *= corr[0];
    float sum = st->sum * corr[0];
    for (int j = 0; j < cnt; j++) {
        sum += p[j];
        const float pj = p[j];
        const float *restrict vj = v + (size_t)j * hd;
        for (int i = 0; i < hd; i++) acc[i] += pj * vj[i];
    }
    st->sum = sum;
    st->max = nmax;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#undef LLM_KB_LANES
