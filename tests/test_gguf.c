/* test_gguf.c — the GGUF reader and writer.
 *
 * 1. Round trip: the writer writes every KV type it supports and tensors of F32 / F16 / BF16 / Q8_0 with
 *    fresh random contents; the reader gives every value and every data byte back.
 * 2. A hand-built file with every value type of the format (the writer makes only some of them).
 * 3. Corrupt files built byte by byte, each with its expected status and message fragment (the message
 *    must also name the file).
 * 4. Every prefix of a small valid file fails cleanly; random byte mutations never crash (the ASan+UBSan
 *    build checks reads and leaks) and either open with every accessor safe or fail with a status. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"
#include "test_util.h"

static char *g_dir;
static tu_rng g_rng;

/* ---- a little-endian byte builder ---------------------------------------------------------------------- */

typedef struct bb {
    unsigned char *p;
    size_t len, cap;
} bb;

static void put(bb *b, const void *d, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) abort();
        b->cap = cap;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}
static void u8(bb *b, uint8_t v) {
    put(b, &v, 1);
}
static void u32(bb *b, uint32_t v) {
    put(b, &v, 4);
}
static void u64(bb *b, uint64_t v) {
    put(b, &v, 8);
}
static void str(bb *b, const char *s) {
    u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void header(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kvs) {
    put(b, "GGUF", 4);
    u32(b, version);
    u64(b, n_tensors);
    u64(b, n_kvs);
}
static void kv_u32(bb *b, const char *key, uint32_t v) {
    str(b, key);
    u32(b, LLM_GGUF_UINT32);
    u32(b, v);
}
static void tinfo(bb *b, const char *name, uint32_t n_dims, const uint64_t *dims, uint32_t type,
                  uint64_t off) {
    str(b, name);
    u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) u64(b, dims[i]);
    u32(b, type);
    u64(b, off);
}
static void pad(bb *b, size_t align) {
    while (b->len % align) u8(b, 0);
}
static void fill(bb *b, size_t n) {
    for (size_t i = 0; i < n; i++) u8(b, (uint8_t)tu_rng_next(&g_rng));
}

static char *path_of(const char *name) {
    static char p[1024];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    return p;
}

/* ---- accessors exercised on whatever opened ------------------------------------------------------------ */

static void exercise(const llm_gguf *f) {
    llm_error e;
    for (size_t i = 0; i < llm_gguf_kv_count(f); i++) {
        const char *k = llm_gguf_kv_key(f, i);
        TU_CHECK(k && llm_gguf_find_key(f, k) == (int64_t)i, "key %zu", i);
        uint32_t u;
        int32_t s;
        uint64_t u6, n = 0;
        float x;
        bool b;
        const char *sp;
        size_t sl;
        (void)llm_gguf_get_u32(f, k, &u, &e);
        (void)llm_gguf_get_i32(f, k, &s, &e);
        (void)llm_gguf_get_u64(f, k, &u6, &e);
        (void)llm_gguf_get_f32(f, k, &x, &e);
        (void)llm_gguf_get_bool(f, k, &b, &e);
        if (llm_gguf_get_string(f, k, &sp, &sl, &e) == LLM_OK && sl) {
            volatile char c = sp[0] ^ sp[sl - 1];
            (void)c;
        }
        if (llm_gguf_get_arr_len(f, k, &n, NULL, &e) == LLM_OK && n) {
            uint64_t idx[2] = {0, n - 1};
            for (int j = 0; j < 2; j++) {
                if (llm_gguf_get_arr_str(f, k, idx[j], &sp, &sl, &e) == LLM_OK && sl) {
                    volatile char c = sp[0] ^ sp[sl - 1];
                    (void)c;
                }
                (void)llm_gguf_get_arr_u32(f, k, idx[j], &u, &e);
                (void)llm_gguf_get_arr_i32(f, k, idx[j], &s, &e);
                (void)llm_gguf_get_arr_f32(f, k, idx[j], &x, &e);
            }
            TU_CHECK(llm_gguf_get_arr_u32(f, k, n, &u, &e) != LLM_OK, "index past the end");
        }
    }
    for (size_t i = 0; i < llm_gguf_tensor_count(f); i++) {
        const llm_gguf_tensor *t = llm_gguf_tensor_at(f, i);
        TU_CHECK(t && llm_gguf_find_tensor(f, t->name) == t, "tensor %zu lookup", i);
        const volatile unsigned char *d = t->data;
        unsigned char c = d[0] ^ d[t->n_bytes - 1];
        (void)c;
        TU_CHECK(t->file_offset % llm_gguf_alignment(f) == 0, "tensor %zu aligned", i);
    }
    TU_CHECK(llm_gguf_tensor_at(f, llm_gguf_tensor_count(f)) == NULL, "tensor_at past the end");
    TU_CHECK(llm_gguf_kv_key(f, llm_gguf_kv_count(f)) == NULL, "kv_key past the end");
}

/* ---- 1. writer round trip ------------------------------------------------------------------------------ */

typedef struct wt {
    const char *name;
    uint32_t type;
    int n_dims;
    uint64_t dims[4];
    size_t n_bytes;
    unsigned char *data;
} wt;

