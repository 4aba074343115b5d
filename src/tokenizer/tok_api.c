/* Loading (tokenizer.json, tokenizer_config.json, special_tokens_map.json, chat_template.jinja),
 * freeing and the small lookups of the public tokenizer API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileutil.h"
#include "core/json.h"
#include "tokenizer/tok_internal.h"

#define TOKENIZER_MAX_BYTES (512u * 1024u * 1024u)
#define CONFIG_MAX_BYTES    (64u * 1024u * 1024u)

llm_tokenizer_params llm_tokenizer_default_params(void) {
    llm_tokenizer_params p;
    memset(&p, 0, sizeof p);
    p.log_level = LLM_LOG_INFO;
    return p;
}

void llm_tokenizer_free(llm_tokenizer *t) {
    if (!t) return;
    tok_free_components(t);
    free(t->chat_template);
    for (int k = 0; k < 3; k++) llm_strbuf_free(&t->buf[k]);
    for (int k = 0; k < 2; k++) {
        llm_strbuf_free(&t->ntmp[k]);
        free(t->spans[k].v);
    }
    free(t->matches.v);
    free(t->out.v);
    tok_cache_free(&t->cache);
    tok_bpe_scratch_free(&t->bpe);
    llm_strbuf_free(&t->dec_text);
    free(t);
}

const char *llm_tokenizer_last_error(const llm_tokenizer *t) {
    return t ? t->err.msg : "";
}

int32_t llm_tokenizer_n_vocab(const llm_tokenizer *t) {
    return t ? t->n_vocab : 0;
}

int32_t llm_tokenizer_special_id(const llm_tokenizer *t, llm_special_token which) {
    if (!t || (unsigned)which > LLM_SPECIAL_PAD) return -1;
    return t->special_ids[which];
}

int32_t llm_tokenizer_token_id(const llm_tokenizer *t, const char *piece, size_t len) {
    if (!t || (!piece && len)) return -1;
    if (!piece) piece = "";
    int32_t idx = tok_map_get(&t->added_map, piece, len);
    if (idx >= 0) return t->added[idx].id;
    return tok_map_get(&t->vocab, piece, len);
}

int llm_tokenizer_is_special(const llm_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_vocab && t->special[id];
}

const char *llm_tokenizer_chat_template(const llm_tokenizer *t) {
    return t ? t->chat_template : NULL;
}

/* ---- tokenizer_config.json / special_tokens_map.json ---- */

typedef struct cfg {
    const char *name, *text;
    size_t len;
    llm_error *err;
} cfg;

static llm_status cfg_fail(const cfg *c, const llm_json *v, const char *key, const char *what) {
    int line = 0, col = 0;
    llm_json_line_col(c->text, c->len, llm_json_offset(v), &line, &col);
    return llm_fail(c->err, LLM_ERR_BAD_FORMAT, "%s:%d:%d: %s: %s", c->name, line, col, key, what);
}

/* A special token entry: "..." or {"content": "...", ...} (AddedToken form) or null. *s NULL when the
 * value is null, absent or an empty string (transformers treats those as unset). */
static llm_status cfg_token(const cfg *c, const llm_json *obj, const char *key, const char **s, size_t *len) {
    *s = NULL;
    *len = 0;
    const llm_json *v = llm_json_get(obj, key);
    if (!v || llm_json_is_null(v)) return LLM_OK;
    if (llm_json_is_object(v)) v = llm_json_get(v, "content");
    if (!llm_json_is_string(v))
        return cfg_fail(c, v ? v : llm_json_get(obj, key), key,
                        "expected a string, an object with \"content\", or null");
    *s = llm_json_string(v, len);
    if (*len == 0) *s = NULL;
    return LLM_OK;
}

static const char *const special_keys[4] = {"bos_token", "eos_token", "unk_token", "pad_token"};

/* Reads the special tokens: tokenizer_config.json wins where it sets one; special_tokens_map.json fills
 * the rest (transformers' from_pretrained order). */
