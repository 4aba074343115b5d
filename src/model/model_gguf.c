/* Loading a GGUF model file: hyper-parameters (model_gguf_hparams.c), every tensor bound in place from
 * the file's map through the same llm_model_bind as a safetensors directory, and the embedded tokenizer
 * and chat template. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "model/model_gguf.h"
#include "tokenizer/tok_gguf.h"

typedef struct gguf_source {
    llm_tensor_source base;
    llm_model *m;
    unsigned char *used; /* per tensor of the file, in file order */
} gguf_source;

static const char *type_name(uint32_t t) {
    const char *n = llm_ggml_type_name(t);
    return n ? n : "unknown";
}

/* Index of t in the file's tensor list (t points into it). */
static size_t tensor_index(const llm_gguf *g, const llm_gguf_tensor *t) {
    return (size_t)(t - llm_gguf_tensor_at(g, 0));
}

/* Row alignment the kernels may rely on: the widest scalar they load (f32: 4, the f16 scales and
 * 16-bit values of the others: 2). */
static size_t required_alignment(llm_dtype d) {
    return d == LLM_DTYPE_F32 ? 4 : llm_dtype_is_quant(d) ? 1 : 2; /* quant blocks: read by memcpy */
}

static llm_status gguf_get(llm_tensor_source *src, llm_tensor *out, const char *hf_name, int64_t rows,
                           int64_t cols, llm_error *err) {
    gguf_source *s = (gguf_source *)src;
    llm_model *m = s->m;
    const llm_gguf *g = m->gguf;
    const char *path = llm_gguf_path(g);
    char name[96];
    if (llm_gguf_name_from_hf(hf_name, name, sizeof name) != 0)
        return llm_fail(err, LLM_ERR_INTERNAL, "no GGUF name for tensor '%s'", hf_name);
    const llm_gguf_tensor *t = llm_gguf_find_tensor(g, name);
    if (!t) {
        if (rows)
            return llm_fail(err, LLM_ERR_MISSING_TENSOR,
                            "%s: required tensor '%s' [%lld, %lld] (GGUF order) is missing", path, name,
                            (long long)cols, (long long)rows);
        return llm_fail(err, LLM_ERR_MISSING_TENSOR, "%s: required tensor '%s' [%lld] is missing", path, name,
                        (long long)cols);
    }
    /* GGUF lists dims fastest first: a [rows][cols] matrix is [cols, rows] */
    const int shape_ok =
        rows ? (t->n_dims == 2 && t->dims[0] == (uint64_t)cols && t->dims[1] == (uint64_t)rows)
             : (t->n_dims == 1 && t->dims[0] == (uint64_t)cols);
    if (!shape_ok) {
        char got[128] = "";
        size_t pos = 0;
        for (int d = 0; d < t->n_dims; d++)
            pos += (size_t)snprintf(got + pos, sizeof got - pos, "%s%llu", d ? ", " : "",
                                    (unsigned long long)t->dims[d]);
        char want[64];
        if (rows)
            snprintf(want, sizeof want, "%lld, %lld", (long long)cols, (long long)rows);
        else
            snprintf(want, sizeof want, "%lld", (long long)cols);
        return llm_fail(
            err, LLM_ERR_SHAPE_MISMATCH,
            "%s: tensor '%s' (data at byte %llu) has dims [%s], expected [%s] (GGUF order, columns "
            "first)",
            path, name, (unsigned long long)t->file_offset, got, want);
    }
    llm_dtype dt = LLM_DTYPE_F32;
    if (!llm_dtype_from_ggml(t->type, &dt))
        return llm_fail(err, LLM_ERR_UNSUPPORTED,
                        "%s: tensor '%s' (data at byte %llu) has type %s, which llamac does not compute with "
                        "(supported: F32, F16, BF16, Q8_0, Q4_K)",
                        path, name, (unsigned long long)t->file_offset, type_name(t->type));
    if (!rows && (dt == LLM_DTYPE_Q8_0 || dt == LLM_DTYPE_Q4_K))
        return llm_fail(
            err, LLM_ERR_DTYPE_MISMATCH,
            "%s: tensor '%s' (data at byte %llu) is a vector of type %s; norms and biases must be "
            "F32, F16 or BF16",
            path, name, (unsigned long long)t->file_offset, type_name(t->type));
    const void *data = t->data;
    if ((uintptr_t)data % required_alignment(dt) != 0) {
        /* legal only with a general.alignment below the element size: keep an aligned private copy */
        void **grown = realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *grown);
        void *copy = NULL;
        if (grown) m->owned = grown;
        if (!grown || posix_memalign(&copy, LLM_ARENA_ALIGN, t->n_bytes ? (size_t)t->n_bytes : 1) != 0)
            return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory copying misaligned tensor '%s'", name);
        memcpy(copy, data, (size_t)t->n_bytes);
        m->owned[m->n_owned++] = copy;
        data = copy;
    }
    out->data = data;
    out->dtype = dt;
    out->rows = rows ? rows : 1;
    out->cols = cols;
    out->name = t->name;
    const size_t idx = tensor_index(g, t);
    if (!s->used[idx]) {
        s->used[idx] = 1;
        m->n_params += t->n_elems;
        m->n_tensors++;
        m->weight_bytes += t->n_bytes;
        m->bytes_by_dtype[dt] += t->n_bytes;
    }
    return LLM_OK;
}

