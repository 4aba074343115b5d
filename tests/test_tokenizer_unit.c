/* Unit tests of the tokenizer components on small hand-written tokenizer.json files. Every expected
 * value below is worked out by hand from the documented behaviour of HF `tokenizers` (its Rust
 * source: BPE merge_word / merge_all, AddedVocabulary::find_matches, NormalizedString::split, the
 * pre-tokenizers, post-processors and decoders), not taken from this implementation. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"
#include "test_util.h"
#include "tokenizer/tok_internal.h"

/* ---- helpers ---- */

static llm_tokenizer *load_cfg(const char *json, const char *config, const char *what) {
    char err[1024];
    llm_tokenizer *t = NULL;
    llm_status st = llm_tokenizer_load_from_memory(json, strlen(json), config, config ? strlen(config) : 0,
                                                   NULL, &t, err, sizeof err);
    TU_CHECK(st == LLM_OK, "%s: load failed: %s (%s)", what, err, llm_status_name(st));
    return t;
}

static llm_tokenizer *load(const char *json, const char *what) {
    return load_cfg(json, NULL, what);
}

/* A tokenizer.json with the given model body and optional component JSON (NULL -> null). */
static char *tokjson(const char *model, const char *added, const char *normalizer, const char *pretok,
                     const char *post, const char *decoder) {
    llm_strbuf sb = LLM_STRBUF_INIT;
    llm_strbuf_appendf(
        &sb,
        "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null, \"added_tokens\": %s,\n"
        " \"normalizer\": %s, \"pre_tokenizer\": %s, \"post_processor\": %s, \"decoder\": %s,\n"
        " \"model\": %s}",
        added ? added : "[]", normalizer ? normalizer : "null", pretok ? pretok : "null",
        post ? post : "null", decoder ? decoder : "null", model);
    return llm_strbuf_detach(&sb, NULL);
}

static void expect_ids(llm_tokenizer *t, const char *text, unsigned flags, const char *what, int n, ...) {
    if (!t) return;
    int32_t want[256], got[256];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) want[i] = va_arg(ap, int32_t);
    va_end(ap);
    size_t ng = 0;
    llm_status st = llm_tokenize(t, text, strlen(text), flags, got, 256, &ng);
    int ok = st == LLM_OK && ng == (size_t)n && memcmp(got, want, (size_t)n * sizeof *got) == 0;
    TU_CHECK(ok, "%s: \"%s\": %s %s", what, text, llm_status_name(st), llm_tokenizer_last_error(t));
    if (!ok && st == LLM_OK) {
        fprintf(stderr, "    got     ");
        for (size_t i = 0; i < ng; i++) fprintf(stderr, " %d", got[i]);
        fprintf(stderr, "\n    expected");
        for (int i = 0; i < n; i++) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n");
    }
}

static void expect_pieces(llm_tokenizer *t, const char *text, unsigned flags, const char *want,
                          const char *what) {
    if (!t) return;
    llm_strbuf sb = LLM_STRBUF_INIT;
    llm_status st = tok_debug_pieces(t, text, strlen(text), flags, &sb);
    const char *got = llm_strbuf_str(&sb);
    TU_CHECK(st == LLM_OK && strcmp(got, want) == 0,
             "%s: \"%s\" pieces\n    got      [%s]\n    expected [%s]", what, text, got, want);
    llm_strbuf_free(&sb);
}

/* Decodes the listed ids (terminated by -1). */
static void expect_decode(llm_tokenizer *t, unsigned flags, const char *want, const char *what, ...) {
    if (!t) return;
    int32_t ids[256];
    size_t n = 0;
    va_list ap;
    va_start(ap, what);
    for (int32_t id; (id = va_arg(ap, int32_t)) >= 0;) ids[n++] = id;
    va_end(ap);
    char out[1024];
    size_t len = 0;
    llm_status st = llm_detokenize(t, ids, n, flags, out, sizeof out, &len);
    TU_CHECK(st == LLM_OK && len == strlen(want) && memcmp(out, want, len) == 0,
             "%s: decode\n    got      \"%s\" (%s)\n    expected \"%s\"", what, out, llm_status_name(st),
             want);
}

/* GPT-2's byte -> character table, written out independently of the library. */
static unsigned gpt2_char(unsigned b) {
    int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    if (printable) return b;
    unsigned n = 0;
    for (unsigned x = 0; x < b; x++) {
        int p = (x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF);
        n += !p;
    }
    return 256 + n;
}

/* A BPE over the 256 byte characters with id = byte value and no merges: with a final ByteLevel
 * pre-tokenizer, the ids of a text are exactly the UTF-8 bytes of what the model received. */
static char *byte_identity_model(const char *extra_vocab, const char *merges) {
    llm_strbuf sb = LLM_STRBUF_INIT;
    llm_strbuf_append_str(&sb, "{\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, \"vocab\": {");
    for (unsigned b = 0; b < 256; b++)
        llm_strbuf_appendf(&sb, "%s\"\\u%04x\": %u", b ? ", " : "", gpt2_char(b), b);
    if (extra_vocab) llm_strbuf_appendf(&sb, ", %s", extra_vocab);
    llm_strbuf_appendf(&sb, "}, \"merges\": %s}", merges ? merges : "[]");
    return llm_strbuf_detach(&sb, NULL);
}

#define BYTE_LEVEL_PT                                                                                        \
    "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, \"use_regex\": false}"
#define BYTE_LEVEL_DEC                                                                                       \
    "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, \"use_regex\": false}"