static llm_status read_specials(llm_tokenizer *t, const cfg *c, const llm_json *root, int only_missing,
                                int have[4]) {
    for (int k = 0; k < 4; k++) {
        if (only_missing && have[k]) continue;
        const char *s;
        size_t len;
        llm_status st = cfg_token(c, root, special_keys[k], &s, &len);
        if (st != LLM_OK) return st;
        if (!s) continue;
        have[k] = 1;
        t->special_ids[k] = llm_tokenizer_token_id(t, s, len);
        if (t->special_ids[k] < 0)
            llm_log(&t->log, LLM_LOG_WARN, "%s: %s \"%.60s\" is not a token of the vocabulary", c->name,
                    special_keys[k], s);
    }
    return LLM_OK;
}

static llm_status parse_json_file(const cfg *c, llm_json_doc **doc) {
    char jerr[512];
    if (llm_json_parse(c->text, c->len, doc, jerr, sizeof jerr) != 0)
        return llm_fail(c->err, LLM_ERR_BAD_JSON, "%s: %s", c->name, jerr);
    if (!llm_json_is_object(llm_json_root(*doc))) {
        llm_status st = cfg_fail(c, llm_json_root(*doc), "(root)", "expected a JSON object");
        llm_json_doc_free(*doc);
        *doc = NULL;
        return st;
    }
    return LLM_OK;
}

