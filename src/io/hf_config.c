/* config.json / generation_config.json -> llm_hparams.
 *
 * transformers 4.x writes `rope_theta` + `rope_scaling` + `torch_dtype`; transformers 5.x writes
 * `rope_parameters` (holding rope_type, rope_theta and the scaling fields) + `dtype`. Both are read.
 * Keys missing from a hand-written config fall back to the defaults of the transformers config class,
 * except the dimensions, which are required: a model without them cannot be checked against its
 * weights. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileutil.h"
#include "core/json.h"
#include "model/hparams.h"

#define LLM_CONFIG_MAX_BYTES (16u * 1024u * 1024u)

typedef struct cfg_ctx {
    const char *path;
    const char *text;
    size_t len;
    llm_error *err;
} cfg_ctx;

static void where(const cfg_ctx *c, const llm_json *v, char *out, size_t cap) {
    int line = 0, col = 0;
    llm_json_line_col(c->text, c->len, llm_json_offset(v), &line, &col);
    snprintf(out, cap, "%s:%d:%d", c->path, line, col);
}

static int is_null(const llm_json *v) {
    return !v || llm_json_type_of(v) == LLM_JSON_NULL;
}

/* Integer key; *present tells whether it was there (and not null). */
static llm_status get_int(const cfg_ctx *c, const llm_json *obj, const char *key, int required, int64_t lo,
                          int64_t hi, int32_t *out, int *present) {
    const llm_json *v = llm_json_get(obj, key);
    if (present) *present = !is_null(v);
    if (is_null(v)) {
        if (required)
            return llm_fail(c->err, LLM_ERR_BAD_CONFIG, "%s: required key \"%s\" is missing", c->path, key);
        return LLM_OK;
    }
    int64_t x;
    char w[300];
    if (llm_json_int64(v, &x) != 0) {
        where(c, v, w, sizeof w);
        return llm_fail(c->err, LLM_ERR_BAD_CONFIG, "%s: \"%s\" must be an integer", w, key);
    }
    if (x < lo || x > hi) {
        where(c, v, w, sizeof w);
        return llm_fail(c->err, LLM_ERR_BAD_CONFIG, "%s: \"%s\" is %lld, expected %lld..%lld", w, key,
                        (long long)x, (long long)lo, (long long)hi);
    }
    *out = (int32_t)x;
    return LLM_OK;
}

static llm_status get_num(const cfg_ctx *c, const llm_json *obj, const char *key, double lo, double hi,
                          double *out) {
    const llm_json *v = llm_json_get(obj, key);
    if (is_null(v)) return LLM_OK;
    char w[300];
    if (llm_json_type_of(v) != LLM_JSON_NUMBER) {
        where(c, v, w, sizeof w);
        return llm_fail(c->err, LLM_ERR_BAD_CONFIG, "%s: \"%s\" must be a number", w, key);
    }
    double x = llm_json_number(v);
    if (!(x >= lo && x <= hi)) {
        where(c, v, w, sizeof w);
        return llm_fail(c->err, LLM_ERR_BAD_CONFIG, "%s: \"%s\" is %g, expected %g..%g", w, key, x, lo, hi);
    }
    *out = x;
    return LLM_OK;
}

static llm_status get_bool(const cfg_ctx *c, const llm_json *obj, const char *key, int *out) {
    const llm_json *v = llm_json_get(obj, key);
    if (is_null(v)) return LLM_OK;
    int b;
    if (llm_json_bool(v, &b) != 0) {
        char w[300];
        where(c, v, w, sizeof w);
        return llm_fail(c->err, LLM_ERR_BAD_CONFIG, "%s: \"%s\" must be true or false", w, key);
    }
    *out = b;
    return LLM_OK;
}

