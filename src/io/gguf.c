#include "io/gguf.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/strmap.h"
#include "core/utf8.h"
#include "io/mapped_file.h"

/* ---- type tables --------------------------------------------------------------------------------------- */

static const char *const gguf_type_names[] = {
    "uint8", "int8",   "uint16", "int16",  "uint32", "int32",   "float32",
    "bool",  "string", "array",  "uint64", "int64",  "float64",
};
#define GGUF_N_TYPES (sizeof gguf_type_names / sizeof gguf_type_names[0])

const char *llm_gguf_type_name(uint32_t type) {
    return type < GGUF_N_TYPES ? gguf_type_names[type] : "unknown";
}

/* Byte size of a scalar value type; 0 for string, array and unknown types. */
static size_t scalar_size(uint32_t type) {
    switch (type) {
    case LLM_GGUF_UINT8:
    case LLM_GGUF_INT8:
    case LLM_GGUF_BOOL:
        return 1;
    case LLM_GGUF_UINT16:
    case LLM_GGUF_INT16:
        return 2;
    case LLM_GGUF_UINT32:
    case LLM_GGUF_INT32:
    case LLM_GGUF_FLOAT32:
        return 4;
    case LLM_GGUF_UINT64:
    case LLM_GGUF_INT64:
    case LLM_GGUF_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

static const struct {
    uint32_t type;
    const char *name;
    uint32_t block_elems, block_bytes;
} ggml_types[] = {
    {LLM_GGML_F32, "F32", 1, 4},       {LLM_GGML_F16, "F16", 1, 2},     {LLM_GGML_Q4_0, "Q4_0", 32, 18},
    {LLM_GGML_Q4_1, "Q4_1", 32, 20},   {LLM_GGML_Q8_0, "Q8_0", 32, 34}, {LLM_GGML_Q4_K, "Q4_K", 256, 144},
    {LLM_GGML_Q6_K, "Q6_K", 256, 210}, {LLM_GGML_BF16, "BF16", 1, 2},
};

const char *llm_ggml_type_name(uint32_t type) {
    for (size_t i = 0; i < sizeof ggml_types / sizeof ggml_types[0]; i++)
        if (ggml_types[i].type == type) return ggml_types[i].name;
    return NULL;
}

void llm_ggml_type_block(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes) {
    *block_elems = *block_bytes = 0;
    for (size_t i = 0; i < sizeof ggml_types / sizeof ggml_types[0]; i++)
        if (ggml_types[i].type == type) {
            *block_elems = ggml_types[i].block_elems;
            *block_bytes = ggml_types[i].block_bytes;
        }
}

/* ---- the handle ---------------------------------------------------------------------------------------- */

typedef struct gguf_kv {
    char *key;
    uint32_t type;     /* value type */
    uint32_t arr_type; /* element type of an array */
    uint64_t n;        /* array length (1 for a scalar) */
    uint64_t key_off;  /* file offset of the key's length prefix */
    uint64_t val_off;  /* file offset of the value (an array's first element; a string's length prefix) */
    uint64_t *str_off; /* array of strings: file offset of each element's length prefix */
} gguf_kv;

struct llm_gguf {
    char *path;
    llm_mapped_file map;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_off;
    gguf_kv *kvs;
    size_t n_kvs;
    llm_strmap kv_index;
    llm_gguf_tensor *tensors;
    uint64_t *info_off; /* file offset of each tensor's info */
    size_t n_tensors;
    llm_strmap tensor_index;
};

void llm_gguf_close(llm_gguf *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_kvs; i++) {
        free(f->kvs[i].key);
        free(f->kvs[i].str_off);
    }
    free(f->kvs);
    for (size_t i = 0; i < f->n_tensors; i++) free((char *)f->tensors[i].name);
    free(f->tensors);
    free(f->info_off);
    llm_strmap_free(&f->kv_index);
    llm_strmap_free(&f->tensor_index);
    llm_unmap_file(&f->map);
    free(f->path);
    free(f);
}

const char *llm_gguf_path(const llm_gguf *f) {
    return f->path;
}
uint32_t llm_gguf_version(const llm_gguf *f) {
    return f->version;
}
uint32_t llm_gguf_alignment(const llm_gguf *f) {
    return f->alignment;
}
uint64_t llm_gguf_data_offset(const llm_gguf *f) {
    return f->data_off;
}

/* ---- bounded reading ----------------------------------------------------------------------------------- */

typedef struct reader {
    const char *path;
    const unsigned char *p;
    uint64_t size;
    uint64_t pos;
    llm_error *err;
} reader;

static uint64_t remaining(const reader *r) {
    return r->size - r->pos;
}

/* Fails unless n more bytes are available; what/ctx describe the field for the message. */
static llm_status need(reader *r, uint64_t n, const char *what, const char *ctx) {
    if (remaining(r) >= n) return LLM_OK;
    return llm_fail(r->err, LLM_ERR_BAD_FORMAT,
                    "%s: %s%s%s at byte %llu needs %llu bytes, but the file ends at byte %llu (truncated?)",
                    r->path, ctx, *ctx ? ": " : "", what, (unsigned long long)r->pos, (unsigned long long)n,
                    (unsigned long long)r->size);
}

static llm_status rd_u32(reader *r, uint32_t *v, const char *what, const char *ctx) {
    llm_status st = need(r, 4, what, ctx);
    if (st != LLM_OK) return st;
    memcpy(v, r->p + r->pos, 4);
    r->pos += 4;
    return LLM_OK;
}

static llm_status rd_u64(reader *r, uint64_t *v, const char *what, const char *ctx) {
    llm_status st = need(r, 8, what, ctx);
    if (st != LLM_OK) return st;
    memcpy(v, r->p + r->pos, 8);
    r->pos += 8;
    return LLM_OK;
}

/* Validates a name (metadata key or tensor name): non-empty, no NUL, valid UTF-8. Returns NULL if
 * valid, else the reason. */
static const char *name_problem(const unsigned char *s, uint64_t len) {
    if (len == 0) return "is empty";
    for (uint64_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = llm_utf8_decode(s + i, (size_t)(len - i), &cp);
        if (n == 0) return "is not valid UTF-8";
        if (cp == 0) return "contains a NUL byte";
        i += n;
    }
    return NULL;
}

/* Reads a length-prefixed name into a malloc'd NUL-terminated copy. what: "key" or "tensor name". */
static llm_status rd_name(reader *r, char **out, uint64_t max_len, const char *what, const char *ctx) {
    *out = NULL;
    uint64_t at = r->pos, len;
    llm_status st = rd_u64(r, &len, what, ctx);
    if (st != LLM_OK) return st;
    if (len > remaining(r))
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT,
                        "%s: %s: %s length %llu at byte %llu runs past the end of the file (%llu bytes)",
                        r->path, ctx, what, (unsigned long long)len, (unsigned long long)at,
                        (unsigned long long)r->size);
    if (len > max_len)
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT,
                        "%s: %s: %s at byte %llu is %llu bytes long, at most %llu allowed", r->path, ctx,
                        what, (unsigned long long)at, (unsigned long long)len, (unsigned long long)max_len);
    const char *why = name_problem(r->p + r->pos, len);
    if (why)
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT, "%s: %s: %s at byte %llu %s", r->path, ctx, what,
                        (unsigned long long)at, why);
    *out = malloc((size_t)len + 1);
    if (!*out) return llm_fail(r->err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory", r->path);
    memcpy(*out, r->p + r->pos, (size_t)len);
    (*out)[len] = '\0';
    r->pos += len;
    return LLM_OK;
}