/* Expects the normalizer to turn `in` into `out` (seen through the byte-identity model). */
static void expect_normalized(const char *normalizer, const char *in, const char *out, const char *what) {
    char *model = byte_identity_model(NULL, NULL);
    char *json = tokjson(model, NULL, normalizer, BYTE_LEVEL_PT, NULL, BYTE_LEVEL_DEC);
    llm_tokenizer *t = load(json, what);
    if (t) {
        int32_t ids[512];
        size_t n = 0;
        llm_status st = llm_tokenize(t, in, strlen(in), 0, ids, 512, &n);
        char got[512];
        size_t k = 0;
        for (size_t i = 0; st == LLM_OK && i < n && k < sizeof got - 1; i++) got[k++] = (char)ids[i];
        got[k] = '\0';
        TU_CHECK(st == LLM_OK && strcmp(got, out) == 0, "%s: \"%s\" normalized to \"%s\", expected \"%s\"",
                 what, in, got, out);
    }
    llm_tokenizer_free(t);
    free(json);
    free(model);
}

/* ---- BPE model ---- */

static void test_bpe(void) {
    static const char *vocab = "{\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, \"bc\": 4, \"abc\": 5}";
    char model[1024];
    struct {
        const char *merges;
        const char *extra;
        int n;
        int32_t ids[3];
        const char *what;
    } cases[] = {
        {"[\"a b\", \"b c\"]", "", 2, {3, 2}, "a b ranks first"},
        {"[\"b c\", \"a b\"]", "", 2, {0, 4}, "b c ranks first"},
        {"[[\"b\", \"c\"], [\"a\", \"b\"]]", "", 2, {0, 4}, "pair form"},
        {"[\"a b\", \"b c\", \"ab c\"]", "", 1, {5}, "second-level merge"},
        {"[\"#version: 0.2\", \"b c\", \"a b\"]", "", 2, {0, 4}, "#version line skipped"},
        {"[\"a b\", \"b c\", \"a b\"]", "", 2, {0, 4}, "duplicate merge: the later rank wins"},
        {"[\"a b\", \"b c\"]", ", \"ignore_merges\": true", 1, {5}, "ignore_merges takes the whole word"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(model, sizeof model, "{\"type\": \"BPE\", \"vocab\": %s, \"merges\": %s%s}", vocab,
                 cases[i].merges, cases[i].extra);
        char *json = tokjson(model, NULL, NULL, NULL, NULL, NULL);
        llm_tokenizer *t = load(json, cases[i].what);
        if (cases[i].n == 1)
            expect_ids(t, "abc", 0, cases[i].what, 1, cases[i].ids[0]);
        else
            expect_ids(t, "abc", 0, cases[i].what, 2, cases[i].ids[0], cases[i].ids[1]);
        llm_tokenizer_free(t);
        free(json);
    }

    /* characters outside the vocabulary, no unk token: dropped, and merging closes over the gap */
    char *json =
        tokjson("{\"type\": \"BPE\", \"vocab\": {\"b\": 0, \"c\": 1, \"bc\": 2}, \"merges\": [\"b c\"]}",
                NULL, NULL, NULL, NULL, NULL);
    llm_tokenizer *t = load(json, "dropped characters");
    expect_ids(t, "b xc", 0, "dropped characters", 1, 2);
    expect_ids(t, "zz", 0, "dropped characters", 0);
    llm_tokenizer_free(t);
    free(json);

    /* continuing_subword_prefix: merged token = left + right without its prefix */
    json = tokjson(
        "{\"type\": \"BPE\", \"continuing_subword_prefix\": \"##\", \"vocab\": {\"a\": 0, \"##b\": 1, "
        "\"ab\": 2, \"b\": 3}, \"merges\": [\"a ##b\"]}",
        NULL, NULL, NULL, NULL, NULL);
    t = load(json, "continuing_subword_prefix");
    expect_ids(t, "ab", 0, "continuing_subword_prefix", 1, 2);
    expect_ids(t, "bb", 0, "continuing_subword_prefix (first char has no prefix)", 2, 3, 1);
    llm_tokenizer_free(t);
    free(json);

    /* end_of_word_suffix on the last character */
    json =
        tokjson("{\"type\": \"BPE\", \"end_of_word_suffix\": \"</w>\", \"vocab\": {\"a\": 0, \"b</w>\": 1, "
                "\"ab</w>\": 2, \"b\": 3}, \"merges\": [\"a b</w>\"]}",
                NULL, NULL, NULL, NULL, NULL);
    t = load(json, "end_of_word_suffix");
    expect_ids(t, "ab", 0, "end_of_word_suffix", 1, 2);
    expect_ids(t, "ba", 0, "end_of_word_suffix (a</w> unknown, dropped)", 1, 3);
    llm_tokenizer_free(t);
    free(json);

    /* unk, with and without fuse_unk */
    for (int fuse = 0; fuse < 2; fuse++) {
        char m[512];
        snprintf(m, sizeof m,
                 "{\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"fuse_unk\": %s, \"vocab\": {\"<unk>\": 0, "
                 "\"a\": 1}, \"merges\": []}",
                 fuse ? "true" : "false");
        json = tokjson(m, NULL, NULL, NULL, NULL, NULL);
        t = load(json, "unk");
        if (fuse)
            expect_ids(t, "axxa", 0, "fuse_unk", 3, 1, 0, 1);
        else
            expect_ids(t, "axxa", 0, "unk", 4, 1, 0, 0, 1);
        llm_tokenizer_free(t);
        free(json);
    }

    /* an unk_token missing from the vocabulary fails when it is needed */
    json = tokjson("{\"type\": \"BPE\", \"unk_token\": \"<nope>\", \"vocab\": {\"a\": 0}, \"merges\": []}",
                   NULL, NULL, NULL, NULL, NULL);
    t = load(json, "unk missing");
    if (t) {
        int32_t ids[8];
        size_t n;
        expect_ids(t, "aa", 0, "unk missing, not needed", 2, 0, 0);
        llm_status st = llm_tokenize(t, "ax", 2, 0, ids, 8, &n);
        TU_CHECK(st == LLM_ERR_BAD_FORMAT && strstr(llm_tokenizer_last_error(t), "<nope>"),
                 "unk missing: %s %s", llm_status_name(st), llm_tokenizer_last_error(t));
    }
    llm_tokenizer_free(t);
    free(json);

    /* byte_fallback; a character that cannot fall back becomes unk (and, as in HF, a pending unk is only
     * written after the byte tokens of the next character) */
    json = tokjson(
        "{\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"byte_fallback\": true, \"vocab\": {\"<unk>\": 0, "
        "\"<0xC3>\": 1, \"<0xA9>\": 2, \"a\": 3}, \"merges\": []}",
        NULL, NULL, NULL, NULL,
        "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}]}");
    t = load(json, "byte_fallback");
    expect_ids(t, "\xC3\xA9", 0, "byte_fallback é", 2, 1, 2);
    expect_ids(t, "a\xC3\xBC", 0, "byte_fallback ü -> unk", 2, 3, 0);
    expect_ids(t, "\xC3\xBC\xC3\xA9", 0, "byte_fallback üé", 3, 1, 2, 0);
    expect_decode(t, 0, "\xC3\xA9", "ByteFallback valid run", 1, 2, -1);
    expect_decode(t, 0,
                  "\xEF\xBF\xBD"
                  "a",
                  "ByteFallback lone C3", 1, 3, -1);
    expect_decode(t, 0,
                  "\xEF\xBF\xBD\xEF\xBF\xBD"
                  "a",
                  "ByteFallback invalid run: one U+FFFD per byte", 1, 1, 3, -1);
    expect_decode(t, 0, "a\xEF\xBF\xBD\xEF\xBF\xBD", "ByteFallback invalid run at the end", 3, 2, 1, -1);
    llm_tokenizer_free(t);
    free(json);
}

/* ---- added tokens ---- */

static void test_added(void) {
    static const char *model = "{\"type\": \"BPE\", \"vocab\": {\" \": 0, \"a\": 1, \"b\": 2, \"c\": 3, "
                               "\"<\": 4, \">\": 5, \"s\": 6, \"m\": 7, "
                               "\"x\": 8, \"y\": 9, \".\": 10}, \"merges\": []}";
    static const char *added =
        "[{\"id\": 11, \"content\": \"<s>\", \"special\": true, \"normalized\": false, \"lstrip\": false, "
        "\"rstrip\": false, \"single_word\": false},"
        " {\"id\": 12, \"content\": \"<m>\", \"special\": true, \"normalized\": false, \"lstrip\": true, "
        "\"rstrip\": true,"
        " \"single_word\": false},"
        " {\"id\": 13, \"content\": \"xy\", \"special\": false, \"normalized\": false, \"single_word\": true,"
        " \"lstrip\": false, \"rstrip\": false},"
        " {\"id\": 14, \"content\": \"ab\", \"special\": false, \"normalized\": true, \"single_word\": false,"
        " \"lstrip\": false, \"rstrip\": false},"
        " {\"id\": 15, \"content\": \"<s>a\", \"special\": true, \"normalized\": false, \"single_word\": "
        "false,"
        " \"lstrip\": false, \"rstrip\": false}]";
    char *json = tokjson(model, added, "{\"type\": \"Lowercase\"}", NULL, NULL, NULL);
    llm_tokenizer *t = load(json, "added tokens");
    const unsigned P = LLM_TOKENIZE_PARSE_SPECIAL;
    expect_ids(t, "c<s>c", P, "special token", 3, 3, 11, 3);
    expect_ids(t, "c<s>c", 0, "special token not parsed", 5, 3, 4, 6, 5, 3);
    expect_ids(t, "<s>ac", P, "longest match", 2, 15, 3);
    expect_ids(t, "c <m>  c", P, "lstrip + rstrip", 3, 3, 12, 3);
    expect_ids(t, "c <m>  c", 0, "lstrip + rstrip, not parsed", 8, 3, 0, 4, 7, 5, 0, 0, 3);
    expect_ids(t, "xy", P, "single_word alone", 1, 13);
    expect_ids(t, "c xy c", 0, "single_word between spaces (non-special: matched without PARSE_SPECIAL)", 5,
               3, 0, 13, 0, 3);
    expect_ids(t, "xy.", P, "single_word before punctuation", 2, 13, 10);
    expect_ids(t, "cxy", P, "single_word inside a word", 3, 3, 8, 9);
    expect_ids(t, "xyc", P, "single_word before a letter", 3, 8, 9, 3);
    expect_ids(t, "AB", P, "normalized token matched after Lowercase", 1, 14);
    expect_ids(t, "cAB", P, "normalized token inside", 2, 3, 14);
    expect_ids(t, "A<s>B", P, "pieces around a raw token are normalized separately", 3, 1, 11, 2);
    expect_ids(t, "<S>", P, "raw tokens are matched before normalization", 3, 4, 6, 5);
    if (t) {
        TU_CHECK(llm_tokenizer_n_vocab(t) == 16, "n_vocab %d", llm_tokenizer_n_vocab(t));
        TU_CHECK(llm_tokenizer_is_special(t, 11) && llm_tokenizer_is_special(t, 12) &&
                     !llm_tokenizer_is_special(t, 13) && !llm_tokenizer_is_special(t, 1) &&
                     !llm_tokenizer_is_special(t, 99) && !llm_tokenizer_is_special(t, -1),
                 "is_special");
        TU_CHECK(llm_tokenizer_token_id(t, "<m>", 3) == 12 && llm_tokenizer_token_id(t, "a", 1) == 1 &&
                     llm_tokenizer_token_id(t, "zz", 2) == -1,
                 "token_id");
        /* no decoder: the token strings joined with spaces */
        expect_decode(t, 0, "c <s> c", "no decoder", 3, 11, 3, -1);
        expect_decode(t, LLM_DETOKENIZE_SKIP_SPECIAL, "c c", "no decoder, skip special", 3, 11, 3, -1);
    }
    llm_tokenizer_free(t);
    free(json);

    /* ids: HF gives the id of the same content in the vocabulary, else the next one after the largest */
    json = tokjson("{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": []}",
                   "[{\"id\": 1, \"content\": \"b\", \"special\": true}, {\"id\": 2, \"content\": \"<x>\", "
                   "\"special\": true},"
                   " {\"id\": 3, \"content\": \"<y>\", \"special\": false}]",
                   NULL, NULL, NULL, NULL);
    t = load(json, "added ids");
    expect_ids(t, "a<x>b<y>", P, "added ids", 4, 0, 2, 1, 3);
    if (t)
        TU_CHECK(llm_tokenizer_is_special(t, 1), "a vocabulary entry made a special added token is special");
    expect_decode(t, LLM_DETOKENIZE_SKIP_SPECIAL, "a <y>", "skip special", 0, 1, 2, 3, -1);
    llm_tokenizer_free(t);
    free(json);
}

