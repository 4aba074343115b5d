/* The small tables between llamac's model and llama.cpp's GGUF conventions: tensor names, tensor
 * types, and finding the GGUF file a path means. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "model/model_gguf.h"

int llm_path_is_gguf(const char *path) {
    struct stat sb;
    if (!path || stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char magic[4] = {0};
    const size_t n = fread(magic, 1, 4, f);
    fclose(f);
    return n == 4 && memcmp(magic, "GGUF", 4) == 0;
}

static int has_suffix(const char *s, const char *suffix) {
    const size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

int llm_dir_single_gguf(const char *dir, char *out, size_t cap, llm_error *err) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    char first[256] = "", second[256] = "";
    int n_gguf = 0, n_st = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (has_suffix(e->d_name, ".safetensors")) n_st++;
        if (!has_suffix(e->d_name, ".gguf")) continue;
        if (n_gguf == 0) snprintf(first, sizeof first, "%s", e->d_name);
        if (n_gguf == 1) snprintf(second, sizeof second, "%s", e->d_name);
        n_gguf++;
    }
    closedir(d);
    /* safetensors present: it is a Hugging Face directory (a stray .gguf next to it is not chosen) */
    if (n_st > 0 || n_gguf == 0) return 0;
    if (n_gguf > 1) {
        llm_fail(err, LLM_ERR_INVALID_ARGUMENT,
                 "%s holds %d .gguf files (%s, %s%s) and no safetensors: give the path of one of them", dir,
                 n_gguf, first, second, n_gguf > 2 ? ", ..." : "");
        return 0;
    }
    if (snprintf(out, cap, "%s/%s", dir, first) >= (int)cap) return 0;
    return 1;
}

/* Hugging Face suffix within a layer -> GGUF suffix within blk.N */
static const struct {
    const char *hf, *gguf;
} layer_names[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.o_proj.bias", "attn_output.bias"},
    {"self_attn.q_norm.weight", "attn_q_norm.weight"},
    {"self_attn.k_norm.weight", "attn_k_norm.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
    {"mlp.gate_proj.bias", "ffn_gate.bias"},
    {"mlp.up_proj.bias", "ffn_up.bias"},
    {"mlp.down_proj.bias", "ffn_down.bias"},
};

int llm_gguf_name_from_hf(const char *hf, char *out, size_t cap) {
    const char *top = NULL;
    if (strcmp(hf, "model.embed_tokens.weight") == 0) top = "token_embd.weight";
    if (strcmp(hf, "model.norm.weight") == 0) top = "output_norm.weight";
    if (strcmp(hf, "lm_head.weight") == 0) top = "output.weight";
    if (top) return snprintf(out, cap, "%s", top) < (int)cap ? 0 : -1;
    int layer = -1, used = 0;
    if (sscanf(hf, "model.layers.%d.%n", &layer, &used) != 1 || used == 0 || layer < 0) return -1;
    for (size_t i = 0; i < sizeof layer_names / sizeof layer_names[0]; i++)
        if (strcmp(hf + used, layer_names[i].hf) == 0)
            return snprintf(out, cap, "blk.%d.%s", layer, layer_names[i].gguf) < (int)cap ? 0 : -1;
    return -1;
}
