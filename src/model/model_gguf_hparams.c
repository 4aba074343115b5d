/* Hyper-parameters of a GGUF model file, under llama.cpp's key names. A missing required key is
 * LLM_ERR_BAD_CONFIG naming the key; a key of the wrong type is the reader's LLM_ERR_BAD_FORMAT naming
 * the key, its byte offset and both types; values out of range are LLM_ERR_BAD_CONFIG. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/model_gguf.h"

static const struct {
    const char *gguf, *class_name;
    llm_arch arch;
} archs[] = {
    {"llama", "LlamaForCausalLM", LLM_ARCH_LLAMA},
    {"qwen2", "Qwen2ForCausalLM", LLM_ARCH_QWEN2},
    {"qwen3", "Qwen3ForCausalLM", LLM_ARCH_QWEN3},
};

typedef struct ctx {
    const llm_gguf *g;
    const char *path, *arch;
    llm_error *err;
} ctx;

/* "{arch}.suffix" */
static void arch_key(const ctx *c, const char *suffix, char *key, size_t cap) {
    snprintf(key, cap, "%s.%s", c->arch, suffix);
}

/* An integer key in [lo, hi]; absent: *out = dflt when optional, else an error. */
static llm_status get_int(const ctx *c, const char *suffix, int optional, int32_t dflt, int64_t lo,
                          int64_t hi, int32_t *out) {
    char key[128];
    arch_key(c, suffix, key, sizeof key);
    if (llm_gguf_find_key(c->g, key) < 0) {
        if (optional) {
            *out = dflt;
            return LLM_OK;
        }
        return llm_fail(c->err, LLM_ERR_BAD_CONFIG, "%s: required key '%s' (uint32) is missing", c->path,
                        key);
    }
    uint64_t v = 0;
    llm_status st = llm_gguf_get_u64(c->g, key, &v, c->err);
    if (st != LLM_OK) return st;
    if ((int64_t)v < lo || (int64_t)v > hi || v > (uint64_t)INT32_MAX)
        return llm_fail(c->err, LLM_ERR_BAD_CONFIG, "%s: key '%s' = %llu is out of range [%lld, %lld]",
                        c->path, key, (unsigned long long)v, (long long)lo, (long long)hi);
    *out = (int32_t)v;
    return LLM_OK;
}

static llm_status get_real(const ctx *c, const char *suffix, int optional, double dflt, double lo, double hi,
                           double *out) {
    char key[128];
    arch_key(c, suffix, key, sizeof key);
    if (llm_gguf_find_key(c->g, key) < 0) {
        if (optional) {
            *out = dflt;
            return LLM_OK;
        }
        return llm_fail(c->err, LLM_ERR_BAD_CONFIG, "%s: required key '%s' (float32) is missing", c->path,
                        key);
    }
    float v = 0;
    llm_status st = llm_gguf_get_f32(c->g, key, &v, c->err);
    if (st != LLM_OK) return st;
    if (!(v >= lo && v <= hi))
        return llm_fail(c->err, LLM_ERR_BAD_CONFIG, "%s: key '%s' = %g is out of range [%g, %g]", c->path,
                        key, (double)v, lo, hi);
    *out = (double)v;
    return LLM_OK;
}

/* A special-token id key (tokenizer.ggml.*_token_id); -1 when absent. */
static llm_status get_token_id(const ctx *c, const char *key, int32_t n_vocab, int32_t *out) {
    *out = -1;
    if (llm_gguf_find_key(c->g, key) < 0) return LLM_OK;
    uint32_t v = 0;
    llm_status st = llm_gguf_get_u32(c->g, key, &v, c->err);
    if (st != LLM_OK) return st;
    if (v >= (uint32_t)n_vocab)
        return llm_fail(c->err, LLM_ERR_BAD_CONFIG, "%s: key '%s' = %u is not a token id (vocabulary of %d)",
                        c->path, key, v, n_vocab);
    *out = (int32_t)v;
    return LLM_OK;
}

