/* llm_model: loading a Hugging Face model directory and binding its tensors. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/arena.h"
#include "core/fileutil.h"
#include "core/json.h"
#include "backend/cuda/cuda_backend.h"
#include "model/model_gguf.h"
#include "model/model_internal.h"

#define LLM_INDEX_MAX_BYTES (64u * 1024u * 1024u)
/* tensor_index values pack (file, tensor within file) into a non-negative int: 11 bits of file, 20 of tensor
 * (2047 << 20 | 0xfffff == INT_MAX). A 100 MB header can hold about 2M tensors, so add_file checks the limit.
 */
#define LLM_TENSOR_BITS          20
#define LLM_MAX_TENSORS_PER_FILE (1 << LLM_TENSOR_BITS)
#define LLM_MAX_SHARDS           2048
#define TI_MAKE(f, t)            (((f) << LLM_TENSOR_BITS) | (int)(t))
#define TI_FILE(v)               ((v) >> LLM_TENSOR_BITS)
#define TI_TENSOR(v)             ((v) & (LLM_MAX_TENSORS_PER_FILE - 1))

llm_model_params llm_model_default_params(void) {
    llm_model_params p;
    memset(&p, 0, sizeof p);
    p.backend = LLM_BACKEND_AUTO;
    p.n_threads = 0;
    p.memory_limit_bytes = 0;
    p.log_level = LLM_LOG_INFO;
    return p;
}

const char *llm_model_last_error(const llm_model *model) {
    return model ? model->last_error : "";
}

void llm_model_free(llm_model *model) {
    if (!model) return;
    LLM_ASSERT(model->n_engines == 0 && "engines must be freed before their model");
    for (int i = 0; i < model->n_files; i++) llm_st_close(&model->files[i]);
    free(model->files);
    llm_strmap_free(&model->tensor_index);
    llm_gguf_close(model->gguf);
    for (int i = 0; i < model->n_owned; i++) free(model->owned[i]);
    free(model->owned);
    free(model->w.layers);
    if (model->weight_block) munmap(model->weight_block, model->weight_block_bytes);
    free(model->tensor_names);
    llm_model_free_text(model);
    llm_cuda_store_free(model->cuda_store);
    free(model);
}

/* ---- opening the files ---------------------------------------------------------------------- */

static llm_status add_file(llm_model *m, const char *path, llm_error *err) {
    llm_st_file *grown = realloc(m->files, (size_t)(m->n_files + 1) * sizeof *grown);
    if (!grown) return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    m->files = grown;
    llm_status st = llm_st_open(path, &m->files[m->n_files], err);
    if (st != LLM_OK) return st;
    if (m->files[m->n_files].n_tensors > LLM_MAX_TENSORS_PER_FILE) {
        size_t n = m->files[m->n_files].n_tensors;
        llm_st_close(&m->files[m->n_files]);
        return llm_fail(err, LLM_ERR_UNSUPPORTED, "%s: %zu tensors in one file, at most %d supported", path,
                        n, LLM_MAX_TENSORS_PER_FILE);
    }
    m->n_files++;
    return LLM_OK;
}

/* A shard name from the index must be a plain file name inside the model directory. */
static int plain_file_name(const char *s, size_t len) {
    if (len == 0 || len > 255 || memchr(s, '/', len) || memchr(s, '\\', len) || memchr(s, '\0', len))
        return 0;
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.')) return 0;
    return 1;
}