static void test_round_trip(uint32_t alignment) {
    const char *path = path_of("rt.gguf");
    llm_gguf_writer *w = NULL;
    llm_error e;
    TU_CHECK(llm_gguf_writer_create(path, &w, &e) == LLM_OK, "create: %s", e.msg);
    uint32_t vu = (uint32_t)tu_rng_next(&g_rng);
    int32_t vi = -(int32_t)tu_rng_below(&g_rng, 1000000) - 1;
    float vf = (float)tu_rng_below(&g_rng, 1000000) / 7.0f - 3.0f;
    char sval[40];
    for (size_t i = 0; i < sizeof sval; i++) sval[i] = (char)tu_rng_next(&g_rng); /* any bytes, NULs too */
    const char *strs[] = {"<s>", "</s>", "héllo", "", "Ġworld"};
    int32_t ia[37];
    float fa[19];
    for (int i = 0; i < 37; i++) ia[i] = (int32_t)tu_rng_next(&g_rng);
    for (int i = 0; i < 19; i++) fa[i] = (float)(int32_t)tu_rng_next(&g_rng) / 1e5f;
    TU_CHECK(llm_gguf_writer_add_string(w, "general.architecture", "llama", 5, &e) == LLM_OK, "%s", e.msg);
    if (alignment != LLM_GGUF_DEFAULT_ALIGNMENT)
        TU_CHECK(llm_gguf_writer_add_u32(w, "general.alignment", alignment, &e) == LLM_OK, "%s", e.msg);
    TU_CHECK(llm_gguf_writer_add_u32(w, "t.u32", vu, &e) == LLM_OK, "%s", e.msg);
    TU_CHECK(llm_gguf_writer_add_i32(w, "t.i32", vi, &e) == LLM_OK, "%s", e.msg);
    TU_CHECK(llm_gguf_writer_add_f32(w, "t.f32", vf, &e) == LLM_OK, "%s", e.msg);
    TU_CHECK(llm_gguf_writer_add_bool(w, "t.bool", true, &e) == LLM_OK, "%s", e.msg);
    TU_CHECK(llm_gguf_writer_add_bool(w, "t.bool0", false, &e) == LLM_OK, "%s", e.msg);
    TU_CHECK(llm_gguf_writer_add_string(w, "t.str", sval, sizeof sval, &e) == LLM_OK, "%s", e.msg);
    TU_CHECK(llm_gguf_writer_add_str_array(w, "t.strs", strs, 5, &e) == LLM_OK, "%s", e.msg);
    TU_CHECK(llm_gguf_writer_add_i32_array(w, "t.ia", ia, 37, &e) == LLM_OK, "%s", e.msg);
    TU_CHECK(llm_gguf_writer_add_f32_array(w, "t.fa", fa, 19, &e) == LLM_OK, "%s", e.msg);
    TU_CHECK(llm_gguf_writer_add_i32_array(w, "t.empty", NULL, 0, &e) == LLM_OK, "%s", e.msg);
    /* refused adds leave the writer usable */
    TU_CHECK(llm_gguf_writer_add_u32(w, "t.u32", 1, &e) == LLM_ERR_INVALID_ARGUMENT &&
                 strstr(e.msg, "duplicate"),
             "duplicate key: %s", e.msg);
    TU_CHECK(llm_gguf_writer_add_u32(w, "bad\xff", 1, &e) == LLM_ERR_INVALID_ARGUMENT, "bad key");
    TU_CHECK(llm_gguf_writer_add_u32(w, "", 1, &e) == LLM_ERR_INVALID_ARGUMENT, "empty key");

    wt ts[] = {
        {"tok_embd.weight", LLM_GGML_F32, 2, {7, 3, 1, 1}, 7 * 3 * 4, NULL},
        {"norm.weight", LLM_GGML_F16, 1, {5, 1, 1, 1}, 10, NULL},
        {"blk.0.attn_q.weight", LLM_GGML_BF16, 3, {3, 2, 2, 1}, 24, NULL},
        {"blk.0.ffn_up.weight", LLM_GGML_Q8_0, 2, {64, 3, 1, 1}, 2 * 3 * 34, NULL},
        {"four.d", LLM_GGML_F32, 4, {2, 3, 1, 2}, 48, NULL},
    };
    const int nt = (int)(sizeof ts / sizeof ts[0]);
    for (int i = 0; i < nt; i++) {
        ts[i].data = malloc(ts[i].n_bytes);
        for (size_t j = 0; j < ts[i].n_bytes; j++) ts[i].data[j] = (unsigned char)tu_rng_next(&g_rng);
        TU_CHECK(llm_gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].n_dims, ts[i].dims, ts[i].data,
                                            ts[i].n_bytes, &e) == LLM_OK,
                 "add %s: %s", ts[i].name, e.msg);
    }
    uint64_t bad_dims[2] = {33, 2};
    TU_CHECK(llm_gguf_writer_add_tensor(w, "q", LLM_GGML_Q8_0, 2, bad_dims, ts[3].data, 34, &e) ==
                 LLM_ERR_INVALID_ARGUMENT,
             "Q8_0 row of 33");
    TU_CHECK(llm_gguf_writer_add_tensor(w, "norm.weight", LLM_GGML_F16, 1, ts[1].dims, ts[1].data, 10, &e) ==
                 LLM_ERR_INVALID_ARGUMENT,
             "duplicate tensor");
    TU_CHECK(llm_gguf_writer_add_tensor(w, "x", LLM_GGML_F16, 1, ts[1].dims, ts[1].data, 11, &e) ==
                 LLM_ERR_INVALID_ARGUMENT,
             "wrong byte count");
    TU_CHECK(llm_gguf_writer_add_tensor(w, "x", LLM_GGML_Q4_0, 1, ts[1].dims, ts[1].data, 10, &e) ==
                 LLM_ERR_UNSUPPORTED,
             "writer type");
    TU_CHECK(llm_gguf_writer_add_tensor(w, "x", LLM_GGML_Q4_K, 1, ts[1].dims, ts[1].data, 10, &e) ==
                 LLM_ERR_INVALID_ARGUMENT,
             "Q4_K row of %llu (not whole 256-blocks)", (unsigned long long)ts[1].dims[0]);
    TU_CHECK(llm_gguf_writer_finish(w, &e) == LLM_OK, "finish: %s", e.msg);
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *left = fopen(tmp, "rb");
    TU_CHECK(left == NULL, "%s left behind", tmp);
    if (left) fclose(left);

    llm_gguf *f = NULL;
    llm_status st = llm_gguf_open(path, &f, &e);
    TU_CHECK(st == LLM_OK && f, "open: %s", e.msg);
    if (f) {
        TU_CHECK(llm_gguf_version(f) == 3 && llm_gguf_alignment(f) == alignment, "version/alignment");
        TU_CHECK(llm_gguf_data_offset(f) % alignment == 0, "data offset");
        TU_CHECK(llm_gguf_kv_count(f) == (alignment != 32 ? 12u : 11u), "kv count %zu", llm_gguf_kv_count(f));
        TU_CHECK(strcmp(llm_gguf_kv_key(f, 0), "general.architecture") == 0, "file order");
        uint32_t u = 0;
        int32_t i32 = 0;
        uint64_t u6 = 0;
        float x = 0;
        bool b = false;
        const char *s = NULL;
        size_t sl = 0;
        TU_CHECK(llm_gguf_get_u32(f, "t.u32", &u, &e) == LLM_OK && u == vu, "u32");
        TU_CHECK(llm_gguf_get_u64(f, "t.u32", &u6, &e) == LLM_OK && u6 == vu, "u32 as u64");
        TU_CHECK(llm_gguf_get_i32(f, "t.i32", &i32, &e) == LLM_OK && i32 == vi, "i32");
        TU_CHECK(llm_gguf_get_u32(f, "t.i32", &u, &e) == LLM_ERR_BAD_FORMAT && strstr(e.msg, "does not fit"),
                 "negative as u32: %s", e.msg);
        TU_CHECK(llm_gguf_get_f32(f, "t.f32", &x, &e) == LLM_OK && memcmp(&x, &vf, 4) == 0, "f32");
        TU_CHECK(llm_gguf_get_bool(f, "t.bool", &b, &e) == LLM_OK && b, "bool");
        TU_CHECK(llm_gguf_get_bool(f, "t.bool0", &b, &e) == LLM_OK && !b, "bool0");
        TU_CHECK(llm_gguf_get_string(f, "t.str", &s, &sl, &e) == LLM_OK && sl == sizeof sval &&
                     memcmp(s, sval, sl) == 0,
                 "string");
        TU_CHECK(llm_gguf_get_string(f, "general.architecture", &s, &sl, &e) == LLM_OK && sl == 5 &&
                     memcmp(s, "llama", 5) == 0,
                 "arch");
        TU_CHECK(llm_gguf_get_u32(f, "t.str", &u, &e) == LLM_ERR_BAD_FORMAT && strstr(e.msg, "t.str") &&
                     strstr(e.msg, "expected uint32, found string") && strstr(e.msg, path),
                 "type mismatch: %s", e.msg);
        TU_CHECK(llm_gguf_get_u32(f, "nope", &u, &e) == LLM_ERR_NOT_FOUND && strstr(e.msg, "nope"),
                 "missing");
        TU_CHECK(llm_gguf_key_type(f, "t.strs") == LLM_GGUF_ARRAY && llm_gguf_key_type(f, "nope") == -1,
                 "type");
        uint64_t n = 0;
        uint32_t et = 99;
        TU_CHECK(llm_gguf_get_arr_len(f, "t.strs", &n, &et, &e) == LLM_OK && n == 5 && et == LLM_GGUF_STRING,
                 "strs len");
        for (uint64_t k = 0; k < 5; k++)
            TU_CHECK(llm_gguf_get_arr_str(f, "t.strs", k, &s, &sl, &e) == LLM_OK && sl == strlen(strs[k]) &&
                         memcmp(s, strs[k], sl) == 0,
                     "strs[%llu]", (unsigned long long)k);
        TU_CHECK(llm_gguf_get_arr_len(f, "t.ia", &n, &et, &e) == LLM_OK && n == 37 && et == LLM_GGUF_INT32,
                 "ia");
        for (uint64_t k = 0; k < 37; k++)
            TU_CHECK(llm_gguf_get_arr_i32(f, "t.ia", k, &i32, &e) == LLM_OK && i32 == ia[k], "ia[%llu]",
                     (unsigned long long)k);
        TU_CHECK(llm_gguf_get_arr_len(f, "t.fa", &n, &et, &e) == LLM_OK && n == 19 && et == LLM_GGUF_FLOAT32,
                 "fa");
        for (uint64_t k = 0; k < 19; k++)
            TU_CHECK(llm_gguf_get_arr_f32(f, "t.fa", k, &x, &e) == LLM_OK && memcmp(&x, &fa[k], 4) == 0,
                     "fa[%llu]", (unsigned long long)k);
        TU_CHECK(llm_gguf_get_arr_len(f, "t.empty", &n, &et, &e) == LLM_OK && n == 0, "empty array");
        TU_CHECK(llm_gguf_get_arr_str(f, "t.ia", 0, &s, &sl, &e) == LLM_ERR_BAD_FORMAT &&
                     strstr(e.msg, "found array of int32"),
                 "element type mismatch: %s", e.msg);
        TU_CHECK(llm_gguf_get_arr_len(f, "t.u32", &n, &et, &e) == LLM_ERR_BAD_FORMAT, "scalar is no array");
        TU_CHECK(llm_gguf_get_arr_i32(f, "t.ia", 37, &i32, &e) == LLM_ERR_INVALID_ARGUMENT, "index");
        TU_CHECK(llm_gguf_tensor_count(f) == (size_t)nt, "tensor count");
        for (int i = 0; i < nt; i++) {
            const llm_gguf_tensor *t = llm_gguf_find_tensor(f, ts[i].name);
            TU_CHECK(t != NULL && t == llm_gguf_tensor_at(f, (size_t)i), "tensor %s", ts[i].name);
            if (!t) continue;
            TU_CHECK(t->type == ts[i].type && t->n_dims == ts[i].n_dims, "%s type/n_dims", t->name);
            uint64_t ne = 1;
            for (int d = 0; d < 4; d++) {
                TU_CHECK(t->dims[d] == (d < ts[i].n_dims ? ts[i].dims[d] : 1), "%s dims[%d]", t->name, d);
                ne *= t->dims[d];
            }
            TU_CHECK(t->n_elems == ne && t->n_bytes == ts[i].n_bytes, "%s sizes", t->name);
            TU_CHECK(t->file_offset % alignment == 0 && t->file_offset >= llm_gguf_data_offset(f),
                     "%s offset", t->name);
            TU_CHECK(memcmp(t->data, ts[i].data, ts[i].n_bytes) == 0, "%s data", t->name);
        }
        TU_CHECK(llm_gguf_find_tensor(f, "nope") == NULL, "absent tensor");
        exercise(f);
        llm_gguf_close(f);
    }
    for (int i = 0; i < nt; i++) free(ts[i].data);
    llm_gguf_close(NULL);
    llm_gguf_writer_free(NULL);

    /* a writer that cannot create its file reports it */
    TU_CHECK(llm_gguf_writer_create(path_of("no/such/dir/x.gguf"), &w, &e) == LLM_OK, "create");
    TU_CHECK(llm_gguf_writer_finish(w, &e) == LLM_ERR_IO && strstr(e.msg, "no/such/dir"), "io: %s", e.msg);
}