static llm_status read_arch(ctx *c, llm_hparams *hp) {
    const char *s = NULL;
    size_t len = 0;
    const char *key = "general.architecture";
    if (llm_gguf_find_key(c->g, key) < 0)
        return llm_fail(c->err, LLM_ERR_BAD_CONFIG, "%s: required key '%s' (string) is missing", c->path,
                        key);
    llm_status st = llm_gguf_get_string(c->g, key, &s, &len, c->err);
    if (st != LLM_OK) return st;
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (len == strlen(archs[i].gguf) && memcmp(s, archs[i].gguf, len) == 0) {
            hp->arch = archs[i].arch;
            snprintf(hp->architecture, sizeof hp->architecture, "%s", archs[i].class_name);
            c->arch = archs[i].gguf;
            return LLM_OK;
        }
    return llm_fail(c->err, LLM_ERR_UNSUPPORTED,
                    "%s: key '%s' is \"%.*s\": unsupported architecture (supported: llama, qwen2, qwen3)",
                    c->path, key, (int)(len > 64 ? 64 : len), s);
}

/* Vocabulary size: the token list and the embedding's rows must agree (and {arch}.vocab_size if
 * written). */
static llm_status read_vocab(const ctx *c, llm_hparams *hp) {
    const llm_gguf_tensor *emb = llm_gguf_find_tensor(c->g, "token_embd.weight");
    if (!emb)
        return llm_fail(c->err, LLM_ERR_MISSING_TENSOR, "%s: required tensor 'token_embd.weight' is missing",
                        c->path);
    if (emb->n_dims != 2 || emb->dims[1] > INT32_MAX)
        return llm_fail(c->err, LLM_ERR_SHAPE_MISMATCH,
                        "%s: tensor 'token_embd.weight' (data at byte %llu) has %d dims, expected 2 "
                        "[n_embd, n_vocab]",
                        c->path, (unsigned long long)emb->file_offset, emb->n_dims);
    const int64_t rows = (int64_t)emb->dims[1];
    const char *tk = "tokenizer.ggml.tokens";
    if (llm_gguf_find_key(c->g, tk) >= 0) {
        uint64_t n = 0;
        uint32_t et = 0;
        llm_status st = llm_gguf_get_arr_len(c->g, tk, &n, &et, c->err);
        if (st != LLM_OK) return st;
        if (et != LLM_GGUF_STRING)
            return llm_fail(c->err, LLM_ERR_BAD_FORMAT, "%s: key '%s' is an array of %s, expected string",
                            c->path, tk, llm_gguf_type_name(et));
        if ((int64_t)n != rows)
            return llm_fail(c->err, LLM_ERR_SHAPE_MISMATCH,
                            "%s: key '%s' lists %llu tokens but tensor 'token_embd.weight' has %lld rows",
                            c->path, tk, (unsigned long long)n, (long long)rows);
    }
    int32_t vs = 0;
    llm_status st = get_int(c, "vocab_size", 1, -1, 1, INT32_MAX, &vs);
    if (st != LLM_OK) return st;
    if (vs >= 0 && vs != rows)
        return llm_fail(c->err, LLM_ERR_SHAPE_MISMATCH,
                        "%s: key '%s.vocab_size' = %d but tensor 'token_embd.weight' has %lld rows", c->path,
                        c->arch, vs, (long long)rows);
    hp->n_vocab = (int32_t)rows;
    return LLM_OK;
}

