#include "io/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

/* The reference implementation refuses headers above 100 MB; a hostile length must not make us
 * allocate or scan gigabytes. */
#define LLM_ST_MAX_HEADER (100u * 1024u * 1024u)

static const struct {
    const char *name;
    int size;
} st_dtypes[] = {
    {"F64", 8},  {"F32", 4},     {"F16", 2},     {"BF16", 2},    {"I64", 8}, {"U64", 8},
    {"I32", 4},  {"U32", 4},     {"I16", 2},     {"U16", 2},     {"I8", 1},  {"U8", 1},
    {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"F8_E8M0", 1},
};

int llm_st_dtype_size(const char *dtype) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(st_dtypes[i].name, dtype) == 0) return st_dtypes[i].size;
    return -1;
}

void llm_st_close(llm_st_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    free(f->path);
    llm_unmap_file(&f->map);
    memset(f, 0, sizeof *f);
}

static int cmp_begin(const void *a, const void *b) {
    const llm_st_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Where in the file a JSON value starts, as "line L, column C (byte B of the file)". Returns out.
 * Costs a scan of the header up to the value: call it only on the way to an error, never per tensor. */
static const char *json_where(const char *json, size_t len, const llm_json *v, char *out, size_t cap) {
    size_t off = llm_json_offset(v);
    int line = 0, col = 0;
    llm_json_line_col(json, len, off, &line, &col);
    snprintf(out, cap, "header line %d, column %d (file byte %zu)", line, col, (size_t)(8 + off));
    return out;
}

static llm_status parse_entry(llm_st_file *f, const char *json, size_t json_len, const char *key,
                              size_t key_len, const llm_json *v, uint64_t data_size, llm_st_tensor *t,
                              llm_error *err) {
    char where[96];
#define WHERE() json_where(json, json_len, v, where, sizeof where)
    if (llm_json_type_of(v) != LLM_JSON_OBJECT)
        return llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: tensor '%.*s' (%s): entry is not a JSON object",
                        f->path, (int)key_len, key, WHERE());
    t->name = malloc(key_len + 1);
    if (!t->name) return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
    memcpy(t->name, key, key_len);
    t->name[key_len] = '\0';

    const llm_json *dtype = llm_json_get(v, "dtype");
    size_t dlen = 0;
    const char *ds = llm_json_string(dtype, &dlen);
    if (!ds)
        return llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: tensor '%s' (%s): missing or non-string \"dtype\"",
                        f->path, t->name, WHERE());
    /* a NUL inside the JSON string ("F32\u0000junk") must not pass for "F32" */
    int esize = (dlen < sizeof t->dtype && strlen(ds) == dlen) ? llm_st_dtype_size(ds) : -1;
    if (esize < 0)
        return llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: tensor '%s': unknown dtype \"%.*s\"", f->path, t->name,
                        (int)(dlen > 32 ? 32 : dlen), ds);
    memcpy(t->dtype, ds, dlen + 1);
    t->elem_size = esize;

    const llm_json *shape = llm_json_get(v, "shape");
    if (llm_json_type_of(shape) != LLM_JSON_ARRAY)
        return llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: tensor '%s' (%s): missing or non-array \"shape\"",
                        f->path, t->name, WHERE());
    size_t nd = llm_json_count(shape);
    if (nd > LLM_ST_MAX_DIMS)
        return llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: tensor '%s': %zu dimensions, at most %d supported",
                        f->path, t->name, nd, LLM_ST_MAX_DIMS);
    t->n_dims = (int)nd;
    uint64_t n = 1;
    int overflow = 0;
    for (size_t i = 0; i < nd; i++) {
        int64_t d;
        if (llm_json_int64(llm_json_value_at(shape, i), &d) != 0 || d < 0)
            return llm_fail(err, LLM_ERR_BAD_FORMAT,
                            "%s: tensor '%s': shape[%zu] is not a non-negative integer", f->path, t->name, i);
        t->shape[i] = d;
        if (d != 0 && n > UINT64_MAX / (uint64_t)d) overflow = 1;
        n *= (uint64_t)d;
    }
    if (overflow || n > UINT64_MAX / (uint64_t)esize)
        return llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: tensor '%s': element count overflows", f->path,
                        t->name);
    t->n_elems = n;

    const llm_json *offs = llm_json_get(v, "data_offsets");
    int64_t b, e;
    if (llm_json_type_of(offs) != LLM_JSON_ARRAY || llm_json_count(offs) != 2 ||
        llm_json_int64(llm_json_value_at(offs, 0), &b) != 0 ||
        llm_json_int64(llm_json_value_at(offs, 1), &e) != 0 || b < 0 || e < 0)
        return llm_fail(
            err, LLM_ERR_BAD_FORMAT,
            "%s: tensor '%s' (%s): \"data_offsets\" must be [begin, end] with non-negative integers", f->path,
            t->name, WHERE());
    if (b > e)
        return llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] has begin > end",
                        f->path, t->name, (long long)b, (long long)e);
    if ((uint64_t)e > data_size)
        return llm_fail(err, LLM_ERR_BAD_FORMAT,
                        "%s: tensor '%s': data_offsets [%lld, %lld] end past the data section of %llu bytes "
                        "(file offset %llu > file size %llu; truncated file?)",
                        f->path, t->name, (long long)b, (long long)e, (unsigned long long)data_size,
                        (unsigned long long)(8 + f->header_len + (uint64_t)e),
                        (unsigned long long)f->map.size);
    t->begin = (uint64_t)b;
    t->end = (uint64_t)e;
    uint64_t want = n * (uint64_t)esize;
    if (want != t->end - t->begin) {
        char shp[128] = "";
        size_t pos = 0;
        for (int i = 0; i < t->n_dims && pos < sizeof shp - 24; i++)
            pos += (size_t)snprintf(shp + pos, sizeof shp - pos, "%s%lld", i ? ", " : "",
                                    (long long)t->shape[i]);
        return llm_fail(
            err, LLM_ERR_BAD_FORMAT,
            "%s: tensor '%s': dtype %s x shape [%s] = %llu bytes, but data_offsets span %llu bytes", f->path,
            t->name, t->dtype, shp, (unsigned long long)want, (unsigned long long)(t->end - t->begin));
    }
    return LLM_OK;