static llm_status open_sharded(llm_model *m, const char *dir, const char *index_path, llm_error *err) {
    char *text = NULL;
    size_t len = 0;
    llm_status st = llm_read_file(index_path, LLM_INDEX_MAX_BYTES, &text, &len, err);
    if (st != LLM_OK) return st;
    llm_json_doc *doc = NULL;
    char jerr[300];
    if (llm_json_parse(text, len, &doc, jerr, sizeof jerr) != 0) {
        free(text);
        return llm_fail(err, LLM_ERR_BAD_JSON, "%s: %s", index_path, jerr);
    }
    const llm_json *map = llm_json_get(llm_json_root(doc), "weight_map");
    st = LLM_OK;
    if (llm_json_type_of(map) != LLM_JSON_OBJECT) {
        st = llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: \"weight_map\" is missing or not an object", index_path);
        goto done;
    }
    const size_t n = llm_json_count(map);
    if (n == 0) {
        st = llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: \"weight_map\" is empty", index_path);
        goto done;
    }
    /* Open each distinct shard once, in order of first mention. */
    for (size_t i = 0; i < n && st == LLM_OK; i++) {
        const llm_json *v = llm_json_value_at(map, i);
        size_t flen = 0;
        const char *fname = llm_json_string(v, &flen);
        /* v's line:col, computed only on the way to an error: it scans the text up to v, so doing it for
         * every entry would make a large index quadratic */
        int line = 0, col = 0;
        if (!fname || !plain_file_name(fname, flen)) {
            llm_json_line_col(text, len, llm_json_offset(v), &line, &col);
            size_t klen = 0;
            const char *key = llm_json_key_at(map, i, &klen);
            if (!fname)
                st = llm_fail(err, LLM_ERR_BAD_FORMAT,
                              "%s:%d:%d: shard of tensor '%.*s' is a %s, not a file name", index_path, line,
                              col, (int)(klen > 200 ? 200 : klen), key,
                              llm_json_type_name(llm_json_type_of(v)));
            else
                st = llm_fail(
                    err, LLM_ERR_BAD_FORMAT,
                    "%s:%d:%d: shard \"%.*s\" of tensor '%.*s' must be a plain file name in the model "
                    "directory",
                    index_path, line, col, (int)(flen > 200 ? 200 : flen), fname,
                    (int)(klen > 200 ? 200 : klen), key);
            break;
        }
        int seen = 0;
        for (int f = 0; f < m->n_files && !seen; f++) {
            const char *base = strrchr(m->files[f].path, '/');
            seen = strcmp(base ? base + 1 : m->files[f].path, fname) == 0;
        }
        if (seen) continue;
        if (m->n_files >= LLM_MAX_SHARDS) {
            st = llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: more than %d shards", index_path, LLM_MAX_SHARDS);
            break;
        }
        char path[4096];
        if (llm_path_join(path, sizeof path, dir, fname) != 0) {
            st = llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "model directory path is too long");
            break;
        }
        if (!llm_file_exists(path)) {
            llm_json_line_col(text, len, llm_json_offset(v), &line, &col);
            st = llm_fail(err, LLM_ERR_NOT_FOUND, "%s:%d:%d: shard \"%s\" listed in the index does not exist",
                          index_path, line, col, fname);
            break;
        }
        st = add_file(m, path, err);
    }
    if (st != LLM_OK) goto done;
    /* Build the name index, then check the index agrees with the shards' own headers. */
    st = LLM_OK;
done:
    if (st == LLM_OK) {
        /* Stash the map for verification after indexing: re-walk it here while the doc is alive. */
        llm_strmap tmp;
        if (llm_strmap_init(&tmp, 64) != 0) st = llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
        llm_strmap_free(&tmp);
    }
    if (st == LLM_OK) {
        /* index tensors now so that every weight_map entry can be checked against its shard */
        size_t total = 0;
        for (int f = 0; f < m->n_files; f++) total += m->files[f].n_tensors;
        if (llm_strmap_init(&m->tensor_index, total) != 0) {
            st = llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
        }
        for (int f = 0; f < m->n_files && st == LLM_OK; f++)
            for (size_t t = 0; t < m->files[f].n_tensors && st == LLM_OK; t++) {
                int prev = llm_strmap_put(&m->tensor_index, m->files[f].tensors[t].name, TI_MAKE(f, t));
                if (prev == -2) st = llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
                if (prev >= 0)
                    st =
                        llm_fail(err, LLM_ERR_BAD_FORMAT, "tensor '%s' appears in both %s and %s",
                                 m->files[f].tensors[t].name, m->files[TI_FILE(prev)].path, m->files[f].path);
            }
        for (size_t i = 0; i < n && st == LLM_OK; i++) {
            size_t klen = 0;
            const char *key = llm_json_key_at(map, i, &klen);
            const char *fname = llm_json_string(llm_json_value_at(map, i), NULL);
            char name[512];
            if (klen >= sizeof name) {
                st = llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: tensor name of %zu bytes is too long", index_path,
                              klen);
                break;
            }
            memcpy(name, key, klen);
            name[klen] = '\0';
            int where = llm_strmap_get(&m->tensor_index, name);
            const char *actual = where >= 0 ? m->files[TI_FILE(where)].path : NULL;
            if (actual && strrchr(actual, '/')) actual = strrchr(actual, '/') + 1;
            if (!actual || strcmp(actual, fname) != 0)
                st = llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: weight_map says tensor '%s' is in %s, but %s%s",
                              index_path, name, fname, actual ? "it is in " : "no shard has it",
                              actual ? actual : "");
        }
    }
    llm_json_doc_free(doc);
    free(text);
    return st;
}