/* ---- 2. every value type, hand-built ------------------------------------------------------------------- */

static void test_all_value_types(void) {
    bb b = {0};
    header(&b, 2, 1, 16);
    str(&b, "a.u8"), u32(&b, LLM_GGUF_UINT8), u8(&b, 200);
    str(&b, "a.i8"), u32(&b, LLM_GGUF_INT8), u8(&b, 0x80);
    str(&b, "a.u16"), u32(&b, LLM_GGUF_UINT16), u8(&b, 0x34), u8(&b, 0x12);
    str(&b, "a.i16"), u32(&b, LLM_GGUF_INT16), u8(&b, 0xff), u8(&b, 0xff);
    kv_u32(&b, "a.u32", 4000000000u);
    str(&b, "a.i32"), u32(&b, LLM_GGUF_INT32), u32(&b, (uint32_t)-7);
    float f32 = 2.5f;
    str(&b, "a.f32"), u32(&b, LLM_GGUF_FLOAT32), put(&b, &f32, 4);
    str(&b, "a.bool"), u32(&b, LLM_GGUF_BOOL), u8(&b, 1);
    str(&b, "a.str"), u32(&b, LLM_GGUF_STRING), str(&b, "hi");
    str(&b, "a.u64"), u32(&b, LLM_GGUF_UINT64), u64(&b, 1ull << 40);
    str(&b, "a.i64"), u32(&b, LLM_GGUF_INT64), u64(&b, (uint64_t)-5);
    double f64 = -0.125;
    str(&b, "a.f64"), u32(&b, LLM_GGUF_FLOAT64), put(&b, &f64, 8);
    str(&b, "a.arr_u8"), u32(&b, LLM_GGUF_ARRAY), u32(&b, LLM_GGUF_UINT8), u64(&b, 3), u8(&b, 1), u8(&b, 2),
        u8(&b, 3);
    str(&b, "a.arr_bool"), u32(&b, LLM_GGUF_ARRAY), u32(&b, LLM_GGUF_BOOL), u64(&b, 2), u8(&b, 0), u8(&b, 1);
    str(&b, "a.arr_f64"), u32(&b, LLM_GGUF_ARRAY), u32(&b, LLM_GGUF_FLOAT64), u64(&b, 1), put(&b, &f64, 8);
    str(&b, "a.arr_i64"), u32(&b, LLM_GGUF_ARRAY), u32(&b, LLM_GGUF_INT64), u64(&b, 1), u64(&b, 1ull << 33);
    uint64_t dims[2] = {256, 2};
    tinfo(&b, "q4k", 2, dims, LLM_GGML_Q4_K, 0);
    pad(&b, 32);
    fill(&b, 2 * 144);
    const char *path = path_of("types.gguf");
    tu_write_file(path, b.p, b.len);
    llm_gguf *f = NULL;
    llm_error e;
    TU_CHECK(llm_gguf_open(path, &f, &e) == LLM_OK, "open: %s", e.msg);
    if (f) {
        uint32_t u = 0;
        int32_t i = 0;
        uint64_t u6 = 0;
        float x = 0;
        bool bo = false;
        TU_CHECK(llm_gguf_version(f) == 2, "v2 accepted");
        TU_CHECK(llm_gguf_get_u32(f, "a.u8", &u, &e) == LLM_OK && u == 200, "u8");
        TU_CHECK(llm_gguf_get_i32(f, "a.i8", &i, &e) == LLM_OK && i == -128, "i8");
        TU_CHECK(llm_gguf_get_u32(f, "a.u16", &u, &e) == LLM_OK && u == 0x1234, "u16");
        TU_CHECK(llm_gguf_get_i32(f, "a.i16", &i, &e) == LLM_OK && i == -1, "i16");
        TU_CHECK(llm_gguf_get_u32(f, "a.u32", &u, &e) == LLM_OK && u == 4000000000u, "u32");
        TU_CHECK(llm_gguf_get_i32(f, "a.u32", &i, &e) == LLM_ERR_BAD_FORMAT, "u32 too big for i32");
        TU_CHECK(llm_gguf_get_i32(f, "a.i32", &i, &e) == LLM_OK && i == -7, "i32");
        TU_CHECK(llm_gguf_get_f32(f, "a.f32", &x, &e) == LLM_OK && x == 2.5f, "f32");
        TU_CHECK(llm_gguf_get_bool(f, "a.bool", &bo, &e) == LLM_OK && bo, "bool");
        TU_CHECK(llm_gguf_get_u64(f, "a.u64", &u6, &e) == LLM_OK && u6 == 1ull << 40, "u64");
        TU_CHECK(llm_gguf_get_u32(f, "a.u64", &u, &e) == LLM_ERR_BAD_FORMAT && strstr(e.msg, "does not fit"),
                 "u64 too big: %s", e.msg);
        TU_CHECK(llm_gguf_get_i32(f, "a.i64", &i, &e) == LLM_OK && i == -5, "i64");
        TU_CHECK(llm_gguf_get_f32(f, "a.f64", &x, &e) == LLM_OK && x == -0.125f, "f64");
        TU_CHECK(llm_gguf_get_f32(f, "a.bool", &x, &e) == LLM_ERR_BAD_FORMAT, "bool as f32");
        TU_CHECK(llm_gguf_get_arr_u32(f, "a.arr_u8", 2, &u, &e) == LLM_OK && u == 3, "arr u8");
        TU_CHECK(llm_gguf_get_arr_f32(f, "a.arr_f64", 0, &x, &e) == LLM_OK && x == -0.125f, "arr f64");
        TU_CHECK(llm_gguf_get_arr_i32(f, "a.arr_i64", 0, &i, &e) == LLM_ERR_BAD_FORMAT, "arr i64 too big");
        const llm_gguf_tensor *t = llm_gguf_find_tensor(f, "q4k");
        TU_CHECK(t && t->n_bytes == 288 && t->n_elems == 512 && t->file_offset == b.len - 288, "q4k");
        exercise(f);
        llm_gguf_close(f);
    }
    free(b.p);
}