/* RoPE: rope_freqs.weight (llama.cpp's form of Llama 3.1 scaling) or {arch}.rope.scaling.type. */
static llm_status read_rope(const ctx *c, llm_hparams *hp) {
    llm_status st = get_real(c, "rope.freq_base", 1, 10000.0, 1e-3, 1e12, &hp->rope_theta);
    if (st != LLM_OK) return st;
    hp->rope_kind = LLM_ROPE_DEFAULT;
    char key[128];
    arch_key(c, "rope.scaling.type", key, sizeof key);
    if (llm_gguf_find_key(c->g, key) >= 0) {
        const char *s = NULL;
        size_t len = 0;
        if ((st = llm_gguf_get_string(c->g, key, &s, &len, c->err)) != LLM_OK) return st;
        if (len == 6 && memcmp(s, "linear", 6) == 0) {
            hp->rope_kind = LLM_ROPE_LINEAR;
            if ((st = get_real(c, "rope.scaling.factor", 0, 1, 1e-6, 1e6, &hp->rope_factor)) != LLM_OK)
                return st;
        } else if (!(len == 4 && memcmp(s, "none", 4) == 0)) {
            return llm_fail(
                c->err, LLM_ERR_UNSUPPORTED,
                "%s: key '%s' is \"%.*s\": unsupported RoPE scaling (supported: none, linear, and "
                "Llama 3 scaling as a rope_freqs tensor)",
                c->path, key, (int)(len > 32 ? 32 : len), s);
        }
    }
    const llm_gguf_tensor *t = llm_gguf_find_tensor(c->g, "rope_freqs.weight");
    if (!t) return LLM_OK;
    if (hp->rope_kind == LLM_ROPE_LINEAR)
        return llm_fail(c->err, LLM_ERR_UNSUPPORTED,
                        "%s: both a rope_freqs tensor and linear RoPE scaling ('%s'): not supported", c->path,
                        key);
    const int half = hp->head_dim / 2;
    if (t->type != LLM_GGML_F32)
        return llm_fail(c->err, LLM_ERR_DTYPE_MISMATCH,
                        "%s: tensor 'rope_freqs.weight' (data at byte %llu) has type %s, expected F32",
                        c->path, (unsigned long long)t->file_offset,
                        llm_ggml_type_name(t->type) ? llm_ggml_type_name(t->type) : "?");
    if (t->n_dims != 1 || t->dims[0] != (uint64_t)half)
        return llm_fail(c->err, LLM_ERR_SHAPE_MISMATCH,
                        "%s: tensor 'rope_freqs.weight' (data at byte %llu) has %llu elements in %d dims, "
                        "expected [%d] (head_dim / 2)",
                        c->path, (unsigned long long)t->file_offset, (unsigned long long)t->n_elems,
                        t->n_dims, half);
    for (int i = 0; i < half; i++) {
        float f;
        memcpy(&f, (const char *)t->data + 4 * (size_t)i, 4);
        if (!(f > 0) || !isfinite(f))
            return llm_fail(c->err, LLM_ERR_BAD_FORMAT,
                            "%s: tensor 'rope_freqs.weight': factor %d = %g at byte %llu is not a positive "
                            "finite number",
                            c->path, i, (double)f, (unsigned long long)(t->file_offset + 4 * (uint64_t)i));
        hp->rope_freq_factors[i] = f;
    }
    hp->rope_kind = LLM_ROPE_FREQ_FACTORS;
    return LLM_OK;
}

static llm_status read_special_tokens(const ctx *c, llm_hparams *hp) {
    llm_status st = get_token_id(c, "tokenizer.ggml.bos_token_id", hp->n_vocab, &hp->bos_token_id);
    static const char *const ends[] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
                                       "tokenizer.ggml.eom_token_id"};
    hp->n_eos = 0;
    for (size_t i = 0; i < sizeof ends / sizeof ends[0] && st == LLM_OK; i++) {
        int32_t id = -1;
        st = get_token_id(c, ends[i], hp->n_vocab, &id);
        int dup = 0;
        for (int k = 0; k < hp->n_eos; k++) dup |= hp->eos_token_ids[k] == id;
        if (st == LLM_OK && id >= 0 && !dup && hp->n_eos < LLM_MAX_EOS_TOKENS)
            hp->eos_token_ids[hp->n_eos++] = id;
    }
    return st;
}