/* ---- normalizers ---- */

static void test_normalizers(void) {
    expect_normalized("{\"type\": \"NFC\"}", "e\xCC\x81", "\xC3\xA9", "NFC");
    expect_normalized("{\"type\": \"NFC\"}", "ae\xCC\x81z", "a\xC3\xA9z", "NFC inside ASCII");
    expect_normalized("{\"type\": \"NFD\"}", "\xC3\xA9", "e\xCC\x81", "NFD");
    expect_normalized("{\"type\": \"NFKC\"}", "\xEF\xAC\x81", "fi", "NFKC ligature");
    expect_normalized("{\"type\": \"NFKD\"}", "\xE2\x91\xA0", "1", "NFKD circled one");
    expect_normalized("{\"type\": \"Lowercase\"}", "ABC \xC3\x89 \xC4\xB0", "abc \xC3\xA9 i\xCC\x87",
                      "Lowercase");
    expect_normalized("{\"type\": \"Prepend\", \"prepend\": \"\xE2\x96\x81\"}", "ab",
                      "\xE2\x96\x81"
                      "ab",
                      "Prepend");
    expect_normalized("{\"type\": \"Prepend\", \"prepend\": \"\xE2\x96\x81\"}", "", "", "Prepend on empty");
    expect_normalized("{\"type\": \"Append\", \"append\": \"!\"}", "ab", "ab!", "Append");
    expect_normalized(
        "{\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\xE2\x96\x81\"}", "a b  c",
        "a\xE2\x96\x81"
        "b\xE2\x96\x81\xE2\x96\x81"
        "c",
        "Replace string");
    expect_normalized("{\"type\": \"Replace\", \"pattern\": {\"Regex\": \"\\\\s+\"}, \"content\": \" \"}",
                      "a \t\n b", "a b", "Replace regex");
    expect_normalized("{\"type\": \"Replace\", \"pattern\": {\"String\": \"a.b\"}, \"content\": \"X\"}",
                      "a.b axb", "X axb", "Replace string is literal");
    expect_normalized("{\"type\": \"Strip\", \"strip_left\": true, \"strip_right\": true}",
                      " \t a b \xE3\x80\x80", "a b", "Strip");
    expect_normalized("{\"type\": \"Strip\", \"strip_left\": false, \"strip_right\": true}", "  a  ", "  a",
                      "Strip right");
    expect_normalized(
        "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFD\"}, {\"type\": \"StripAccents\"}, "
        "{\"type\": \"Lowercase\"}]}",
        "\xC3\x89lan", "elan", "Sequence NFD StripAccents Lowercase");
}

