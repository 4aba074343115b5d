/* test_corrupt_models.c — corrupt or inconsistent model directories.
 *
 * Each case copies a fixture into a fresh temporary directory, breaks one thing (config.json text, a
 * safetensors header, the shard index, a file's length, the load parameters) and checks that llm_model_load
 * fails with the specific status, leaves *out NULL, and writes a message naming the file / tensor / key and
 * the expected-vs-actual values. Then: every prefix of config.json, of the shard index and of the safetensors
 * file must fail cleanly, and random byte mutations of the safetensors header, the shard index and
 * config.json must never crash or leak (the ASan+UBSan build of this test checks the latter). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

#define LLAMA      "llama_f32"
#define LLAMA_TIED "llama_bf16"
#define SHARDED    "llama_mqa_sharded"
#define QWEN2      "qwen2_f32"
#define QWEN3      "qwen3_f32"
#define ST         "model.safetensors"
#define INDEX      "model.safetensors.index.json"
#define SHARD1     "model-00001-of-00002.safetensors"
#define SHARD2     "model-00002-of-00002.safetensors"
#define CONFIG     "config.json"
#define GENCONFIG  "generation_config.json"

/* ---- file helpers -------------------------------------------------------------------------------------- */

static void join(char *out, size_t cap, const char *dir, const char *name) {
    snprintf(out, cap, "%s/%s", dir, name);
}

static char *read_in(const char *dir, const char *name, size_t *len) {
    char p[1024];
    join(p, sizeof p, dir, name);
    return tu_read_file(p, len);
}

static int write_in(const char *dir, const char *name, const void *data, size_t len) {
    char p[1024];
    join(p, sizeof p, dir, name);
    return tu_write_file(p, data, len);
}

/* malloc'd copy of s (NUL-terminated, no NUL inside) with the first occurrence of from replaced by to; NULL
 * if from does not occur. */
static char *replace_first(const char *s, const char *from, const char *to, size_t *out_len) {
    const char *at = strstr(s, from);
    if (!at) return NULL;
    size_t n = strlen(s), nf = strlen(from), nt = strlen(to);
    char *r = malloc(n - nf + nt + 1);
    if (!r) return NULL;
    size_t pre = (size_t)(at - s);
    memcpy(r, s, pre);
    memcpy(r + pre, to, nt);
    memcpy(r + pre + nt, at + nf, n - pre - nf + 1);
    *out_len = n - nf + nt;
    return r;
}

/* A safetensors file split into its JSON header and data section. */
typedef struct st_parts {
    char *raw; /* the whole file */
    size_t raw_len;
    char *header; /* malloc'd, NUL-terminated copy of the header JSON */
    size_t header_len;
    const char *data;
    size_t data_len;
} st_parts;

static int st_split(const char *dir, const char *name, st_parts *p) {
    memset(p, 0, sizeof *p);
    p->raw = read_in(dir, name, &p->raw_len);
    if (!p->raw || p->raw_len < 8) return -1;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | (unsigned char)p->raw[i];
    if (n > p->raw_len - 8) return -1;
    p->header = malloc((size_t)n + 1);
    if (!p->header) return -1;
    memcpy(p->header, p->raw + 8, (size_t)n);
    p->header[n] = '\0';
    p->header_len = (size_t)n;
    p->data = p->raw + 8 + n;
    p->data_len = p->raw_len - 8 - (size_t)n;
    return 0;
}

static void st_parts_free(st_parts *p) {
    free(p->raw);
    free(p->header);
    memset(p, 0, sizeof *p);
}

/* Writes a safetensors file from a header string and a data section (plus extra_zeros zero bytes after it).
 * The header is padded with spaces to a multiple of 8 bytes, as the reference writer does. */
static int st_join(const char *dir, const char *name, const char *header, const void *data, size_t data_len,
                   size_t extra_zeros) {
    size_t hl = strlen(header), padded = (hl + 7) / 8 * 8;
    size_t total = 8 + padded + data_len + extra_zeros;
    unsigned char *buf = calloc(total ? total : 1, 1);
    if (!buf) return -1;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, header, hl);
    memset(buf + 8 + hl, ' ', padded - hl);
    if (data_len) memcpy(buf + 8 + padded, data, data_len);
    int rc = write_in(dir, name, buf, total);
    free(buf);
    return rc;
}

/* Replaces `from` by `to` in the header of a safetensors file, keeping its data section. */
static int st_edit_header(const char *dir, const char *name, const char *from, const char *to,
                          size_t extra_zeros) {
    st_parts p;
    int rc = -1;
    if (st_split(dir, name, &p) == 0) {
        size_t nl;
        char *h = replace_first(p.header, from, to, &nl);
        if (h) rc = st_join(dir, name, h, p.data, p.data_len, extra_zeros);
        free(h);
    }
    st_parts_free(&p);
    return rc;
}

static int text_edit(const char *dir, const char *name, const char *from, const char *to) {
    size_t len, nl;
    char *text = read_in(dir, name, &len);
    if (!text) return -1;
    char *r = replace_first(text, from, to, &nl);
    int rc = r ? write_in(dir, name, r, nl) : -1;
    free(r);
    free(text);
    return rc;
}

static int truncate_to(const char *dir, const char *name, size_t n) {
    size_t len;
    char *d = read_in(dir, name, &len);
    int rc = (d && n <= len) ? write_in(dir, name, d, n) : -1;
    free(d);
    return rc;
}

static int append_zeros(const char *dir, const char *name, size_t n) {
    size_t len;
    char *d = read_in(dir, name, &len);
    char *g = d ? realloc(d, len + n) : NULL;
    if (!g) {
        free(d);
        return -1;
    }
    memset(g + len, 0, n);
    int rc = write_in(dir, name, g, len + n);
    free(g);
    return rc;
}

static int remove_in(const char *dir, const char *name) {
    char p[1024];
    join(p, sizeof p, dir, name);
    return unlink(p);
}

static int set_header_len(const char *dir, const char *name, uint64_t n) {
    size_t len;
    char *d = read_in(dir, name, &len);
    if (!d || len < 8) {
        free(d);
        return -1;
    }
    for (int i = 0; i < 8; i++) d[i] = (char)(unsigned char)(n >> (8 * i));
    int rc = write_in(dir, name, d, len);
    free(d);
    return rc;
}

static char *new_case_dir(const char *fixture) {
    char src[1024];
    tu_fixture(fixture, src, sizeof src);
    char *d = tu_make_temp_dir();
    TU_CHECK(d != NULL, "cannot make a temporary directory");
    if (!d) return NULL;
    if (tu_copy_dir(src, d) != 0) {
        TU_CHECK(0, "cannot copy %s to %s", src, d);
        tu_remove_dir(d);
        free(d);
        return NULL;
    }
    return d;
}

/* ---- custom mutators ----------------------------------------------------------------------------------- */