llm_status llm_gguf_read_hparams(const llm_gguf *g, llm_hparams *hp, llm_error *err) {
    memset(hp, 0, sizeof *hp);
    ctx c = {g, llm_gguf_path(g), NULL, err};
    llm_status st = read_arch(&c, hp);
    if (st == LLM_OK) st = get_int(&c, "block_count", 0, 0, 1, 100000, &hp->n_layer);
    if (st == LLM_OK) st = get_int(&c, "embedding_length", 0, 0, 1, 1 << 20, &hp->n_embd);
    if (st == LLM_OK) st = get_int(&c, "feed_forward_length", 0, 0, 1, 1 << 24, &hp->n_ff);
    if (st == LLM_OK) st = get_int(&c, "attention.head_count", 0, 0, 1, 1 << 16, &hp->n_head);
    if (st == LLM_OK) st = get_int(&c, "attention.head_count_kv", 1, hp->n_head, 1, 1 << 16, &hp->n_head_kv);
    if (st == LLM_OK) st = get_int(&c, "context_length", 0, 0, 1, INT32_MAX, &hp->n_ctx_train);
    if (st == LLM_OK) st = get_real(&c, "attention.layer_norm_rms_epsilon", 0, 0, 0, 1, &hp->rms_norm_eps);
    if (st != LLM_OK) return st;
    if (hp->n_head % hp->n_head_kv != 0)
        return llm_fail(
            err, LLM_ERR_BAD_CONFIG,
            "%s: '%s.attention.head_count' = %d is not a multiple of '%s.attention.head_count_kv' = %d",
            c.path, c.arch, hp->n_head, c.arch, hp->n_head_kv);
    /* head_dim: key_length when written (Qwen3, Llama variants), else n_embd / n_head */
    const int32_t dflt_hd = hp->n_embd % hp->n_head == 0 ? hp->n_embd / hp->n_head : 0;
    int32_t vlen = 0, n_rot = 0;
    st = get_int(&c, "attention.key_length", 1, dflt_hd, 1, 1 << 16, &hp->head_dim);
    if (st == LLM_OK) st = get_int(&c, "attention.value_length", 1, hp->head_dim, 1, 1 << 16, &vlen);
    if (st == LLM_OK) st = get_int(&c, "rope.dimension_count", 1, hp->head_dim, 1, 1 << 16, &n_rot);
    if (st != LLM_OK) return st;
    if (hp->head_dim == 0)
        return llm_fail(
            err, LLM_ERR_BAD_CONFIG,
            "%s: '%s.embedding_length' = %d is not a multiple of '%s.attention.head_count' = %d and "
            "'%s.attention.key_length' is absent",
            c.path, c.arch, hp->n_embd, c.arch, hp->n_head, c.arch);
    if (vlen != hp->head_dim)
        return llm_fail(err, LLM_ERR_UNSUPPORTED,
                        "%s: '%s.attention.value_length' = %d differs from the key length %d: not supported",
                        c.path, c.arch, vlen, hp->head_dim);
    if (n_rot != hp->head_dim)
        return llm_fail(err, LLM_ERR_UNSUPPORTED,
                        "%s: '%s.rope.dimension_count' = %d differs from the head dim %d (partial RoPE): not "
                        "supported",
                        c.path, c.arch, n_rot, hp->head_dim);
    if (hp->head_dim % 2 != 0 || hp->head_dim > LLM_MAX_HEAD_DIM)
        return llm_fail(err, LLM_ERR_UNSUPPORTED, "%s: head dim %d must be even and at most %d", c.path,
                        hp->head_dim, LLM_MAX_HEAD_DIM);
    if ((st = read_vocab(&c, hp)) != LLM_OK) return st;
    if ((st = read_rope(&c, hp)) != LLM_OK) return st;
    if ((st = read_special_tokens(&c, hp)) != LLM_OK) return st;
    /* structure: what llama.cpp's graphs for these architectures use */
    hp->tied_embeddings = llm_gguf_find_tensor(g, "output.weight") == NULL;
    hp->qk_norm = hp->arch == LLM_ARCH_QWEN3;
    hp->qkv_bias = hp->arch == LLM_ARCH_QWEN2 ||
                   (hp->arch == LLM_ARCH_LLAMA && llm_gguf_find_tensor(g, "blk.0.attn_q.bias") != NULL);
    hp->o_bias = hp->arch == LLM_ARCH_LLAMA && llm_gguf_find_tensor(g, "blk.0.attn_output.bias") != NULL;
    hp->mlp_bias = hp->arch == LLM_ARCH_LLAMA && llm_gguf_find_tensor(g, "blk.0.ffn_gate.bias") != NULL;
    /* llama.cpp's converter permuted Llama's Q/K rows for its adjacent-pair RoPE; Qwen files are not */
    hp->rope_interleaved = hp->arch == LLM_ARCH_LLAMA;
    const llm_gguf_tensor *emb = llm_gguf_find_tensor(g, "token_embd.weight");
    const char *tn = llm_ggml_type_name(emb->type);
    snprintf(hp->config_dtype, sizeof hp->config_dtype, "%s", tn ? tn : "?");
    return LLM_OK;
}