/* ---- pre-tokenizers ---- */

static llm_tokenizer *pretok_tokenizer(const char *pretok, const char *added) {
    /* a vocabulary of every ASCII printable character and ▁ is enough for splitting tests */
    llm_strbuf sb = LLM_STRBUF_INIT;
    llm_strbuf_append_str(&sb, "{\"type\": \"BPE\", \"vocab\": {");
    int id = 0;
    for (int c = 0x20; c < 0x7F; c++) {
        if (c == '"' || c == '\\')
            llm_strbuf_appendf(&sb, "%s\"\\%c\": %d", id ? ", " : "", c, id);
        else
            llm_strbuf_appendf(&sb, "%s\"%c\": %d", id ? ", " : "", c, id);
        id++;
    }
    llm_strbuf_appendf(&sb, ", \"\xE2\x96\x81\": %d}, \"merges\": []}", id);
    char *json = tokjson(sb.data, added, NULL, pretok, NULL, NULL);
    llm_tokenizer *t = load(json, pretok);
    free(json);
    llm_strbuf_free(&sb);
    return t;
}

static void test_pretokenizers(void) {
    static const struct {
        const char *pretok, *text, *pieces;
    } cases[] = {
        {"{\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"Removed\", \"invert\": "
         "false}",
         "a  b c", "a|b|c"},
        {"{\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"Isolated\", \"invert\": "
         "false}",
         "a  b c", "a| | |b| |c"},
        {"{\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"MergedWithPrevious\", "
         "\"invert\": false}",
         "a  b c", "a | |b |c"},
        {"{\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"MergedWithNext\", "
         "\"invert\": false}",
         "a  b c", "a| | b| c"},
        {"{\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"Contiguous\", \"invert\": "
         "false}",
         "a  b c", "a|  |b| |c"},
        {"{\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"Removed\", \"invert\": "
         "true}",
         "a  b c", " | | "},
        {"{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\d+\"}, \"behavior\": \"Isolated\", "
         "\"invert\": false}",
         "ab12c3", "ab|12|c|3"},
        {"{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\s+(?!\\\\S)|\\\\s+\"}, \"behavior\": "
         "\"Isolated\", "
         "\"invert\": false}",
         "a   b ", "a|  | |b| "},
        {"{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(?i:'s|'t)\"}, \"behavior\": \"Isolated\", "
         "\"invert\": false}",
         "it'S x'T", "it|'S| x|'T"},
        {"{\"type\": \"Digits\", \"individual_digits\": true}", "a123b", "a|1|2|3|b"},
        {"{\"type\": \"Digits\", \"individual_digits\": false}", "a123b45", "a|123|b|45"},
        {"{\"type\": \"WhitespaceSplit\"}", "  hi  there ", "hi|there"},
        {"{\"type\": \"Whitespace\"}", "Hey man!! don't", "Hey|man|!!|don|'|t"},
        {"{\"type\": \"Punctuation\"}", "Hey, friend!", "Hey|,| friend|!"},
        {"{\"type\": \"Punctuation\", \"behavior\": \"Removed\"}", "a,b", "a|b"},
        {"{\"type\": \"BertPreTokenizer\"}", "Hey, friend!", "Hey|,|friend|!"},
        {"{\"type\": \"CharDelimiterSplit\", \"delimiter\": \"-\"}", "a-b--c", "a|b|c"},
        {"{\"type\": \"Metaspace\", \"replacement\": \"\xE2\x96\x81\", \"prepend_scheme\": \"always\", "
         "\"split\": true}",
         "Hey friend!",
         "\xE2\x96\x81Hey|\xE2\x96\x81"
         "friend!"},
        {"{\"type\": \"Metaspace\", \"replacement\": \"\xE2\x96\x81\", \"prepend_scheme\": \"always\", "
         "\"split\": true}",
         "Hey   friend!",
         "\xE2\x96\x81Hey|\xE2\x96\x81|\xE2\x96\x81|\xE2\x96\x81"
         "friend!"},
        {"{\"type\": \"Metaspace\", \"replacement\": \"\xE2\x96\x81\", \"prepend_scheme\": \"always\", "
         "\"split\": false}",
         "Hey friend!",
         "\xE2\x96\x81Hey\xE2\x96\x81"
         "friend!"},
        {"{\"type\": \"Metaspace\", \"replacement\": \"\xE2\x96\x81\", \"prepend_scheme\": \"never\", "
         "\"split\": true}",
         "Hey friend",
         "Hey|\xE2\x96\x81"
         "friend"},
        {"{\"type\": \"Metaspace\", \"replacement\": \"\xE2\x96\x81\", \"add_prefix_space\": false}",
         "Hey friend",
         "Hey|\xE2\x96\x81"
         "friend"},
        {"{\"type\": \"Metaspace\", \"replacement\": \"\xE2\x96\x81\", \"prepend_scheme\": \"first\", "
         "\"split\": true}",
         "a<s>b c",
         "\xE2\x96\x81"
         "a|#96|b|\xE2\x96\x81"
         "c"},
        {"{\"type\": \"Metaspace\", \"replacement\": \"\xE2\x96\x81\", \"prepend_scheme\": \"always\", "
         "\"split\": true}",
         "a<s>b",
         "\xE2\x96\x81"
         "a|#96|\xE2\x96\x81"
         "b"},
        /* "first" means "starts at offset 0 of the original text": WhitespaceSplit removed the space */
        {"{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"WhitespaceSplit\"}, {\"type\": "
         "\"Metaspace\", "
         "\"replacement\": \"\xE2\x96\x81\", \"prepend_scheme\": \"first\", \"split\": true}]}",
         " Hey you", "Hey|you"},
        {"{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"WhitespaceSplit\"}, {\"type\": "
         "\"Metaspace\", "
         "\"replacement\": \"\xE2\x96\x81\", \"prepend_scheme\": \"first\", \"split\": true}]}",
         "Hey you", "\xE2\x96\x81Hey|you"},
        {"{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"use_regex\": true}", "Hello world",
         "\xC4\xA0Hello|\xC4\xA0world"},
        {"{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}", "I'm  fine!!\n",
         "I|'m|\xC4\xA0|\xC4\xA0"
         "fine|!!|\xC4\x8A"},
        {"{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Digits\", \"individual_digits\": false}, "
         "{\"type\": \"Split\", \"pattern\": {\"String\": \"-\"}, \"behavior\": \"Removed\", \"invert\": "
         "false}]}",
         "ab-12-c", "ab|12|c"},
    };
    static const char *added =
        "[{\"id\": 96, \"content\": \"<s>\", \"special\": true, \"normalized\": false}]";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        llm_tokenizer *t = pretok_tokenizer(cases[i].pretok, added);
        expect_pieces(t, cases[i].text, LLM_TOKENIZE_PARSE_SPECIAL, cases[i].pieces, cases[i].pretok);
        llm_tokenizer_free(t);
    }
}