static llm_status read_config(llm_tokenizer *t, const char *name, const char *text, size_t len, int have[4]) {
    cfg c = {name, text, len, &t->err};
    llm_json_doc *doc = NULL;
    llm_status st = parse_json_file(&c, &doc);
    if (st != LLM_OK) return st;
    const llm_json *root = llm_json_root(doc);
    st = read_specials(t, &c, root, 0, have);
    const llm_json *tmpl = llm_json_get(root, "chat_template");
    if (st == LLM_OK && tmpl && !llm_json_is_null(tmpl)) {
        const char *s = NULL;
        size_t slen = 0;
        if (llm_json_is_string(tmpl)) {
            s = llm_json_string(tmpl, &slen);
        } else if (llm_json_is_array(tmpl)) {
            /* named templates: transformers uses the one named "default" */
            for (size_t i = 0; i < llm_json_count(tmpl) && st == LLM_OK; i++) {
                const llm_json *e = llm_json_value_at(tmpl, i);
                const llm_json *nm = llm_json_get(e, "name"), *tx = llm_json_get(e, "template");
                if (!llm_json_is_string(nm) || !llm_json_is_string(tx)) {
                    char key[64];
                    snprintf(key, sizeof key, "chat_template[%zu]", i);
                    st = cfg_fail(&c, e, key, "expected {\"name\": \"...\", \"template\": \"...\"}");
                } else if (strcmp(llm_json_string(nm, NULL), "default") == 0) {
                    s = llm_json_string(tx, &slen);
                }
            }
        } else {
            st = cfg_fail(&c, tmpl, "chat_template", "expected a string or a list of named templates");
        }
        if (st == LLM_OK && s) {
            free(t->chat_template);
            t->chat_template = malloc(slen + 1);
            if (!t->chat_template)
                st = llm_fail(&t->err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
            else {
                memcpy(t->chat_template, s, slen);
                t->chat_template[slen] = '\0';
            }
        }
    }
    llm_json_doc_free(doc);
    return st;
}

static llm_status read_special_map(llm_tokenizer *t, const char *name, const char *text, size_t len,
                                   int have[4]) {
    cfg c = {name, text, len, &t->err};
    llm_json_doc *doc = NULL;
    llm_status st = parse_json_file(&c, &doc);
    if (st != LLM_OK) return st;
    st = read_specials(t, &c, llm_json_root(doc), 1, have);
    llm_json_doc_free(doc);
    return st;
}

/* ---- construction ---- */

static llm_tokenizer *new_tokenizer(const llm_tokenizer_params *params) {
    llm_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    llm_tokenizer_params p = params ? *params : llm_tokenizer_default_params();
    t->log.fn = p.log_fn;
    t->log.user_data = p.log_user_data;
    t->log.level = p.log_level;
    for (int k = 0; k < 4; k++) t->special_ids[k] = -1;
    t->unk_id = -1;
    t->eot_id = -1;
    return t;
}

static llm_status finish(llm_tokenizer *t, llm_status st, llm_tokenizer **out, char *err, size_t err_cap) {
    if (st != LLM_OK) {
        if (err && err_cap) snprintf(err, err_cap, "%s", t->err.msg[0] ? t->err.msg : llm_strerror(st));
        llm_tokenizer_free(t);
        *out = NULL;
        return st;
    }
    llm_error_clear(&t->err);
    if (err && err_cap) err[0] = '\0';
    *out = t;
    return LLM_OK;
}

llm_status llm_tokenizer_load_from_memory(const char *tokenizer_json, size_t tokenizer_json_len,
                                          const char *config_json, size_t config_json_len,
                                          const llm_tokenizer_params *params, llm_tokenizer **out, char *err,
                                          size_t err_cap) {
    if (err && err_cap) err[0] = '\0';
    if (!out || !tokenizer_json || (!config_json && config_json_len)) {
        if (out) *out = NULL;
        if (err && err_cap) snprintf(err, err_cap, "llm_tokenizer_load_from_memory: NULL argument");
        return LLM_ERR_INVALID_ARGUMENT;
    }
    *out = NULL;
    llm_tokenizer *t = new_tokenizer(params);
    if (!t) {
        if (err && err_cap) snprintf(err, err_cap, "out of memory");
        return LLM_ERR_OUT_OF_MEMORY;
    }
    llm_status st = tok_load_tokenizer_json(t, "tokenizer.json", tokenizer_json, tokenizer_json_len);
    int have[4] = {0};
    if (st == LLM_OK && config_json)
        st = read_config(t, "tokenizer_config.json", config_json, config_json_len, have);
    return finish(t, st, out, err, err_cap);
}

llm_status llm_tokenizer_load(const char *dir, const llm_tokenizer_params *params, llm_tokenizer **out,
                              char *err, size_t err_cap) {
    if (err && err_cap) err[0] = '\0';
    if (!out || !dir) {
        if (out) *out = NULL;
        if (err && err_cap) snprintf(err, err_cap, "llm_tokenizer_load: NULL argument");
        return LLM_ERR_INVALID_ARGUMENT;
    }
    *out = NULL;
    llm_tokenizer *t = new_tokenizer(params);
    if (!t) {
        if (err && err_cap) snprintf(err, err_cap, "out of memory");
        return LLM_ERR_OUT_OF_MEMORY;
    }
    char path[4096];
    char *text = NULL;
    size_t len = 0;
    llm_status st = LLM_OK;
    if (llm_path_join(path, sizeof path, dir, "tokenizer.json") != 0)
        st = llm_fail(&t->err, LLM_ERR_INVALID_ARGUMENT, "%s: path too long", dir);
    if (st == LLM_OK) st = llm_read_file(path, TOKENIZER_MAX_BYTES, &text, &len, &t->err);
    if (st == LLM_OK) st = tok_load_tokenizer_json(t, path, text, len);
    free(text);
    text = NULL;
    int have[4] = {0};
    /* optional files: absent is fine, unreadable or malformed is an error */
    static const char *const optional[3] = {"tokenizer_config.json", "special_tokens_map.json",
                                            "chat_template.jinja"};
    for (int f = 0; f < 3 && st == LLM_OK; f++) {
        if (llm_path_join(path, sizeof path, dir, optional[f]) != 0 || !llm_file_exists(path)) continue;
        st = llm_read_file(path, CONFIG_MAX_BYTES, &text, &len, &t->err);
        if (st != LLM_OK) break;
        if (f == 0)
            st = read_config(t, path, text, len, have);
        else if (f == 1)
            st = read_special_map(t, path, text, len, have);
        else {
            /* transformers reads chat_template.jinja over any template in the config */
            free(t->chat_template);
            t->chat_template = text;
            text = NULL;
        }
        free(text);
        text = NULL;
    }
    return finish(t, st, out, err, err_cap);
}
