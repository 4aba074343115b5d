/* llama-cli tokenize (binary from LLAMAC_CLI) on the spm_bpe fixture: its ids equal the library's with
 * LLM_TOKENIZE_ADD_SPECIAL (the post-processor's <s> comes first), --special parses special-token
 * text, --json / --verbose formats, --file, and errors as one line on stderr with a non-zero exit. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "test_util.h"

static char tmpdir[512];

/* Parses "1\n2\n" into ids; returns the count. */
static size_t parse_lines(const char *s, int32_t *ids, size_t cap) {
    size_t n = 0;
    while (s && *s && n < cap) {
        char *end;
        ids[n++] = (int32_t)strtol(s, &end, 10);
        if (*end != '\n') return (size_t)-1;
        s = end + 1;
    }
    return n;
}

/* JSON string literal at *p (after the opening quote is consumed by the caller) -> out. */
static size_t unescape(const char **p, char *out) {
    size_t n = 0;
    const char *s = *p;
    while (*s && *s != '"') {
        if (*s != '\\') {
            out[n++] = *s++;
            continue;
        }
        s++;
        switch (*s) {
        case 'n':
            out[n++] = '\n';
            break;
        case 't':
            out[n++] = '\t';
            break;
        case 'r':
            out[n++] = '\r';
            break;
        case 'b':
            out[n++] = '\b';
            break;
        case 'f':
            out[n++] = '\f';
            break;
        case 'u':
            out[n++] = (char)strtol((char[5]){s[1], s[2], s[3], s[4], 0}, NULL, 16), s += 4;
            break;
        default:
            out[n++] = *s;
            break;
        }
        s++;
    }
    *p = *s ? s + 1 : s;
    return n;
}