/* Skips a string value (length + bytes). */
static llm_status skip_string(reader *r, const char *ctx) {
    uint64_t at = r->pos, len;
    llm_status st = rd_u64(r, &len, "string length", ctx);
    if (st != LLM_OK) return st;
    if (len > remaining(r))
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT,
                        "%s: %s: string length %llu at byte %llu runs past the end of the file (%llu bytes)",
                        r->path, ctx, (unsigned long long)len, (unsigned long long)at,
                        (unsigned long long)r->size);
    r->pos += len;
    return LLM_OK;
}

/* Checks n scalars of type at the current position (bools must be 0 or 1) and skips them. */
static llm_status skip_scalars(reader *r, uint32_t type, uint64_t n, const char *ctx) {
    uint64_t size = scalar_size(type);
    if (n > remaining(r) / size)
        return llm_fail(
            r->err, LLM_ERR_BAD_FORMAT,
            "%s: %s: %llu values of type %s at byte %llu run past the end of the file (%llu bytes)", r->path,
            ctx, (unsigned long long)n, llm_gguf_type_name(type), (unsigned long long)r->pos,
            (unsigned long long)r->size);
    if (type == LLM_GGUF_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (r->p[r->pos + i] > 1)
                return llm_fail(r->err, LLM_ERR_BAD_FORMAT,
                                "%s: %s: bool value %u at byte %llu (must be 0 or 1)", r->path, ctx,
                                r->p[r->pos + i], (unsigned long long)(r->pos + i));
    r->pos += n * size;
    return LLM_OK;
}

static llm_status read_kv(reader *r, llm_gguf *f, size_t idx) {
    gguf_kv *kv = &f->kvs[idx];
    char ctx[LLM_ERROR_CAP / 2];
    snprintf(ctx, sizeof ctx, "metadata entry #%zu", idx);
    kv->key_off = r->pos;
    llm_status st = rd_name(r, &kv->key, UINT64_MAX, "key", ctx);
    if (st != LLM_OK) return st;
    snprintf(ctx, sizeof ctx, "key '%.200s'", kv->key);
    int prev = llm_strmap_put(&f->kv_index, kv->key, (int)idx);
    if (prev == -2) return llm_fail(r->err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory", r->path);
    if (prev >= 0)
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT, "%s: %s at byte %llu is a duplicate (first at byte %llu)",
                        r->path, ctx, (unsigned long long)kv->key_off,
                        (unsigned long long)f->kvs[prev].key_off);
    uint64_t type_at = r->pos;
    if ((st = rd_u32(r, &kv->type, "value type", ctx)) != LLM_OK) return st;
    kv->n = 1;
    if (kv->type >= GGUF_N_TYPES)
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT, "%s: %s: unknown value type %u at byte %llu", r->path,
                        ctx, kv->type, (unsigned long long)type_at);
    kv->val_off = r->pos;
    if (kv->type == LLM_GGUF_STRING) return skip_string(r, ctx);
    if (kv->type != LLM_GGUF_ARRAY) return skip_scalars(r, kv->type, 1, ctx);

    uint64_t elem_at = r->pos;
    if ((st = rd_u32(r, &kv->arr_type, "array element type", ctx)) != LLM_OK) return st;
    if (kv->arr_type == LLM_GGUF_ARRAY)
        return llm_fail(r->err, LLM_ERR_UNSUPPORTED,
                        "%s: %s: array of arrays at byte %llu (nested arrays are not supported)", r->path,
                        ctx, (unsigned long long)elem_at);
    if (kv->arr_type >= GGUF_N_TYPES)
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT, "%s: %s: unknown array element type %u at byte %llu",
                        r->path, ctx, kv->arr_type, (unsigned long long)elem_at);
    if ((st = rd_u64(r, &kv->n, "array length", ctx)) != LLM_OK) return st;
    kv->val_off = r->pos;
    if (kv->arr_type != LLM_GGUF_STRING) return skip_scalars(r, kv->arr_type, kv->n, ctx);
    /* every string takes at least its 8-byte length: bounds the table before it is allocated */
    if (kv->n > remaining(r) / 8)
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT,
                        "%s: %s: array of %llu strings at byte %llu cannot fit in the file (%llu bytes)",
                        r->path, ctx, (unsigned long long)kv->n, (unsigned long long)elem_at,
                        (unsigned long long)r->size);
    kv->str_off = malloc((size_t)(kv->n ? kv->n : 1) * sizeof *kv->str_off);
    if (!kv->str_off) return llm_fail(r->err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory", r->path);
    for (uint64_t i = 0; i < kv->n; i++) {
        kv->str_off[i] = r->pos;
        if ((st = skip_string(r, ctx)) != LLM_OK) return st;
    }
    return LLM_OK;
}