static llm_status open_weights(llm_model *m, const char *dir, llm_error *err) {
    char single[4096], index[4096];
    if (llm_path_join(single, sizeof single, dir, "model.safetensors") != 0 ||
        llm_path_join(index, sizeof index, dir, "model.safetensors.index.json") != 0)
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "model directory path is too long");
    if (llm_file_exists(single)) {
        llm_status st = add_file(m, single, err);
        if (st != LLM_OK) return st;
        if (llm_strmap_init(&m->tensor_index, m->files[0].n_tensors) != 0)
            return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
        for (size_t t = 0; t < m->files[0].n_tensors; t++) {
            int prev = llm_strmap_put(&m->tensor_index, m->files[0].tensors[t].name, TI_MAKE(0, t));
            if (prev == -2) return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
            if (prev >= 0)
                return llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: tensor '%s' is listed twice in the header",
                                single, m->files[0].tensors[t].name);
        }
        return LLM_OK;
    }
    if (llm_file_exists(index)) return open_sharded(m, dir, index, err);
    return llm_fail(err, LLM_ERR_NOT_FOUND,
                    "%s: neither model.safetensors nor model.safetensors.index.json exists", dir);
}

/* ---- binding tensors -------------------------------------------------------------------------- */

/* The safetensors files as a tensor source. */
typedef struct bind_ctx {
    llm_tensor_source base;
    llm_model *m;
    unsigned char *used; /* per global tensor: bound? [file][tensor] flattened */
    size_t *file_base;   /* flattened index of each file's first tensor */
} bind_ctx;

static llm_dtype dtype_from_st(const char *s, int *ok) {
    *ok = 1;
    if (strcmp(s, "F32") == 0) return LLM_DTYPE_F32;
    if (strcmp(s, "BF16") == 0) return LLM_DTYPE_BF16;
    if (strcmp(s, "F16") == 0) return LLM_DTYPE_F16;
    *ok = 0;
    return LLM_DTYPE_F32;
}