#undef WHERE
}

llm_status llm_st_open(const char *path, llm_st_file *out, llm_error *err) {
    memset(out, 0, sizeof *out);
    out->path = strdup(path);
    if (!out->path) return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    llm_status st = llm_map_file(path, &out->map, err);
    if (st != LLM_OK) {
        llm_st_close(out);
        return st;
    }
    const unsigned char *p = out->map.data;
    size_t size = out->map.size;
    if (size < 8) {
        llm_st_close(out);
        return llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: file is %zu bytes, too short for a safetensors header",
                        path, size);
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | p[i];
    out->header_len = n;
    if (n > LLM_ST_MAX_HEADER || n > size - 8) {
        llm_st_close(out);
        return llm_fail(err, LLM_ERR_BAD_FORMAT,
                        "%s: header length %llu (bytes 0-7) runs past the end of the file (%zu bytes)%s",
                        path, (unsigned long long)n, size, n > LLM_ST_MAX_HEADER ? " or exceeds 100 MB" : "");
    }
    const char *json = (const char *)p + 8;
    llm_json_doc *doc = NULL;
    char jerr[256];
    if (llm_json_parse(json, (size_t)n, &doc, jerr, sizeof jerr) != 0) {
        llm_st_close(out);
        return llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: header JSON: %s (header starts at file byte 8)", path,
                        jerr);
    }
    const llm_json *root = llm_json_root(doc);
    if (llm_json_type_of(root) != LLM_JSON_OBJECT) {
        llm_json_doc_free(doc);
        llm_st_close(out);
        return llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: header is not a JSON object", path);
    }
    uint64_t data_size = size - 8 - n;
    size_t count = llm_json_count(root);
    out->tensors = calloc(count ? count : 1, sizeof *out->tensors);
    if (!out->tensors) {
        llm_json_doc_free(doc);
        llm_st_close(out);
        return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    st = LLM_OK;
    for (size_t i = 0; i < count && st == LLM_OK; i++) {
        size_t klen = 0;
        const char *key = llm_json_key_at(root, i, &klen);
        const llm_json *v = llm_json_value_at(root, i);
        if (klen == 12 && memcmp(key, "__metadata__", 12) == 0) {
            if (llm_json_type_of(v) != LLM_JSON_OBJECT)
                st = llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: \"__metadata__\" is not an object", path);
            for (size_t j = 0; st == LLM_OK && j < llm_json_count(v); j++)
                if (llm_json_type_of(llm_json_value_at(v, j)) != LLM_JSON_STRING)
                    st = llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: \"__metadata__\" values must be strings",
                                  path);
            continue;
        }
        if (memchr(key, '\0', klen)) {
            st = llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: tensor name contains a NUL byte", path);
            break;
        }
        st = parse_entry(out, json, (size_t)n, key, klen, v, data_size, &out->tensors[out->n_tensors], err);
        out->n_tensors++; /* counted even on failure so its name is freed */
    }
    llm_json_doc_free(doc);
    if (st != LLM_OK) {
        llm_st_close(out);
        return st;
    }
    /* Duplicate names are caught when the model indexes tensors across all shards. */
    /* Layout: sorted by offset, the tensors must tile the data section exactly. */
    qsort(out->tensors, out->n_tensors, sizeof *out->tensors, cmp_begin);
    uint64_t expect = 0;
    for (size_t i = 0; i < out->n_tensors; i++) {
        llm_st_tensor *t = &out->tensors[i];
        if (t->begin < expect) {
            const llm_st_tensor *prev = &out->tensors[i - 1];
            st = llm_fail(err, LLM_ERR_BAD_FORMAT,
                          "%s: tensor '%s' [%llu, %llu) overlaps tensor '%s' [%llu, %llu)", path, t->name,
                          (unsigned long long)t->begin, (unsigned long long)t->end, prev->name,
                          (unsigned long long)prev->begin, (unsigned long long)prev->end);
            break;
        }
        if (t->begin > expect) {
            st = llm_fail(err, LLM_ERR_BAD_FORMAT,
                          "%s: %llu unindexed bytes before tensor '%s' (data offsets %llu..%llu)", path,
                          (unsigned long long)(t->begin - expect), t->name, (unsigned long long)expect,
                          (unsigned long long)t->begin);
            break;
        }
        expect = t->end;
        t->data = p + 8 + n + t->begin;
    }
    if (st == LLM_OK && expect != data_size)
        st = llm_fail(err, LLM_ERR_BAD_FORMAT,
                      "%s: tensors cover %llu bytes of a %llu-byte data section (trailing or missing data)",
                      path, (unsigned long long)expect, (unsigned long long)data_size);
    if (st != LLM_OK) {
        llm_st_close(out);
        return st;
    }
    return LLM_OK;
}