/* ---- 3. corrupt files ---------------------------------------------------------------------------------- */

static int g_cases;

static void expect_fail(const char *what, bb *b, llm_status want, const char *fragment) {
    const char *path = path_of("corrupt.gguf");
    tu_write_file(path, b->p ? (const void *)b->p : "", b->len);
    llm_gguf *f = (llm_gguf *)&g_cases; /* must be reset to NULL */
    llm_error e;
    memset(&e, 0, sizeof e);
    llm_status st = llm_gguf_open(path, &f, &e);
    TU_CHECK(st == want, "%s: status %s, expected %s (%s)", what, llm_status_name(st), llm_status_name(want),
             e.msg);
    TU_CHECK(f == NULL, "%s: out not NULL", what);
    TU_CHECK(strstr(e.msg, fragment) != NULL, "%s: message \"%s\" lacks \"%s\"", what, e.msg, fragment);
    TU_CHECK(strstr(e.msg, path) != NULL, "%s: message \"%s\" does not name the file", what, e.msg);
    if (st == LLM_OK) llm_gguf_close(f);
    free(b->p);
    memset(b, 0, sizeof *b);
    g_cases++;
}

/* One valid tensor file with a tensor of the given shape/type/offset after a header of one KV. */
static void one_tensor(bb *b, const char *name, uint32_t n_dims, const uint64_t *dims, uint32_t type,
                       uint64_t off, size_t data) {
    header(b, 3, 1, 1);
    kv_u32(b, "x.n", 1);
    tinfo(b, name, n_dims, dims, type, off);
    pad(b, 32);
    fill(b, data);
}