static int hdrlen_1e6(const char *d) {
    return set_header_len(d, ST, 1000000);
}
static int hdrlen_huge(const char *d) {
    return set_header_len(d, ST, UINT64_MAX);
}
static int hdrlen_100(const char *d) {
    return set_header_len(d, ST, 100);
}
static int hdrlen_0(const char *d) {
    return set_header_len(d, ST, 0);
}
static int five_bytes(const char *d) {
    return write_in(d, ST, "\x10\0\0\0\0", 5);
}
static int empty_file(const char *d) {
    return write_in(d, ST, "", 0);
}
static int header_array(const char *d) {
    return st_join(d, ST, "[1, 2, 3]", NULL, 0, 0);
}
static int config_array(const char *d) {
    return write_in(d, CONFIG, "[]\n", 3);
}
static int index_empty_map(const char *d) {
    static const char t[] = "{\"metadata\": {}, \"weight_map\": {}}\n";
    return write_in(d, INDEX, t, sizeof t - 1);
}
static int index_not_object(const char *d) {
    return write_in(d, INDEX, "[\"weight_map\"]", 14);
}
/* model.norm.weight moved 16 bytes later: a 16-byte hole before it; the data section grows to match. */
static int hole_before_norm(const char *d) {
    return st_edit_header(d, ST, "\"data_offsets\":[607232,607488]", "\"data_offsets\":[607248,607504]", 16);
}
/* The same tensor name twice in one header (the second entry takes lm_head's bytes). */
static int duplicate_name(const char *d) {
    return st_edit_header(d, ST, "\"lm_head.weight\":{",
                          "\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[64],"
                          "\"data_offsets\":[0,256]},\"lm_head.x\":{",
                          0) != 0
               ? -1
               : st_edit_header(
                     d, ST,
                     "\"lm_head.x\":{\"dtype\":\"F32\",\"shape\":[512,64],\"data_offsets\":[0,131072]}",
                     "\"lm_head.x\":{\"dtype\":\"F32\",\"shape\":[32704],\"data_offsets\":[256,131072]}", 0);
}

/* ---- the table of cases -------------------------------------------------------------------------------- */

typedef enum { E_END = 0, E_TEXT, E_HEADER, E_DELETE, E_TRUNCATE, E_APPEND } edit_kind;

typedef struct edit {
    edit_kind kind;
    const char *file;
    const char *from, *to;
    size_t n;
} edit;

#define TEXT(f, a, b)                                                                                        \
    { E_TEXT, f, a, b, 0 }
#define HDR(f, a, b)                                                                                         \
    { E_HEADER, f, a, b, 0 }
#define DEL(f)                                                                                               \
    { E_DELETE, f, NULL, NULL, 0 }
#define TRUNC(f, n)                                                                                          \
    { E_TRUNCATE, f, NULL, NULL, n }
#define APPEND(f, n)                                                                                         \
    { E_APPEND, f, NULL, NULL, n }

enum { P_NULL = 0, P_MEMLIMIT, P_CUDA, P_BAD_BACKEND, P_BAD_THREADS };

typedef struct corrupt_case {
    const char *name;
    const char *fixture;
    edit edits[3];
    int (*custom)(const char *dir);
    int params;
    llm_status want;
    const char *frags[4];
} corrupt_case;