static llm_status read_tensor_info(reader *r, llm_gguf *f, size_t idx) {
    llm_gguf_tensor *t = &f->tensors[idx];
    char ctx[LLM_ERROR_CAP / 2];
    snprintf(ctx, sizeof ctx, "tensor #%zu", idx);
    f->info_off[idx] = r->pos;
    char *name = NULL;
    llm_status st = rd_name(r, &name, LLM_GGUF_MAX_NAME, "tensor name", ctx);
    t->name = name;
    if (st != LLM_OK) return st;
    snprintf(ctx, sizeof ctx, "tensor '%s'", name);
    int prev = llm_strmap_put(&f->tensor_index, name, (int)idx);
    if (prev == -2) return llm_fail(r->err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory", r->path);
    if (prev >= 0)
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT, "%s: %s at byte %llu is a duplicate (first at byte %llu)",
                        r->path, ctx, (unsigned long long)f->info_off[idx],
                        (unsigned long long)f->info_off[prev]);
    uint64_t at = r->pos;
    uint32_t nd;
    if ((st = rd_u32(r, &nd, "n_dims", ctx)) != LLM_OK) return st;
    if (nd < 1 || nd > LLM_GGUF_MAX_DIMS)
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT, "%s: %s: n_dims %u at byte %llu (must be 1..%d)", r->path,
                        ctx, nd, (unsigned long long)at, LLM_GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    uint64_t n = 1;
    for (int d = 0; d < LLM_GGUF_MAX_DIMS; d++) t->dims[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        at = r->pos;
        if ((st = rd_u64(r, &t->dims[d], "dimension", ctx)) != LLM_OK) return st;
        if (t->dims[d] < 1)
            return llm_fail(r->err, LLM_ERR_BAD_FORMAT, "%s: %s: dims[%u] is 0 at byte %llu", r->path, ctx, d,
                            (unsigned long long)at);
        if (t->dims[d] > (uint64_t)INT64_MAX / n)
            return llm_fail(r->err, LLM_ERR_BAD_FORMAT,
                            "%s: %s: element count overflows at dims[%u] = %llu (byte %llu)", r->path, ctx, d,
                            (unsigned long long)t->dims[d], (unsigned long long)at);
        n *= t->dims[d];
    }
    t->n_elems = n;
    at = r->pos;
    if ((st = rd_u32(r, &t->type, "ggml type", ctx)) != LLM_OK) return st;
    uint32_t be, bb;
    llm_ggml_type_block(t->type, &be, &bb);
    if (be == 0)
        return llm_fail(r->err, LLM_ERR_UNSUPPORTED, "%s: %s: ggml type %u at byte %llu is not supported",
                        r->path, ctx, t->type, (unsigned long long)at);
    /* ggml stores whole blocks per row, so the row length (and hence the element count) must divide */
    if (t->dims[0] % be != 0)
        return llm_fail(
            r->err, LLM_ERR_BAD_FORMAT,
            "%s: %s: dims[0] = %llu is not a multiple of the %s block size %u (type at byte %llu)", r->path,
            ctx, (unsigned long long)t->dims[0], llm_ggml_type_name(t->type), be, (unsigned long long)at);
    if (n / be > UINT64_MAX / bb)
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT, "%s: %s: byte size overflows (type at byte %llu)",
                        r->path, ctx, (unsigned long long)at);
    t->n_bytes = n / be * bb;
    at = r->pos;
    if ((st = rd_u64(r, &t->file_offset, "data offset", ctx)) != LLM_OK) return st;
    /* file_offset holds the data-section-relative offset until the data section is known */
    return LLM_OK;
}

static int cmp_by_offset(const void *a, const void *b) {
    const llm_gguf_tensor *x = *(const llm_gguf_tensor *const *)a, *y = *(const llm_gguf_tensor *const *)b;
    if (x->file_offset != y->file_offset) return x->file_offset < y->file_offset ? -1 : 1;
    return 0;
}

static llm_status check_alignment(llm_gguf *f, reader *r) {
    f->alignment = LLM_GGUF_DEFAULT_ALIGNMENT;
    int i = llm_strmap_get(&f->kv_index, "general.alignment");
    if (i < 0) return LLM_OK;
    const gguf_kv *kv = &f->kvs[i];
    if (kv->type != LLM_GGUF_UINT32)
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT,
                        "%s: key 'general.alignment' at byte %llu: type %s, expected uint32", r->path,
                        (unsigned long long)kv->key_off, llm_gguf_type_name(kv->type));
    uint32_t a;
    memcpy(&a, r->p + kv->val_off, 4);
    if (a == 0 || (a & (a - 1)) != 0)
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT,
                        "%s: key 'general.alignment': value %u at byte %llu is not a power of two", r->path,
                        a, (unsigned long long)kv->val_off);
    f->alignment = a;
    return LLM_OK;
}