static void test_corrupt(void) {
    bb b = {0};
    put(&b, "GGML", 4), u32(&b, 3), u64(&b, 0), u64(&b, 0);
    expect_fail("bad magic", &b, LLM_ERR_BAD_FORMAT, "bad magic at byte 0");
    header(&b, 1, 0, 0);
    expect_fail("version 1", &b, LLM_ERR_UNSUPPORTED, "version 1 at byte 4");
    header(&b, 9, 0, 0);
    expect_fail("version 9", &b, LLM_ERR_BAD_FORMAT, "unknown GGUF version 9");
    put(&b, "GGU", 3);
    expect_fail("3 bytes", &b, LLM_ERR_BAD_FORMAT, "too short");
    expect_fail("empty file", &b, LLM_ERR_BAD_FORMAT, "0 bytes");
    put(&b, "GGUF", 4), u8(&b, 3);
    expect_fail("truncated version", &b, LLM_ERR_BAD_FORMAT, "version at byte 4");
    put(&b, "GGUF", 4), u32(&b, 3), u32(&b, 0);
    expect_fail("truncated tensor count", &b, LLM_ERR_BAD_FORMAT, "tensor count at byte 8");
    put(&b, "GGUF", 4), u32(&b, 3), u64(&b, 0), u32(&b, 1);
    expect_fail("truncated kv count", &b, LLM_ERR_BAD_FORMAT, "metadata count at byte 16");
    header(&b, 3, 1ull << 40, 0);
    fill(&b, 100);
    expect_fail("tensor count", &b, LLM_ERR_BAD_FORMAT, "tensor count 1099511627776 at byte 8 cannot fit");
    header(&b, 3, 0, 1000);
    kv_u32(&b, "a", 1);
    expect_fail("kv count", &b, LLM_ERR_BAD_FORMAT, "metadata count 1000 at byte 16");
    header(&b, 3, 0, 1);
    u64(&b, 1000), put(&b, "abc", 3), fill(&b, 20);
    expect_fail("key length past EOF", &b, LLM_ERR_BAD_FORMAT, "key length 1000 at byte 24 runs past");
    header(&b, 3, 0, 2);
    kv_u32(&b, "dup.key", 1), kv_u32(&b, "dup.key", 2);
    expect_fail("duplicate key", &b, LLM_ERR_BAD_FORMAT,
                "key 'dup.key' at byte 47 is a duplicate (first at byte 24)");
    header(&b, 3, 0, 1);
    kv_u32(&b, "bad\xc3\x28", 1);
    expect_fail("invalid UTF-8 key", &b, LLM_ERR_BAD_FORMAT, "key at byte 24 is not valid UTF-8");
    header(&b, 3, 0, 1);
    u64(&b, 0), u32(&b, LLM_GGUF_UINT8), u8(&b, 0), fill(&b, 10);
    expect_fail("empty key", &b, LLM_ERR_BAD_FORMAT, "key at byte 24 is empty");
    header(&b, 3, 0, 1);
    u64(&b, 4), put(&b, "nu\0l", 4), u32(&b, LLM_GGUF_UINT8), u8(&b, 0);
    expect_fail("NUL in key", &b, LLM_ERR_BAD_FORMAT, "contains a NUL byte");
    header(&b, 3, 0, 1);
    str(&b, "flag"), u32(&b, LLM_GGUF_BOOL), u8(&b, 2);
    expect_fail("bad bool", &b, LLM_ERR_BAD_FORMAT, "key 'flag': bool value 2 at byte 40");
    header(&b, 3, 0, 1);
    str(&b, "flags"), u32(&b, LLM_GGUF_ARRAY), u32(&b, LLM_GGUF_BOOL), u64(&b, 3), u8(&b, 1), u8(&b, 0),
        u8(&b, 7);
    expect_fail("bad bool in array", &b, LLM_ERR_BAD_FORMAT, "bool value 7 at byte 55");
    header(&b, 3, 0, 1);
    str(&b, "nest"), u32(&b, LLM_GGUF_ARRAY), u32(&b, LLM_GGUF_ARRAY), u64(&b, 1), u32(&b, LLM_GGUF_UINT8),
        u64(&b, 0);
    expect_fail("nested array", &b, LLM_ERR_UNSUPPORTED, "key 'nest': array of arrays at byte 40");
    header(&b, 3, 0, 1);
    str(&b, "t"), u32(&b, 13), u32(&b, 0);
    expect_fail("unknown value type", &b, LLM_ERR_BAD_FORMAT, "unknown value type 13 at byte 33");
    header(&b, 3, 0, 1);
    str(&b, "t"), u32(&b, LLM_GGUF_ARRAY), u32(&b, 77), u64(&b, 0);
    expect_fail("unknown element type", &b, LLM_ERR_BAD_FORMAT, "unknown array element type 77 at byte 37");
    header(&b, 3, 0, 1);
    str(&b, "s"), u32(&b, LLM_GGUF_STRING), u64(&b, 50), put(&b, "short", 5);
    expect_fail("string past EOF", &b, LLM_ERR_BAD_FORMAT, "key 's': string length 50 at byte 37 runs past");
    header(&b, 3, 0, 1);
    str(&b, "v"), u32(&b, LLM_GGUF_ARRAY), u32(&b, LLM_GGUF_STRING), u64(&b, 1ull << 61), fill(&b, 64);
    expect_fail("huge string array", &b, LLM_ERR_BAD_FORMAT,
                "array of 2305843009213693952 strings at byte 37");
    header(&b, 3, 0, 1);
    str(&b, "v"), u32(&b, LLM_GGUF_ARRAY), u32(&b, LLM_GGUF_UINT32), u64(&b, 1ull << 62), fill(&b, 64);
    expect_fail("huge u32 array", &b, LLM_ERR_BAD_FORMAT,
                "values of type uint32 at byte 49 run past the end");
    header(&b, 3, 0, 1);
    kv_u32(&b, "general.alignment", 48);
    expect_fail("alignment 48", &b, LLM_ERR_BAD_FORMAT,
                "general.alignment': value 48 at byte 53 is not a power of two");
    header(&b, 3, 0, 1);
    kv_u32(&b, "general.alignment", 0);
    expect_fail("alignment 0", &b, LLM_ERR_BAD_FORMAT, "not a power of two");
    header(&b, 3, 0, 1);
    str(&b, "general.alignment"), u32(&b, LLM_GGUF_STRING), str(&b, "32");
    expect_fail("alignment string", &b, LLM_ERR_BAD_FORMAT, "type string, expected uint32");

    uint64_t d2[2] = {1ull << 40, 1ull << 40};
    one_tensor(&b, "big", 2, d2, LLM_GGML_F32, 0, 32);
    expect_fail("dims product overflow", &b, LLM_ERR_BAD_FORMAT,
                "tensor 'big': element count overflows at dims[1]");
    uint64_t d1[1] = {8};
    one_tensor(&b, "w", 1, d1, 99, 0, 32);
    expect_fail("unknown ggml type", &b, LLM_ERR_UNSUPPORTED,
                "tensor 'w': ggml type 99 at byte 64 is not supported");
    one_tensor(&b, "w", 1, d1, 13 /* Q5_K */, 0, 32);
    expect_fail("Q5_K", &b, LLM_ERR_UNSUPPORTED, "ggml type 13");
    uint64_t d33[2] = {33, 1};
    one_tensor(&b, "q", 2, d33, LLM_GGML_Q8_0, 0, 64);
    expect_fail("Q8_0 row of 33", &b, LLM_ERR_BAD_FORMAT,
                "dims[0] = 33 is not a multiple of the Q8_0 block size 32");
    one_tensor(&b, "w", 1, d1, LLM_GGML_F32, 4, 64);
    expect_fail("misaligned offset", &b, LLM_ERR_BAD_FORMAT,
                "data offset 4 (field at byte 68) is not a multiple");
    one_tensor(&b, "w", 1, d1, LLM_GGML_F32, 0, 31);
    expect_fail("data past EOF", &b, LLM_ERR_BAD_FORMAT,
                "tensor 'w': data [0, +32 bytes) (offset field at byte 68)");
    one_tensor(&b, "w", 1, d1, LLM_GGML_F32, 1ull << 63, 32);
    expect_fail("offset far past EOF", &b, LLM_ERR_BAD_FORMAT, "runs past the end of the data section");
    uint64_t d0[2] = {8, 0};
    one_tensor(&b, "z", 2, d0, LLM_GGML_F32, 0, 32);
    expect_fail("dim 0", &b, LLM_ERR_BAD_FORMAT, "tensor 'z': dims[1] is 0 at byte 64");
    uint64_t d5[5] = {1, 1, 1, 1, 1};
    one_tensor(&b, "n", 0, d5, LLM_GGML_F32, 0, 32);
    expect_fail("n_dims 0", &b, LLM_ERR_BAD_FORMAT, "tensor 'n': n_dims 0 at byte 52");
    one_tensor(&b, "n", 5, d5, LLM_GGML_F32, 0, 32);
    expect_fail("n_dims 5", &b, LLM_ERR_BAD_FORMAT, "tensor 'n': n_dims 5 at byte 52 (must be 1..4)");
    one_tensor(&b, "0123456789012345678901234567890123456789012345678901234567890123", 1, d1, LLM_GGML_F32, 0,
               32);
    expect_fail("name of 64 bytes", &b, LLM_ERR_BAD_FORMAT,
                "tensor #0: tensor name at byte 43 is 64 bytes long");
    one_tensor(&b, "bad\xff", 1, d1, LLM_GGML_F32, 0, 32);
    expect_fail("invalid UTF-8 tensor name", &b, LLM_ERR_BAD_FORMAT,
                "tensor name at byte 43 is not valid UTF-8");

    /* two tensors: overlap, duplicate name */
    header(&b, 3, 2, 0);
    tinfo(&b, "a", 1, d1, LLM_GGML_F32, 0), tinfo(&b, "b", 1, d1, LLM_GGML_F32, 0);
    pad(&b, 32), fill(&b, 64);
    expect_fail("overlapping tensors", &b, LLM_ERR_BAD_FORMAT, "overlaps tensor");
    uint64_t d16[1] = {16};
    header(&b, 3, 2, 0);
    tinfo(&b, "a", 1, d16, LLM_GGML_F32, 0), tinfo(&b, "b", 1, d1, LLM_GGML_F32, 32);
    pad(&b, 32), fill(&b, 96);
    expect_fail("partly overlapping tensors", &b, LLM_ERR_BAD_FORMAT,
                "tensor 'b' (file bytes 128..160) overlaps tensor 'a'");
    header(&b, 3, 2, 0);
    tinfo(&b, "a", 1, d1, LLM_GGML_F32, 0), tinfo(&b, "a", 1, d1, LLM_GGML_F32, 32);
    pad(&b, 32), fill(&b, 64);
    expect_fail("duplicate tensor name", &b, LLM_ERR_BAD_FORMAT,
                "tensor 'a' at byte 57 is a duplicate (first at byte 24)");
    header(&b, 3, 1, 0);
    tinfo(&b, "a", 1, d1, LLM_GGML_F32, 0);
    expect_fail("no data section", &b, LLM_ERR_BAD_FORMAT, "data section would start at byte 64");
    header(&b, 3, 2, 0);
    tinfo(&b, "a", 1, d1, LLM_GGML_F32, 0), u64(&b, 1000), fill(&b, 30);
    expect_fail("second tensor name past EOF", &b, LLM_ERR_BAD_FORMAT,
                "tensor #1: tensor name length 1000 at byte 57 runs past");

    /* a control: the same builder gives a file that opens */
    one_tensor(&b, "w", 1, d1, LLM_GGML_F32, 0, 32);
    const char *path = path_of("ok.gguf");
    tu_write_file(path, b.p, b.len);
    llm_gguf *f = NULL;
    llm_error e;
    TU_CHECK(llm_gguf_open(path, &f, &e) == LLM_OK, "control: %s", e.msg);
    llm_gguf_close(f);
    free(b.p);
    TU_CHECK(llm_gguf_open(path_of("absent.gguf"), &f, &e) == LLM_ERR_NOT_FOUND && !f, "absent file");
    printf("test_gguf: %d corrupt files refused as expected\n", g_cases);
}