/* eos/bos: an integer or a list of integers (generation_config often has a list). */
static llm_status get_token_list(const cfg_ctx *c, const llm_json *obj, const char *key, int32_t *ids,
                                 int32_t *n, int *present) {
    const llm_json *v = llm_json_get(obj, key);
    *present = !is_null(v);
    if (is_null(v)) return LLM_OK;
    char w[300];
    int64_t x;
    if (llm_json_type_of(v) == LLM_JSON_ARRAY) {
        size_t cnt = llm_json_count(v);
        if (cnt > LLM_MAX_EOS_TOKENS) {
            where(c, v, w, sizeof w);
            return llm_fail(c->err, LLM_ERR_BAD_CONFIG, "%s: \"%s\" lists %zu tokens, at most %d supported",
                            w, key, cnt, LLM_MAX_EOS_TOKENS);
        }
        *n = 0;
        for (size_t i = 0; i < cnt; i++) {
            const llm_json *e = llm_json_value_at(v, i);
            if (llm_json_int64(e, &x) != 0 || x < 0 || x > INT32_MAX) {
                where(c, e, w, sizeof w);
                return llm_fail(c->err, LLM_ERR_BAD_CONFIG, "%s: \"%s\"[%zu] must be a token id", w, key, i);
            }
            ids[(*n)++] = (int32_t)x;
        }
        return LLM_OK;
    }
    if (llm_json_int64(v, &x) != 0 || x < 0 || x > INT32_MAX) {
        where(c, v, w, sizeof w);
        return llm_fail(c->err, LLM_ERR_BAD_CONFIG, "%s: \"%s\" must be a token id or a list of them", w,
                        key);
    }
    ids[0] = (int32_t)x;
    *n = 1;
    return LLM_OK;
}

static llm_status parse_rope(const cfg_ctx *c, const llm_json *root, llm_hparams *hp) {
    /* transformers 5: rope_parameters holds everything; transformers 4: rope_theta + rope_scaling. */
    const llm_json *params = llm_json_get(root, "rope_parameters");
    const llm_json *scaling = NULL;
    llm_status st;
    if (!is_null(params)) {
        if (llm_json_type_of(params) != LLM_JSON_OBJECT) {
            char w[300];
            where(c, params, w, sizeof w);
            return llm_fail(c->err, LLM_ERR_BAD_CONFIG, "%s: \"rope_parameters\" must be an object", w);
        }
        /* Per-layer-type parameters ({"full_attention": {...}, "sliding_attention": {...}}) belong to
         * architectures we do not run; refuse them rather than silently use defaults. */
        for (size_t i = 0; i < llm_json_count(params); i++)
            if (llm_json_type_of(llm_json_value_at(params, i)) == LLM_JSON_OBJECT) {
                char w[300];
                where(c, llm_json_value_at(params, i), w, sizeof w);
                size_t klen = 0;
                const char *key = llm_json_key_at(params, i, &klen);
                return llm_fail(c->err, LLM_ERR_UNSUPPORTED,
                                "%s: per-layer-type \"rope_parameters\" (\"%.*s\") are not supported", w,
                                (int)(klen > 40 ? 40 : klen), key);
            }
        if ((st = get_num(c, params, "rope_theta", 1e-3, 1e12, &hp->rope_theta)) != LLM_OK) return st;
        scaling = params;
    } else {
        if ((st = get_num(c, root, "rope_theta", 1e-3, 1e12, &hp->rope_theta)) != LLM_OK) return st;
        scaling = llm_json_get(root, "rope_scaling");
        if (!is_null(scaling) && llm_json_type_of(scaling) != LLM_JSON_OBJECT) {
            char w[300];
            where(c, scaling, w, sizeof w);
            return llm_fail(c->err, LLM_ERR_BAD_CONFIG, "%s: \"rope_scaling\" must be an object or null", w);
        }
    }
    hp->rope_kind = LLM_ROPE_DEFAULT;
    if (is_null(scaling)) return LLM_OK;
    const llm_json *type = llm_json_get(scaling, "rope_type");
    if (is_null(type)) type = llm_json_get(scaling, "type"); /* the pre-4.45 spelling */
    if (is_null(type)) return LLM_OK;
    const char *ts = llm_json_string(type, NULL);
    char w[300];
    where(c, type, w, sizeof w);
    if (!ts) return llm_fail(c->err, LLM_ERR_BAD_CONFIG, "%s: \"rope_type\" must be a string", w);
    if (strcmp(ts, "default") == 0) return LLM_OK;
    if (strcmp(ts, "llama3") != 0)
        return llm_fail(c->err, LLM_ERR_UNSUPPORTED,
                        "%s: unsupported rope type \"%s\" (supported: default, llama3)", w, ts);
    hp->rope_kind = LLM_ROPE_LLAMA3;
    hp->rope_factor = -1;
    hp->rope_low_freq_factor = -1;
    hp->rope_high_freq_factor = -1;
    hp->rope_orig_ctx = -1;
    if ((st = get_num(c, scaling, "factor", 1e-6, 1e9, &hp->rope_factor)) != LLM_OK) return st;
    if ((st = get_num(c, scaling, "low_freq_factor", 1e-9, 1e9, &hp->rope_low_freq_factor)) != LLM_OK)
        return st;
    if ((st = get_num(c, scaling, "high_freq_factor", 1e-9, 1e9, &hp->rope_high_freq_factor)) != LLM_OK)
        return st;
    if ((st = get_int(c, scaling, "original_max_position_embeddings", 1, 1, INT32_MAX, &hp->rope_orig_ctx,
                      NULL)) != LLM_OK)
        return st;
    if (hp->rope_factor < 0 || hp->rope_low_freq_factor < 0 || hp->rope_high_freq_factor < 0)
        return llm_fail(c->err, LLM_ERR_BAD_CONFIG,
                        "%s: llama3 rope scaling needs factor, low_freq_factor and high_freq_factor", w);
    if (hp->rope_high_freq_factor == hp->rope_low_freq_factor)
        return llm_fail(c->err, LLM_ERR_BAD_CONFIG,
                        "%s: llama3 rope scaling needs high_freq_factor != low_freq_factor", w);
    return LLM_OK;
}