/* Tensors the architecture does not use: reported, not fatal (rope_freqs was read as hyper-parameters). */
static void report_unexpected(const gguf_source *s) {
    const llm_gguf *g = s->m->gguf;
    int total = 0;
    for (size_t i = 0; i < llm_gguf_tensor_count(g); i++) {
        const char *name = llm_gguf_tensor_at(g, i)->name;
        if (s->used[i] || strcmp(name, "rope_freqs.weight") == 0) continue;
        if (total++ < 8)
            llm_log(&s->m->log, LLM_LOG_WARN, "%s: unexpected tensor '%s' is not used by %s",
                    llm_gguf_path(g), name, s->m->hp.architecture);
    }
    if (total > 8) llm_log(&s->m->log, LLM_LOG_WARN, "%d more unexpected tensors not listed", total - 8);
}

/* GGUF records one EOS id (and maybe EOT/EOM), where a Hugging Face generation_config lists every
 * token that ends a turn (Llama 3.1 Instruct: <|end_of_text|>, <|eom_id|>, <|eot_id|>; Qwen:
 * <|im_end|>, <|endoftext|>). llama.cpp recovers them by name; so do we, so that generation from a GGUF
 * copy stops where it stops from the original directory. */
static void add_end_tokens(llm_model *m) {
    static const char *const names[] = {"<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<|im_end|>",
                                        "<|endoftext|>"};
    llm_hparams *hp = &m->hp;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const int32_t id = llm_tokenizer_token_id(m->tokenizer, names[i], strlen(names[i]));
        if (id < 0 || id >= hp->n_vocab) continue;
        int dup = 0;
        for (int k = 0; k < hp->n_eos; k++) dup |= hp->eos_token_ids[k] == id;
        if (!dup && hp->n_eos < LLM_MAX_EOS_TOKENS) hp->eos_token_ids[hp->n_eos++] = id;
    }
}

/* The tokenizer (tokenizer.ggml.*) and chat template embedded in the file, when there is one. */
static llm_status load_text(llm_model *m, llm_error *err) {
    if (llm_gguf_find_key(m->gguf, "tokenizer.ggml.model") < 0) return LLM_OK;
    llm_tokenizer_params tp = llm_tokenizer_default_params();
    tp.log_fn = m->log.fn;
    tp.log_user_data = m->log.user_data;
    tp.log_level = m->log.level;
    llm_status st = llm_tokenizer_from_gguf(m->gguf, &tp, &m->tokenizer, err);
    if (st != LLM_OK) return st;
    add_end_tokens(m);
    return llm_model_parse_chat_template(m, llm_gguf_path(m->gguf));
}

llm_status llm_model_load_gguf(llm_model *m, const char *path, llm_error *err) {
    llm_status st = llm_gguf_open(path, &m->gguf, err);
    if (st == LLM_OK) st = llm_gguf_read_hparams(m->gguf, &m->hp, err);
    if (st != LLM_OK) return st;
    gguf_source s = {{gguf_get}, m, calloc(llm_gguf_tensor_count(m->gguf) + 1, 1)};
    if (!s.used) return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    st = llm_model_bind(m, &s.base, err);
    if (st == LLM_OK) report_unexpected(&s);
    free(s.used);
    if (st == LLM_OK) st = load_text(m, err);
    return st;
}