/* ---- 4. truncations and mutations ---------------------------------------------------------------------- */

/* A small valid file whose last tensor ends exactly at the end of the file, so that every proper prefix
 * lacks something. */
static unsigned char *small_file(size_t *len, size_t *data_off) {
    const char *path = path_of("small.gguf");
    llm_gguf_writer *w = NULL;
    llm_error e;
    unsigned char q8[2 * 34], f32[32];
    for (size_t i = 0; i < sizeof q8; i++) q8[i] = (unsigned char)tu_rng_next(&g_rng);
    for (size_t i = 0; i < sizeof f32; i++) f32[i] = (unsigned char)tu_rng_next(&g_rng);
    const char *strs[] = {"a", "bc", "<unk>"};
    int32_t ia[3] = {1, -2, 3};
    uint64_t dq[2] = {32, 2}, df[1] = {8};
    int ok = llm_gguf_writer_create(path, &w, &e) == LLM_OK;
    ok = ok && llm_gguf_writer_add_string(w, "general.architecture", "llama", 5, &e) == LLM_OK;
    ok = ok && llm_gguf_writer_add_u32(w, "general.alignment", 16, &e) == LLM_OK;
    ok = ok && llm_gguf_writer_add_bool(w, "b", true, &e) == LLM_OK;
    ok = ok && llm_gguf_writer_add_f32(w, "f", 1.5f, &e) == LLM_OK;
    ok = ok && llm_gguf_writer_add_str_array(w, "tok", strs, 3, &e) == LLM_OK;
    ok = ok && llm_gguf_writer_add_i32_array(w, "ia", ia, 3, &e) == LLM_OK;
    ok = ok && llm_gguf_writer_add_tensor(w, "q", LLM_GGML_Q8_0, 2, dq, q8, sizeof q8, &e) == LLM_OK;
    ok = ok && llm_gguf_writer_add_tensor(w, "f", LLM_GGML_F32, 1, df, f32, sizeof f32, &e) == LLM_OK;
    ok = ok && llm_gguf_writer_finish(w, &e) == LLM_OK;
    TU_CHECK(ok, "small file: %s", e.msg);
    llm_gguf *f = NULL;
    *data_off = 0;
    if (llm_gguf_open(path, &f, &e) == LLM_OK) {
        *data_off = llm_gguf_data_offset(f);
        llm_gguf_close(f);
    }
    return (unsigned char *)tu_read_file(path, len);
}

