/* llama-cli template: renders a model's chat template over a conversation, as transformers'
 * apply_chat_template(..., tokenize=False) does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_common.h"
#include "core/json.h"
#include "core/strbuf.h"

static void help(void) {
    printf(
        "usage: llama-cli template (--model DIR | --template FILE) --messages FILE.json [--tools FILE.json]\n"
        "           [--no-generation-prompt] [--var KEY=VALUE ...] [--now UNIX_SECONDS]\n"
        "Renders the chat template over the messages and prints the text exactly (no newline added).\n"
        "  --model DIR       the template is DIR/chat_template.jinja when present, else the chat_template\n"
        "                    of DIR/tokenizer_config.json (a list of named templates gives 'default', or\n"
        "                    'tool_use' when tools are passed); bos_token/eos_token/unk_token/pad_token\n"
        "                    come from tokenizer_config.json\n"
        "  --template FILE   use this template instead (with --model, the special tokens still come from "
        "DIR)\n"
        "  --messages FILE   a JSON array of messages in the OpenAI shape ({\"role\": ..., \"content\": "
        "...});\n"
        "                    an object with \"messages\" (and optionally \"tools\") works too\n"
        "  --tools FILE      a JSON array of tool definitions (passed as 'tools'; null when absent)\n"
        "  --no-generation-prompt   add_generation_prompt=false (default true)\n"
        "  --var KEY=VALUE   an extra template variable; VALUE is parsed as JSON when it is JSON\n"
        "                    (true, 3, {\"a\":1}), else taken as a string\n"
        "  --now SECONDS     the time strftime_now() formats (UTC); default: the current time\n");
}

static char *read_text(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

typedef struct json_file {
    char *text;
    size_t len;
    llm_json_doc *doc;
} json_file;

static int load_json(const char *path, const char *what, json_file *jf) {
    jf->text = read_text(path, &jf->len);
    if (!jf->text) return cli_error("%s: cannot read '%s'", what, path);
    char err[512];
    if (llm_json_parse(jf->text, jf->len, &jf->doc, err, sizeof err) != 0)
        return cli_error("%s: '%s': %s", what, path, err);
    return 0;
}

static void free_json(json_file *jf) {
    llm_json_doc_free(jf->doc);
    free(jf->text);
}

/* The raw source text of a parsed value (values are contiguous in the document). */
static void append_raw(llm_strbuf *sb, const json_file *jf, const llm_json *v) {
    /* find the value's extent by re-scanning: strings and containers are balanced */
    size_t start = llm_json_offset(v), i = start, depth = 0;
    int in_str = 0;
    const char *s = jf->text;
    for (; i < jf->len; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"') {
                in_str = 0;
                if (depth == 0) {
                    i++;
                    break;
                }
            }
            continue;
        }
        if (ch == '"')
            in_str = 1;
        else if (ch == '[' || ch == '{')
            depth++;
        else if (ch == ']' || ch == '}') {
            if (depth == 0) break;
            if (--depth == 0) {
                i++;
                break;
            }
        } else if (depth == 0 && (ch == ',' || ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r')) {
            break;
        }
    }
    llm_strbuf_append(sb, s + start, i - start);
}

/* bos_token etc.: a string or an AddedToken object {"content": ...} */
static const char *special_token(const llm_json *cfg, const char *key, size_t *len) {
    const llm_json *v = llm_json_get(cfg, key);
    if (llm_json_is_object(v)) v = llm_json_get(v, "content");
    return llm_json_is_string(v) ? llm_json_string(v, len) : NULL;
}

