/* The llm_model handle. */
#ifndef LLM_MODEL_INTERNAL_H
#define LLM_MODEL_INTERNAL_H

#include "core/error.h"
#include "core/strmap.h"
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

    llm_weights w;
    void **owned; /* aligned copies of tensors whose data was misaligned in the file */
    int n_owned;

    uint64_t n_params, n_tensors, weight_bytes;
    uint64_t bytes_by_dtype[LLM_DTYPE_COUNT];
    uint64_t memory_limit; /* resolved: never 0 */
    int n_engines;
    char last_error[LLM_ERROR_CAP];
};

#endif