static const corrupt_case cases[] = {
    /* -- safetensors container --------------------------------------------------------------------------- */
    {.name = "file cut in the data section",
     .fixture = LLAMA,
     .edits = {TRUNC(ST, 300000)},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors", "'model.layers.0.mlp.down_proj.weight'", "[262400, 303360]",
               "file size 300000"}},
    {.name = "file cut in the header",
     .fixture = LLAMA,
     .edits = {TRUNC(ST, 1000)},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors", "header length 2144", "(1000 bytes)"}},
    {.name = "header length past EOF",
     .fixture = LLAMA,
     .custom = hdrlen_1e6,
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors", "header length 1000000", "(609640 bytes)"}},
    {.name = "header length 2^64-1",
     .fixture = LLAMA,
     .custom = hdrlen_huge,
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors", "header length 18446744073709551615", "exceeds 100 MB"}},
    {.name = "header length cuts the JSON",
     .fixture = LLAMA,
     .custom = hdrlen_100,
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors", "header JSON: line 1, column", "unexpected end of input"}},
    {.name = "header length 0",
     .fixture = LLAMA,
     .custom = hdrlen_0,
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors", "header JSON: line 1, column 1"}},
    {.name = "file of 5 bytes",
     .fixture = LLAMA,
     .custom = five_bytes,
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors", "file is 5 bytes"}},
    {.name = "empty file",
     .fixture = LLAMA,
     .custom = empty_file,
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors", "file is 0 bytes"}},
    {.name = "header JSON malformed",
     .fixture = LLAMA,
     .edits = {HDR(ST, "{\"format\":\"pt\"}", "{\"format\" \"pt\"}")},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors", "header JSON: line 1, column 27", "expected ':'"}},
    {.name = "header not an object",
     .fixture = LLAMA,
     .custom = header_array,
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors", "header is not a JSON object"}},
    {.name = "__metadata__ not an object",
     .fixture = LLAMA,
     .edits = {HDR(ST, "{\"format\":\"pt\"}", "\"pt\"")},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors", "\"__metadata__\" is not an object"}},
    {.name = "tensor entry not an object",
     .fixture = LLAMA,
     .edits = {HDR(
         ST, "\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[64],\"data_offsets\":[607232,607488]}",
         "\"model.norm.weight\":[607232,607488]")},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors", "tensor 'model.norm.weight'", "header line 1, column",
               "not a JSON object"}},
    {.name = "unknown dtype",
     .fixture = LLAMA,
     .edits = {HDR(ST, "\"lm_head.weight\":{\"dtype\":\"F32\"", "\"lm_head.weight\":{\"dtype\":\"F33\"")},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors", "'lm_head.weight'", "unknown dtype \"F33\""}},
    {.name = "dtype missing",
     .fixture = LLAMA,
     .edits = {HDR(ST, "\"lm_head.weight\":{\"dtype\":\"F32\",", "\"lm_head.weight\":{")},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors", "'lm_head.weight'", "non-string \"dtype\""}},
    {.name = "dtype x shape != byte length",
     .fixture = LLAMA,
     .edits = {HDR(ST, "\"lm_head.weight\":{\"dtype\":\"F32\",\"shape\":[512,64]",
                   "\"lm_head.weight\":{\"dtype\":\"F32\",\"shape\":[512,63]")},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors", "'lm_head.weight'", "F32 x shape [512, 63] = 129024 bytes",
               "span 131072 bytes"}},
    {.name = "negative dimension",
     .fixture = LLAMA,
     .edits = {HDR(ST, "\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[64]",
                   "\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[-64]")},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors", "'model.norm.weight'", "shape[0] is not a non-negative"}},
    {.name = "nine dimensions",
     .fixture = LLAMA,
     .edits = {HDR(ST, "\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[64]",
                   "\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,64]")},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"'model.norm.weight'", "9 dimensions, at most 8"}},
    {.name = "data_offsets begin > end",
     .fixture = LLAMA,
     .edits = {HDR(ST, "[607232,607488]", "[607488,607232]")},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors", "'model.norm.weight'", "[607488, 607232] has begin > end"}},
    {.name = "data_offsets with one number",
     .fixture = LLAMA,
     .edits = {HDR(ST, "[607232,607488]", "[607232]")},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"'model.norm.weight'", "\"data_offsets\" must be [begin, end]"}},
    {.name = "overlapping tensors",
     .fixture = LLAMA,
     .edits = {HDR(ST, "[262144,262400]", "[262000,262256]")},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors", "'model.layers.0.input_layernorm.weight' [262000, 262256) overlaps",
               "'model.embed_tokens.weight' [131072, 262144)"}},
    {.name = "hole between tensors",
     .fixture = LLAMA,
     .custom = hole_before_norm,
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors", "16 unindexed bytes before tensor 'model.norm.weight'",
               "607232..607248"}},
    {.name = "data section longer than the tensors",
     .fixture = LLAMA,
     .edits = {APPEND(ST, 64)},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors", "tensors cover 607488 bytes of a 607552-byte"}},
    {.name = "tensor name twice in one header",
     .fixture = LLAMA,
     .custom = duplicate_name,
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors", "'model.norm.weight' is listed twice"}},
    {.name = "tensor name with a NUL byte",
     .fixture = LLAMA,
     .edits = {HDR(ST, "\"lm_head.weight\"", "\"lm_head\\u0000weight\"")},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors", "tensor name contains a NUL byte"}},

    /* -- tensors vs the architecture --------------------------------------------------------------------- */
    {.name = "k_proj transposed",
     .fixture = LLAMA,
     .edits = {HDR(ST, "\"model.layers.0.self_attn.k_proj.weight\":{\"dtype\":\"F32\",\"shape\":[32,64]",
                   "\"model.layers.0.self_attn.k_proj.weight\":{\"dtype\":\"F32\",\"shape\":[64,32]")},
     .want = LLM_ERR_SHAPE_MISMATCH,
     .frags = {"model.safetensors",
               "'model.layers.0.self_attn.k_proj.weight' has shape [64, 32], expected [32, 64]"}},
    {.name = "down_proj transposed",
     .fixture = LLAMA,
     .edits = {HDR(ST, "\"model.layers.1.mlp.down_proj.weight\":{\"dtype\":\"F32\",\"shape\":[64,160]",
                   "\"model.layers.1.mlp.down_proj.weight\":{\"dtype\":\"F32\",\"shape\":[160,64]")},
     .want = LLM_ERR_SHAPE_MISMATCH,
     .frags = {"'model.layers.1.mlp.down_proj.weight' has shape [160, 64], expected [64, 160]"}},
    {.name = "norm stored 2-D",
     .fixture = LLAMA,
     .edits = {HDR(ST, "\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[64]",
                   "\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[1,64]")},
     .want = LLM_ERR_SHAPE_MISMATCH,
     .frags = {"'model.norm.weight' has shape [1, 64], expected [64]"}},
    {.name = "tensor stored as I32",
     .fixture = LLAMA,
     .edits = {HDR(ST, "\"model.norm.weight\":{\"dtype\":\"F32\"",
                   "\"model.norm.weight\":{\"dtype\":\"I32\"")},
     .want = LLM_ERR_DTYPE_MISMATCH,
     .frags = {"model.safetensors", "'model.norm.weight' has dtype I32; expected BF16, F16 or F32"}},
    {.name = "tensor stored as F64",
     .fixture = LLAMA,
     .edits = {HDR(ST, "\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[64]",
                   "\"model.norm.weight\":{\"dtype\":\"F64\",\"shape\":[32]")},
     .want = LLM_ERR_DTYPE_MISMATCH,
     .frags = {"'model.norm.weight' has dtype F64"}},
    {.name = "missing down_proj",
     .fixture = LLAMA,
     .edits = {HDR(ST, "\"model.layers.1.mlp.down_proj.weight\"",
                   "\"model.layers.1.mlp.down_proj.weight_old\"")},
     .want = LLM_ERR_MISSING_TENSOR,
     .frags = {"required tensor 'model.layers.1.mlp.down_proj.weight' [64, 160] is missing",
               "model.safetensors"}},
    {.name = "missing lm_head (untied)",
     .fixture = LLAMA,
     .edits = {HDR(ST, "\"lm_head.weight\"", "\"lm_head.weight_old\"")},
     .want = LLM_ERR_MISSING_TENSOR,
     .frags = {"'lm_head.weight' [512, 64] is missing"}},
    {.name = "tie_word_embeddings false, no lm_head",
     .fixture = LLAMA_TIED,
     .edits = {TEXT(CONFIG, "\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false")},
     .want = LLM_ERR_MISSING_TENSOR,
     .frags = {"'lm_head.weight' [496, 64] is missing"}},
    {.name = "vocab_size vs embedding",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"vocab_size\": 512", "\"vocab_size\": 500")},
     .want = LLM_ERR_SHAPE_MISMATCH,
     .frags = {"model.safetensors", "'model.embed_tokens.weight' has shape [512, 64], expected [500, 64]"}},
    {.name = "intermediate_size vs weights",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"intermediate_size\": 160", "\"intermediate_size\": 128")},
     .want = LLM_ERR_SHAPE_MISMATCH,
     .frags = {"'model.layers.0.mlp.gate_proj.weight' has shape [160, 64], expected [128, 64]"}},
    {.name = "num_key_value_heads vs k_proj",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 4")},
     .want = LLM_ERR_SHAPE_MISMATCH,
     .frags = {"'model.layers.0.self_attn.k_proj.weight' has shape [32, 64], expected [64, 64]"}},
    {.name = "num_hidden_layers 3 of 2",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3")},
     .want = LLM_ERR_MISSING_TENSOR,
     .frags = {"'model.layers.2.input_layernorm.weight' [64] is missing"}},

    /* -- config.json ------------------------------------------------------------------------------------- */
    {.name = "config.json missing",
     .fixture = LLAMA,
     .edits = {DEL(CONFIG)},
     .want = LLM_ERR_NOT_FOUND,
     .frags = {"config.json", "cannot open"}},
    {.name = "config.json bad JSON",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"attention_bias\": false,", "\"attention_bias\": false")},
     .want = LLM_ERR_BAD_JSON,
     .frags = {"config.json", "line 6, column 3", "expected ','"}},
    {.name = "config.json not an object",
     .fixture = LLAMA,
     .custom = config_array,
     .want = LLM_ERR_BAD_CONFIG,
     .frags = {"config.json", "top level is not a JSON object"}},
    {.name = "hidden_size missing",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"hidden_size\": 64,", "")},
     .want = LLM_ERR_BAD_CONFIG,
     .frags = {"config.json", "required key \"hidden_size\" is missing"}},
    {.name = "hidden_size a string",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"hidden_size\": 64", "\"hidden_size\": \"64\"")},
     .want = LLM_ERR_BAD_CONFIG,
     .frags = {"config.json:11:18", "\"hidden_size\" must be an integer"}},
    {.name = "hidden_size fractional",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"hidden_size\": 64", "\"hidden_size\": 64.5")},
     .want = LLM_ERR_BAD_CONFIG,
     .frags = {"config.json:11:18", "\"hidden_size\" must be an integer"}},
    {.name = "num_hidden_layers 0",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 0")},
     .want = LLM_ERR_BAD_CONFIG,
     .frags = {"config.json:18:", "\"num_hidden_layers\" is 0, expected 1..4096"}},
    {.name = "vocab_size negative",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"vocab_size\": 512", "\"vocab_size\": -5")},
     .want = LLM_ERR_BAD_CONFIG,
     .frags = {"config.json:", "\"vocab_size\" is -5, expected 1.."}},
    {.name = "rms_norm_eps a string",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": \"1e-05\"")},
     .want = LLM_ERR_BAD_CONFIG,
     .frags = {"config.json:22:19", "\"rms_norm_eps\" must be a number"}},
    {.name = "tie_word_embeddings not a bool",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"tie_word_embeddings\": false", "\"tie_word_embeddings\": 0")},
     .want = LLM_ERR_BAD_CONFIG,
     .frags = {"config.json:", "\"tie_word_embeddings\" must be true or false"}},
    {.name = "architecture MistralForCausalLM",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"LlamaForCausalLM\"", "\"MistralForCausalLM\"")},
     .want = LLM_ERR_UNSUPPORTED,
     .frags = {"config.json:3:5", "unsupported architecture \"MistralForCausalLM\""}},
    {.name = "architecture FooForCausalLM",
     .fixture = QWEN3,
     .edits = {TEXT(CONFIG, "\"Qwen3ForCausalLM\"", "\"FooForCausalLM\"")},
     .want = LLM_ERR_UNSUPPORTED,
     .frags = {"config.json", "unsupported architecture \"FooForCausalLM\""}},
    {.name = "model_type foo, no architectures",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"architectures\": [\n    \"LlamaForCausalLM\"\n  ],", ""),
               TEXT(CONFIG, "\"model_type\": \"llama\"", "\"model_type\": \"foo\"")},
     .want = LLM_ERR_UNSUPPORTED,
     .frags = {"config.json:", "unsupported architecture \"foo\""}},
    {.name = "architectures empty",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "[\n    \"LlamaForCausalLM\"\n  ]", "[]")},
     .want = LLM_ERR_BAD_CONFIG,
     .frags = {"config.json:2:20", "\"architectures\" must be a non-empty list of strings"}},
    {.name = "neither architectures nor model_type",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"architectures\": [\n    \"LlamaForCausalLM\"\n  ],", ""),
               TEXT(CONFIG, "\"model_type\": \"llama\",", "")},
     .want = LLM_ERR_BAD_CONFIG,
     .frags = {"config.json", "neither \"architectures\" nor \"model_type\""}},
    {.name = "rope yarn (rope_scaling, transformers 4)",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"rope_scaling\": null",
                    "\"rope_scaling\": {\"factor\": 4.0, \"original_max_position_embeddings\": 64, "
                    "\"rope_type\": \"yarn\"}")},
     .want = LLM_ERR_UNSUPPORTED,
     .frags = {"config.json:23:", "unsupported rope type \"yarn\""}},
    {.name = "rope yarn (old \"type\" key)",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"rope_scaling\": null",
                    "\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0}")},
     .want = LLM_ERR_UNSUPPORTED,
     .frags = {"config.json:23:", "unsupported rope type \"yarn\""}},
    {.name = "rope yarn (rope_parameters, transformers 5)",
     .fixture = SHARDED,
     .edits = {TEXT(CONFIG, "\"rope_type\": \"default\"", "\"rope_type\": \"yarn\"")},
     .want = LLM_ERR_UNSUPPORTED,
     .frags = {"config.json:26:18", "unsupported rope type \"yarn\""}},
    {.name = "rope linear (qwen3, transformers 5)",
     .fixture = QWEN3,
     .edits = {TEXT(CONFIG, "\"rope_type\": \"default\"", "\"rope_type\": \"linear\", \"factor\": 2.0")},
     .want = LLM_ERR_UNSUPPORTED,
     .frags = {"config.json:", "unsupported rope type \"linear\""}},
    {.name = "rope_scaling not an object",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"rope_scaling\": null", "\"rope_scaling\": 2")},
     .want = LLM_ERR_BAD_CONFIG,
     .frags = {"config.json:23:19", "\"rope_scaling\" must be an object or null"}},
    {.name = "llama3 rope without factor",
     .fixture = LLAMA_TIED,
     .edits = {TEXT(CONFIG, "\"factor\": 8.0,", "")},
     .want = LLM_ERR_BAD_CONFIG,
     .frags = {"config.json:", "llama3 rope scaling needs factor"}},
    {.name = "llama3 rope high == low",
     .fixture = LLAMA_TIED,
     .edits = {TEXT(CONFIG, "\"high_freq_factor\": 4.0", "\"high_freq_factor\": 1.0")},
     .want = LLM_ERR_BAD_CONFIG,
     .frags = {"config.json:", "high_freq_factor != low_freq_factor"}},
    {.name = "heads not a multiple of kv heads",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3")},
     .want = LLM_ERR_BAD_CONFIG,
     .frags = {"config.json", "num_attention_heads (4) is not a multiple of num_key_value_heads (3)"}},
    {.name = "hidden_act gelu",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"")},
     .want = LLM_ERR_UNSUPPORTED,
     .frags = {"config.json:10:17", "unsupported hidden_act \"gelu\""}},
    {.name = "head_dim odd",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"head_dim\": 16", "\"head_dim\": 15")},
     .want = LLM_ERR_BAD_CONFIG,
     .frags = {"config.json", "head_dim 15 is odd"}},
    {.name = "head_dim 1024",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"head_dim\": 16", "\"head_dim\": 1024")},
     .want = LLM_ERR_UNSUPPORTED,
     .frags = {"head_dim 1024 is larger than the supported 512"}},
    {.name = "no head_dim, hidden % heads != 0",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"head_dim\": 16,", ""),
               TEXT(CONFIG, "\"num_attention_heads\": 4", "\"num_attention_heads\": 6")},
     .want = LLM_ERR_BAD_CONFIG,
     .frags = {"config.json", "hidden_size (64) is not a multiple of num_attention_heads (6)"}},
    {.name = "use_sliding_window true (qwen3)",
     .fixture = QWEN3,
     .edits = {TEXT(CONFIG, "\"use_sliding_window\": false", "\"use_sliding_window\": true")},
     .want = LLM_ERR_UNSUPPORTED,
     .frags = {"config.json", "use_sliding_window=true"}},
    {.name = "eos_token_id list with -1",
     .fixture = LLAMA,
     .edits = {TEXT(CONFIG, "\"eos_token_id\": 2", "\"eos_token_id\": [2, -1]")},
     .want = LLM_ERR_BAD_CONFIG,
     .frags = {"config.json:8:", "\"eos_token_id\"[1] must be a token id"}},
    {.name = "generation_config.json bad JSON",
     .fixture = LLAMA,
     .edits = {TEXT(GENCONFIG, "\"bos_token_id\": 1,", "\"bos_token_id\": 1,,")},
     .want = LLM_ERR_BAD_JSON,
     .frags = {"generation_config.json", "line 3, column 21"}},
    {.name = "generation_config.json 9 eos ids",
     .fixture = LLAMA,
     .edits = {TEXT(GENCONFIG, "\"eos_token_id\": 2", "\"eos_token_id\": [1, 2, 3, 4, 5, 6, 7, 8, 9]")},
     .want = LLM_ERR_BAD_CONFIG,
     .frags = {"generation_config.json:4:19", "lists 9 tokens, at most 8"}},

    /* -- which weight files ------------------------------------------------------------------------------ */
    {.name = "no weights at all",
     .fixture = LLAMA,
     .edits = {DEL(ST)},
     .want = LLM_ERR_NOT_FOUND,
     .frags = {"neither model.safetensors nor model.safetensors.index.json exists"}},
    {.name = "index bad JSON",
     .fixture = SHARDED,
     .edits = {TEXT(INDEX, "\"weight_map\": {", "\"weight_map\" {")},
     .want = LLM_ERR_BAD_JSON,
     .frags = {"model.safetensors.index.json", "line 6, column 16", "expected ':'"}},
    {.name = "index without weight_map",
     .fixture = SHARDED,
     .edits = {TEXT(INDEX, "\"weight_map\"", "\"weight_mapping\"")},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors.index.json", "\"weight_map\" is missing or not an object"}},
    {.name = "index not an object",
     .fixture = SHARDED,
     .custom = index_not_object,
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors.index.json", "\"weight_map\" is missing or not an object"}},
    {.name = "index weight_map empty",
     .fixture = SHARDED,
     .custom = index_empty_map,
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors.index.json", "\"weight_map\" is empty"}},
    {.name = "shard listed but absent",
     .fixture = SHARDED,
     .edits = {DEL(SHARD2)},
     .want = LLM_ERR_NOT_FOUND,
     .frags = {"model.safetensors.index.json:7:23",
               "shard \"" SHARD2 "\" listed in the index does not exist"}},
    {.name = "shard path traversal",
     .fixture = SHARDED,
     .edits = {TEXT(INDEX, "\"lm_head.weight\": \"", "\"lm_head.weight\": \"../")},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors.index.json:7:23", "'lm_head.weight'", "\"../" SHARD2 "\"",
               "must be a plain file name"}},
    {.name = "shard absolute path",
     .fixture = SHARDED,
     .edits = {TEXT(INDEX, "\"lm_head.weight\": \"" SHARD2 "\"", "\"lm_head.weight\": \"/etc/passwd\"")},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors.index.json:7:23", "\"/etc/passwd\"", "must be a plain file name"}},
    {.name = "shard name not a string",
     .fixture = SHARDED,
     .edits = {TEXT(INDEX, "\"lm_head.weight\": \"" SHARD2 "\"", "\"lm_head.weight\": 2")},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors.index.json:7:23", "'lm_head.weight'", "is a number, not a file name"}},
    {.name = "weight_map names the wrong shard",
     .fixture = SHARDED,
     .edits = {TEXT(INDEX, "\"model.norm.weight\": \"" SHARD2 "\"", "\"model.norm.weight\": \"" SHARD1 "\"")},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors.index.json", "weight_map says tensor 'model.norm.weight' is in " SHARD1,
               "it is in " SHARD2}},
    {.name = "weight_map tensor no shard has",
     .fixture = SHARDED,
     .edits = {TEXT(INDEX, "\"weight_map\": {",
                    "\"weight_map\": {\n    \"model.extra.weight\": \"" SHARD1 "\",")},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"model.safetensors.index.json", "'model.extra.weight' is in " SHARD1, "no shard has it"}},
    {.name = "same tensor in two shards",
     .fixture = SHARDED,
     .edits = {HDR(SHARD2, "\"lm_head.weight\":{", "\"model.embed_tokens.weight\":{")},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {"tensor 'model.embed_tokens.weight' appears in both", SHARD1, SHARD2}},
    {.name = "shard truncated",
     .fixture = SHARDED,
     .edits = {TRUNC(SHARD2, 100000)},
     .want = LLM_ERR_BAD_FORMAT,
     .frags = {SHARD2, "'lm_head.weight'", "file size 100000", "truncated"}},
    {.name = "tensor in neither index nor shard",
     .fixture = SHARDED,
     .edits = {TEXT(INDEX, "\"model.layers.1.mlp.down_proj.weight\": \"" SHARD2 "\",", ""),
               HDR(SHARD2, "\"model.layers.1.mlp.down_proj.weight\"",
                   "\"model.layers.1.mlp.down_proj.weight_old\"")},
     .want = LLM_ERR_MISSING_TENSOR,
     .frags = {"'model.layers.1.mlp.down_proj.weight' [64, 128] is missing from any shard"}},
    {.name = "shard tensor transposed",
     .fixture = SHARDED,
     .edits = {HDR(SHARD1, "\"model.layers.1.self_attn.k_proj.weight\":{\"dtype\":\"F32\",\"shape\":[16,64]",
                   "\"model.layers.1.self_attn.k_proj.weight\":{\"dtype\":\"F32\",\"shape\":[64,16]")},
     .want = LLM_ERR_SHAPE_MISMATCH,
     .frags = {SHARD1, "'model.layers.1.self_attn.k_proj.weight' has shape [64, 16], expected [16, 64]"}},

    /* -- qwen-specific ----------------------------------------------------------------------------------- */
    {.name = "qwen3 q_norm missing",
     .fixture = QWEN3,
     .edits = {HDR(ST, "\"model.layers.0.self_attn.q_norm.weight\"",
                   "\"model.layers.0.self_attn.q_norm.weight_\"")},
     .want = LLM_ERR_MISSING_TENSOR,
     .frags = {"'model.layers.0.self_attn.q_norm.weight' [32] is missing"}},
    {.name = "qwen3 head_dim 16 vs q_proj",
     .fixture = QWEN3,
     .edits = {TEXT(CONFIG, "\"head_dim\": 32", "\"head_dim\": 16")},
     .want = LLM_ERR_SHAPE_MISMATCH,
     .frags = {"'model.layers.0.self_attn.q_proj.weight' has shape [128, 64], expected [64, 64]"}},
    {.name = "qwen3 attention_bias true, no biases",
     .fixture = QWEN3,
     .edits = {TEXT(CONFIG, "\"attention_bias\": false", "\"attention_bias\": true")},
     .want = LLM_ERR_MISSING_TENSOR,
     .frags = {"'model.layers.0.self_attn.q_proj.bias' [128] is missing"}},
    {.name = "qwen2 k_proj bias missing",
     .fixture = QWEN2,
     .edits = {HDR(ST, "\"model.layers.1.self_attn.k_proj.bias\"",
                   "\"model.layers.1.self_attn.k_proj.bias_\"")},
     .want = LLM_ERR_MISSING_TENSOR,
     .frags = {"'model.layers.1.self_attn.k_proj.bias' [32] is missing"}},

    /* -- load parameters --------------------------------------------------------------------------------- */
    {.name = "memory limit 1000 bytes",
     .fixture = LLAMA,
     .params = P_MEMLIMIT,
     .want = LLM_ERR_MEMORY_LIMIT,
     .frags = {"weights need 593.25 KiB", "memory limit of 1000 B"}},
    {.name = "CUDA backend",
     .fixture = LLAMA,
     .params = P_CUDA,
     .want = LLM_ERR_BACKEND_UNAVAILABLE,
     .frags = {"cuda"}},
    {.name = "unknown backend 7",
     .fixture = LLAMA,
     .params = P_BAD_BACKEND,
     .want = LLM_ERR_INVALID_ARGUMENT,
     .frags = {"unknown backend 7"}},
    {.name = "n_threads -1",
     .fixture = LLAMA,
     .params = P_BAD_THREADS,
     .want = LLM_ERR_INVALID_ARGUMENT,
     .frags = {"n_threads -1"}},
};