/* ---- post-processors ---- */

static void test_post(void) {
    static const char *model =
        "{\"type\": \"BPE\", \"vocab\": {\"<s>\": 0, \"</s>\": 1, \"a\": 2}, \"merges\": []}";
    static const char *added =
        "[{\"id\": 0, \"content\": \"<s>\", \"special\": true, \"normalized\": false},"
        " {\"id\": 1, \"content\": \"</s>\", \"special\": true, \"normalized\": false}]";
    const unsigned A = LLM_TOKENIZE_ADD_SPECIAL;
    static const char *tmpl =
        "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": "
        "0}}, "
        "{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, {\"SpecialToken\": {\"id\": \"</s>\", \"type_id\": "
        "0}}], "
        "\"pair\": [], \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [0], \"tokens\": [\"<s>\"]}, "
        "\"</s>\": {\"id\": \"</s>\", \"ids\": [1], \"tokens\": [\"</s>\"]}}}";
    char *json = tokjson(model, added, NULL, NULL, tmpl, NULL);
    llm_tokenizer *t = load(json, "TemplateProcessing");
    expect_ids(t, "aa", A, "TemplateProcessing", 4, 0, 2, 2, 1);
    expect_ids(t, "aa", 0, "TemplateProcessing without ADD_SPECIAL", 2, 2, 2);
    expect_ids(t, "", A, "TemplateProcessing on empty text", 2, 0, 1);
    llm_tokenizer_free(t);
    free(json);

    char seq[2048];
    snprintf(
        seq, sizeof seq,
        "{\"type\": \"Sequence\", \"processors\": [{\"type\": \"ByteLevel\", \"trim_offsets\": false}, %s]}",
        tmpl);
    json = tokjson(model, added, NULL, NULL, seq, NULL);
    t = load(json, "Sequence post-processor");
    expect_ids(t, "a", A, "Sequence[ByteLevel, TemplateProcessing]", 3, 0, 2, 1);
    llm_tokenizer_free(t);
    free(json);

    json = tokjson(
        model, added, NULL, NULL,
        "{\"type\": \"RobertaProcessing\", \"sep\": [\"</s>\", 1], \"cls\": [\"<s>\", 0], \"trim_offsets\": "
        "true, \"add_prefix_space\": false}",
        NULL);
    t = load(json, "RobertaProcessing");
    expect_ids(t, "a", A, "RobertaProcessing", 3, 0, 2, 1);
    llm_tokenizer_free(t);
    free(json);

    json = tokjson(model, added, NULL, NULL,
                   "{\"type\": \"BertProcessing\", \"sep\": [\"</s>\", 1], \"cls\": [\"<s>\", 0]}", NULL);
    t = load(json, "BertProcessing");
    expect_ids(t, "a", A, "BertProcessing", 3, 0, 2, 1);
    llm_tokenizer_free(t);
    free(json);

    json = tokjson(model, added, NULL, NULL, "{\"type\": \"ByteLevel\", \"trim_offsets\": false}", NULL);
    t = load(json, "ByteLevel post-processor");
    expect_ids(t, "a", A, "ByteLevel post-processor adds nothing", 1, 2);
    llm_tokenizer_free(t);
    free(json);
}

