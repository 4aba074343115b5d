/* Malformed and unsupported tokenizer files: each load must fail with the right status and a message
 * that names the file, the place (line:column and JSON path) and what is wrong. */
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#define MODEL_OK "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]}"

typedef struct bad_case {
    const char *what;
    const char *json;   /* tokenizer.json */
    const char *config; /* tokenizer_config.json or NULL */
    llm_status status;
    const char *frag1, *frag2, *frag3; /* must all appear in the message (NULL: none) */
} bad_case;

static const bad_case cases[] = {
    {"not JSON", "{\"model\": ", NULL, LLM_ERR_BAD_JSON, "tokenizer.json", "line 1", NULL},
    {"root not an object", "[1, 2]", NULL, LLM_ERR_BAD_FORMAT, "tokenizer.json:1:1", "expected a JSON object",
     NULL},
    {"no model", "{\"added_tokens\": []}", NULL, LLM_ERR_BAD_FORMAT, "tokenizer.json:1:1",
     "\"model\" is missing", NULL},
    {"unigram model", "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", NULL, LLM_ERR_UNSUPPORTED,
     "model.type", "\"Unigram\"", "tokenizer.json:1:20"},
    {"merge of an unknown token",
     "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2},\n \"merges\": [\"a b\",\n  "
     "\"a z\"]}}",
     NULL, LLM_ERR_BAD_FORMAT, "model.merges[1]", "\"z\" is not in model.vocab", "tokenizer.json:3:3"},
    {"merge result not in the vocabulary",
     "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [[\"a\", \"b\"]]}}", NULL,
     LLM_ERR_BAD_FORMAT, "model.merges[0]", "merged token \"ab\"", NULL},
    {"merge string without one space",
     "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a  b\"]}}",
     NULL, LLM_ERR_BAD_FORMAT, "model.merges[0]", "two tokens separated by one space", NULL},
    {"merge of the wrong shape",
     "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [[\"a\"]]}}",
     NULL, LLM_ERR_BAD_FORMAT, "model.merges[0]", "[\"left\", \"right\"]", NULL},
    {"duplicate ids", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}",
     NULL, LLM_ERR_BAD_FORMAT, "model.vocab[\"b\"]", "duplicate id 0", "(also \"a\")"},
    {"duplicate tokens", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"a\": 1}, \"merges\": []}}",
     NULL, LLM_ERR_BAD_FORMAT, "model.vocab[\"a\"]", "duplicate token", NULL},
    {"id beyond the vocabulary",
     "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 7}, \"merges\": []}}", NULL,
     LLM_ERR_BAD_FORMAT, "model.vocab[\"b\"]", "id 7 is beyond the vocabulary", NULL},
    {"id not an integer", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"0\"}, \"merges\": []}}", NULL,
     LLM_ERR_BAD_FORMAT, "model.vocab[\"a\"]", "non-negative integer id", NULL},
    {"no merges", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", NULL, LLM_ERR_BAD_FORMAT,
     "\"merges\" is missing", NULL, NULL},
    {"dropout", "{\"model\": {\"type\": \"BPE\", \"dropout\": 0.1, \"vocab\": {\"a\": 0}, \"merges\": []}}",
     NULL, LLM_ERR_UNSUPPORTED, "model.dropout", "dropout is not supported", NULL},
    {"unknown normalizer",
     "{\"normalizer\": {\"type\": \"Precompiled\", \"precompiled_charsmap\": \"\"}, \"model\": " MODEL_OK "}",
     NULL, LLM_ERR_UNSUPPORTED, "normalizer", "normalizer type \"Precompiled\" is not supported",
     "tokenizer.json:1:25"},
    {"unknown pre-tokenizer in a sequence",
     "{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Digits\"}, {\"type\": "
     "\"UnicodeScripts\"}]},"
     " \"model\": " MODEL_OK "}",
     NULL, LLM_ERR_UNSUPPORTED, "pre_tokenizer.pretokenizers[1]", "\"UnicodeScripts\"", NULL},
    {"unknown decoder", "{\"decoder\": {\"type\": \"CTC\"}, \"model\": " MODEL_OK "}", NULL,
     LLM_ERR_UNSUPPORTED, "decoder", "decoder type \"CTC\"", NULL},
    {"unknown post-processor", "{\"post_processor\": {\"type\": \"Magic\"}, \"model\": " MODEL_OK "}", NULL,
     LLM_ERR_UNSUPPORTED, "post_processor", "\"Magic\"", NULL},
    {"component without type", "{\"normalizer\": {\"prepend\": \"x\"}, \"model\": " MODEL_OK "}", NULL,
     LLM_ERR_BAD_FORMAT, "normalizer.type", "required string is missing", NULL},
    {"bad regex",
     "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"a(b\"}, \"behavior\": "
     "\"Isolated\", \"invert\": false},"
     " \"model\": " MODEL_OK "}",
     NULL, LLM_ERR_BAD_FORMAT, "pre_tokenizer.pattern.Regex", "bad regex \"a(b\"", "at offset 3"},
    {"bad split behavior",
     "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": "
     "\"Sideways\", \"invert\": false},"
     " \"model\": " MODEL_OK "}",
     NULL, LLM_ERR_BAD_FORMAT, "pre_tokenizer.behavior", "unknown split behavior \"Sideways\"", NULL},
    {"pattern of the wrong shape",
     "{\"normalizer\": {\"type\": \"Replace\", \"pattern\": \" \", \"content\": \"x\"}, \"model\": " MODEL_OK
     "}",
     NULL, LLM_ERR_BAD_FORMAT, "normalizer.pattern", "{\"String\": \"...\"}", NULL},
    {"metaspace replacement of two characters",
     "{\"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"ab\"}, \"model\": " MODEL_OK "}", NULL,
     LLM_ERR_BAD_FORMAT, "pre_tokenizer.replacement", "single character", NULL},
    {"bad prepend_scheme",
     "{\"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"_\", \"prepend_scheme\": "
     "\"sometimes\"}, \"model\": " MODEL_OK "}",
     NULL, LLM_ERR_BAD_FORMAT, "pre_tokenizer.prepend_scheme", "\"sometimes\"", NULL},
    {"template with an undeclared special token",
     "{\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": "
     "\"<s>\", \"type_id\": 0}},"
     " {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"special_tokens\": {}}, \"model\": " MODEL_OK "}",
     NULL, LLM_ERR_BAD_FORMAT, "post_processor.single[0]", "\"<s>\" is not in special_tokens", NULL},
    {"template id beyond the vocabulary",
     "{\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": "
     "\"<s>\", \"type_id\": 0}},"
     " {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", "
     "\"ids\": [99],"
     " \"tokens\": [\"<s>\"]}}}, \"model\": " MODEL_OK "}",
     NULL, LLM_ERR_BAD_FORMAT, "post_processor.special_tokens.<s>.ids[0]",
     "token id must be an integer from 0 to 2", NULL},
    {"added token without content",
     "{\"added_tokens\": [{\"id\": 3, \"special\": true}], \"model\": " MODEL_OK "}", NULL,
     LLM_ERR_BAD_FORMAT, "added_tokens[0].content", "required string is missing", NULL},
    {"added token flag not a bool",
     "{\"added_tokens\": [{\"id\": 3, \"content\": \"<x>\", \"special\": 1}], \"model\": " MODEL_OK "}", NULL,
     LLM_ERR_BAD_FORMAT, "added_tokens[0].special", "expected true or false", NULL},
    {"config: bos_token of the wrong type", "{\"model\": " MODEL_OK "}", "{\"bos_token\": 5}",
     LLM_ERR_BAD_FORMAT, "tokenizer_config.json:1:15", "bos_token", "expected a string"},
    {"config: not JSON", "{\"model\": " MODEL_OK "}", "{\"bos_token\": }", LLM_ERR_BAD_JSON,
     "tokenizer_config.json", "line 1", NULL},
    {"config: bad chat_template", "{\"model\": " MODEL_OK "}", "{\"chat_template\": 3}", LLM_ERR_BAD_FORMAT,
     "chat_template", "expected a string or a list", NULL},
};