static int apply_edit(const char *dir, const edit *e) {
    switch (e->kind) {
    case E_TEXT:
        return text_edit(dir, e->file, e->from, e->to);
    case E_HEADER:
        return st_edit_header(dir, e->file, e->from, e->to, 0);
    case E_DELETE:
        return remove_in(dir, e->file);
    case E_TRUNCATE:
        return truncate_to(dir, e->file, e->n);
    case E_APPEND:
        return append_zeros(dir, e->file, e->n);
    case E_END:
        return 0;
    }
    return -1;
}

static llm_model_params params_of(int kind) {
    llm_model_params p = llm_model_default_params();
    p.n_threads = 1;
    switch (kind) {
    case P_MEMLIMIT:
        p.memory_limit_bytes = 1000;
        break;
    case P_CUDA:
        p.backend = LLM_BACKEND_CUDA;
        break;
    case P_BAD_BACKEND:
        p.backend = (llm_backend_kind)7;
        break;
    case P_BAD_THREADS:
        p.n_threads = -1;
        break;
    default:
        break;
    }
    return p;
}

/* One line of the listing, with the temporary directory's path shown as <dir>. */
static void print_result(const char *name, llm_status st, const char *err, const char *dir) {
    char shown[1200];
    size_t o = 0, dl = strlen(dir);
    for (const char *s = err; *s && o < sizeof shown - 8;) {
        if (strncmp(s, dir, dl) == 0) {
            memcpy(shown + o, "<dir>", 5);
            o += 5;
            s += dl;
        } else {
            shown[o++] = *s++;
        }
    }
    shown[o] = '\0';
    printf("  %-44s %-28s %s\n", name, llm_status_name(st), shown);
}