/* ---- decoders ---- */

/* A tokenizer whose tokens are the given strings (ids in order) and the given decoder. */
static llm_tokenizer *decoder_tokenizer(const char *decoder, const char *const *tokens, size_t n) {
    llm_strbuf sb = LLM_STRBUF_INIT;
    llm_strbuf_append_str(&sb, "{\"type\": \"BPE\", \"vocab\": {");
    for (size_t i = 0; i < n; i++) llm_strbuf_appendf(&sb, "%s\"%s\": %zu", i ? ", " : "", tokens[i], i);
    llm_strbuf_append_str(&sb, "}, \"merges\": []}");
    char *json =
        tokjson(sb.data, "[{\"id\": 0, \"content\": \"<s>\", \"special\": true, \"normalized\": false}]",
                NULL, NULL, NULL, decoder);
    llm_tokenizer *t = load(json, decoder);
    free(json);
    llm_strbuf_free(&sb);
    return t;
}

static void test_decoders(void) {
    static const char *const toks[] = {"<s>",
                                       "\xE2\x96\x81Hey",
                                       "\u2581friend!",
                                       "\u2581\u2581a",
                                       "  a  ",
                                       " b",
                                       "<0x41>",
                                       "<0xC3>",
                                       "<0xA9>",
                                       "x",
                                       "hello",
                                       "##world",
                                       "!",
                                       "hel",
                                       "lo</w>",
                                       "world</w>",
                                       "<0x+A>",
                                       "\xC4\xA0Hello",
                                       "\xC3\xA2\xC4\xA2",
                                       "\xC2\xAC",
                                       "\xC3\xBF",
                                       "\xC3\xB0\xC5\x81",
                                       "n't",
                                       "\xC3\x80\xC4\xA2"};
    const size_t N = sizeof toks / sizeof toks[0];
    const char *ms = "{\"type\": \"Metaspace\", \"replacement\": \"\xE2\x96\x81\", \"prepend_scheme\": "
                     "\"always\", \"split\": true}";
    llm_tokenizer *t = decoder_tokenizer(ms, toks, N);
    expect_decode(t, 0, "Hey friend!", "Metaspace", 1, 2, -1);
    expect_decode(t, 0, "a friend!", "Metaspace: every replacement of the first token goes", 3, 2, -1);
    expect_decode(t, 0, "<s> Hey", "Metaspace: the first token is <s>", 0, 1, -1);
    expect_decode(t, LLM_DETOKENIZE_SKIP_SPECIAL, "Hey", "Metaspace after a skipped <s>", 0, 1, -1);
    llm_tokenizer_free(t);

    t = decoder_tokenizer(
        "{\"type\": \"Metaspace\", \"replacement\": \"\xE2\x96\x81\", \"prepend_scheme\": \"never\"}", toks,
        N);
    expect_decode(t, 0, " Hey friend!", "Metaspace never", 1, 2, -1);
    llm_tokenizer_free(t);

    t = decoder_tokenizer("{\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 1}", toks, N);
    expect_decode(t, 0, " a b", "Strip per token", 4, 5, -1);
    llm_tokenizer_free(t);

    t = decoder_tokenizer(
        "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": "
        "\"\xE2\x96\x81\"}, \"content\": \" \"}, {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}, "
        "{\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}]}",
        toks, N);
    expect_decode(t, 0, "Hey friend!", "SentencePiece chain", 1, 2, -1);
    expect_decode(t, 0, "HeyA\xC3\xA9x", "SentencePiece chain with bytes", 1, 6, 7, 8, 9, -1);
    expect_decode(t, 0, "\xEF\xBF\xBDx", "SentencePiece chain, lone byte", 7, 9, -1);
    expect_decode(t, 0, "\n", "<0x+A> parses as byte 0x0A (Rust from_str_radix takes '+')", 16, -1);
    expect_decode(t, 0, "<s> Hey", "SentencePiece chain after <s>", 0, 1, -1);
    llm_tokenizer_free(t);

    t = decoder_tokenizer("{\"type\": \"WordPiece\", \"prefix\": \"##\", \"cleanup\": true}", toks, N);
    expect_decode(t, 0, "helloworld!", "WordPiece", 10, 11, 12, -1);
    expect_decode(t, 0, "hellon't", "WordPiece cleanup", 10, 22, -1);
    llm_tokenizer_free(t);

    t = decoder_tokenizer("{\"type\": \"BPEDecoder\", \"suffix\": \"</w>\"}", toks, N);
    expect_decode(t, 0, "hello world", "BPEDecoder", 13, 14, 15, -1);
    llm_tokenizer_free(t);

    t = decoder_tokenizer(BYTE_LEVEL_DEC, toks, N);
    expect_decode(t, 0, " Hello", "ByteLevel", 17, -1);
    /* "âĢ" is E2 80: a cut 3-byte sequence, one U+FFFD; then "x" */
    expect_decode(t, 0, "\xEF\xBF\xBDx", "ByteLevel lossy: cut sequence", 18, 9, -1);
    expect_decode(t, 0, "\xEF\xBF\xBD", "ByteLevel lossy: cut sequence at the end", 18, -1);
    /* "¬" is byte 0xAC (a lone continuation byte), "ÿ" 0xFF, "ðŁ" F0 9F (cut 4-byte sequence) */
    expect_decode(t, 0, "\xEF\xBF\xBD\xEF\xBF\xBD", "ByteLevel lossy: invalid bytes", 19, 20, -1);
    expect_decode(t, 0, "\xEF\xBF\xBD", "ByteLevel lossy: F0 9F", 21, -1);
    /* "ÀĢ" is C0 80: C0 is never valid, 0x80 alone is a stray continuation: two U+FFFD */
    expect_decode(t, 0, "\xEF\xBF\xBD\xEF\xBF\xBD", "ByteLevel lossy: C0 80", 23, -1);
    expect_decode(t, 0, " b", "ByteLevel passes a token with an unmapped character (space) as is", 5, -1);
    llm_tokenizer_free(t);

    t = decoder_tokenizer(NULL, toks, N);
    expect_decode(t, 0, "x hello", "no decoder joins with spaces", 9, 10, -1);
    llm_tokenizer_free(t);
}

