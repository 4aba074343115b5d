/* Writing an llm_model as a GGUF file that llama.cpp loads: its key names and types (uint32 dimensions,
 * float32 epsilon and base), its tensor names, reversed dims, F32 vectors, Llama's permuted Q/K rows
 * and Llama 3.1 RoPE scaling as the rope_freqs tensor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "model/model_gguf.h"
#include "tokenizer/tok_gguf.h"

/* llama.cpp's llama_ftype values for general.file_type (informational to llama.cpp) */
enum {
    FTYPE_ALL_F32 = 0,
    FTYPE_MOSTLY_F16 = 1,
    FTYPE_MOSTLY_Q8_0 = 7,
    FTYPE_MOSTLY_Q4_K_S = 14,
    FTYPE_MOSTLY_BF16 = 32
};

typedef struct writer {
    llm_gguf_writer *w;
    llm_model *m;
    const llm_gguf_write_params *params;
    void **owned; /* buffers the writer borrows until finish */
    size_t n_owned, cap_owned;
    llm_error *err;
} writer;

static void *own(writer *wr, size_t bytes) {
    if (wr->n_owned == wr->cap_owned) {
        size_t cap = wr->cap_owned ? 2 * wr->cap_owned : 64;
        void **g = realloc(wr->owned, cap * sizeof *g);
        if (!g) return NULL;
        wr->owned = g;
        wr->cap_owned = cap;
    }
    void *p = malloc(bytes ? bytes : 1);
    if (p) wr->owned[wr->n_owned++] = p;
    return p;
}

static llm_status u32(writer *wr, const char *arch, const char *suffix, int64_t v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return llm_gguf_writer_add_u32(wr->w, key, (uint32_t)v, wr->err);
}

static llm_status f32(writer *wr, const char *arch, const char *suffix, double v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return llm_gguf_writer_add_f32(wr->w, key, (float)v, wr->err);
}

static uint32_t file_type(const llm_model *m) {
    llm_dtype main = LLM_DTYPE_F32;
    for (int d = 0; d < LLM_DTYPE_COUNT; d++)
        if (m->bytes_by_dtype[d] > m->bytes_by_dtype[main]) main = (llm_dtype)d;
    switch (main) {
    case LLM_DTYPE_F16:
        return FTYPE_MOSTLY_F16;
    case LLM_DTYPE_BF16:
        return FTYPE_MOSTLY_BF16;
    case LLM_DTYPE_Q8_0:
        return FTYPE_MOSTLY_Q8_0;
    case LLM_DTYPE_Q4_K:
        return FTYPE_MOSTLY_Q4_K_S;
    default:
        return FTYPE_ALL_F32;
    }
}

static llm_status write_hparams(writer *wr, const char *name) {
    const llm_hparams *hp = &wr->m->hp;
    const char *arch = llm_arch_family(hp->arch);
    llm_status st = llm_gguf_writer_add_string(wr->w, "general.architecture", arch, strlen(arch), wr->err);
    if (st == LLM_OK) st = llm_gguf_writer_add_string(wr->w, "general.name", name, strlen(name), wr->err);
    if (st == LLM_OK) st = llm_gguf_writer_add_u32(wr->w, "general.file_type", file_type(wr->m), wr->err);
    int quantized = wr->m->bytes_by_dtype[LLM_DTYPE_Q8_0] || wr->m->bytes_by_dtype[LLM_DTYPE_Q4_K];
    if (st == LLM_OK && quantized) /* the block layouts of ggml's quantization version 2 */
        st = llm_gguf_writer_add_u32(wr->w, "general.quantization_version", 2, wr->err);
    if (st == LLM_OK) st = u32(wr, arch, "vocab_size", hp->n_vocab);
    if (st == LLM_OK) st = u32(wr, arch, "context_length", hp->n_ctx_train);
    if (st == LLM_OK) st = u32(wr, arch, "embedding_length", hp->n_embd);
    if (st == LLM_OK) st = u32(wr, arch, "block_count", hp->n_layer);
    if (st == LLM_OK) st = u32(wr, arch, "feed_forward_length", hp->n_ff);
    if (st == LLM_OK) st = u32(wr, arch, "attention.head_count", hp->n_head);
    if (st == LLM_OK) st = u32(wr, arch, "attention.head_count_kv", hp->n_head_kv);
    if (st == LLM_OK) st = u32(wr, arch, "attention.key_length", hp->head_dim);
    if (st == LLM_OK) st = u32(wr, arch, "attention.value_length", hp->head_dim);
    if (st == LLM_OK) st = u32(wr, arch, "rope.dimension_count", hp->head_dim);
    if (st == LLM_OK) st = f32(wr, arch, "rope.freq_base", hp->rope_theta);
    if (st == LLM_OK) st = f32(wr, arch, "attention.layer_norm_rms_epsilon", hp->rms_norm_eps);
    if (st == LLM_OK && hp->rope_kind == LLM_ROPE_LINEAR) {
        char key[128];
        snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
        st = llm_gguf_writer_add_string(wr->w, key, "linear", 6, wr->err);
        if (st == LLM_OK) st = f32(wr, arch, "rope.scaling.factor", hp->rope_factor);
    }
    return st;
}