/* Binds `name`, checking shape ([rows][cols], or [cols] when rows == 0) and dtype. */
static llm_status bind(llm_tensor_source *src, llm_tensor *out, const char *name, int64_t rows, int64_t cols,
                       llm_error *err) {
    bind_ctx *b = (bind_ctx *)src;
    llm_model *m = b->m;
    int where = llm_strmap_get(&m->tensor_index, name);
    if (where < 0) {
        const char *from = m->n_files == 1 ? m->files[0].path : "any shard";
        if (rows)
            return llm_fail(err, LLM_ERR_MISSING_TENSOR,
                            "required tensor '%s' [%lld, %lld] is missing from %s", name, (long long)rows,
                            (long long)cols, from);
        return llm_fail(err, LLM_ERR_MISSING_TENSOR, "required tensor '%s' [%lld] is missing from %s", name,
                        (long long)cols, from);
    }
    const llm_st_file *f = &m->files[TI_FILE(where)];
    const llm_st_tensor *t = &f->tensors[TI_TENSOR(where)];
    int ok;
    llm_dtype dt = dtype_from_st(t->dtype, &ok);
    if (!ok)
        return llm_fail(err, LLM_ERR_DTYPE_MISMATCH,
                        "%s: tensor '%s' has dtype %s; expected BF16, F16 or F32", f->path, name, t->dtype);
    int shape_ok = rows ? (t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols)
                        : (t->n_dims == 1 && t->shape[0] == cols);
    if (!shape_ok) {
        char got[160] = "";
        size_t pos = 0;
        for (int i = 0; i < t->n_dims && pos < sizeof got - 24; i++)
            pos += (size_t)snprintf(got + pos, sizeof got - pos, "%s%lld", i ? ", " : "",
                                    (long long)t->shape[i]);
        if (rows)
            return llm_fail(err, LLM_ERR_SHAPE_MISMATCH,
                            "%s: tensor '%s' has shape [%s], expected [%lld, %lld]", f->path, name, got,
                            (long long)rows, (long long)cols);
        return llm_fail(err, LLM_ERR_SHAPE_MISMATCH, "%s: tensor '%s' has shape [%s], expected [%lld]",
                        f->path, name, got, (long long)cols);
    }
    const void *data = t->data;
    size_t bytes = t->end - t->begin;
    if (((uintptr_t)data % (uintptr_t)t->elem_size) != 0) {
        /* Misaligned in the file (legal in safetensors): keep an aligned private copy. */
        void **grown = realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *grown);
        void *copy = NULL;
        if (!grown || posix_memalign(&copy, LLM_ARENA_ALIGN, bytes ? bytes : 1) != 0) {
            if (grown) m->owned = grown;
            return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory copying misaligned tensor '%s'", name);
        }
        m->owned = grown;
        memcpy(copy, data, bytes);
        m->owned[m->n_owned++] = copy;
        data = copy;
        llm_log(&m->log, LLM_LOG_DEBUG, "%s: tensor '%s' is misaligned in the file; using an aligned copy",
                f->path, name);
    }
    out->data = data;
    out->dtype = dt;
    out->rows = rows ? rows : 1;
    out->cols = cols;
    out->name = t->name;
    size_t flat = b->file_base[TI_FILE(where)] + (size_t)TI_TENSOR(where);
    if (!b->used[flat]) {
        b->used[flat] = 1;
        m->n_params += t->n_elems;
        m->n_tensors++;
        m->weight_bytes += bytes;
        m->bytes_by_dtype[dt] += bytes;
    }
    return LLM_OK;
}

static llm_status bind_layer(llm_model *m, llm_tensor_source *src, int il, llm_error *err) {
    const llm_hparams *hp = &m->hp;
    llm_layer_weights *L = &m->w.layers[il];
    const int64_t D = hp->n_embd, F = hp->n_ff, QD = (int64_t)hp->n_head * hp->head_dim,
                  KVD = (int64_t)hp->n_head_kv * hp->head_dim;
    char n[160];
    llm_status st;
#define BIND(field, suffix, rows, cols)                                                                      \
    do {                                                                                                     \
        snprintf(n, sizeof n, "model.layers.%d.%s", il, suffix);                                             \
        if ((st = src->get(src, &L->field, n, rows, cols, err)) != LLM_OK) return st;                        \
    } while (0)
    BIND(attn_norm, "input_layernorm.weight", 0, D);
    BIND(wq, "self_attn.q_proj.weight", QD, D);
    BIND(wk, "self_attn.k_proj.weight", KVD, D);
    BIND(wv, "self_attn.v_proj.weight", KVD, D);
    BIND(wo, "self_attn.o_proj.weight", D, QD);
    if (hp->qkv_bias) {
        BIND(bq, "self_attn.q_proj.bias", 0, QD);
        BIND(bk, "self_attn.k_proj.bias", 0, KVD);
        BIND(bv, "self_attn.v_proj.bias", 0, KVD);
    }
    if (hp->o_bias) BIND(bo, "self_attn.o_proj.bias", 0, D);
    if (hp->qk_norm) {
        BIND(q_norm, "self_attn.q_norm.weight", 0, hp->head_dim);
        BIND(k_norm, "self_attn.k_norm.weight", 0, hp->head_dim);
    }
    BIND(ffn_norm, "post_attention_layernorm.weight", 0, D);
    BIND(w_gate, "mlp.gate_proj.weight", F, D);
    BIND(w_up, "mlp.up_proj.weight", F, D);
    BIND(w_down, "mlp.down_proj.weight", D, F);
    if (hp->mlp_bias) {
        BIND(b_gate, "mlp.gate_proj.bias", 0, F);
        BIND(b_up, "mlp.up_proj.bias", 0, F);
        BIND(b_down, "mlp.down_proj.bias", 0, D);
    }
#undef BIND
    return LLM_OK;
}