static const struct {
    const char *class_name;
    const char *model_type;
    llm_arch arch;
} known_archs[] = {
    {"LlamaForCausalLM", "llama", LLM_ARCH_LLAMA},
    {"Qwen2ForCausalLM", "qwen2", LLM_ARCH_QWEN2},
    {"Qwen3ForCausalLM", "qwen3", LLM_ARCH_QWEN3},
};

const char *llm_arch_family(llm_arch arch) {
    for (size_t i = 0; i < sizeof known_archs / sizeof known_archs[0]; i++)
        if (known_archs[i].arch == arch) return known_archs[i].model_type;
    return "?";
}

static llm_status parse_arch(const cfg_ctx *c, const llm_json *root, llm_hparams *hp) {
    const llm_json *archs = llm_json_get(root, "architectures");
    const char *name = NULL;
    const llm_json *at = archs;
    if (!is_null(archs)) {
        if (llm_json_type_of(archs) != LLM_JSON_ARRAY || llm_json_count(archs) == 0 ||
            !(name = llm_json_string(llm_json_value_at(archs, 0), NULL))) {
            char w[300];
            where(c, archs, w, sizeof w);
            return llm_fail(c->err, LLM_ERR_BAD_CONFIG,
                            "%s: \"architectures\" must be a non-empty list of strings", w);
        }
        for (size_t i = 0; i < sizeof known_archs / sizeof known_archs[0]; i++)
            if (strcmp(name, known_archs[i].class_name) == 0) {
                hp->arch = known_archs[i].arch;
                snprintf(hp->architecture, sizeof hp->architecture, "%s", name);
                return LLM_OK;
            }
    } else {
        at = llm_json_get(root, "model_type");
        name = llm_json_string(at, NULL);
        if (!name)
            return llm_fail(c->err, LLM_ERR_BAD_CONFIG,
                            "%s: neither \"architectures\" nor \"model_type\" is given", c->path);
        for (size_t i = 0; i < sizeof known_archs / sizeof known_archs[0]; i++)
            if (strcmp(name, known_archs[i].model_type) == 0) {
                hp->arch = known_archs[i].arch;
                snprintf(hp->architecture, sizeof hp->architecture, "%s", known_archs[i].class_name);
                return LLM_OK;
            }
    }
    char w[300];
    where(c, llm_json_type_of(at) == LLM_JSON_ARRAY ? llm_json_value_at(at, 0) : at, w, sizeof w);
    return llm_fail(c->err, LLM_ERR_UNSUPPORTED,
                    "%s: unsupported architecture \"%.64s\" (supported: LlamaForCausalLM, Qwen2ForCausalLM, "
                    "Qwen3ForCausalLM)",
                    w, name);
}

