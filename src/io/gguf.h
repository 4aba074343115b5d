/* GGUF (version 3, and version 2 which has the same layout): llama.cpp's single-file container.
 *
 * Layout (all little-endian): "GGUF", uint32 version, uint64 tensor count, uint64 KV count; the KVs
 * (key as a string = uint64 length + bytes, uint32 value type, value); the tensor infos (name, uint32
 * n_dims, uint64 dims[n_dims], uint32 ggml type, uint64 offset into the data section); zero padding to
 * general.alignment (default 32); the data section.
 *
 * llm_gguf_open maps the file and validates all of it before it returns, so every accessor afterwards
 * works on checked data and cannot read outside the map. Every error names the file, the key or tensor
 * and the byte offset of the offending field. Values are read in host byte order: llamac runs on
 * little-endian machines only. */
#ifndef LLM_IO_GGUF_H
#define LLM_IO_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define LLM_GGUF_MAX_DIMS          4
#define LLM_GGUF_DEFAULT_ALIGNMENT 32
#define LLM_GGUF_MAX_NAME          63 /* llama.cpp's GGML_MAX_NAME (64) minus the NUL */

/* Metadata value types, numbered as in the file. */
typedef enum llm_gguf_type {
    LLM_GGUF_UINT8 = 0,
    LLM_GGUF_INT8 = 1,
    LLM_GGUF_UINT16 = 2,
    LLM_GGUF_INT16 = 3,
    LLM_GGUF_UINT32 = 4,
    LLM_GGUF_INT32 = 5,
    LLM_GGUF_FLOAT32 = 6,
    LLM_GGUF_BOOL = 7,
    LLM_GGUF_STRING = 8,
    LLM_GGUF_ARRAY = 9,
    LLM_GGUF_UINT64 = 10,
    LLM_GGUF_INT64 = 11,
    LLM_GGUF_FLOAT64 = 12,
} llm_gguf_type;

/* The ggml tensor types whose infos we read (numbered as in ggml); any other type is refused with
 * LLM_ERR_UNSUPPORTED. */
typedef enum llm_ggml_type {
    LLM_GGML_F32 = 0,
    LLM_GGML_F16 = 1,
    LLM_GGML_Q4_0 = 2,
    LLM_GGML_Q4_1 = 3,
    LLM_GGML_Q8_0 = 8,
    LLM_GGML_Q4_K = 12,
    LLM_GGML_Q6_K = 14,
    LLM_GGML_BF16 = 30,
} llm_ggml_type;

/* "uint32", "string", ... ("unknown" for anything else). Never NULL; static storage. */
const char *llm_gguf_type_name(uint32_t type);
/* "F32", "Q8_0", ... or NULL for a type we do not support. Static storage. */
const char *llm_ggml_type_name(uint32_t type);
/* Elements per block and bytes per block of a supported ggml type; 0 (both) for any other. */
void llm_ggml_type_block(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes);

typedef struct llm_gguf llm_gguf;

typedef struct llm_gguf_tensor {
    const char *name;     /* NUL-terminated; owned by the llm_gguf */
    uint32_t type;        /* llm_ggml_type */
    int n_dims;           /* 1..4 */
    uint64_t dims[4];     /* GGUF order: dims[0] varies fastest; dims past n_dims are 1 */
    uint64_t n_elems;     /* product of dims */
    uint64_t n_bytes;     /* size of the data */
    uint64_t file_offset; /* where the data starts in the file (aligned) */
    const void *data;     /* points into the map; valid until llm_gguf_close */
} llm_gguf_tensor;

/* Maps and validates path. On success *out is a new handle (caller owns it: llm_gguf_close); on failure
 * *out is NULL and err (may be NULL) says what and where. Returns LLM_OK, LLM_ERR_NOT_FOUND, LLM_ERR_IO,
 * LLM_ERR_BAD_FORMAT, LLM_ERR_UNSUPPORTED (version 1, nested arrays, ggml types we cannot read) or
 * LLM_ERR_OUT_OF_MEMORY. */
llm_status llm_gguf_open(const char *path, llm_gguf **out, llm_error *err);
void llm_gguf_close(llm_gguf *f); /* NULL is a no-op */

const char *llm_gguf_path(const llm_gguf *f); /* owned by f */
uint32_t llm_gguf_version(const llm_gguf *f);
uint32_t llm_gguf_alignment(const llm_gguf *f);
uint64_t llm_gguf_data_offset(const llm_gguf *f); /* file offset of the data section */

/* ---- metadata ------------------------------------------------------------------------------------------ */

size_t llm_gguf_kv_count(const llm_gguf *f);
/* Key of the i-th KV in file order (NUL-terminated, owned by f), NULL if i is out of range. */
const char *llm_gguf_kv_key(const llm_gguf *f, size_t i);
/* Index of key, or -1 when absent. */
int64_t llm_gguf_find_key(const llm_gguf *f, const char *key);
/* Value type of key (LLM_GGUF_ARRAY for arrays); -1 when absent. */
int llm_gguf_key_type(const llm_gguf *f, const char *key);

