/* llama-cli chat runs each turn on a runner session (the whole re-rendered conversation as the prompt,
 * the session's KV reused). Its replies must be those the old path gave: a fresh generation over the
 * rendered conversation. For three turns, each chat reply is compared with `llama-cli generate` on
 * the conversation so far as `llama-cli template` renders it (greedy, then seeded sampling), and turns
 * 2 and 3 must report reused tokens, reused + prefilled being the whole rendered prompt. */
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/strbuf.h"
#include "test_util.h"

#define BOS_TEXT "<|begin_of_text|>"
#define N_TURNS  3

static char tmpdir[512];

static const char *const questions[] = {
    "Who was Moses?",   "What did the LORD say?", "And then?",      "Where is the ark?",
    "Tell me of David", "Who built the temple?",  "What is faith?", "Why did they flee?",
};

/* s quoted for the shell: '...' with every ' written as '\''. */
static void shell_quote(llm_strbuf *sb, const char *s) {
    llm_strbuf_append_char(sb, '\'');
    for (; *s; s++) {
        if (*s == '\'')
            llm_strbuf_append_str(sb, "'\\''");
        else
            llm_strbuf_append_char(sb, *s);
    }
    llm_strbuf_append_char(sb, '\'');
}

/* The messages array of the conversation: users[0..n) with replies[0..n-1) between them. */
static char *messages_json(const char *const *users, char *const *replies, int n) {
    llm_strbuf sb = {0};
    llm_strbuf_append_char(&sb, '[');
    for (int i = 0; i < n; i++) {
        llm_strbuf_append_str(&sb,
                              i ? ",{\"role\":\"user\",\"content\":" : "{\"role\":\"user\",\"content\":");
        llm_json_escape(&sb, users[i], strlen(users[i]));
        llm_strbuf_append_char(&sb, '}');
        if (i + 1 < n) {
            llm_strbuf_append_str(&sb, ",{\"role\":\"assistant\",\"content\":");
            llm_json_escape(&sb, replies[i], strlen(replies[i]));
            llm_strbuf_append_char(&sb, '}');
        }
    }
    llm_strbuf_append_char(&sb, ']');
    return llm_strbuf_detach(&sb, NULL);
}

/* The value after "key " in s, or -1. */
static int number_after(const char *s, const char *key) {
    const char *p = s ? strstr(s, key) : NULL;
    return p ? atoi(p + strlen(key)) : -1;
}

/* The reference reply to the conversation of users[0..n) and replies[0..n-1): generate over its render
 * (without the template's BOS text: generate's tokenizer adds BOS itself). *n_prompt receives the
 * prompt tokens generate reports. NULL (after a failed check) on failure. */
static char *reference_reply(const char *const *users, char *const *replies, int n, const char *sampling,
                             int *n_prompt) {
    char path[1024], args[1536];
    char *json = messages_json(users, replies, n);
    snprintf(path, sizeof path, "%s/messages.json", tmpdir);
    tu_write_file(path, json, strlen(json));
    free(json);
    snprintf(args, sizeof args, "template --model '%s/models/kjv-tiny' --messages '%s'", LLAMAC_SOURCE_DIR,
             path);
    char *text = NULL, *err = NULL;
    int rc = tu_run_cli(tmpdir, args, NULL, &text, NULL, &err);
    TU_CHECK(rc == 0 && text && strncmp(text, BOS_TEXT, strlen(BOS_TEXT)) == 0, "template turn %d: %s", n,
             err ? err : "");
    free(err);
    if (rc != 0 || !text || strncmp(text, BOS_TEXT, strlen(BOS_TEXT)) != 0) {
        free(text);
        return NULL;
    }
    const char *prompt = text + strlen(BOS_TEXT);
    llm_strbuf cmd = {0};
    llm_strbuf_appendf(&cmd, "generate --threads 2 --max-tokens 12 %s --prompt ", sampling);
    shell_quote(&cmd, prompt);
    char *out = NULL;
    rc = tu_run_cli(tmpdir, cmd.data, NULL, &out, NULL, &err);
    llm_strbuf_free(&cmd);
    const size_t plen = strlen(prompt), olen = out ? strlen(out) : 0;
    const int ok = rc == 0 && olen > plen && memcmp(out, prompt, plen) == 0 && out[olen - 1] == '\n';
    TU_CHECK(ok, "generate turn %d exit %d: %s", n, rc, err ? err : "");
    char *reply = NULL;
    if (ok) {
        reply = malloc(olen - plen);
        memcpy(reply, out + plen, olen - plen - 1);
        reply[olen - plen - 1] = '\0';
    }
    *n_prompt = number_after(err, "prompt ");
    free(text);
    free(out);
    free(err);
    return reply;
}