static llm_status check_layout(llm_gguf *f, reader *r) {
    uint64_t a = f->alignment;
    uint64_t end = r->pos;
    f->data_off = end + (a - end % a) % a;
    if (f->n_tensors == 0) return LLM_OK;
    if (f->data_off > r->size)
        return llm_fail(
            r->err, LLM_ERR_BAD_FORMAT,
            "%s: the data section would start at byte %llu, past the end of the file (%llu bytes)", r->path,
            (unsigned long long)f->data_off, (unsigned long long)r->size);
    uint64_t data_size = r->size - f->data_off;
    for (size_t i = 0; i < f->n_tensors; i++) {
        llm_gguf_tensor *t = &f->tensors[i];
        uint64_t rel = t->file_offset,
                 off_at = f->info_off[i] + 8 + strlen(t->name) + 4 + 8 * (uint64_t)t->n_dims + 4;
        if (rel % a != 0)
            return llm_fail(r->err, LLM_ERR_BAD_FORMAT,
                            "%s: tensor '%s': data offset %llu (field at byte %llu) is not a multiple of the "
                            "alignment %llu",
                            r->path, t->name, (unsigned long long)rel, (unsigned long long)off_at,
                            (unsigned long long)a);
        if (rel > data_size || t->n_bytes > data_size - rel)
            return llm_fail(
                r->err, LLM_ERR_BAD_FORMAT,
                "%s: tensor '%s': data [%llu, +%llu bytes) (offset field at byte %llu) runs past the end "
                "of the data section (file bytes %llu..%llu; truncated file?)",
                r->path, t->name, (unsigned long long)rel, (unsigned long long)t->n_bytes,
                (unsigned long long)off_at, (unsigned long long)f->data_off, (unsigned long long)r->size);
        t->file_offset = f->data_off + rel;
        t->data = r->p + t->file_offset;
    }
    const llm_gguf_tensor **order = malloc(f->n_tensors * sizeof *order);
    if (!order) return llm_fail(r->err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory", r->path);
    for (size_t i = 0; i < f->n_tensors; i++) order[i] = &f->tensors[i];
    qsort(order, f->n_tensors, sizeof *order, cmp_by_offset);
    llm_status st = LLM_OK;
    for (size_t i = 1; i < f->n_tensors; i++) {
        const llm_gguf_tensor *p = order[i - 1], *t = order[i];
        if (t->file_offset < p->file_offset + p->n_bytes) {
            st = llm_fail(
                r->err, LLM_ERR_BAD_FORMAT,
                "%s: tensor '%s' (file bytes %llu..%llu) overlaps tensor '%s' (file bytes %llu..%llu)",
                r->path, t->name, (unsigned long long)t->file_offset,
                (unsigned long long)(t->file_offset + t->n_bytes), p->name,
                (unsigned long long)p->file_offset, (unsigned long long)(p->file_offset + p->n_bytes));
            break;
        }
    }
    free(order);
    return st;
}

/* Doubles the capacity of a malloc'd table (*cap elements of size bytes). */
static int grow(void **p, size_t *cap, size_t size) {
    size_t n = *cap ? *cap * 2 : 64;
    if (n > SIZE_MAX / size) return -1;
    void *q = realloc(*p, n * size);
    if (!q) return -1;
    *p = q;
    *cap = n;
    return 0;
}

static llm_status parse(llm_gguf *f, reader *r) {
    llm_status st;
    if (r->size < 4 || memcmp(r->p, "GGUF", 4) != 0) {
        if (r->size < 4)
            return llm_fail(r->err, LLM_ERR_BAD_FORMAT,
                            "%s: file is %llu bytes, too short for the GGUF magic", r->path,
                            (unsigned long long)r->size);
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT,
                        "%s: bad magic at byte 0: %02x %02x %02x %02x, expected \"GGUF\" (not a GGUF file)",
                        r->path, r->p[0], r->p[1], r->p[2], r->p[3]);
    }
    r->pos = 4;
    if ((st = rd_u32(r, &f->version, "version", "header")) != LLM_OK) return st;
    if (f->version == 1)
        return llm_fail(
            r->err, LLM_ERR_UNSUPPORTED,
            "%s: GGUF version 1 at byte 4 is not supported (only versions 2 and 3; re-convert the model)",
            r->path);
    if (f->version != 2 && f->version != 3)
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT, "%s: unknown GGUF version %u at byte 4 (expected 3 or 2)",
                        r->path, f->version);
    uint64_t nt, nkv;
    if ((st = rd_u64(r, &nt, "tensor count", "header")) != LLM_OK) return st;
    if ((st = rd_u64(r, &nkv, "metadata count", "header")) != LLM_OK) return st;
    /* the smallest KV is 14 bytes (1-byte key, type, 1-byte value), the smallest tensor info 33 */
    if (nkv > remaining(r) / 14 || nkv > INT_MAX)
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT,
                        "%s: metadata count %llu at byte 16 cannot fit in the file (%llu bytes)", r->path,
                        (unsigned long long)nkv, (unsigned long long)r->size);
    if (nt > remaining(r) / 33 || nt > INT_MAX)
        return llm_fail(r->err, LLM_ERR_BAD_FORMAT,
                        "%s: tensor count %llu at byte 8 cannot fit in the file (%llu bytes)", r->path,
                        (unsigned long long)nt, (unsigned long long)r->size);
    /* the counts are only bounded by the file size: grow the tables as entries are actually read */
    if (llm_strmap_init(&f->kv_index, nkv < 1024 ? nkv : 1024) != 0 ||
        llm_strmap_init(&f->tensor_index, nt < 1024 ? nt : 1024) != 0)
        return llm_fail(r->err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory", r->path);
    size_t cap = 0;
    for (size_t i = 0; i < nkv; i++) {
        if (i == cap && grow((void **)&f->kvs, &cap, sizeof *f->kvs) != 0)
            return llm_fail(r->err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory", r->path);
        memset(&f->kvs[i], 0, sizeof f->kvs[i]);
        f->n_kvs = i + 1; /* counted before reading so that a partial entry is freed */
        if ((st = read_kv(r, f, i)) != LLM_OK) return st;
    }
    if ((st = check_alignment(f, r)) != LLM_OK) return st;
    cap = 0;
    for (size_t i = 0; i < nt; i++) {
        if (i == cap) {
            size_t c2 = cap;
            if (grow((void **)&f->tensors, &c2, sizeof *f->tensors) != 0 ||
                grow((void **)&f->info_off, &cap, sizeof *f->info_off) != 0)
                return llm_fail(r->err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory", r->path);
        }
        memset(&f->tensors[i], 0, sizeof f->tensors[i]);
        f->n_tensors = i + 1;
        if ((st = read_tensor_info(r, f, i)) != LLM_OK) return st;
    }
    return check_layout(f, r);
}

llm_status llm_gguf_open(const char *path, llm_gguf **out, llm_error *err) {
    *out = NULL;
    llm_gguf *f = calloc(1, sizeof *f);
    if (!f) return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    f->path = strdup(path);
    if (!f->path) {
        free(f);
        return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    }
    llm_status st = llm_map_file(path, &f->map, err);
    if (st == LLM_OK) {
        reader r = {path, f->map.data, f->map.size, 0, err};
        st = parse(f, &r);
    }
    if (st != LLM_OK) {
        llm_gguf_close(f);
        return st;
    }
    *out = f;
    return LLM_OK;
}

/* ---- metadata accessors -------------------------------------------------------------------------------- */

size_t llm_gguf_kv_count(const llm_gguf *f) {
    return f->n_kvs;
}

const char *llm_gguf_kv_key(const llm_gguf *f, size_t i) {
    return i < f->n_kvs ? f->kvs[i].key : NULL;
}

int64_t llm_gguf_find_key(const llm_gguf *f, const char *key) {
    return llm_strmap_get(&f->kv_index, key);
}

int llm_gguf_key_type(const llm_gguf *f, const char *key) {
    int i = llm_strmap_get(&f->kv_index, key);
    return i < 0 ? -1 : (int)f->kvs[i].type;
}

static llm_status lookup(const llm_gguf *f, const char *key, const gguf_kv **kv, llm_error *err) {
    int i = llm_strmap_get(&f->kv_index, key);
    if (i < 0) return llm_fail(err, LLM_ERR_NOT_FOUND, "%s: key '%s' not found", f->path, key);
    *kv = &f->kvs[i];
    return LLM_OK;
}

/* expected: what the caller asked for; found: the kv's type (or the element type of an array). */
static llm_status type_mismatch(const llm_gguf *f, const gguf_kv *kv, uint32_t type, const char *expected,
                                llm_error *err) {
    (void)type;
    int arr = kv->type == LLM_GGUF_ARRAY;
    return llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: key '%s' (byte %llu): expected %s, found %s%s", f->path,
                    kv->key, (unsigned long long)kv->key_off, expected, arr ? "array of " : "",
                    llm_gguf_type_name(arr ? kv->arr_type : kv->type));
}

/* Integer value of type at file offset off: *is_signed tells how to read *v. Returns 0 if not an integer. */
static int read_int(const unsigned char *p, uint32_t type, int64_t *sv, uint64_t *uv, int *is_signed) {
    *is_signed = 0;
    switch (type) {
    case LLM_GGUF_UINT8:
        *uv = p[0];
        return 1;
    case LLM_GGUF_UINT16: {
        uint16_t v;
        memcpy(&v, p, 2);
        *uv = v;
        return 1;
    }
    case LLM_GGUF_UINT32: {
        uint32_t v;
        memcpy(&v, p, 4);
        *uv = v;
        return 1;
    }
    case LLM_GGUF_UINT64:
        memcpy(uv, p, 8);
        return 1;
    case LLM_GGUF_INT8:
        *sv = (int8_t)p[0];
        break;
    case LLM_GGUF_INT16: {
        int16_t v;
        memcpy(&v, p, 2);
        *sv = v;
        break;
    }
    case LLM_GGUF_INT32: {
        int32_t v;
        memcpy(&v, p, 4);
        *sv = v;
        break;
    }
    case LLM_GGUF_INT64:
        memcpy(sv, p, 8);
        break;
    default:
        return 0;
    }
    *is_signed = 1;
    return 1;
}

/* Reads the integer at p (of type) into [lo, hi]; expected names the wanted type for the message. */
static llm_status get_int(const llm_gguf *f, const gguf_kv *kv, uint32_t type, const unsigned char *p,
                          int64_t lo, uint64_t hi, const char *expected, int64_t *s_out, uint64_t *u_out,
                          llm_error *err) {
    int64_t sv = 0;
    uint64_t uv = 0;
    int is_signed;
    if (!read_int(p, type, &sv, &uv, &is_signed)) return type_mismatch(f, kv, type, expected, err);
    int fits = is_signed ? (sv >= lo && (sv < 0 || (uint64_t)sv <= hi)) : uv <= hi;
    if (!fits)
        return llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: key '%s' (byte %llu): value %s%llu does not fit in %s",
                        f->path, kv->key, (unsigned long long)kv->key_off, is_signed && sv < 0 ? "-" : "",
                        is_signed ? (sv < 0 ? 0 - (unsigned long long)sv : (unsigned long long)sv)
                                  : (unsigned long long)uv,
                        expected);
    if (is_signed) {
        *s_out = sv;
        *u_out = (uint64_t)sv;
    } else {
        *s_out = (int64_t)uv;
        *u_out = uv;
    }
    return LLM_OK;
}