/* Typed getters. Each returns LLM_OK, LLM_ERR_NOT_FOUND when the key is absent, or LLM_ERR_BAD_FORMAT
 * when its type does not fit (message: file, key, byte offset, expected vs actual type); out is written
 * only on LLM_OK. Integer getters accept any integer type whose value fits the requested one; f32
 * accepts float32 and float64 (rounded). */
llm_status llm_gguf_get_u32(const llm_gguf *f, const char *key, uint32_t *out, llm_error *err);
llm_status llm_gguf_get_i32(const llm_gguf *f, const char *key, int32_t *out, llm_error *err);
llm_status llm_gguf_get_u64(const llm_gguf *f, const char *key, uint64_t *out, llm_error *err);
llm_status llm_gguf_get_f32(const llm_gguf *f, const char *key, float *out, llm_error *err);
llm_status llm_gguf_get_bool(const llm_gguf *f, const char *key, bool *out, llm_error *err);
/* *out points into the map: len bytes, NOT NUL-terminated (values may contain any byte). */
llm_status llm_gguf_get_string(const llm_gguf *f, const char *key, const char **out, size_t *len,
                               llm_error *err);

/* Array length and element type (elem_type may be NULL). LLM_ERR_BAD_FORMAT if key is not an array. */
llm_status llm_gguf_get_arr_len(const llm_gguf *f, const char *key, uint64_t *n, uint32_t *elem_type,
                                llm_error *err);
/* Element i of an array (LLM_ERR_INVALID_ARGUMENT if i >= length); the conversions of the scalar
 * getters apply. A string element points into the map (len bytes, not NUL-terminated). */
llm_status llm_gguf_get_arr_str(const llm_gguf *f, const char *key, uint64_t i, const char **out, size_t *len,
                                llm_error *err);
llm_status llm_gguf_get_arr_u32(const llm_gguf *f, const char *key, uint64_t i, uint32_t *out,
                                llm_error *err);
llm_status llm_gguf_get_arr_i32(const llm_gguf *f, const char *key, uint64_t i, int32_t *out, llm_error *err);
llm_status llm_gguf_get_arr_f32(const llm_gguf *f, const char *key, uint64_t i, float *out, llm_error *err);

/* ---- tensors ------------------------------------------------------------------------------------------- */

size_t llm_gguf_tensor_count(const llm_gguf *f);
/* The i-th tensor in file order / the tensor named name; NULL when out of range / absent. The
 * returned struct is owned by f. */
const llm_gguf_tensor *llm_gguf_tensor_at(const llm_gguf *f, size_t i);
const llm_gguf_tensor *llm_gguf_find_tensor(const llm_gguf *f, const char *name);

/* ---- writer -------------------------------------------------------------------------------------------- */

/* Builds a GGUF v3 file in memory (metadata) and writes it on finish, to path.tmp and then renamed to
 * path, so path never holds a partial file. Tensor data is borrowed: it must stay valid until
 * llm_gguf_writer_finish. Each add validates its arguments (key/name valid UTF-8, non-empty, unique;
 * dims and type) and adds nothing on error. Adding "general.alignment" (a power of two) sets the
 * alignment of the data. */
typedef struct llm_gguf_writer llm_gguf_writer;

/* *out: a new writer (caller owns it: finish or free). Nothing is written to disk before finish. */
llm_status llm_gguf_writer_create(const char *path, llm_gguf_writer **out, llm_error *err);
llm_status llm_gguf_writer_add_u32(llm_gguf_writer *w, const char *key, uint32_t v, llm_error *err);
llm_status llm_gguf_writer_add_i32(llm_gguf_writer *w, const char *key, int32_t v, llm_error *err);
llm_status llm_gguf_writer_add_f32(llm_gguf_writer *w, const char *key, float v, llm_error *err);
llm_status llm_gguf_writer_add_bool(llm_gguf_writer *w, const char *key, bool v, llm_error *err);
/* value: len bytes (may hold any byte). */
llm_status llm_gguf_writer_add_string(llm_gguf_writer *w, const char *key, const char *value, size_t len,
                                      llm_error *err);
/* n NUL-terminated strings. */
llm_status llm_gguf_writer_add_str_array(llm_gguf_writer *w, const char *key, const char *const *values,
                                         size_t n, llm_error *err);
llm_status llm_gguf_writer_add_i32_array(llm_gguf_writer *w, const char *key, const int32_t *values, size_t n,
                                         llm_error *err);
llm_status llm_gguf_writer_add_f32_array(llm_gguf_writer *w, const char *key, const float *values, size_t n,
                                         llm_error *err);
/* type: F32, F16, BF16, Q8_0 or Q4_K; dims in GGUF order (dims[0] fastest, a multiple of the block: 32 for
 * Q8_0, 256 for Q4_K);
 * n_bytes must equal the size those dims need. data is borrowed until finish. */
llm_status llm_gguf_writer_add_tensor(llm_gguf_writer *w, const char *name, uint32_t type, int n_dims,
                                      const uint64_t *dims, const void *data, size_t n_bytes, llm_error *err);
/* Writes the file and frees w, whatever the outcome (on failure path is untouched and path.tmp removed). */
llm_status llm_gguf_writer_finish(llm_gguf_writer *w, llm_error *err);
/* Abandons a writer without writing anything; NULL is a no-op. */
void llm_gguf_writer_free(llm_gguf_writer *w);

#endif