/* ---- tokenizer_config.json ---- */

static void test_config(void) {
    static const char *model =
        "{\"type\": \"BPE\", \"vocab\": {\"<s>\": 0, \"</s>\": 1, \"<unk>\": 2, \"a\": 3}, \"merges\": []}";
    char *json =
        tokjson(model, "[{\"id\": 4, \"content\": \"<pad>\", \"special\": true, \"normalized\": false}]",
                NULL, NULL, NULL, NULL);
    static const char *cfg = "{\"bos_token\": {\"__type\": \"AddedToken\", \"content\": \"<s>\", \"lstrip\": "
                             "false}, \"eos_token\": \"</s>\", "
                             "\"unk_token\": null, \"pad_token\": \"<pad>\", \"chat_template\": [{\"name\": "
                             "\"tool_use\", \"template\": \"T\"}, "
                             "{\"name\": \"default\", \"template\": \"{{ bos_token }}D\"}]}";
    llm_tokenizer *t = load_cfg(json, cfg, "config");
    if (t) {
        TU_CHECK(llm_tokenizer_special_id(t, LLM_SPECIAL_BOS) == 0, "bos %d",
                 llm_tokenizer_special_id(t, LLM_SPECIAL_BOS));
        TU_CHECK(llm_tokenizer_special_id(t, LLM_SPECIAL_EOS) == 1, "eos");
        TU_CHECK(llm_tokenizer_special_id(t, LLM_SPECIAL_UNK) == -1, "unk is null");
        TU_CHECK(llm_tokenizer_special_id(t, LLM_SPECIAL_PAD) == 4, "pad");
        const char *ct = llm_tokenizer_chat_template(t);
        TU_CHECK(ct && strcmp(ct, "{{ bos_token }}D") == 0, "default chat template: %s", ct ? ct : "(null)");
    }
    llm_tokenizer_free(t);
    t = load_cfg(json, "{\"chat_template\": \"X\"}", "config with a string template");
    if (t) {
        TU_CHECK(strcmp(llm_tokenizer_chat_template(t), "X") == 0, "string chat template");
        TU_CHECK(llm_tokenizer_special_id(t, LLM_SPECIAL_BOS) == -1, "no bos");
    }
    llm_tokenizer_free(t);
    t = load(json, "no config");
    if (t) TU_CHECK(llm_tokenizer_chat_template(t) == NULL, "no chat template");
    llm_tokenizer_free(t);

    /* from a directory: special_tokens_map.json fills what tokenizer_config.json leaves unset, and
     * chat_template.jinja replaces the config's template */
    char *dir = tu_make_temp_dir();
    char p[1024];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    tu_write_file(p, json, strlen(json));
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    const char *c2 = "{\"bos_token\": \"<s>\", \"eos_token\": null, \"chat_template\": \"old\"}";
    tu_write_file(p, c2, strlen(c2));
    snprintf(p, sizeof p, "%s/special_tokens_map.json", dir);
    const char *m2 =
        "{\"bos_token\": \"</s>\", \"eos_token\": {\"content\": \"</s>\"}, \"unk_token\": \"<unk>\"}";
    tu_write_file(p, m2, strlen(m2));
    snprintf(p, sizeof p, "%s/chat_template.jinja", dir);
    tu_write_file(p, "new", 3);
    char err[512];
    llm_status st = llm_tokenizer_load(dir, NULL, &t, err, sizeof err);
    TU_CHECK(st == LLM_OK, "load dir: %s", err);
    if (t) {
        TU_CHECK(llm_tokenizer_special_id(t, LLM_SPECIAL_BOS) == 0, "config's bos wins");
        TU_CHECK(llm_tokenizer_special_id(t, LLM_SPECIAL_EOS) == 1, "map fills eos");
        TU_CHECK(llm_tokenizer_special_id(t, LLM_SPECIAL_UNK) == 2, "map fills unk");
        TU_CHECK(strcmp(llm_tokenizer_chat_template(t), "new") == 0, "chat_template.jinja wins");
    }
    llm_tokenizer_free(t);
    tu_remove_dir(dir);
    free(dir);
    free(json);
}