static llm_status parse_config(const cfg_ctx *c, const llm_json *root, llm_hparams *hp) {
    llm_status st;
    if (llm_json_type_of(root) != LLM_JSON_OBJECT)
        return llm_fail(c->err, LLM_ERR_BAD_CONFIG, "%s: top level is not a JSON object", c->path);
    if ((st = parse_arch(c, root, hp)) != LLM_OK) return st;

    const llm_json *act = llm_json_get(root, "hidden_act");
    const char *acts = llm_json_string(act, NULL);
    if (!is_null(act) && (!acts || strcmp(acts, "silu") != 0)) {
        char w[300];
        where(c, act, w, sizeof w);
        return llm_fail(c->err, LLM_ERR_UNSUPPORTED, "%s: unsupported hidden_act \"%s\" (supported: silu)", w,
                        acts ? acts : "?");
    }
    const int32_t big = 1 << 24;
    if ((st = get_int(c, root, "vocab_size", 1, 1, INT32_MAX / 2, &hp->n_vocab, NULL)) ||
        (st = get_int(c, root, "hidden_size", 1, 1, big, &hp->n_embd, NULL)) ||
        (st = get_int(c, root, "num_hidden_layers", 1, 1, 4096, &hp->n_layer, NULL)) ||
        (st = get_int(c, root, "num_attention_heads", 1, 1, 4096, &hp->n_head, NULL)) ||
        (st = get_int(c, root, "intermediate_size", 1, 1, big, &hp->n_ff, NULL)))
        return st;
    int present = 0;
    hp->n_head_kv = hp->n_head;
    if ((st = get_int(c, root, "num_key_value_heads", 0, 1, 4096, &hp->n_head_kv, NULL))) return st;
    if (hp->n_head % hp->n_head_kv != 0)
        return llm_fail(c->err, LLM_ERR_BAD_CONFIG,
                        "%s: num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)", c->path,
                        hp->n_head, hp->n_head_kv);
    if ((st = get_int(c, root, "head_dim", 0, 2, 65536, &hp->head_dim, &present))) return st;
    if (!present) {
        if (hp->arch == LLM_ARCH_QWEN3) {
            hp->head_dim = 128; /* Qwen3Config's default */
        } else {
            if (hp->n_embd % hp->n_head != 0)
                return llm_fail(
                    c->err, LLM_ERR_BAD_CONFIG,
                    "%s: hidden_size (%d) is not a multiple of num_attention_heads (%d) and no head_dim "
                    "is given",
                    c->path, hp->n_embd, hp->n_head);
            hp->head_dim = hp->n_embd / hp->n_head;
        }
    }
    if (hp->head_dim % 2 != 0)
        return llm_fail(c->err, LLM_ERR_BAD_CONFIG, "%s: head_dim %d is odd; RoPE needs an even head_dim",
                        c->path, hp->head_dim);
    hp->n_ctx_train = hp->arch == LLM_ARCH_LLAMA ? 2048 : 32768;
    if ((st = get_int(c, root, "max_position_embeddings", 0, 1, INT32_MAX, &hp->n_ctx_train, NULL)))
        return st;
    hp->rms_norm_eps = 1e-6;
    if ((st = get_num(c, root, "rms_norm_eps", 0.0, 1.0, &hp->rms_norm_eps))) return st;
    hp->rope_theta = hp->arch == LLM_ARCH_LLAMA ? 10000.0 : 10000.0;
    if ((st = parse_rope(c, root, hp))) return st;

    hp->tied_embeddings = 0;
    if ((st = get_bool(c, root, "tie_word_embeddings", &hp->tied_embeddings))) return st;
    int attention_bias = 0, mlp_bias = 0, sliding = 0;
    if ((st = get_bool(c, root, "attention_bias", &attention_bias))) return st;
    if ((st = get_bool(c, root, "mlp_bias", &mlp_bias))) return st;
    if ((st = get_bool(c, root, "use_sliding_window", &sliding))) return st;
    if (sliding)
        return llm_fail(c->err, LLM_ERR_UNSUPPORTED, "%s: use_sliding_window=true is not supported yet",
                        c->path);
    switch (hp->arch) {
    case LLM_ARCH_LLAMA: /* LlamaAttention: bias=attention_bias on q, k, v and o; LlamaMLP: bias=mlp_bias */
        hp->qkv_bias = hp->o_bias = attention_bias;
        hp->mlp_bias = mlp_bias;
        break;
    case LLM_ARCH_QWEN2: /* Qwen2Attention: q, k, v always biased, o never */
        hp->qkv_bias = 1;
        hp->o_bias = 0;
        break;
    case LLM_ARCH_QWEN3: /* Qwen3Attention: bias=attention_bias on q, k, v and o; per-head q/k RMSNorm */
        hp->qkv_bias = hp->o_bias = attention_bias;
        hp->qk_norm = 1;
        break;
    }
    const llm_json *dt = llm_json_get(root, "dtype");
    if (is_null(dt)) dt = llm_json_get(root, "torch_dtype");
    const char *dts = llm_json_string(dt, NULL);
    snprintf(hp->config_dtype, sizeof hp->config_dtype, "%s", dts ? dts : "");

    hp->bos_token_id = -1;
    int32_t bos[LLM_MAX_EOS_TOKENS], nb = 0;
    if ((st = get_token_list(c, root, "bos_token_id", bos, &nb, &present))) return st;
    if (present && nb > 0) hp->bos_token_id = bos[0];
    if ((st = get_token_list(c, root, "eos_token_id", hp->eos_token_ids, &hp->n_eos, &present))) return st;
    return LLM_OK;
}