static llm_status scalar(const llm_gguf *f, const char *key, const gguf_kv **kv, const unsigned char **p,
                         llm_error *err) {
    llm_status st = lookup(f, key, kv, err);
    if (st != LLM_OK) return st;
    *p = f->map.data + (*kv)->val_off;
    return LLM_OK;
}

/* An integer key's value checked against [lo, hi] (signed in *s, unsigned in *u). */
static llm_status scalar_int(const llm_gguf *f, const char *key, int64_t lo, uint64_t hi, const char *want,
                             int64_t *s, uint64_t *u, llm_error *err) {
    const gguf_kv *kv = NULL;
    const unsigned char *p = NULL;
    llm_status st = scalar(f, key, &kv, &p, err);
    return st == LLM_OK ? get_int(f, kv, kv->type, p, lo, hi, want, s, u, err) : st;
}

llm_status llm_gguf_get_u32(const llm_gguf *f, const char *key, uint32_t *out, llm_error *err) {
    int64_t s = 0;
    uint64_t u = 0;
    llm_status st = scalar_int(f, key, 0, UINT32_MAX, "uint32", &s, &u, err);
    if (st == LLM_OK) *out = (uint32_t)u;
    return st;
}

llm_status llm_gguf_get_i32(const llm_gguf *f, const char *key, int32_t *out, llm_error *err) {
    int64_t s = 0;
    uint64_t u = 0;
    llm_status st = scalar_int(f, key, INT32_MIN, INT32_MAX, "int32", &s, &u, err);
    if (st == LLM_OK) *out = (int32_t)s;
    return st;
}

llm_status llm_gguf_get_u64(const llm_gguf *f, const char *key, uint64_t *out, llm_error *err) {
    int64_t s = 0;
    uint64_t u = 0;
    llm_status st = scalar_int(f, key, 0, UINT64_MAX, "uint64", &s, &u, err);
    if (st == LLM_OK) *out = u;
    return st;
}

static llm_status get_float(const llm_gguf *f, const gguf_kv *kv, uint32_t type, const unsigned char *p,
                            float *out, llm_error *err) {
    if (type == LLM_GGUF_FLOAT32) {
        memcpy(out, p, 4);
        return LLM_OK;
    }
    if (type == LLM_GGUF_FLOAT64) {
        double d;
        memcpy(&d, p, 8);
        *out = (float)d;
        return LLM_OK;
    }
    return type_mismatch(f, kv, type, "float32", err);
}