int cli_template(int argc, char **argv) {
    const char *model_dir = NULL, *template_path = NULL, *messages_path = NULL, *tools_path = NULL;
    int add_generation_prompt = 1;
    long long now = 0;
    const char **vars = calloc((size_t)argc + 1, sizeof *vars);
    size_t n_vars = 0;
    if (!vars) return cli_error("out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help();
            free(vars);
            return 0;
        } else if ((strcmp(a, "--model") == 0 || strcmp(a, "-m") == 0) && has) {
            model_dir = argv[++i];
        } else if (strcmp(a, "--template") == 0 && has) {
            template_path = argv[++i];
        } else if (strcmp(a, "--messages") == 0 && has) {
            messages_path = argv[++i];
        } else if (strcmp(a, "--tools") == 0 && has) {
            tools_path = argv[++i];
        } else if (strcmp(a, "--no-generation-prompt") == 0) {
            add_generation_prompt = 0;
        } else if (strcmp(a, "--var") == 0 && has) {
            const char *kv = argv[++i], *eq = strchr(kv, '=');
            if (!eq || eq == kv) {
                free(vars);
                return cli_error("--var needs KEY=VALUE, got '%s'", kv);
            }
            vars[n_vars++] = kv;
        } else if (strcmp(a, "--now") == 0 && has) {
            if (cli_parse_int(argv[++i], 1, 253402300799LL, &now) != 0) {
                free(vars);
                return cli_error("--now needs seconds since the epoch, got '%s'", argv[i]);
            }
        } else {
            free(vars);
            return cli_error("template: unknown option or missing value: '%s' (try --help)", a);
        }
    }
    if (!model_dir && !template_path) {
        free(vars);
        return cli_error("template: --model DIR or --template FILE is required");
    }
    if (!messages_path) {
        free(vars);
        return cli_error("template: --messages FILE.json is required");
    }
    int rc = 1;
    json_file cfg = {0}, msgs = {0}, tools = {0};
    char *tmpl_text = NULL, *out = NULL;
    size_t tmpl_len = 0;
    llm_strbuf vj = {0};
    llm_chat_template *tmpl = NULL;
    char path[4096];

    if (model_dir) {
        snprintf(path, sizeof path, "%s/tokenizer_config.json", model_dir);
        struct stat st;
        if (stat(path, &st) == 0) {
            if (load_json(path, "tokenizer_config.json", &cfg)) goto done;
        } else if (!template_path) {
            snprintf(path, sizeof path, "%s/chat_template.jinja", model_dir);
            if (stat(path, &st) != 0) {
                cli_error("template: '%s' has neither tokenizer_config.json nor chat_template.jinja",
                          model_dir);
                goto done;
            }
        }
    }
    if (load_json(messages_path, "--messages", &msgs)) goto done;
    const llm_json *mroot = llm_json_root(msgs.doc), *messages = mroot, *inline_tools = NULL;
    if (llm_json_is_object(mroot)) {
        messages = llm_json_get(mroot, "messages");
        inline_tools = llm_json_get(mroot, "tools");
    }
    if (!llm_json_is_array(messages)) {
        cli_error("--messages: '%s' must hold a JSON array of messages (or an object with \"messages\")",
                  messages_path);
        goto done;
    }
    const llm_json *tools_v = NULL;
    if (tools_path) {
        if (load_json(tools_path, "--tools", &tools)) goto done;
        tools_v = llm_json_root(tools.doc);
        if (!llm_json_is_array(tools_v)) {
            cli_error("--tools: '%s' must hold a JSON array", tools_path);
            goto done;
        }
    }

    /* the template text */
    if (template_path) {
        tmpl_text = read_text(template_path, &tmpl_len);
        if (!tmpl_text) {
            cli_error("--template: cannot read '%s'", template_path);
            goto done;
        }
    } else {
        snprintf(path, sizeof path, "%s/chat_template.jinja", model_dir);
        tmpl_text = read_text(path, &tmpl_len);
        if (!tmpl_text) {
            const llm_json *ct = llm_json_get(llm_json_root(cfg.doc), "chat_template");
            if (llm_json_is_array(ct)) { /* named templates */
                const llm_json *pick = NULL;
                const char *want = (tools_v || inline_tools) ? "tool_use" : "default";
                for (int pass = 0; pass < 2 && !pick; pass++) {
                    for (size_t k = 0; k < llm_json_count(ct); k++) {
                        const llm_json *e = llm_json_value_at(ct, k);
                        size_t nl;
                        const char *name = llm_json_string(llm_json_get(e, "name"), &nl);
                        if (name && strcmp(name, want) == 0) pick = llm_json_get(e, "template");
                    }
                    want = "default";
                }
                ct = pick;
            }
            if (!llm_json_is_string(ct)) {
                cli_error("template: %s/tokenizer_config.json has no chat_template", model_dir);
                goto done;
            }
            const char *s = llm_json_string(ct, &tmpl_len);
            tmpl_text = malloc(tmpl_len + 1);
            if (!tmpl_text) {
                cli_error("out of memory");
                goto done;
            }
            memcpy(tmpl_text, s, tmpl_len);
            tmpl_text[tmpl_len] = 0;
        }
    }
    char err[1024];
    llm_status st = llm_chat_template_parse(tmpl_text, tmpl_len, &tmpl, err, sizeof err);
    if (st != LLM_OK) {
        cli_error("chat template: %s (%s)", err, llm_status_name(st));
        goto done;
    }

    /* the variables, in the shape apply_chat_template passes them */
    llm_strbuf_append_str(&vj, "{\"messages\": ");
    append_raw(&vj, &msgs, messages);
    llm_strbuf_append_str(&vj, ", \"tools\": ");
    if (tools_v)
        append_raw(&vj, &tools, tools_v);
    else if (inline_tools)
        append_raw(&vj, &msgs, inline_tools);
    else
        llm_strbuf_append_str(&vj, "null");
    llm_strbuf_append_str(&vj, ", \"documents\": null, \"add_generation_prompt\": ");
    llm_strbuf_append_str(&vj, add_generation_prompt ? "true" : "false");
    static const char *const specials[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    for (size_t k = 0; cfg.doc && k < sizeof specials / sizeof specials[0]; k++) {
        size_t len;
        const char *tok = special_token(llm_json_root(cfg.doc), specials[k], &len);
        if (!tok) continue;
        llm_strbuf_append_str(&vj, ", \"");
        llm_strbuf_append_str(&vj, specials[k]);
        llm_strbuf_append_str(&vj, "\": ");
        llm_json_escape(&vj, tok, len);
    }
    for (size_t k = 0; k < n_vars; k++) {
        const char *eq = strchr(vars[k], '=');
        llm_strbuf_append_str(&vj, ", ");
        llm_json_escape(&vj, vars[k], (size_t)(eq - vars[k]));
        llm_strbuf_append_str(&vj, ": ");
        llm_json_doc *probe = NULL;
        if (llm_json_parse(eq + 1, strlen(eq + 1), &probe, NULL, 0) == 0)
            llm_strbuf_append_str(&vj, eq + 1);
        else
            llm_json_escape(&vj, eq + 1, strlen(eq + 1));
        llm_json_doc_free(probe);
    }
    llm_strbuf_append_str(&vj, "}");
    if (vj.oom) {
        cli_error("out of memory");
        goto done;
    }

    llm_chat_template_render_params rp = llm_chat_template_default_render_params();
    rp.now_unix = now;
    size_t len = 0;
    st = llm_chat_template_render(tmpl, vj.data, vj.len, &rp, NULL, 0, &len, err, sizeof err);
    if (st == LLM_ERR_BUFFER_TOO_SMALL) {
        out = malloc(len + 1);
        if (!out) {
            cli_error("out of memory");
            goto done;
        }
        st = llm_chat_template_render(tmpl, vj.data, vj.len, &rp, out, len + 1, &len, err, sizeof err);
    }
    if (st != LLM_OK) {
        cli_error("chat template: %s (%s)", err, llm_status_name(st));
        goto done;
    }
    if (fwrite(out, 1, len, stdout) != len || fflush(stdout) != 0) {
        cli_error("cannot write the render to stdout");
        goto done;
    }
    rc = 0;
done:
    llm_chat_template_free(tmpl);
    llm_strbuf_free(&vj);
    free(out);
    free(tmpl_text);
    free_json(&cfg);
    free_json(&msgs);
    free_json(&tools);
    free(vars);
    return rc;
}
