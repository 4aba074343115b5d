/* Helpers shared by the chat-template tests (header-only: each test program is one .c file). */
#ifndef LLAMAC_TEST_TEMPLATE_UTIL_H
#define LLAMAC_TEST_TEMPLATE_UTIL_H

#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/strbuf.h"
#include "test_util.h"

/* Re-serialises a parsed JSON value; numbers are copied from the source text so that 1.0 stays a
 * float and 1 an int (the distinction Python's json module makes). */
static inline void tt_json_write(llm_strbuf *sb, const llm_json *v, const char *src, size_t src_len) {
    switch (llm_json_type_of(v)) {
    case LLM_JSON_NULL:
        llm_strbuf_append_str(sb, "null");
        break;
    case LLM_JSON_TRUE:
        llm_strbuf_append_str(sb, "true");
        break;
    case LLM_JSON_FALSE:
        llm_strbuf_append_str(sb, "false");
        break;
    case LLM_JSON_NUMBER: {
        size_t a = llm_json_offset(v), b = a;
        while (b < src_len && strchr("+-0123456789.eE", src[b])) b++;
        llm_strbuf_append(sb, src + a, b - a);
        break;
    }
    case LLM_JSON_STRING: {
        size_t n;
        const char *s = llm_json_string(v, &n);
        llm_json_escape(sb, s, n);
        break;
    }
    case LLM_JSON_ARRAY:
        llm_strbuf_append_char(sb, '[');
        for (size_t i = 0; i < llm_json_count(v); i++) {
            if (i) llm_strbuf_append_char(sb, ',');
            tt_json_write(sb, llm_json_value_at(v, i), src, src_len);
        }
        llm_strbuf_append_char(sb, ']');
        break;
    case LLM_JSON_OBJECT:
        llm_strbuf_append_char(sb, '{');
        for (size_t i = 0; i < llm_json_count(v); i++) {
            size_t kn;
            const char *k = llm_json_key_at(v, i, &kn);
            if (i) llm_strbuf_append_char(sb, ',');
            llm_json_escape(sb, k, kn);
            llm_strbuf_append_char(sb, ':');
            tt_json_write(sb, llm_json_value_at(v, i), src, src_len);
        }
        llm_strbuf_append_char(sb, '}');
        break;
    default:
        break;
    }
}

/* A JSON file kept with its text (needed by tt_json_write). */
typedef struct tt_json {
    char *text;
    size_t len;
    llm_json_doc *doc;
} tt_json;

static inline int tt_json_load(const char *path, tt_json *j) {
    memset(j, 0, sizeof *j);
    j->text = tu_read_file(path, &j->len);
    if (!j->text) return -1;
    char err[256];
    if (llm_json_parse(j->text, j->len, &j->doc, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", path, err);
        free(j->text);
        j->text = NULL;
        return -1;
    }
    return 0;
}

static inline void tt_json_free(tt_json *j) {
    llm_json_doc_free(j->doc);
    free(j->text);
    memset(j, 0, sizeof *j);
}

static inline const char *tt_str(const llm_json *v) {
    const char *s = llm_json_string(v, NULL);
    return s ? s : "";
}

/* Parses and renders; *out is malloc'd (NUL-terminated) on success. */
static inline llm_status tt_render(const char *src, size_t src_len, const char *vars, size_t vars_len,
                                   int64_t now_unix, char **out, size_t *out_len, char *err, size_t err_cap) {
    llm_chat_template *t = NULL;
    *out = NULL;
    *out_len = 0;
    llm_status st = llm_chat_template_parse(src, src_len, &t, err, err_cap);
    if (st != LLM_OK) return st;
    llm_chat_template_render_params p = llm_chat_template_default_render_params();
    p.now_unix = now_unix;
    size_t len = 0;
    st = llm_chat_template_render(t, vars, vars_len, &p, NULL, 0, &len, err, err_cap);
    if (st == LLM_ERR_BUFFER_TOO_SMALL) {
        *out = malloc(len + 1);
        if (!*out) {
            llm_chat_template_free(t);
            return LLM_ERR_OUT_OF_MEMORY;
        }
        st = llm_chat_template_render(t, vars, vars_len, &p, *out, len + 1, &len, err, err_cap);
        if (st != LLM_OK) {
            free(*out);
            *out = NULL;
        }
    }
    *out_len = len;
    llm_chat_template_free(t);
    return st;
}

/* The message of a positioned error without its "line L, column C: " prefix. */
static inline const char *tt_strip_position(const char *err) {
    int line, col, k = 0;
    if (sscanf(err, "line %d, column %d: %n", &line, &col, &k) >= 2 && k > 0) return err + k;
    return err;
}

/* "Type: message" of a recorded Python error -> message. */
static inline const char *tt_python_message(const char *e) {
    const char *p = strstr(e, ": ");
    return p ? p + 2 : e;
}

/* Python errors a parser raises: their wording is jinja2's own, ours differs (and names line:col). */
static inline int tt_python_syntax_error(const char *e) {
    return strncmp(e, "TemplateSyntaxError:", 20) == 0 || strncmp(e, "TemplateAssertionError:", 23) == 0 ||
           strncmp(e, "SyntaxError:", 12) == 0;
}

/* Prints where two strings first differ. */
static inline void tt_show_diff(const char *what, const char *want, size_t want_len, const char *got,
                                size_t got_len) {
    size_t i = 0;
    while (i < want_len && i < got_len && want[i] == got[i]) i++;
    size_t from = i > 40 ? i - 40 : 0;
    fprintf(stderr,
            "  %s: first difference at byte %zu (lengths %zu vs %zu)\n    want: %.*s\n    got:  %.*s\n", what,
            i, want_len, got_len, (int)((want_len - from) > 120 ? 120 : (want_len - from)), want + from,
            (int)((got_len - from) > 120 ? 120 : (got_len - from)), got + from);
}

#endif