llm_status llm_gguf_get_f32(const llm_gguf *f, const char *key, float *out, llm_error *err) {
    const gguf_kv *kv = NULL;
    const unsigned char *p = NULL;
    llm_status st = scalar(f, key, &kv, &p, err);
    return st == LLM_OK ? get_float(f, kv, kv->type, p, out, err) : st;
}

llm_status llm_gguf_get_bool(const llm_gguf *f, const char *key, bool *out, llm_error *err) {
    const gguf_kv *kv = NULL;
    const unsigned char *p = NULL;
    llm_status st = scalar(f, key, &kv, &p, err);
    if (st != LLM_OK) return st;
    if (kv->type != LLM_GGUF_BOOL) return type_mismatch(f, kv, kv->type, "bool", err);
    *out = p[0] != 0;
    return LLM_OK;
}

static void string_at(const llm_gguf *f, uint64_t off, const char **out, size_t *len) {
    uint64_t n;
    memcpy(&n, f->map.data + off, 8);
    *out = (const char *)f->map.data + off + 8;
    *len = (size_t)n;
}

llm_status llm_gguf_get_string(const llm_gguf *f, const char *key, const char **out, size_t *len,
                               llm_error *err) {
    const gguf_kv *kv = NULL;
    const unsigned char *p = NULL;
    llm_status st = scalar(f, key, &kv, &p, err);
    if (st != LLM_OK) return st;
    if (kv->type != LLM_GGUF_STRING) return type_mismatch(f, kv, kv->type, "string", err);
    string_at(f, kv->val_off, out, len);
    return LLM_OK;
}

static llm_status array(const llm_gguf *f, const char *key, const gguf_kv **kv, llm_error *err) {
    llm_status st = lookup(f, key, kv, err);
    if (st != LLM_OK) return st;
    if ((*kv)->type != LLM_GGUF_ARRAY) return type_mismatch(f, *kv, (*kv)->type, "array", err);
    return LLM_OK;
}

llm_status llm_gguf_get_arr_len(const llm_gguf *f, const char *key, uint64_t *n, uint32_t *elem_type,
                                llm_error *err) {
    const gguf_kv *kv = NULL;
    llm_status st = array(f, key, &kv, err);
    if (st != LLM_OK) return st;
    *n = kv->n;
    if (elem_type) *elem_type = kv->arr_type;
    return LLM_OK;
}

/* The array kv named key and a pointer to its element i (scalar arrays). */
static llm_status element(const llm_gguf *f, const char *key, uint64_t i, const gguf_kv **kv,
                          const unsigned char **p, llm_error *err) {
    llm_status st = array(f, key, kv, err);
    if (st != LLM_OK) return st;
    if (i >= (*kv)->n)
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "%s: key '%s': index %llu past the array length %llu",
                        f->path, key, (unsigned long long)i, (unsigned long long)(*kv)->n);
    *p = (*kv)->arr_type == LLM_GGUF_STRING ? NULL
                                            : f->map.data + (*kv)->val_off + i * scalar_size((*kv)->arr_type);
    return LLM_OK;
}

llm_status llm_gguf_get_arr_str(const llm_gguf *f, const char *key, uint64_t i, const char **out, size_t *len,
                                llm_error *err) {
    const gguf_kv *kv = NULL;
    const unsigned char *p = NULL;
    llm_status st = element(f, key, i, &kv, &p, err);
    if (st != LLM_OK) return st;
    if (kv->arr_type != LLM_GGUF_STRING) return type_mismatch(f, kv, kv->arr_type, "array of string", err);
    string_at(f, kv->str_off[i], out, len);
    return LLM_OK;
}

/* Element i of an integer array checked against [lo, hi] (signed in *s, unsigned in *u). */
static llm_status element_int(const llm_gguf *f, const char *key, uint64_t i, int64_t lo, uint64_t hi,
                              const char *want, int64_t *s, uint64_t *u, llm_error *err) {
    const gguf_kv *kv = NULL;
    const unsigned char *p = NULL;
    llm_status st = element(f, key, i, &kv, &p, err);
    return st == LLM_OK ? get_int(f, kv, kv->arr_type, p, lo, hi, want, s, u, err) : st;
}

llm_status llm_gguf_get_arr_u32(const llm_gguf *f, const char *key, uint64_t i, uint32_t *out,
                                llm_error *err) {
    int64_t s = 0;
    uint64_t u = 0;
    llm_status st = element_int(f, key, i, 0, UINT32_MAX, "array of uint32", &s, &u, err);
    if (st == LLM_OK) *out = (uint32_t)u;
    return st;
}

llm_status llm_gguf_get_arr_i32(const llm_gguf *f, const char *key, uint64_t i, int32_t *out,
                                llm_error *err) {
    int64_t s = 0;
    uint64_t u = 0;
    llm_status st = element_int(f, key, i, INT32_MIN, INT32_MAX, "array of int32", &s, &u, err);
    if (st == LLM_OK) *out = (int32_t)s;
    return st;
}

llm_status llm_gguf_get_arr_f32(const llm_gguf *f, const char *key, uint64_t i, float *out, llm_error *err) {
    const gguf_kv *kv = NULL;
    const unsigned char *p = NULL;
    llm_status st = element(f, key, i, &kv, &p, err);
    return st == LLM_OK ? get_float(f, kv, kv->arr_type, p, out, err) : st;
}

/* ---- tensor accessors ---------------------------------------------------------------------------------- */

size_t llm_gguf_tensor_count(const llm_gguf *f) {
    return f->n_tensors;
}