/* Tensors present in the files that the architecture does not use: reported, not fatal (as
 * transformers warns about unused weights). */
static void report_unexpected(bind_ctx *b) {
    llm_model *m = b->m;
    int reported = 0, total = 0;
    for (int f = 0; f < m->n_files; f++)
        for (size_t t = 0; t < m->files[f].n_tensors; t++) {
            if (b->used[b->file_base[f] + t]) continue;
            const char *name = m->files[f].tensors[t].name;
            if (m->hp.tied_embeddings && strcmp(name, "lm_head.weight") == 0) continue; /* tied copy */
            if (strstr(name, "rotary_emb.inv_freq")) continue; /* recomputed buffer in old checkpoints */
            total++;
            if (reported++ < 8)
                llm_log(&m->log, LLM_LOG_WARN, "%s: unexpected tensor '%s' is not used by %s",
                        m->files[f].path, name, m->hp.architecture);
        }
    if (total > 8) llm_log(&m->log, LLM_LOG_WARN, "%d more unexpected tensors not listed", total - 8);
}

llm_status llm_model_bind(llm_model *m, llm_tensor_source *src, llm_error *err) {
    const llm_hparams *hp = &m->hp;
    if (!m->w.layers) m->w.layers = calloc((size_t)hp->n_layer, sizeof *m->w.layers);
    if (!m->w.layers) return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    llm_status st = src->get(src, &m->w.tok_embd, "model.embed_tokens.weight", hp->n_vocab, hp->n_embd, err);
    for (int il = 0; il < hp->n_layer && st == LLM_OK; il++) st = bind_layer(m, src, il, err);
    if (st == LLM_OK) st = src->get(src, &m->w.output_norm, "model.norm.weight", 0, hp->n_embd, err);
    if (st == LLM_OK) {
        if (hp->tied_embeddings)
            m->w.output = m->w.tok_embd;
        else
            st = src->get(src, &m->w.output, "lm_head.weight", hp->n_vocab, hp->n_embd, err);
    }
    return st;
}

static llm_status bind_all(llm_model *m, llm_error *err) {
    size_t total = 0;
    bind_ctx b = {{bind}, m, NULL, NULL};
    b.file_base = calloc((size_t)m->n_files + 1, sizeof *b.file_base);
    if (!b.file_base) return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    for (int f = 0; f < m->n_files; f++) {
        b.file_base[f] = total;
        total += m->files[f].n_tensors;
    }
    b.used = calloc(total + 1, 1);
    llm_status st = LLM_OK;
    if (!b.used) st = llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    if (st == LLM_OK) st = llm_model_bind(m, &b.base, err);
    if (st == LLM_OK) report_unexpected(&b);
    free(b.used);
    free(b.file_base);
    return st;
}

/* ---- the entry point -------------------------------------------------------------------------- */

llm_status llm_model_new(const llm_model_params *params, llm_model **out, llm_error *err) {
    *out = NULL;
    llm_model_params p = params ? *params : llm_model_default_params();
    if (p.backend != LLM_BACKEND_AUTO && p.backend != LLM_BACKEND_CPU && p.backend != LLM_BACKEND_CUDA)
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "unknown backend %d", (int)p.backend);
    if (p.n_threads < 0 || p.n_threads > 1024)
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "n_threads %d out of range 0..1024", p.n_threads);
    llm_model *m = calloc(1, sizeof *m);
    if (!m) return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    m->params = p;
    m->log.fn = p.log_fn;
    m->log.user_data = p.log_user_data;
    m->log.level = p.log_level;
    llm_status st = llm_model_choose_backend(m, p.backend, err);
    if (st != LLM_OK) {
        free(m);
        return st;
    }
    m->n_threads = p.n_threads ? p.n_threads : llm_cpu_count();
    m->memory_limit = p.memory_limit_bytes ? p.memory_limit_bytes : llm_physical_memory();
    if (!m->memory_limit) m->memory_limit = UINT64_MAX;
    *out = m;
    return LLM_OK;
}

