/* The llm_model handle. */
#ifndef LLM_MODEL_INTERNAL_H
#define LLM_MODEL_INTERNAL_H

#include "core/error.h"
#include "core/strmap.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/hparams.h"
#include "model/weights.h"

struct llm_model {
    llm_hparams hp;
    llm_model_params params;
    llm_logger log;
    llm_backend_kind backend;
    int n_threads;

    llm_st_file *files; /* the mapped safetensors files */
    int n_files;
    llm_strmap tensor_index; /* name -> TI_MAKE(file, index within file), see model.c */
    llm_gguf *gguf;          /* a GGUF model file (model_gguf.c): tensors point into its map; or NULL */

    llm_weights w;
    void **owned; /* aligned copies of tensors whose data was misaligned in the file */
    int n_owned;
    /* Random-weight models (model_random.c): every tensor in one anonymous mapping, and their names. */
    void *weight_block;
    size_t weight_block_bytes;
    char *tensor_names;

    uint64_t n_params, n_tensors, weight_bytes;
    uint64_t bytes_by_dtype[LLM_DTYPE_COUNT];
    uint64_t memory_limit;                   /* resolved: never 0 */
    llm_tokenizer *tokenizer;                /* tokenizer.json of the directory, or NULL */
    llm_chat_template *chat_template;        /* parsed chat template of the tokenizer config, or NULL */
    char chat_template_error[LLM_ERROR_CAP]; /* why chat_template is NULL, if the config has one */
    int n_engines;
    char last_error[LLM_ERROR_CAP];
    char backend_reason[192];             /* what was chosen and why (inspect, bench) */
    struct llm_cuda_store *cuda_store;    /* the weights' device copy (CUDA backend), or NULL */
};

/* Where binding gets the tensors: the safetensors files (model.c) or a random-weight block
 * (model_random.c). get() fills *out with tensor `name` of shape [rows][cols] ([cols] when rows == 0)
 * or fails with a message in err. */
typedef struct llm_tensor_source llm_tensor_source;
struct llm_tensor_source {
    llm_status (*get)(llm_tensor_source *src, llm_tensor *out, const char *name, int64_t rows, int64_t cols,
                      llm_error *err);
};

/* Binds every tensor m->hp's architecture uses, always in the same order, through src (allocates
 * m->w.layers on the first call; a second call rebinds). The one list of tensor names and shapes. */
llm_status llm_model_bind(llm_model *m, llm_tensor_source *src, llm_error *err);

/* A new handle with its parameters validated and resolved (backend, threads, memory limit, logger). */
llm_status llm_model_new(const llm_model_params *params, llm_model **out, llm_error *err);

/* Resolves the requested backend (auto: CUDA only when compiled, gated and a device is present) into
 * m->backend and m->backend_reason; an unavailable explicit request is LLM_ERR_BACKEND_UNAVAILABLE. */
llm_status llm_model_choose_backend(llm_model *m, llm_backend_kind requested, llm_error *err);

/* The KV cache type an engine picks by default for m (F32: see model_device.c for why not BF16 yet). */
llm_dtype llm_model_default_kv_dtype(const llm_model *m);

/* After binding: uploads every tensor to the backend's memory when it is not the host (CUDA) and
 * points the tensors there. No-op on the CPU. */
llm_status llm_model_place_weights(llm_model *m, llm_error *err);

/* params.progress_fn, if set, with fraction clamped to [0, 1]. */
void llm_model_progress(const llm_model *m, double fraction);

/* model_text.c: the tokenizer and chat template that come with a model directory. */
llm_status llm_model_load_text(llm_model *m, const char *dir, llm_error *err);
/* Parses m->tokenizer's chat template (if any) into m->chat_template. A template that does not parse
 * leaves the model usable: the reason, prefixed with `where`, is kept and logged. Always LLM_OK. */
llm_status llm_model_parse_chat_template(llm_model *m, const char *where);

/* model_quant.c: quantizes every 2-D weight matrix to m->params.quantize (see llamac.h) into owned
 * memory, reporting progress from `from` to 1; recomputes the byte accounting. No-op for NONE. */
llm_status llm_model_quantize_weights(llm_model *m, double from, llm_error *err);
/* Recomputes m->weight_bytes and m->bytes_by_dtype from the bound tensors (each distinct one once). */
void llm_model_recount_bytes(llm_model *m);
void llm_model_free_text(llm_model *m);

#endif
