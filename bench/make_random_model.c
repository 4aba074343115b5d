/* Writes a Hugging Face model directory with random bf16 weights in the shape of a real model, so
 * anyone can reproduce our speed figures without downloading weights.
 *
 *   make_random_model PRESET OUTDIR        PRESET: llama-3.2-1b | qwen3-0.6b | tiny
 *
 * Weights ~ U(-a, a) with a chosen so activations stay O(1); norm weights = 1. Deterministic (fixed
 * seed). Not a test fixture: parity fixtures come from transformers (scripts/make_fixtures.py). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/stat.h>

typedef struct {
    const char *name, *arch, *model_type;
    int vocab, hidden, layers, heads, kv_heads, head_dim, ffn, max_pos, tied, qk_norm;
    double theta;
    const char *rope_json; /* rope_scaling value */
} preset;

static const preset presets[] = {
    {"llama-3.2-1b", "LlamaForCausalLM", "llama", 128256, 2048, 16, 32, 8, 64, 8192, 131072, 1, 0, 500000.0,
     "{\"factor\": 32.0, \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0, "
     "\"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}"},
    {"qwen3-0.6b", "Qwen3ForCausalLM", "qwen3", 151936, 1024, 28, 16, 8, 128, 3072, 40960, 1, 1, 1000000.0,
     "null"},
    {"tiny", "LlamaForCausalLM", "llama", 1024, 128, 2, 4, 2, 32, 256, 2048, 0, 0, 10000.0, "null"},
};

typedef struct {
    char name[128];
    int rows, cols; /* cols == 0: 1-D of rows */
    int is_norm;
} tensor;

static uint64_t rng = 0x243f6a8885a308d3ull;
static inline uint32_t next_u32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static uint16_t to_bf16(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    b += 0x7fff + ((b >> 16) & 1);
    return (uint16_t)(b >> 16);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: make_random_model llama-3.2-1b|qwen3-0.6b|tiny OUTDIR\n");
        return 1;
    }
    const preset *p = NULL;
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(argv[1], presets[i].name) == 0) p = &presets[i];
    if (!p) {
        fprintf(stderr, "unknown preset '%s'\n", argv[1]);
        return 1;
    }
    mkdir(argv[2], 0755);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", argv[2]);
    FILE *f = fopen(path, "w");
    if (!f) return perror(path), 1;
    fprintf(f,
            "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n  \"vocab_size\": %d,\n"
            "  \"hidden_size\": %d,\n  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
            "  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n  \"intermediate_size\": %d,\n"
            "  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": 1e-05,\n  \"rope_theta\": %.1f,\n"
            "  \"rope_scaling\": %s,\n  \"tie_word_embeddings\": %s,\n  \"hidden_act\": \"silu\",\n"
            "  \"torch_dtype\": \"bfloat16\",\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2\n}\n",
            p->arch, p->model_type, p->vocab, p->hidden, p->layers, p->heads, p->kv_heads, p->head_dim,
            p->ffn, p->max_pos, p->theta, p->rope_json, p->tied ? "true" : "false");
    fclose(f);

    int cap = 16 + p->layers * 16, n = 0;
    tensor *t = calloc((size_t)cap, sizeof *t);
#define ADD(nm, r, c, norm)                                                                                  \
    (snprintf(t[n].name, sizeof t[n].name, "%s", nm), t[n].rows = r, t[n].cols = c, t[n].is_norm = norm, n++)
    ADD("model.embed_tokens.weight", p->vocab, p->hidden, 0);
    for (int l = 0; l < p->layers; l++) {
        char b[128];
        const int qd = p->heads * p->head_dim, kvd = p->kv_heads * p->head_dim;
#define L(sfx, r, c, norm) (snprintf(b, sizeof b, "model.layers.%d.%s", l, sfx), ADD(b, r, c, norm))
        L("input_layernorm.weight", p->hidden, 0, 1);
        L("self_attn.q_proj.weight", qd, p->hidden, 0);
        L("self_attn.k_proj.weight", kvd, p->hidden, 0);
        L("self_attn.v_proj.weight", kvd, p->hidden, 0);
        L("self_attn.o_proj.weight", p->hidden, qd, 0);
        if (p->qk_norm) {
            L("self_attn.q_norm.weight", p->head_dim, 0, 1);
            L("self_attn.k_norm.weight", p->head_dim, 0, 1);
        }
        L("post_attention_layernorm.weight", p->hidden, 0, 1);
        L("mlp.gate_proj.weight", p->ffn, p->hidden, 0);
        L("mlp.up_proj.weight", p->ffn, p->hidden, 0);
        L("mlp.down_proj.weight", p->hidden, p->ffn, 0);
    }
    ADD("model.norm.weight", p->hidden, 0, 1);
    if (!p->tied) ADD("lm_head.weight", p->vocab, p->hidden, 0);

    /* header */
    size_t hcap = (size_t)n * 160 + 64, hl = 0;
    char *h = malloc(hcap);
    hl += (size_t)snprintf(h + hl, hcap - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        uint64_t elems = (uint64_t)t[i].rows * (uint64_t)(t[i].cols ? t[i].cols : 1);
        if (t[i].cols)
            hl += (size_t)snprintf(
                h + hl, hcap - hl,
                ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[%d,%d],\"data_offsets\":[%llu,%llu]}", t[i].name,
                t[i].rows, t[i].cols, (unsigned long long)off, (unsigned long long)(off + 2 * elems));
        else
            hl += (size_t)snprintf(
                h + hl, hcap - hl, ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[%d],\"data_offsets\":[%llu,%llu]}",
                t[i].name, t[i].rows, (unsigned long long)off, (unsigned long long)(off + 2 * elems));
        off += 2 * elems;
    }
    hl += (size_t)snprintf(h + hl, hcap - hl, "}");
    while (hl % 8) h[hl++] = ' ';
    snprintf(path, sizeof path, "%s/model.safetensors", argv[2]);
    f = fopen(path, "wb");
    if (!f) return perror(path), 1;
    uint64_t hlen = hl;
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(hlen >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(h, 1, hl, f);
    enum { CHUNK = 1 << 20 };
    uint16_t *buf = malloc(CHUNK * sizeof *buf);
    for (int i = 0; i < n; i++) {
        uint64_t elems = (uint64_t)t[i].rows * (uint64_t)(t[i].cols ? t[i].cols : 1);
        /* uniform in (-a, a) with a = sqrt(3 / fan_in): unit-variance outputs for unit-variance inputs */
        float a = t[i].cols ? 1.7320508f / sqrtf((float)t[i].cols) : 0.0f;
        while (elems) {
            size_t m = elems < CHUNK ? (size_t)elems : CHUNK;
            for (size_t j = 0; j < m; j++) {
                float u = (float)next_u32() / 65536.0f / 65536.0f * 2.0f - 1.0f;
                buf[j] = t[i].is_norm ? to_bf16(1.0f + 0.1f * u) : to_bf16(a * u);
            }
            fwrite(buf, 2, m, f);
            elems -= m;
        }
    }
    if (fclose(f) != 0) return perror(path), 1;
    printf("wrote %s: %d tensors, %.2f GB of bf16 weights\n", argv[2], n, (double)off / 1e9);
    free(buf);
    free(h);
    free(t);
    return 0;
}