int main(void) {
    int n_ok = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        char err[1024];
        memset(err, 'x', sizeof err);
        llm_tokenizer *t = (llm_tokenizer *)&n_ok; /* must be reset to NULL */
        llm_status st =
            llm_tokenizer_load_from_memory(c->json, strlen(c->json), c->config,
                                           c->config ? strlen(c->config) : 0, NULL, &t, err, sizeof err);
        int ok = st == c->status && t == NULL && memchr(err, '\0', sizeof err) != NULL;
        ok = ok && (!c->frag1 || strstr(err, c->frag1)) && (!c->frag2 || strstr(err, c->frag2)) &&
             (!c->frag3 || strstr(err, c->frag3));
        TU_CHECK(ok, "%s: got %s \"%s\"; expected %s with \"%s\" \"%s\" \"%s\"", c->what, llm_status_name(st),
                 err, llm_status_name(c->status), c->frag1 ? c->frag1 : "", c->frag2 ? c->frag2 : "",
                 c->frag3 ? c->frag3 : "");
        n_ok += ok;
        if (st == LLM_OK) llm_tokenizer_free(t);
    }
    printf("test_tokenizer_errors: %d/%zu malformed files rejected as expected\n", n_ok,
           sizeof cases / sizeof cases[0]);

    /* a short error buffer still gets a NUL-terminated (truncated) message */
    char small[16];
    llm_tokenizer *t = NULL;
    llm_status st = llm_tokenizer_load_from_memory("[]", 2, NULL, 0, NULL, &t, small, sizeof small);
    TU_CHECK(st == LLM_ERR_BAD_FORMAT && strlen(small) == sizeof small - 1, "truncated message: %s", small);

    /* files: a missing directory, and a path in the message */
    char err[1024];
    st = llm_tokenizer_load("/nonexistent/dir", NULL, &t, err, sizeof err);
    TU_CHECK(st == LLM_ERR_NOT_FOUND && strstr(err, "/nonexistent/dir/tokenizer.json"), "missing dir: %s %s",
             llm_status_name(st), err);
    char *dir = tu_make_temp_dir();
    char p[1024];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    const char *bad = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a a\"]}}";
    tu_write_file(p, bad, strlen(bad));
    st = llm_tokenizer_load(dir, NULL, &t, err, sizeof err);
    TU_CHECK(st == LLM_ERR_BAD_FORMAT && strstr(err, p) && strstr(err, "model.merges[0]"),
             "file path in message: %s", err);
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    tu_write_file(p, "{\"model\": " MODEL_OK "}", strlen("{\"model\": " MODEL_OK "}"));
    snprintf(p, sizeof p, "%s/special_tokens_map.json", dir);
    tu_write_file(p, "{\"eos_token\": [1]}", 18);
    st = llm_tokenizer_load(dir, NULL, &t, err, sizeof err);
    TU_CHECK(st == LLM_ERR_BAD_FORMAT && strstr(err, "special_tokens_map.json:1:15") &&
                 strstr(err, "eos_token"),
             "special_tokens_map.json: %s", err);
    tu_remove_dir(dir);
    free(dir);

    /* NULL arguments */
    st = llm_tokenizer_load_from_memory(NULL, 0, NULL, 0, NULL, &t, err, sizeof err);
    TU_CHECK(st == LLM_ERR_INVALID_ARGUMENT && t == NULL, "NULL json");
    st = llm_tokenizer_load(NULL, NULL, &t, err, sizeof err);
    TU_CHECK(st == LLM_ERR_INVALID_ARGUMENT, "NULL dir");
    return tu_finish("test_tokenizer_errors");
}
