/* llama-cli tokenize --model DIR (--text T | --file F) [--special] [--json] [--verbose]:
 * the ids of a text under the model directory's tokenizer.json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_common.h"

static void help(void) {
    printf("usage: llama-cli tokenize --model DIR|FILE.gguf (--text TEXT | --file FILE) [--special] [--json] "
           "[--verbose]\n"
           "Encodes the text with DIR/tokenizer.json (plus tokenizer_config.json) exactly as Hugging Face\n"
           "tokenizers' encode(text) does with its default add_special_tokens=True: the tokenizer's\n"
           "post-processor adds BOS/EOS only if it is configured to.\n"
           "  --special   special-token text such as <|im_start|> becomes those tokens (otherwise it is\n"
           "              tokenized as plain text)\n"
           "  --json      print one JSON array of ids (of {\"id\", \"piece\"} objects with --verbose)\n"
           "  --verbose   print id<TAB>piece per line, the piece as a JSON string\n"
           "Default output: one id per line.\n");
}

/* A JSON string literal of s[0..n) (valid UTF-8 is copied as is). */
static void print_json_string(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            fputs("\\\"", stdout);
            break;
        case '\\':
            fputs("\\\\", stdout);
            break;
        case '\n':
            fputs("\\n", stdout);
            break;
        case '\r':
            fputs("\\r", stdout);
            break;
        case '\t':
            fputs("\\t", stdout);
            break;
        case '\b':
            fputs("\\b", stdout);
            break;
        case '\f':
            fputs("\\f", stdout);
            break;
        default:
            if (c < 0x20 || c == 0x7F)
                printf("\\u%04x", c);
            else
                putchar(c);
        }
    }
    putchar('"');
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

int cli_tokenize(int argc, char **argv) {
    cli_model_opts o = {0};
    const char *text_arg = NULL, *file_arg = NULL;
    int special = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        int r = cli_parse_model_flag(argc, argv, &i, &o);
        if (r < 0) return 1;
        if (r > 0) continue;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help();
            return 0;
        }
        if (strcmp(argv[i], "--text") == 0 && i + 1 < argc) {
            text_arg = argv[++i];
            continue;
        }
        if (strcmp(argv[i], "--file") == 0 && i + 1 < argc) {
            file_arg = argv[++i];
            continue;
        }
        if (strcmp(argv[i], "--special") == 0) {
            special = 1;
            continue;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
            continue;
        }
        return cli_error("tokenize: unknown option or missing value: '%s' (try --help)", argv[i]);
    }
    if (!o.model_dir) return cli_error("tokenize: --model DIR is required");
    if (!text_arg == !file_arg) return cli_error("tokenize: give exactly one of --text TEXT or --file FILE");
    char *text = NULL;
    size_t len = 0;
    if (file_arg) {
        text = read_file(file_arg, &len);
        if (!text) return cli_error("tokenize: cannot read '%s'", file_arg);
    } else {
        len = strlen(text_arg);
    }
    char err[1024];
    llm_tokenizer *tok = NULL;
    llm_model *gguf = NULL; /* a GGUF file carries its tokenizer: loaded with the (mmapped) model */
    struct stat sb;
    llm_status st;
    if (stat(o.model_dir, &sb) == 0 && S_ISREG(sb.st_mode)) {
        llm_model_params mp = llm_model_default_params();
        mp.backend = LLM_BACKEND_CPU;
        st = llm_model_load(o.model_dir, &mp, &gguf, err, sizeof err);
        if (st == LLM_OK && !(tok = llm_model_tokenizer(gguf))) {
            snprintf(err, sizeof err, "%s has no tokenizer (no tokenizer.ggml.* keys)", o.model_dir);
            st = LLM_ERR_NOT_FOUND;
        }
    } else {
        st = llm_tokenizer_load(o.model_dir, NULL, &tok, err, sizeof err);
    }
    if (st != LLM_OK) {
        llm_model_free(gguf);
        free(text);
        return cli_error("%s (%s)", err, llm_status_name(st));
    }
    /* HF's encode(text) defaults to add_special_tokens=True: the post-processor runs */
    unsigned flags = LLM_TOKENIZE_ADD_SPECIAL | (special ? LLM_TOKENIZE_PARSE_SPECIAL : 0);
    const char *src = file_arg ? text : text_arg;
    size_t n = 0;
    int32_t *ids = NULL;
    st = llm_tokenize(tok, src, len, flags, NULL, 0, &n);
    if (st == LLM_ERR_BUFFER_TOO_SMALL || (st == LLM_OK && n == 0)) {
        ids = malloc((n ? n : 1) * sizeof *ids);
        st = ids ? llm_tokenize(tok, src, len, flags, ids, n, &n) : LLM_ERR_OUT_OF_MEMORY;
    }
    int rc = 0;
    if (st != LLM_OK) {
        rc = cli_error("tokenize: %s (%s)", llm_tokenizer_last_error(tok), llm_status_name(st));
    } else {
        char small[256];
        char *piece = small;
        if (json) putchar('[');
        for (size_t i = 0; i < n; i++) {
            size_t plen = 0;
            if (o.verbose) {
                if (piece != small) free(piece);
                piece = small;
                if (llm_token_to_piece(tok, ids[i], small, sizeof small, &plen) == LLM_ERR_BUFFER_TOO_SMALL) {
                    piece = malloc(plen + 1);
                    if (!piece || llm_token_to_piece(tok, ids[i], piece, plen + 1, &plen) != LLM_OK) {
                        free(piece);
                        piece = small;
                        plen = 0;
                    }
                }
            }
            if (json && o.verbose) {
                printf("%s{\"id\": %d, \"piece\": ", i ? ", " : "", ids[i]);
                print_json_string(piece, plen);
                putchar('}');
            } else if (json) {
                printf("%s%d", i ? ", " : "", ids[i]);
            } else if (o.verbose) {
                printf("%d\t", ids[i]);
                print_json_string(piece, plen);
                putchar('\n');
            } else {
                printf("%d\n", ids[i]);
            }
        }
        if (piece != small) free(piece);
        if (json) printf("]\n");
        if (fflush(stdout) != 0) rc = cli_error("tokenize: write to stdout failed");
    }
    free(ids);
    free(text);
    if (gguf)
        llm_model_free(gguf); /* owns tok */
    else
        llm_tokenizer_free(tok);
    return rc;
}