static int
    sentinel_model; /* *out is set to this before each load: a failed load must overwrite it with NULL */

static void run_case(const corrupt_case *c) {
    char *dir = new_case_dir(c->fixture);
    if (!dir) return;
    int built = 1;
    for (int i = 0; i < 3 && c->edits[i].kind != E_END; i++)
        if (apply_edit(dir, &c->edits[i]) != 0) {
            TU_CHECK(0, "[%s] edit %d (%s: \"%s\") could not be applied", c->name, i, c->edits[i].file,
                     c->edits[i].from ? c->edits[i].from : "");
            built = 0;
        }
    if (built && c->custom && c->custom(dir) != 0) {
        TU_CHECK(0, "[%s] custom mutation failed", c->name);
        built = 0;
    }
    if (built) {
        llm_model_params p = params_of(c->params);
        llm_model *m = (llm_model *)(void *)&sentinel_model;
        char err[1024];
        memset(err, 'X', sizeof err);
        llm_status st = llm_model_load(dir, c->params == P_NULL ? NULL : &p, &m, err, sizeof err);
        TU_CHECK(memchr(err, '\0', sizeof err) != NULL, "[%s] message not NUL-terminated", c->name);
        err[sizeof err - 1] = '\0';
        TU_CHECK(st == c->want, "[%s] status %s, expected %s (message: %s)", c->name, llm_status_name(st),
                 llm_status_name(c->want), err);
        TU_CHECK(m == NULL, "[%s] *out is not NULL after a failed load", c->name);
        if (st == LLM_OK && m && m != (llm_model *)(void *)&sentinel_model) llm_model_free(m);
        TU_CHECK(err[0] != '\0', "[%s] empty message", c->name);
        for (int i = 0; i < 4 && c->frags[i]; i++)
            TU_CHECK(strstr(err, c->frags[i]) != NULL, "[%s] message lacks \"%s\": %s", c->name, c->frags[i],
                     err);
        print_result(c->name, st, err, dir);
    }
    tu_remove_dir(dir);
    free(dir);
}