/* Three chat turns with these sampling flags against the references, turn by turn. */
static void check_chat(const char *const *users, const char *sampling) {
    llm_strbuf input = {0};
    for (int i = 0; i < N_TURNS; i++) llm_strbuf_appendf(&input, "%s\n", users[i]);
    llm_strbuf_append_str(&input, "/exit\n");
    char args[256];
    snprintf(args, sizeof args, "chat --threads 2 --max-tokens 12 %s", sampling);
    char *out = NULL, *err = NULL;
    int rc = tu_run_cli(tmpdir, args, input.data, &out, NULL, &err);
    llm_strbuf_free(&input);
    TU_CHECK(rc == 0 && out && err, "chat %s exit %d: %s", sampling, rc, err ? err : "");

    char *replies[N_TURNS] = {0};
    const char *pos = out ? out : "";
    const char *line = err ? err : "";
    int t = 0;
    for (; t < N_TURNS; t++) {
        int n_prompt = -1;
        replies[t] = reference_reply(users, replies, t + 1, sampling, &n_prompt);
        if (!replies[t]) break;
        /* the chat's stdout is each reply followed by a newline */
        const size_t len = strlen(replies[t]);
        const int same = strncmp(pos, replies[t], len) == 0 && pos[len] == '\n';
        TU_CHECK(same, "%s, turn %d: chat replied\n%s\nexpected (generate)\n%s\n", sampling, t + 1, pos,
                 replies[t]);
        if (!same) break;
        pos += len + 1;
        line = strstr(line, "reused ");
        const int reused = number_after(line, "reused "), prefilled = number_after(line, "prefilled ");
        TU_CHECK(line && (t == 0 ? reused == 0 : reused > 0), "%s, turn %d: reused %d: %s", sampling, t + 1,
                 reused, err ? err : "");
        TU_CHECK(reused + prefilled == n_prompt && prefilled > 0,
                 "%s, turn %d: reused %d + prefilled %d, the rendered prompt has %d tokens", sampling, t + 1,
                 reused, prefilled, n_prompt);
        if (!line) break;
        line++;
    }
    TU_CHECK(t < N_TURNS || *pos == '\0', "%s: chat printed more than %d replies: %s", sampling, N_TURNS,
             pos);
    for (t = 0; t < N_TURNS; t++) free(replies[t]);
    free(out);
    free(err);
}

int main(void) {
    char *t = tu_make_temp_dir();
    if (!t) return 1;
    snprintf(tmpdir, sizeof tmpdir, "%s", t);
    free(t);
    tu_rng rng = {tu_fresh_seed("test_chat_session_cli") | 1};
    const size_t n_q = sizeof questions / sizeof questions[0];
    const char *users[N_TURNS];
    for (int i = 0; i < N_TURNS; i++) users[i] = questions[tu_rng_below(&rng, (uint32_t)n_q)];
    char sampling[64];
    check_chat(users, "--temperature 0");
    snprintf(sampling, sizeof sampling, "--seed %u", tu_rng_below(&rng, 1000000));
    check_chat(users, sampling);
    tu_remove_dir(tmpdir);
    return tu_finish("test_chat_session_cli");
}
