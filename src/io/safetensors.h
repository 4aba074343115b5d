/* safetensors: an 8-byte little-endian header length N, N bytes of JSON describing each tensor
 * (dtype, shape, [begin, end) offsets into the data section), then the data section.
 * llm_st_open validates the whole header as the reference implementation does: well-formed JSON,
 * known dtypes, offsets inside the file, dtype x shape == byte length, no overlaps or holes. */
#ifndef LLM_IO_SAFETENSORS_H
#define LLM_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "io/mapped_file.h"

#define LLM_ST_MAX_DIMS 8

typedef struct llm_st_tensor {
    char *name;     /* owned by the file */
    char dtype[12]; /* as written: "BF16", "F32", "I64", ... */
    int elem_size;  /* bytes per element (0 for sub-byte types) */
    int n_dims;
    int64_t shape[LLM_ST_MAX_DIMS];
    uint64_t n_elems;
    uint64_t begin, end; /* offsets relative to the data section */
    const void *data;    /* points into the map */
} llm_st_tensor;

typedef struct llm_st_file {
    char *path;
    llm_mapped_file map;
    uint64_t header_len;
    llm_st_tensor *tensors; /* sorted by begin offset */
    size_t n_tensors;
} llm_st_file;

/* Maps and validates path. On failure *out is left empty (safe to llm_st_close). */
llm_status llm_st_open(const char *path, llm_st_file *out, llm_error *err);
void llm_st_close(llm_st_file *f);

/* Element size of a safetensors dtype string, or -1 if unknown. */
int llm_st_dtype_size(const char *dtype);

#endif