/* ---- cases outside the table --------------------------------------------------------------------------- */

static void misc_arguments(void) {
    llm_model *m = (llm_model *)(void *)&sentinel_model;
    char err[256];
    llm_status st = llm_model_load(NULL, NULL, &m, err, sizeof err);
    TU_CHECK(st == LLM_ERR_INVALID_ARGUMENT && m == NULL && strstr(err, "NULL"), "NULL dir: %s %s",
             llm_status_name(st), err);
    st = llm_model_load("/nonexistent-llamac-dir/x", NULL, &m, err, sizeof err);
    TU_CHECK(st == LLM_ERR_NOT_FOUND && m == NULL && strstr(err, "/nonexistent-llamac-dir/x/config.json"),
             "missing dir: %s %s", llm_status_name(st), err);
    char fx[1024];
    tu_fixture(LLAMA, fx, sizeof fx);
    st = llm_model_load(fx, NULL, NULL, err, sizeof err);
    TU_CHECK(st == LLM_ERR_INVALID_ARGUMENT, "NULL out: %s", llm_status_name(st));
    /* A tiny or absent error buffer: still NUL-terminated, never overrun. */
    char *dir = new_case_dir(LLAMA);
    if (!dir) return;
    TU_CHECK(remove_in(dir, ST) == 0, "unlink");
    char small[9];
    memset(small, 'X', sizeof small);
    st = llm_model_load(dir, NULL, &m, small, 8);
    TU_CHECK(st == LLM_ERR_NOT_FOUND && m == NULL && strlen(small) == 7 && small[8] == 'X',
             "small error buffer: %s", llm_status_name(st));
    st = llm_model_load(dir, NULL, &m, NULL, 0);
    TU_CHECK(st == LLM_ERR_NOT_FOUND && m == NULL, "NULL error buffer: %s", llm_status_name(st));
    tu_remove_dir(dir);
    free(dir);
}

/* A valid model spread over 200 shards (the two real ones plus 198 holding one unused tensor each; big
 * checkpoints have that many, e.g. 191 for a 405B model) must load: the per-tensor bookkeeping must not run
 * out of bits. */