void llm_model_progress(const llm_model *m, double fraction) {
    if (!m->params.progress_fn) return;
    m->params.progress_fn((float)(fraction < 0   ? 0
                                  : fraction > 1 ? 1
                                                 : fraction),
                          m->params.progress_user_data);
}

/* With a progress callback the weights are read through once, so the wait happens here, measured, rather
 * than as page faults inside the first forward pass. Opening and validating is the first 5%. */
#define LLM_PREFETCH_CHUNK ((size_t)32 << 20)
static void prefetch_weights(llm_model *m) {
    uint64_t total = 0, done = 0;
    for (int f = 0; f < m->n_files; f++) total += m->files[f].map.size;
    for (int f = 0; f < m->n_files; f++) {
        const llm_mapped_file *mf = &m->files[f].map;
        for (size_t off = 0; off < mf->size; off += LLM_PREFETCH_CHUNK) {
            size_t end = mf->size - off < LLM_PREFETCH_CHUNK ? mf->size : off + LLM_PREFETCH_CHUNK;
            llm_map_prefetch(mf, off, end);
            done += end - off;
            llm_model_progress(m, 0.05 + 0.95 * (double)done / (double)total);
        }
    }
}

/* A GGUF file is read through once page by page (the safetensors path prefetches its maps the same
 * way), with progress from 0.05 to `to`. */
static void prefetch_gguf(llm_model *m, double to) {
    const llm_gguf *g = m->gguf;
    uint64_t total = 0, done = 0;
    for (size_t i = 0; i < llm_gguf_tensor_count(g); i++) total += llm_gguf_tensor_at(g, i)->n_bytes;
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < llm_gguf_tensor_count(g); i++) {
        const llm_gguf_tensor *t = llm_gguf_tensor_at(g, i);
        const unsigned char *p = t->data;
        for (uint64_t off = 0; off < t->n_bytes; off += 4096) sink ^= p[off];
        done += t->n_bytes;
        llm_model_progress(m, 0.05 + (to - 0.05) * (double)done / (double)(total ? total : 1));
    }
    (void)sink;
}

static llm_status load(const char *path, const llm_model_params *params, llm_model **out, llm_error *err) {
    llm_model *m = NULL;
    llm_status st = llm_model_new(params, &m, err);
    if (st != LLM_OK) return st;
    llm_model_progress(m, 0);

    /* a GGUF file, or a directory holding exactly one (and no safetensors), else a Hugging Face dir */
    char gguf_path[4096];
    int gguf = llm_path_is_gguf(path);
    if (gguf)
        snprintf(gguf_path, sizeof gguf_path, "%s", path);
    else if (llm_dir_single_gguf(path, gguf_path, sizeof gguf_path, err))
        gguf = 1;
    else if (err && err->status == LLM_ERR_INVALID_ARGUMENT)
        st = err->status; /* several .gguf files: ambiguous */
    const int quantize = m->params.quantize != LLM_QUANTIZE_NONE;
    if (st == LLM_OK && gguf) {
        st = llm_model_load_gguf(m, gguf_path, err);
    } else if (st == LLM_OK) {
        st = llm_hparams_load(path, &m->hp, err);
        if (st == LLM_OK && m->hp.head_dim > LLM_MAX_HEAD_DIM)
            st = llm_fail(err, LLM_ERR_UNSUPPORTED, "head_dim %d is larger than the supported %d",
                          m->hp.head_dim, LLM_MAX_HEAD_DIM);
        if (st == LLM_OK) st = open_weights(m, path, err);
        if (st == LLM_OK) st = bind_all(m, err);
        if (st == LLM_OK) st = llm_model_load_text(m, path, err);
    }
    /* quantizing reads the float weights once and keeps only the quantized copy, so the limit applies
     * to that (checked in llm_model_quantize_weights) */
    if (st == LLM_OK && !quantize && m->weight_bytes > m->memory_limit) {
        char a[32], b[32];
        st = llm_fail(err, LLM_ERR_MEMORY_LIMIT, "weights need %s, more than the memory limit of %s",
                      llm_format_bytes(m->weight_bytes, a, sizeof a),
                      llm_format_bytes(m->memory_limit, b, sizeof b));
    }
    if (st != LLM_OK) {
        llm_model_free(m);
        return st;
    }
    llm_model_progress(m, 0.05);
    if (quantize) {
        st = llm_model_quantize_weights(m, 0.05, err); /* reads every weight: no separate prefetch */
    } else if (m->params.progress_fn && m->backend == LLM_BACKEND_CPU) {
        if (m->gguf)
            prefetch_gguf(m, 1.0);
        else
            prefetch_weights(m);
    }
    if (st == LLM_OK) st = llm_model_place_weights(m, err); /* the GPU upload reads the mmap itself */
    if (st != LLM_OK) {
        llm_model_free(m);
        return st;
    }
    llm_model_progress(m, 1);
    char wb[32];
    llm_log(&m->log, LLM_LOG_INFO,
            "loaded %s from %s: %d layers, %llu parameters, %s of weights in %d file(s)", m->hp.architecture,
            path, m->hp.n_layer, (unsigned long long)m->n_params,
            llm_format_bytes(m->weight_bytes, wb, sizeof wb), m->gguf ? 1 : m->n_files);
    *out = m;
    return LLM_OK;
}