int main(void) {
    char *t = tu_make_temp_dir();
    if (!t) return 1;
    snprintf(tmpdir, sizeof tmpdir, "%s", t);
    free(t);
    char dir[1024], args[4096], err_buf[512];
    tu_fixture("tokenizer/spm_bpe", dir, sizeof dir);
    llm_tokenizer *tok = NULL;
    llm_status st = llm_tokenizer_load(dir, NULL, &tok, err_buf, sizeof err_buf);
    TU_CHECK(st == LLM_OK, "load %s: %s", dir, err_buf);
    if (st != LLM_OK) return tu_finish("test_tokenizer_cli");

    const char *text = "Hello <s>world, \"quoted\"\ttab\nnew line <|im_start|>";
    int32_t lib[512], lib_sp[512], got[512];
    size_t n_lib = 0, n_lib_sp = 0;
    llm_tokenize(tok, text, strlen(text), LLM_TOKENIZE_ADD_SPECIAL, lib, 512, &n_lib);
    llm_tokenize(tok, text, strlen(text), LLM_TOKENIZE_ADD_SPECIAL | LLM_TOKENIZE_PARSE_SPECIAL, lib_sp, 512,
                 &n_lib_sp);
    TU_CHECK(n_lib > 3 && lib[0] == 1, "the post-processor adds <s> (id 1)");
    TU_CHECK(n_lib != n_lib_sp || memcmp(lib, lib_sp, n_lib * sizeof *lib) != 0,
             "PARSE_SPECIAL changes the ids");

    /* the text goes through a file (it has quotes, a tab and a newline) */
    char path[1024];
    snprintf(path, sizeof path, "%s/input.txt", tmpdir);
    tu_write_file(path, text, strlen(text));
    char *out, *err;
    snprintf(args, sizeof args, "tokenize --model '%s' --file '%s'", dir, path);
    int rc = tu_run_cli(tmpdir, args, NULL, &out, NULL, &err);
    size_t n = parse_lines(out, got, 512);
    TU_CHECK(rc == 0 && n == n_lib && memcmp(got, lib, n * sizeof *got) == 0,
             "tokenize --file: rc %d, %zu ids: %s", rc, n, err ? err : "");
    free(out);
    free(err);

    snprintf(args, sizeof args, "tokenize --model '%s' --file '%s' --special", dir, path);
    rc = tu_run_cli(tmpdir, args, NULL, &out, NULL, &err);
    n = parse_lines(out, got, 512);
    TU_CHECK(rc == 0 && n == n_lib_sp && memcmp(got, lib_sp, n * sizeof *got) == 0, "tokenize --special");
    free(out);
    free(err);

    /* --text */
    snprintf(args, sizeof args, "tokenize --model '%s' --text 'Hello world'", dir);
    rc = tu_run_cli(tmpdir, args, NULL, &out, NULL, &err);
    n = parse_lines(out, got, 512);
    size_t n2 = 0;
    int32_t want[64];
    llm_tokenize(tok, "Hello world", 11, LLM_TOKENIZE_ADD_SPECIAL, want, 64, &n2);
    TU_CHECK(rc == 0 && n == n2 && memcmp(got, want, n * sizeof *got) == 0, "tokenize --text");
    free(out);
    free(err);

    /* --json: one array */
    snprintf(args, sizeof args, "tokenize --model '%s' --text 'Hello world' --json", dir);
    rc = tu_run_cli(tmpdir, args, NULL, &out, NULL, &err);
    int ok = rc == 0 && out && out[0] == '[' && tu_count_lines(out) == 1;
    const char *p = out ? out + 1 : "";
    for (size_t i = 0; ok && i < n2; i++) {
        char *end;
        long v = strtol(p, &end, 10);
        ok = v == want[i] && end != p;
        p = end;
        if (i + 1 < n2) ok = ok && strncmp(p, ", ", 2) == 0, p += 2;
    }
    TU_CHECK(ok && strcmp(p, "]\n") == 0, "tokenize --json: %s", out ? out : "");
    free(out);
    free(err);

    /* --verbose: id TAB JSON-escaped piece, one per id */
    snprintf(args, sizeof args, "tokenize --model '%s' --file '%s' --verbose", dir, path);
    rc = tu_run_cli(tmpdir, args, NULL, &out, NULL, &err);
    ok = rc == 0 && tu_count_lines(out) == (int)n_lib;
    p = out ? out : "";
    for (size_t i = 0; ok && i < n_lib; i++) {
        char *end;
        long v = strtol(p, &end, 10);
        ok = v == lib[i] && end[0] == '\t' && end[1] == '"';
        if (!ok) break;
        p = end + 2;
        char piece[256], want_piece[256];
        size_t pl = unescape(&p, piece), wl = 0;
        llm_token_to_piece(tok, lib[i], want_piece, sizeof want_piece, &wl);
        ok = pl == wl && memcmp(piece, want_piece, pl) == 0 && *p == '\n';
        p++;
    }
    TU_CHECK(ok, "tokenize --verbose:\n%s", out ? out : "");
    TU_CHECK(out && strstr(out, "\t\"<s>\"\n"), "--verbose shows <s>");
    free(out);
    free(err);

    snprintf(args, sizeof args, "tokenize --model '%s' --text 'Hi' --json --verbose", dir);
    rc = tu_run_cli(tmpdir, args, NULL, &out, NULL, &err);
    TU_CHECK(rc == 0 && out && strncmp(out, "[{\"id\": 1, \"piece\": \"<s>\"}, {\"id\": ", 34) == 0,
             "--json --verbose: %s", out ? out : "");
    free(out);
    free(err);

    /* empty text: only what the post-processor adds */
    snprintf(args, sizeof args, "tokenize --model '%s' --text ''", dir);
    rc = tu_run_cli(tmpdir, args, NULL, &out, NULL, &err);
    TU_CHECK(rc == 0 && out && strcmp(out, "1\n") == 0, "empty text: %s", out ? out : "");
    free(out);
    free(err);

    TU_CHECK(tu_run_cli(tmpdir, "tokenize --help", NULL, &out, NULL, &err) == 0 && out &&
                 strstr(out, "--special"),
             "tokenize --help");
    free(out);
    free(err);

    /* errors */
    char bad[1024];
    snprintf(bad, sizeof bad, "%s/bad.txt", tmpdir);
    tu_write_file(bad, "ok \xC3\x28", 5);
    snprintf(args, sizeof args, "tokenize --model '%s' --file '%s'", dir, bad);
    tu_expect_cli_error(tmpdir, args, "offset 3");
    tu_expect_cli_error(tmpdir, "tokenize --text hi", "--model");
    snprintf(args, sizeof args, "tokenize --model '%s'", dir);
    tu_expect_cli_error(tmpdir, args, "--text");
    snprintf(args, sizeof args, "tokenize --model '%s' --text a --file '%s'", dir, path);
    tu_expect_cli_error(tmpdir, args, "exactly one");
    tu_expect_cli_error(tmpdir, "tokenize --model /nonexistent/tok --text a",
                        "/nonexistent/tok/tokenizer.json");
    snprintf(args, sizeof args, "tokenize --model '%s' --text a --frobnicate", dir);
    tu_expect_cli_error(tmpdir, args, "--frobnicate");
    snprintf(args, sizeof args, "tokenize --model '%s' --file /nonexistent/file.txt", dir);
    tu_expect_cli_error(tmpdir, args, "/nonexistent/file.txt");

    llm_tokenizer_free(tok);
    tu_remove_dir(tmpdir);
    return tu_finish("test_tokenizer_cli");
}