static void many_shards(void) {
    enum { N_EXTRA = 198 };
    char *dir = new_case_dir(SHARDED);
    if (!dir) return;
    size_t len;
    char *index = read_in(dir, INDEX, &len);
    size_t cap = len + (size_t)N_EXTRA * 96 + 64;
    char *grown = index ? realloc(index, cap) : NULL;
    int ok = grown != NULL;
    if (grown) index = grown;
    char *tail = ok ? strstr(index, "\"model.norm.weight\"") : NULL; /* the last weight_map entry */
    ok = ok && tail;
    if (ok) {
        size_t o = (size_t)(tail - index);
        o += (size_t)sprintf(index + o, "\"model.norm.weight\": \"" SHARD2 "\"");
        for (int i = 0; i < N_EXTRA && ok; i++) {
            char file[64], header[160];
            snprintf(file, sizeof file, "extra-%03d.safetensors", i);
            snprintf(header, sizeof header,
                     "{\"extra.%d.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", i);
            ok = st_join(dir, file, header, "\0\0\0\0", 4, 0) == 0;
            o += (size_t)sprintf(index + o, ",\n    \"extra.%d.weight\": \"%s\"", i, file);
        }
        o += (size_t)sprintf(index + o, "\n  }\n}\n");
        ok = ok && write_in(dir, INDEX, index, o) == 0;
    }
    TU_CHECK(ok, "could not build the 200-shard directory");
    if (ok) {
        llm_model *m = NULL;
        char err[1024];
        llm_status st = llm_model_load(dir, NULL, &m, err, sizeof err);
        TU_CHECK(st == LLM_OK, "200 shards: %s: %s", llm_status_name(st), err);
        if (st == LLM_OK) {
            llm_model_info info;
            llm_model_get_info(m, &info);
            TU_CHECK(info.n_layer == 2 && info.n_head_kv == 1, "200 shards: wrong info");
            llm_model_free(m);
            printf("  a model in %d shards loads\n", 2 + N_EXTRA);
        }
        /* and a duplicate that lives in a late shard is still reported with both file names */
        char header[160];
        snprintf(header, sizeof header,
                 "{\"extra.5.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}");
        if (st_join(dir, "extra-190.safetensors", header, "\0\0\0\0", 4, 0) == 0) {
            st = llm_model_load(dir, NULL, &m, err, sizeof err);
            TU_CHECK(st == LLM_ERR_BAD_FORMAT && m == NULL &&
                         strstr(err, "'extra.5.weight' appears in both") &&
                         strstr(err, "extra-005.safetensors") && strstr(err, "extra-190.safetensors"),
                     "200 shards, duplicate: %s: %s", llm_status_name(st), err);
            if (st == LLM_OK) llm_model_free(m);
            print_result("duplicate tensor in shard 193 of 200", st, err, dir);
        }
    }
    free(index);
    tu_remove_dir(dir);
    free(dir);
}

/* 50,000 extra (zero-size, unused) tensors in shard 2, all listed in the index: loads, and quickly. Locating
 * a JSON value (line:col) scans the text up to it, so doing that per tensor or per index entry instead of
 * only for an error made big headers and indexes quadratic (minutes here; hours for a 60 MB header). */
static void many_tensors(void) {
    enum { N_EXTRA = 50000 };
    char *dir = new_case_dir(SHARDED);
    if (!dir) return;
    st_parts p;
    size_t len;
    char *index = read_in(dir, INDEX, &len);
    char *header = NULL, *map = NULL;
    int ok = st_split(dir, SHARD2, &p) == 0 && index != NULL;
    if (ok) {
        header = malloc(p.header_len + (size_t)N_EXTRA * 72 + 16);
        map = malloc(len + (size_t)N_EXTRA * 64 + 16);
        ok = header && map;
    }
    if (ok) {
        size_t h = p.header_len, o;
        memcpy(header, p.header, h);
        while (h > 0 && header[h - 1] != '}') h--; /* drop the padding and the closing brace */
        if (h > 0) h--;
        char *at = strstr(index, "\"weight_map\": {");
        ok = h > 0 && at != NULL;
        if (ok) {
            o = (size_t)(at - index) + strlen("\"weight_map\": {");
            memcpy(map, index, o);
            for (int i = 0; i < N_EXTRA; i++) {
                h += (size_t)sprintf(
                    header + h, ",\"extra.%d\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}", i);
                o += (size_t)sprintf(map + o, "\n    \"extra.%d\": \"" SHARD2 "\",", i);
            }
            header[h++] = '}';
            header[h] = '\0';
            size_t rest = len - (size_t)(at - index) - strlen("\"weight_map\": {");
            memcpy(map + o, at + strlen("\"weight_map\": {"), rest);
            o += rest;
            ok =
                st_join(dir, SHARD2, header, p.data, p.data_len, 0) == 0 && write_in(dir, INDEX, map, o) == 0;
        }
    }
    TU_CHECK(ok, "could not build the many-tensor directory");
    if (ok) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        llm_model *m = NULL;
        char err[1024];
        llm_status st = llm_model_load(dir, NULL, &m, err, sizeof err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        TU_CHECK(st == LLM_OK, "%d extra tensors: %s: %s", N_EXTRA, llm_status_name(st), err);
        TU_CHECK(secs < 5.0, "%d extra tensors took %.1f s to load (quadratic?)", N_EXTRA, secs);
        if (st == LLM_OK) llm_model_free(m);
        printf("  a shard with %d extra tensors, all in the index, loads in %.2f s\n", N_EXTRA, secs);
    }
    st_parts_free(&p);
    free(header);
    free(map);
    free(index);
    tu_remove_dir(dir);
    free(dir);
}

/* Every prefix of a JSON file must fail with BAD_JSON (naming the file) until the closing brace is in. */
static void prefixes_of_json(const char *fixture, const char *name) {
    char *dir = new_case_dir(fixture);
    if (!dir) return;
    size_t len;
    char *text = read_in(dir, name, &len);
    TU_CHECK(text != NULL, "read %s", name);
    if (!text) goto out;
    size_t complete = len;
    while (complete > 0 && text[complete - 1] != '}') complete--; /* length with the final '}' */
    int fails = 0, oks = 0;
    for (size_t n = 0; n <= len; n++) {
        if (write_in(dir, name, text, n) != 0) {
            TU_CHECK(0, "write");
            break;
        }
        llm_model *m = (llm_model *)(void *)&sentinel_model;
        char err[512];
        llm_status st = llm_model_load(dir, NULL, &m, err, sizeof err);
        if (n < complete) {
            TU_CHECK(st == LLM_ERR_BAD_JSON && m == NULL && strstr(err, name) && strstr(err, "line "),
                     "%s cut to %zu of %zu bytes: %s (%s)", name, n, len, llm_status_name(st), err);
            fails++;
        } else {
            TU_CHECK(st == LLM_OK, "%s cut to %zu bytes (complete): %s (%s)", name, n, llm_status_name(st),
                     err);
            oks++;
        }
        if (st == LLM_OK) llm_model_free(m);
    }
    printf("  every prefix of %s/%s: %d failed with LLM_ERR_BAD_JSON, %d complete ones loaded\n", fixture,
           name, fails, oks);
out:
    free(text);
    tu_remove_dir(dir);
    free(dir);
}

/* Every truncation of model.safetensors inside or right after the header, and a stride through the data
 * section. */