const llm_gguf_tensor *llm_gguf_tensor_at(const llm_gguf *f, size_t i) {
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const llm_gguf_tensor *llm_gguf_find_tensor(const llm_gguf *f, const char *name) {
    int i = llm_strmap_get(&f->tensor_index, name);
    return i < 0 ? NULL : &f->tensors[i];
}

/* ---- writer -------------------------------------------------------------------------------------------- */

typedef struct wbuf {
    unsigned char *p;
    size_t len, cap;
} wbuf;

static int wb_put(wbuf *b, const void *data, size_t n) {
    if (n > SIZE_MAX - b->len) return -1;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) {
            if (cap > SIZE_MAX / 2) return -1;
            cap *= 2;
        }
        unsigned char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    if (n && data) memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

static int wb_u32(wbuf *b, uint32_t v) {
    return wb_put(b, &v, 4);
}
static int wb_u64(wbuf *b, uint64_t v) {
    return wb_put(b, &v, 8);
}
static int wb_str(wbuf *b, const char *s, size_t n) {
    return wb_u64(b, n) || wb_put(b, s, n);
}

typedef struct wtensor {
    char *name;
    uint32_t type;
    int n_dims;
    uint64_t dims[LLM_GGUF_MAX_DIMS];
    const void *data;
    uint64_t n_bytes;
} wtensor;

struct llm_gguf_writer {
    char *path;
    wbuf kvs;
    uint64_t n_kvs;
    char **keys;
    size_t n_keys, cap_keys;
    wtensor *tensors;
    size_t n_tensors, cap_tensors;
    uint32_t alignment;
};

void llm_gguf_writer_free(llm_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_keys; i++) free(w->keys[i]);
    free(w->keys);
    for (size_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->tensors);
    free(w->kvs.p);
    free(w->path);
    free(w);
}

llm_status llm_gguf_writer_create(const char *path, llm_gguf_writer **out, llm_error *err) {
    *out = NULL;
    if (!path || !*path) return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "gguf writer: empty path");
    llm_gguf_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    }
    w->alignment = LLM_GGUF_DEFAULT_ALIGNMENT;
    *out = w;
    return LLM_OK;
}

/* Validates key and starts its entry: key string + value type. On failure nothing is added. */
static llm_status begin_kv(llm_gguf_writer *w, const char *key, uint32_t type, llm_error *err) {
    if (!key) return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "%s: NULL key", w->path);
    const char *why = name_problem((const unsigned char *)key, strlen(key));
    if (why) return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "%s: key '%.100s' %s", w->path, key, why);
    for (size_t i = 0; i < w->n_keys; i++)
        if (strcmp(w->keys[i], key) == 0)
            return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "%s: duplicate key '%s'", w->path, key);
    if (w->n_keys == w->cap_keys) {
        size_t cap = w->cap_keys ? w->cap_keys * 2 : 16;
        char **k = realloc(w->keys, cap * sizeof *k);
        if (!k) return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory", w->path);
        w->keys = k;
        w->cap_keys = cap;
    }
    char *copy = strdup(key);
    if (!copy || wb_str(&w->kvs, key, strlen(key)) || wb_u32(&w->kvs, type)) {
        free(copy);
        return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory", w->path);
    }
    w->keys[w->n_keys++] = copy;
    w->n_kvs++;
    return LLM_OK;
}

/* Adds key with a value already encoded in val (len bytes), all or nothing. */
static llm_status add_kv(llm_gguf_writer *w, const char *key, uint32_t type, const void *val, size_t len,
                         llm_error *err) {
    size_t mark = w->kvs.len;
    llm_status st = begin_kv(w, key, type, err);
    if (st != LLM_OK) return st;
    if (wb_put(&w->kvs, val, len)) {
        w->kvs.len = mark;
        free(w->keys[--w->n_keys]);
        w->n_kvs--;
        return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory", w->path);
    }
    return LLM_OK;
}

llm_status llm_gguf_writer_add_u32(llm_gguf_writer *w, const char *key, uint32_t v, llm_error *err) {
    if (key && strcmp(key, "general.alignment") == 0) {
        if (v == 0 || (v & (v - 1)) != 0)
            return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "%s: general.alignment %u is not a power of two",
                            w->path, v);
        llm_status st = add_kv(w, key, LLM_GGUF_UINT32, &v, 4, err);
        if (st == LLM_OK) w->alignment = v;
        return st;
    }
    return add_kv(w, key, LLM_GGUF_UINT32, &v, 4, err);
}

llm_status llm_gguf_writer_add_i32(llm_gguf_writer *w, const char *key, int32_t v, llm_error *err) {
    return add_kv(w, key, LLM_GGUF_INT32, &v, 4, err);
}

llm_status llm_gguf_writer_add_f32(llm_gguf_writer *w, const char *key, float v, llm_error *err) {
    return add_kv(w, key, LLM_GGUF_FLOAT32, &v, 4, err);
}

llm_status llm_gguf_writer_add_bool(llm_gguf_writer *w, const char *key, bool v, llm_error *err) {
    unsigned char b = v ? 1 : 0;
    return add_kv(w, key, LLM_GGUF_BOOL, &b, 1, err);
}

/* Encodes into a scratch buffer first, so the KV is added all or nothing. */
llm_status llm_gguf_writer_add_string(llm_gguf_writer *w, const char *key, const char *value, size_t len,
                                      llm_error *err) {
    wbuf b = {0};
    if (!value && len)
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "%s: key '%s': NULL string", w->path, key);
    if (wb_str(&b, value, len)) {
        free(b.p);
        return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory", w->path);
    }
    llm_status st = add_kv(w, key, LLM_GGUF_STRING, b.p, b.len, err);
    free(b.p);
    return st;
}

static llm_status add_array(llm_gguf_writer *w, const char *key, uint32_t elem_type, const void *values,
                            size_t n, const char *const *strings, llm_error *err) {
    wbuf b = {0};
    int bad = wb_u32(&b, elem_type) || wb_u64(&b, n);
    for (size_t i = 0; !bad && i < n; i++) {
        if (strings) {
            if (!strings[i]) {
                free(b.p);
                return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "%s: key '%s': string %zu is NULL", w->path,
                                key, i);
            }
            bad = wb_str(&b, strings[i], strlen(strings[i]));
        }
    }
    if (!bad && !strings && n) bad = wb_put(&b, values, n * 4);
    if (bad) {
        free(b.p);
        return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory", w->path);
    }
    llm_status st = add_kv(w, key, LLM_GGUF_ARRAY, b.p, b.len, err);
    free(b.p);
    return st;
}

llm_status llm_gguf_writer_add_str_array(llm_gguf_writer *w, const char *key, const char *const *values,
                                         size_t n, llm_error *err) {
    if (!values && n) return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "%s: NULL array", w->path);
    return add_array(w, key, LLM_GGUF_STRING, NULL, n, values ? values : (const char *const[]){""}, err);
}