static void test_truncations_and_mutations(int n_mutations) {
    size_t len = 0, data_off = 0;
    unsigned char *orig = small_file(&len, &data_off);
    TU_CHECK(orig && data_off > 0, "small file");
    if (!orig) return;
    const char *path = path_of("mut.gguf");
    llm_error e;
    int failed = 0;
    for (size_t n = 0; n < len; n++) {
        tu_write_file(path, orig, n);
        llm_gguf *f = NULL;
        llm_status st = llm_gguf_open(path, &f, &e);
        if (st == LLM_OK) {
            failed++;
            llm_gguf_close(f);
        }
        TU_CHECK(st == LLM_OK || f == NULL, "prefix %zu", n);
    }
    TU_CHECK(failed == 0, "%d of %zu prefixes opened", failed, len);

    unsigned char *buf = malloc(len);
    int opened = 0;
    for (int i = 0; i < n_mutations; i++) {
        memcpy(buf, orig, len);
        int k = 1 + (int)tu_rng_below(&g_rng, 3);
        for (int j = 0; j < k; j++) {
            /* mostly in the metadata, where the structure is */
            size_t at = tu_rng_below(&g_rng, 10) ? tu_rng_below(&g_rng, (uint32_t)data_off)
                                                 : tu_rng_below(&g_rng, (uint32_t)len);
            static const unsigned char special[] = {0, 1, 2, 0x7f, 0x80, 0xff, 0x20, 0x10, 0x40, 9, 8, 13};
            buf[at] = tu_rng_below(&g_rng, 2) ? special[tu_rng_below(&g_rng, sizeof special)]
                                              : (unsigned char)tu_rng_next(&g_rng);
        }
        tu_write_file(path, buf, len);
        llm_gguf *f = NULL;
        llm_status st = llm_gguf_open(path, &f, &e);
        if (st == LLM_OK) {
            opened++;
            exercise(f);
            llm_gguf_close(f);
        } else {
            TU_CHECK(f == NULL && e.msg[0], "mutation %d: failed without a message", i);
        }
    }
    printf("test_gguf: %zu prefixes refused; %d mutations, %d still opened\n", len, n_mutations, opened);
    free(buf);
    free(orig);
}

int main(void) {
    g_rng.s = tu_fresh_seed("test_gguf") | 1;
    g_dir = tu_make_temp_dir();
    if (!g_dir) {
        fprintf(stderr, "test_gguf: no temp dir\n");
        return 1;
    }
    test_round_trip(LLM_GGUF_DEFAULT_ALIGNMENT);
    test_round_trip(64);
    test_all_value_types();
    test_corrupt();
    test_truncations_and_mutations(4000);
    tu_remove_dir(g_dir);
    free(g_dir);
    return tu_finish("test_gguf");
}