llm_status llm_model_load(const char *dir, const llm_model_params *params, llm_model **out, char *err,
                          size_t err_cap) {
    if (err && err_cap) err[0] = '\0';
    if (!out) return LLM_ERR_INVALID_ARGUMENT;
    *out = NULL;
    llm_error e;
    llm_error_clear(&e);
    llm_status st;
    if (!dir)
        st = llm_fail(&e, LLM_ERR_INVALID_ARGUMENT, "model path is NULL");
    else
        st = load(dir, params, out, &e);
    if (st != LLM_OK && err && err_cap) snprintf(err, err_cap, "%s", e.msg);
    return st;
}

void llm_model_get_info(const llm_model *m, llm_model_info *info) {
    memset(info, 0, sizeof *info);
    const llm_hparams *hp = &m->hp;
    snprintf(info->architecture, sizeof info->architecture, "%s", hp->architecture);
    snprintf(info->family, sizeof info->family, "%s", llm_arch_family(hp->arch));
    info->n_vocab = hp->n_vocab;
    info->n_embd = hp->n_embd;
    info->n_layer = hp->n_layer;
    info->n_head = hp->n_head;
    info->n_head_kv = hp->n_head_kv;
    info->head_dim = hp->head_dim;
    info->n_ff = hp->n_ff;
    info->n_ctx_train = hp->n_ctx_train;
    info->rope_theta = hp->rope_theta;
    snprintf(info->rope_type, sizeof info->rope_type, "%s",
             hp->rope_kind == LLM_ROPE_LLAMA3         ? "llama3"
             : hp->rope_kind == LLM_ROPE_FREQ_FACTORS ? "freq_factors"
             : hp->rope_kind == LLM_ROPE_LINEAR       ? "linear"
                                                      : "default");
    info->rms_norm_eps = hp->rms_norm_eps;
    info->tied_embeddings = hp->tied_embeddings;
    info->has_qkv_bias = hp->qkv_bias;
    info->has_o_bias = hp->o_bias;
    info->has_mlp_bias = hp->mlp_bias;
    info->has_qk_norm = hp->qk_norm;
    info->bos_token_id = hp->bos_token_id;
    info->n_eos = hp->n_eos;
    memcpy(info->eos_token_ids, hp->eos_token_ids, sizeof info->eos_token_ids);
    info->n_params = m->n_params;
    info->n_tensors = m->n_tensors;
    info->weight_bytes = m->weight_bytes;
    memcpy(info->bytes_by_dtype, m->bytes_by_dtype, sizeof info->bytes_by_dtype);
    info->kv_bytes_per_token = (uint64_t)hp->n_layer * 2u * (uint64_t)hp->n_head_kv * (uint64_t)hp->head_dim *
                               (llm_model_default_kv_dtype(m) == LLM_DTYPE_F32 ? 4u : 2u);
    info->backend = m->backend;
    snprintf(info->backend_reason, sizeof info->backend_reason, "%s", m->backend_reason);
    info->n_threads = m->n_threads;
}