/* ---- API edges ---- */

static void test_api(void) {
    char *json =
        tokjson("{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]}",
                NULL, NULL, NULL, NULL, NULL);
    llm_tokenizer *t = load(json, "api");
    if (t) {
        int32_t ids[4];
        size_t n = 99;
        llm_status st = llm_tokenize(t, "abab", 4, 0, ids, 1, &n);
        TU_CHECK(st == LLM_ERR_BUFFER_TOO_SMALL && n == 2, "buffer too small: %s n=%zu", llm_status_name(st),
                 n);
        st = llm_tokenize(t, "abab", 4, 0, NULL, 0, &n);
        TU_CHECK(st == LLM_ERR_BUFFER_TOO_SMALL && n == 2, "size query: %s n=%zu", llm_status_name(st), n);
        st = llm_tokenize(t,
                          "a\xFF"
                          "b",
                          3, 0, ids, 4, &n);
        TU_CHECK(st == LLM_ERR_INVALID_ARGUMENT && strstr(llm_tokenizer_last_error(t), "offset 1"),
                 "invalid UTF-8: %s", llm_tokenizer_last_error(t));
        st = llm_tokenize(t, "a\xED\xA0\x80", 4, 0, ids, 4, &n);
        TU_CHECK(st == LLM_ERR_INVALID_ARGUMENT, "surrogate rejected");
        st = llm_tokenize(t, NULL, 0, 0, ids, 4, &n);
        TU_CHECK(st == LLM_OK && n == 0, "empty text");
        int32_t bad[2] = {0, 3};
        char out[16];
        size_t len;
        st = llm_detokenize(t, bad, 2, 0, out, sizeof out, &len);
        TU_CHECK(st == LLM_ERR_INVALID_ARGUMENT && strstr(llm_tokenizer_last_error(t), "ids[1]"),
                 "bad id: %s", llm_tokenizer_last_error(t));
        int32_t good[2] = {2, 2};
        st = llm_detokenize(t, good, 2, 0, out, 4, &len);
        TU_CHECK(st == LLM_ERR_BUFFER_TOO_SMALL && len == 5, "decode buffer too small: %s %zu",
                 llm_status_name(st), len);
        st = llm_detokenize(t, good, 2, 0, out, 6, &len);
        TU_CHECK(st == LLM_OK && strcmp(out, "ab ab") == 0, "decode fits exactly: %s", out);
        st = llm_token_to_piece(t, 2, out, sizeof out, &len);
        TU_CHECK(st == LLM_OK && len == 2 && strcmp(out, "ab") == 0, "piece");
        st = llm_token_to_piece(t, 7, out, sizeof out, &len);
        TU_CHECK(st == LLM_ERR_INVALID_ARGUMENT, "piece of a bad id");
        TU_CHECK(llm_tokenizer_special_id(t, (llm_special_token)9) == -1, "bad special kind");
    }
    llm_tokenizer_free(t);
    llm_tokenizer_free(NULL);
    llm_detok_stream_free(NULL);
    free(json);
}

int main(void) {
    test_bpe();
    test_added();
    test_normalizers();
    test_pretokenizers();
    test_post();
    test_decoders();
    test_config();
    test_api();
    return tu_finish("test_tokenizer_unit");
}