/* A model without a tokenizer (random weights) still needs a vocabulary of n_vocab tokens, which
 * llama.cpp requires to match the embedding: the 256 byte-level symbols of GPT-2's byte-to-unicode
 * map (so any text tokenizes, one token per byte, with no merges), the BOS/EOS ids as control tokens,
 * and "[PAD<id>]" unused tokens for the rest. */
static size_t byte_symbol(unsigned b, char *out) {
    unsigned cp = b;
    if (!((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff))) {
        /* bytes GPT-2 moves out of the way: 256 + their rank among such bytes */
        unsigned rank = 0;
        for (unsigned x = 0; x < b; x++)
            rank += !((x >= 0x21 && x <= 0x7e) || (x >= 0xa1 && x <= 0xac) || (x >= 0xae && x <= 0xff));
        cp = 256 + rank;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
}

static llm_status write_byte_vocab(writer *wr) {
    const llm_hparams *hp = &wr->m->hp;
    const int32_t n = hp->n_vocab;
    char **tokens = own(wr, (size_t)n * sizeof *tokens);
    int32_t *types = own(wr, (size_t)n * sizeof *types);
    char *text = own(wr, (size_t)n * 24);
    if (!tokens || !types || !text) return llm_fail(wr->err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    for (int32_t i = 0; i < n; i++) {
        char *t = text + (size_t)i * 24;
        tokens[i] = t;
        int special = i == hp->bos_token_id;
        for (int k = 0; k < hp->n_eos; k++) special |= i == hp->eos_token_ids[k];
        if (i < 256 && !special) {
            t[byte_symbol((unsigned)i, t)] = '\0';
            types[i] = 1; /* normal */
        } else if (special) {
            snprintf(t, 24, "<|special_%d|>", i);
            types[i] = 3; /* control */
        } else {
            snprintf(t, 24, "[PAD%d]", i);
            types[i] = 5; /* unused */
        }
    }
    llm_status st = llm_gguf_writer_add_string(wr->w, "tokenizer.ggml.model", "gpt2", 4, wr->err);
    if (st == LLM_OK) st = llm_gguf_writer_add_string(wr->w, "tokenizer.ggml.pre", "gpt-2", 5, wr->err);
    if (st == LLM_OK)
        st = llm_gguf_writer_add_str_array(wr->w, "tokenizer.ggml.tokens", (const char *const *)tokens,
                                           (size_t)n, wr->err);
    if (st == LLM_OK)
        st = llm_gguf_writer_add_i32_array(wr->w, "tokenizer.ggml.token_type", types, (size_t)n, wr->err);
    if (st == LLM_OK) st = llm_gguf_writer_add_str_array(wr->w, "tokenizer.ggml.merges", NULL, 0, wr->err);
    if (st == LLM_OK && hp->bos_token_id >= 0)
        st = llm_gguf_writer_add_u32(wr->w, "tokenizer.ggml.bos_token_id", (uint32_t)hp->bos_token_id,
                                     wr->err);
    if (st == LLM_OK && hp->n_eos > 0)
        st = llm_gguf_writer_add_u32(wr->w, "tokenizer.ggml.eos_token_id", (uint32_t)hp->eos_token_ids[0],
                                     wr->err);
    if (st == LLM_OK) st = llm_gguf_writer_add_bool(wr->w, "tokenizer.ggml.add_bos_token", false, wr->err);
    return st;
}

static llm_status write_tokenizer(writer *wr) {
    const llm_model *m = wr->m;
    if (!m->tokenizer) return write_byte_vocab(wr);
    /* the pre-tokenizer names llama.cpp gives these families; a tokenizer whose pipeline is another
     * (e.g. a test model's) is written under the name its pipeline matches */
    const char *pre = m->hp.arch == LLM_ARCH_LLAMA ? "llama-bpe" : "qwen2";
    llm_error probe;
    llm_error_clear(&probe);
    llm_status st = llm_tokenizer_write_gguf_padded(m->tokenizer, wr->w, pre, m->hp.n_vocab, &probe);
    if (st == LLM_ERR_UNSUPPORTED)
        st = llm_tokenizer_write_gguf_padded(m->tokenizer, wr->w, NULL, m->hp.n_vocab, wr->err);
    else if (st != LLM_OK)
        *wr->err = probe;
    return st;
}

/* GGUF type of a tensor as written: vectors in F32 (llama.cpp's converter writes them so and its
 * kernels expect it), matrices as held. */
static llm_status add_tensor(writer *wr, const char *hf_name, const llm_tensor *t, int vector, int permute) {
    char name[96];
    if (llm_gguf_name_from_hf(hf_name, name, sizeof name) != 0)
        return llm_fail(wr->err, LLM_ERR_INTERNAL, "no GGUF name for '%s'", hf_name);
    const int64_t rows = t->rows, cols = t->cols;
    const size_t row_bytes = llm_dtype_row_bytes(t->dtype, cols);
    if (row_bytes == 0)
        return llm_fail(wr->err, LLM_ERR_INTERNAL, "tensor '%s': dtype %s with %lld columns", name,
                        llm_dtype_name(t->dtype), (long long)cols);
    if (vector) {
        const size_t n = (size_t)rows * (size_t)cols;
        float *v = own(wr, n * sizeof *v);
        if (!v) return llm_fail(wr->err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
        llm_dequant_row(t->dtype, t->data, v, (int64_t)n);
        if (permute) { /* a q/k bias moves with its rows (see below) */
            const int64_t hd = wr->m->hp.head_dim, half = hd / 2;
            float *p = own(wr, n * sizeof *p);
            if (!p) return llm_fail(wr->err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
            for (int64_t r = 0; r < (int64_t)n; r++)
                p[r / hd * hd + 2 * (r % hd % half) + r % hd / half] = v[r];
            v = p;
        }
        const uint64_t dims[1] = {(uint64_t)n};
        return llm_gguf_writer_add_tensor(wr->w, name, LLM_GGML_F32, 1, dims, v, n * sizeof *v, wr->err);
    }
    const void *data = t->data;
    const size_t bytes = (size_t)rows * row_bytes;
    if (permute) {
        /* llama.cpp's layout for its adjacent-pair RoPE: within each head of hd rows, row s*hd/2 + i
         * (s = 0, 1) moves to 2i + s. Whole rows move, so any dtype permutes the same way. */
        const int64_t hd = wr->m->hp.head_dim, half = hd / 2;
        unsigned char *p = own(wr, bytes);
        if (!p) return llm_fail(wr->err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
        for (int64_t r = 0; r < rows; r++) {
            const int64_t head = r / hd, within = r % hd, s = within / half, i = within % half;
            const int64_t to = head * hd + 2 * i + s;
            memcpy(p + (size_t)to * row_bytes, (const unsigned char *)t->data + (size_t)r * row_bytes,
                   row_bytes);
        }
        data = p;
    }
    const uint64_t dims[2] = {(uint64_t)cols, (uint64_t)rows};
    return llm_gguf_writer_add_tensor(wr->w, name, (uint32_t)llm_dtype_to_ggml(t->dtype), 2, dims, data,
                                      bytes, wr->err);
}

static llm_status write_tensors(writer *wr) {
    const llm_model *m = wr->m;
    const llm_hparams *hp = &m->hp;
    const llm_weights *w = &m->w;
    llm_status st = LLM_OK;
    if (hp->rope_kind == LLM_ROPE_LLAMA3 || hp->rope_kind == LLM_ROPE_FREQ_FACTORS) {
        const int half = hp->head_dim / 2;
        float *f = own(wr, (size_t)half * sizeof *f);
        if (!f) return llm_fail(wr->err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
        if (hp->rope_kind == LLM_ROPE_LLAMA3)
            llm_rope_llama3_factors(hp, f);
        else
            memcpy(f, hp->rope_freq_factors, (size_t)half * sizeof *f);
        const uint64_t dims[1] = {(uint64_t)half};
        st = llm_gguf_writer_add_tensor(wr->w, "rope_freqs.weight", LLM_GGML_F32, 1, dims, f,
                                        (size_t)half * sizeof *f, wr->err);
    }
    if (st == LLM_OK) st = add_tensor(wr, "model.embed_tokens.weight", &w->tok_embd, 0, 0);
    /* a Hugging Face Llama is permuted on the way out; one read from GGUF already is */
    const int permute = hp->arch == LLM_ARCH_LLAMA && !hp->rope_interleaved;
    char n[160];
    for (int l = 0; l < hp->n_layer && st == LLM_OK; l++) {
        const llm_layer_weights *L = &w->layers[l];
        const struct {
            const char *suffix;
            const llm_tensor *t;
            int vector, permute;
        } list[] = {
            {"input_layernorm.weight", &L->attn_norm, 1, 0},
            {"self_attn.q_proj.weight", &L->wq, 0, permute},
            {"self_attn.k_proj.weight", &L->wk, 0, permute},
            {"self_attn.v_proj.weight", &L->wv, 0, 0},
            {"self_attn.o_proj.weight", &L->wo, 0, 0},
            {"self_attn.q_proj.bias", &L->bq, 1, permute},
            {"self_attn.k_proj.bias", &L->bk, 1, permute},
            {"self_attn.v_proj.bias", &L->bv, 1, 0},
            {"self_attn.o_proj.bias", &L->bo, 1, 0},
            {"self_attn.q_norm.weight", &L->q_norm, 1, 0},
            {"self_attn.k_norm.weight", &L->k_norm, 1, 0},
            {"post_attention_layernorm.weight", &L->ffn_norm, 1, 0},
            {"mlp.gate_proj.weight", &L->w_gate, 0, 0},
            {"mlp.up_proj.weight", &L->w_up, 0, 0},
            {"mlp.down_proj.weight", &L->w_down, 0, 0},
            {"mlp.gate_proj.bias", &L->b_gate, 1, 0},
            {"mlp.up_proj.bias", &L->b_up, 1, 0},
            {"mlp.down_proj.bias", &L->b_down, 1, 0},
        };
        for (size_t i = 0; i < sizeof list / sizeof list[0] && st == LLM_OK; i++) {
            if (!list[i].t->data) continue;
            snprintf(n, sizeof n, "model.layers.%d.%s", l, list[i].suffix);
            st = add_tensor(wr, n, list[i].t, list[i].vector, list[i].permute);
        }
        if (wr->params && wr->params->progress_fn)
            wr->params->progress_fn((float)(l + 1) / (float)hp->n_layer, wr->params->progress_user_data);
    }
    if (st == LLM_OK) st = add_tensor(wr, "model.norm.weight", &w->output_norm, 1, 0);
    if (st == LLM_OK && !hp->tied_embeddings) st = add_tensor(wr, "lm_head.weight", &w->output, 0, 0);
    return st;
}

llm_status llm_model_write_gguf(llm_model *m, const char *path, const llm_gguf_write_params *params,
                                llm_error *err) {
    if (!m || !path) return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "NULL model or path");
    if (m->backend != LLM_BACKEND_CPU)
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT,
                        "writing GGUF needs the weights in host memory: load the model with the CPU backend");
    writer wr = {.m = m, .params = params, .err = err};
    llm_status st = llm_gguf_writer_create(path, &wr.w, err);
    if (st != LLM_OK) return st;
    const char *name = params && params->name ? params->name : m->hp.architecture;
    st = write_hparams(&wr, name);
    if (st == LLM_OK) st = write_tokenizer(&wr);
    if (st == LLM_OK) st = write_tensors(&wr);
    if (st == LLM_OK)
        st = llm_gguf_writer_finish(wr.w, err); /* frees the writer whatever happens */
    else
        llm_gguf_writer_free(wr.w);
    for (size_t i = 0; i < wr.n_owned; i++) free(wr.owned[i]);
    free(wr.owned);
    return st;
}