static void prefixes_of_safetensors(void) {
    char *dir = new_case_dir(LLAMA);
    if (!dir) return;
    size_t len;
    char *data = read_in(dir, ST, &len);
    TU_CHECK(data != NULL && len > 2200, "read model.safetensors");
    if (!data) goto out;
    int tried = 0;
    for (size_t n = 0; n < len; n = n < 2200 ? n + 1 : n + 4099) {
        if (write_in(dir, ST, data, n) != 0) {
            TU_CHECK(0, "write");
            break;
        }
        llm_model *m = (llm_model *)(void *)&sentinel_model;
        char err[512];
        llm_status st = llm_model_load(dir, NULL, &m, err, sizeof err);
        TU_CHECK(st == LLM_ERR_BAD_FORMAT && m == NULL && strstr(err, "model.safetensors"),
                 "model.safetensors cut to %zu bytes: %s (%s)", n, llm_status_name(st), err);
        if (st == LLM_OK) llm_model_free(m);
        tried++;
    }
    printf("  %d truncations of model.safetensors failed with LLM_ERR_BAD_FORMAT\n", tried);
out:
    free(data);
    tu_remove_dir(dir);
    free(dir);
}

static int status_allowed(llm_status st, const llm_status *allowed, int n) {
    for (int i = 0; i < n; i++)
        if (allowed[i] == st) return 1;
    return 0;
}

/* Overwrites 1..8 random bytes of file[lo, hi) (of a copy of the fixture) per iteration, then loads: never a
 * crash, and a failure must be one of `allowed` with a message and *out NULL; a success is freed. */
static void mutate_loop(const char *label, const char *fixture, const char *name, int header_only,
                        uint64_t seed, int iterations, const llm_status *allowed, int n_allowed) {
    char *dir = new_case_dir(fixture);
    if (!dir) return;
    size_t len;
    char *orig = read_in(dir, name, &len);
    char *work = orig ? malloc(len) : NULL;
    TU_CHECK(orig && work && len > 8, "read %s", name);
    if (!orig || !work) goto out;
    size_t hi = len;
    if (header_only) {
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--) n = (n << 8) | (unsigned char)orig[i];
        hi = 8 + (size_t)n;
    }
    static const char interesting[] = "0123456789\"{}[],:-.e \\\0\xff";
    tu_rng rng = {seed};
    int counts[32] = {0};
    for (int it = 0; it < iterations; it++) {
        memcpy(work, orig, len);
        int k = 1 + (int)tu_rng_below(&rng, 8);
        for (int j = 0; j < k; j++) {
            size_t pos = tu_rng_below(&rng, (uint32_t)hi);
            work[pos] = tu_rng_below(&rng, 2) ? (char)tu_rng_below(&rng, 256)
                                              : interesting[tu_rng_below(&rng, sizeof interesting - 1)];
        }
        if (write_in(dir, name, work, len) != 0) {
            TU_CHECK(0, "write");
            break;
        }
        llm_model *m = (llm_model *)(void *)&sentinel_model;
        char err[1024];
        memset(err, 'X', sizeof err);
        llm_status st = llm_model_load(dir, NULL, &m, err, sizeof err);
        TU_CHECK(memchr(err, '\0', sizeof err) != NULL, "%s iteration %d: message not NUL-terminated", label,
                 it);
        err[sizeof err - 1] = '\0';
        if (st == LLM_OK) {
            TU_CHECK(m != NULL && m != (llm_model *)(void *)&sentinel_model,
                     "%s iteration %d: OK without a model", label, it);
            llm_model_info info;
            llm_model_get_info(m, &info);
            TU_CHECK(info.n_layer > 0 && info.n_vocab > 0, "%s iteration %d: bad info", label, it);
            llm_model_free(m);
        } else {
            TU_CHECK(m == NULL, "%s iteration %d: *out not NULL", label, it);
            TU_CHECK(err[0] != '\0', "%s iteration %d: empty message for %s", label, it, llm_status_name(st));
            TU_CHECK(status_allowed(st, allowed, n_allowed), "%s seed %llu iteration %d: unexpected %s: %s",
                     label, (unsigned long long)seed, it, llm_status_name(st), err);
        }
        if ((unsigned)st < 32) counts[st]++;
    }
    printf("  %s (seed %llu, %d iterations):", label, (unsigned long long)seed, iterations);
    for (int s = 0; s < 32; s++)
        if (counts[s]) printf(" %s=%d", llm_status_name((llm_status)s), counts[s]);
    printf("\n");
out:
    free(orig);
    free(work);
    tu_remove_dir(dir);
    free(dir);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep the listing and the CHECK FAILED lines (stderr) in order */
    const int n_cases = (int)(sizeof cases / sizeof cases[0]);
    printf("test_corrupt_models: %d corrupt model directories\n", n_cases);
    TU_CHECK(n_cases >= 30, "only %d cases", n_cases);
    for (int i = 0; i < n_cases; i++) run_case(&cases[i]);
    misc_arguments();
    many_shards();
    many_tensors();

    prefixes_of_json(LLAMA, CONFIG);
    prefixes_of_json(SHARDED, INDEX);
    prefixes_of_json(LLAMA, GENCONFIG);
    prefixes_of_safetensors();

    static const llm_status st_allowed[] = {LLM_ERR_BAD_FORMAT, LLM_ERR_MISSING_TENSOR,
                                            LLM_ERR_SHAPE_MISMATCH, LLM_ERR_DTYPE_MISMATCH};
    static const llm_status index_allowed[] = {LLM_ERR_BAD_JSON, LLM_ERR_BAD_FORMAT, LLM_ERR_NOT_FOUND,
                                               LLM_ERR_MISSING_TENSOR, LLM_ERR_IO};
    static const llm_status config_allowed[] = {LLM_ERR_BAD_JSON, LLM_ERR_BAD_CONFIG, LLM_ERR_UNSUPPORTED,
                                                LLM_ERR_MISSING_TENSOR, LLM_ERR_SHAPE_MISMATCH};
    const int na = (int)(sizeof st_allowed / sizeof st_allowed[0]);
    const int ni = (int)(sizeof index_allowed / sizeof index_allowed[0]);
    const int nc = (int)(sizeof config_allowed / sizeof config_allowed[0]);
    uint64_t fresh = tu_fresh_seed("test_corrupt_models");
    mutate_loop("safetensors header mutations", LLAMA, ST, 1, 20240611u, 300, st_allowed, na);
    mutate_loop("safetensors header mutations", LLAMA, ST, 1, fresh, 300, st_allowed, na);
    mutate_loop("shard header mutations", SHARDED, SHARD2, 1, fresh ^ 0x5bd1e995u, 100, st_allowed, na);
    mutate_loop("index mutations", SHARDED, INDEX, 0, 77u, 150, index_allowed, ni);
    mutate_loop("index mutations", SHARDED, INDEX, 0, fresh + 1, 150, index_allowed, ni);
    mutate_loop("config.json mutations", LLAMA, CONFIG, 0, 99u, 200, config_allowed, nc);
    mutate_loop("config.json mutations", LLAMA, CONFIG, 0, fresh + 2, 200, config_allowed, nc);
    return tu_finish("test_corrupt_models");
}