static llm_status parse_generation_config(const cfg_ctx *c, const llm_json *root, llm_hparams *hp) {
    if (llm_json_type_of(root) != LLM_JSON_OBJECT)
        return llm_fail(c->err, LLM_ERR_BAD_CONFIG, "%s: top level is not a JSON object", c->path);
    int32_t ids[LLM_MAX_EOS_TOKENS] = {0}, n = 0;
    int present = 0;
    llm_status st = get_token_list(c, root, "eos_token_id", ids, &n, &present);
    if (st) return st;
    if (present) {
        memcpy(hp->eos_token_ids, ids, sizeof ids);
        hp->n_eos = n;
    }
    st = get_token_list(c, root, "bos_token_id", ids, &n, &present);
    if (st) return st;
    if (present && n > 0) hp->bos_token_id = ids[0];
    return LLM_OK;
}

typedef llm_status (*json_file_fn)(const cfg_ctx *c, const llm_json *root, llm_hparams *hp);

static llm_status load_json_file(const char *dir, const char *name, int optional, json_file_fn fn,
                                 llm_hparams *hp, llm_error *err) {
    char path[4096];
    if (llm_path_join(path, sizeof path, dir, name) != 0)
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "model directory path is too long");
    if (optional && !llm_file_exists(path)) return LLM_OK;
    char *text = NULL;
    size_t len = 0;
    llm_status st = llm_read_file(path, LLM_CONFIG_MAX_BYTES, &text, &len, err);
    if (st != LLM_OK) return st;
    llm_json_doc *doc = NULL;
    char jerr[300];
    if (llm_json_parse(text, len, &doc, jerr, sizeof jerr) != 0) {
        free(text);
        return llm_fail(err, LLM_ERR_BAD_JSON, "%s: %s", path, jerr);
    }
    cfg_ctx c = {path, text, len, err};
    st = fn(&c, llm_json_root(doc), hp);
    llm_json_doc_free(doc);
    free(text);
    return st;
}

llm_status llm_hparams_load(const char *dir, llm_hparams *hp, llm_error *err) {
    memset(hp, 0, sizeof *hp);
    llm_status st = load_json_file(dir, "config.json", 0, parse_config, hp, err);
    if (st != LLM_OK) return st;
    return load_json_file(dir, "generation_config.json", 1, parse_generation_config, hp, err);
}