llm_status llm_gguf_writer_add_i32_array(llm_gguf_writer *w, const char *key, const int32_t *values, size_t n,
                                         llm_error *err) {
    if (!values && n) return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "%s: NULL array", w->path);
    if (n > SIZE_MAX / 8) return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "%s: array too long", w->path);
    return add_array(w, key, LLM_GGUF_INT32, values, n, NULL, err);
}

llm_status llm_gguf_writer_add_f32_array(llm_gguf_writer *w, const char *key, const float *values, size_t n,
                                         llm_error *err) {
    if (!values && n) return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "%s: NULL array", w->path);
    if (n > SIZE_MAX / 8) return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "%s: array too long", w->path);
    return add_array(w, key, LLM_GGUF_FLOAT32, values, n, NULL, err);
}

llm_status llm_gguf_writer_add_tensor(llm_gguf_writer *w, const char *name, uint32_t type, int n_dims,
                                      const uint64_t *dims, const void *data, size_t n_bytes,
                                      llm_error *err) {
    if (!name) return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "%s: NULL tensor name", w->path);
    size_t nl = strlen(name);
    const char *why = name_problem((const unsigned char *)name, nl);
    if (!why && nl > LLM_GGUF_MAX_NAME) why = "is longer than 63 bytes";
    if (why)
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "%s: tensor name '%.100s' %s", w->path, name, why);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "%s: duplicate tensor '%s'", w->path, name);
    if (type != LLM_GGML_F32 && type != LLM_GGML_F16 && type != LLM_GGML_BF16 && type != LLM_GGML_Q8_0 &&
        type != LLM_GGML_Q4_K)
        return llm_fail(err, LLM_ERR_UNSUPPORTED, "%s: tensor '%s': the writer does not support ggml type %u",
                        w->path, name, type);
    if (n_dims < 1 || n_dims > LLM_GGUF_MAX_DIMS || !dims)
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "%s: tensor '%s': n_dims %d (must be 1..4)", w->path,
                        name, n_dims);
    uint32_t be, bb;
    llm_ggml_type_block(type, &be, &bb);
    uint64_t n = 1;
    for (int d = 0; d < n_dims; d++) {
        if (dims[d] < 1 || dims[d] > (uint64_t)INT64_MAX / n)
            return llm_fail(err, LLM_ERR_INVALID_ARGUMENT,
                            "%s: tensor '%s': dims[%d] = %llu is 0 or overflows", w->path, name, d,
                            (unsigned long long)dims[d]);
        n *= dims[d];
    }
    if (dims[0] % be != 0)
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT,
                        "%s: tensor '%s': dims[0] = %llu is not a multiple of %u", w->path, name,
                        (unsigned long long)dims[0], be);
    if (n / be > UINT64_MAX / bb || n / be * bb != n_bytes || (!data && n_bytes))
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "%s: tensor '%s': %zu bytes given, the dims need %llu",
                        w->path, name, n_bytes, (unsigned long long)(n / be * bb));
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? w->cap_tensors * 2 : 16;
        wtensor *t = realloc(w->tensors, cap * sizeof *t);
        if (!t) return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory", w->path);
        w->tensors = t;
        w->cap_tensors = cap;
    }
    wtensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory", w->path);
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++) t->dims[d] = dims[d];
    t->data = data;
    t->n_bytes = n_bytes;
    w->n_tensors++;
    return LLM_OK;
}

static uint64_t pad_to(uint64_t x, uint64_t a) {
    return (a - x % a) % a;
}

llm_status llm_gguf_writer_finish(llm_gguf_writer *w, llm_error *err) {
    if (!w) return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "gguf writer: NULL");
    llm_status st = LLM_OK;
    wbuf head = {0};
    const uint64_t a = w->alignment;
    int bad = wb_put(&head, "GGUF", 4) || wb_u32(&head, 3) || wb_u64(&head, w->n_tensors) ||
              wb_u64(&head, w->n_kvs) || wb_put(&head, w->kvs.p, w->kvs.len);
    uint64_t off = 0;
    for (size_t i = 0; !bad && i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        bad = wb_str(&head, t->name, strlen(t->name)) || wb_u32(&head, (uint32_t)t->n_dims);
        for (int d = 0; !bad && d < t->n_dims; d++) bad = wb_u64(&head, t->dims[d]);
        bad = bad || wb_u32(&head, t->type) || wb_u64(&head, off);
        off += t->n_bytes + pad_to(t->n_bytes, a);
    }
    static const unsigned char zeros[256] = {0};
    for (uint64_t p = pad_to(head.len, a); !bad && p > 0;) {
        size_t n = p < sizeof zeros ? (size_t)p : sizeof zeros;
        bad = wb_put(&head, zeros, n);
        p -= n;
    }
    char *tmp = bad ? NULL : malloc(strlen(w->path) + 5);
    if (!tmp) {
        free(head.p);
        llm_gguf_writer_free(w);
        return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    }
    sprintf(tmp, "%s.tmp", w->path);
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        st = llm_fail(err, LLM_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    } else {
        int ok = fwrite(head.p, 1, head.len, fp) == head.len;
        for (size_t i = 0; ok && i < w->n_tensors; i++) {
            const wtensor *t = &w->tensors[i];
            ok = t->n_bytes == 0 || fwrite(t->data, 1, (size_t)t->n_bytes, fp) == t->n_bytes;
            for (uint64_t p = pad_to(t->n_bytes, a); ok && p > 0;) {
                size_t n = p < sizeof zeros ? (size_t)p : sizeof zeros;
                ok = fwrite(zeros, 1, n, fp) == n;
                p -= n;
            }
        }
        ok = ok && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
        if (fclose(fp) != 0) ok = 0;
        if (!ok)
            st = llm_fail(err, LLM_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        else if (rename(tmp, w->path) != 0)
            st = llm_fail(err, LLM_ERR_IO, "%s: cannot rename to %s: %s", tmp, w->path, strerror(errno));
        if (st != LLM_OK) remove(tmp);
    }
    free(tmp);
    free(head.p);
    llm_gguf_writer_free(w);
    return st;
}
