/* Helpers shared by llama-cli subcommands: errors, logging, flag parsing, model loading. */
#ifndef LLAMA_CLI_COMMON_H
#define LLAMA_CLI_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "llamac.h"

/* Prints "llama-cli: error: ..." as one line on stderr and returns the exit status 1. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Common flags every model-using subcommand accepts. */
typedef struct cli_model_opts {
    const char *model_dir;
    int n_threads;
    llm_backend_kind backend;
    int verbose;
    llm_quantize quantize; /* --quantize q8_0|q4_k: quantize the weight matrices at load */
    llm_cpu_kernels cpu_kernels; /* --cpu-kernels auto|ref|portable|avx2|avx512 */
} cli_model_opts;

/* Tries to consume argv[*i] (and its value) as a common flag. Returns 1 if consumed, 0 if not ours,
 * -1 after printing an error for a bad value. */
int cli_parse_model_flag(int argc, char **argv, int *i, cli_model_opts *o);

/* Strict integer parsing: the whole string, in range. Returns 0 on success. */
int cli_parse_int(const char *s, long long lo, long long hi, long long *out);

/* Parses "1,2,3" into a malloc'd array. Returns 0 on success, else prints an error and returns -1. */
int cli_parse_token_list(const char *s, int32_t **out, size_t *n);

/* Flags shared by generate and chat: --max-tokens --temperature --top-k --top-p --min-p
 * --repeat-penalty --presence-penalty --frequency-penalty --seed --stop (repeatable) --ignore-eos.
 * Returns 1 if consumed, 0 if not ours, -1 after printing an error. stops must hold 16 entries. */
int cli_parse_generate_flag(int argc, char **argv, int *i, llm_generate_params *gp, const char **stops,
                            int *seed_given);
/* The help text of those flags. */
extern const char cli_generate_flags_help[];

/* The CLI's sampling defaults (llama.cpp-like): temperature 0.8, top-k 40, top-p 0.95, min-p 0.05,
 * repetition penalty 1.1. */
void cli_default_sampling(llm_sampling_params *sp);

/* A JSON array of OpenAI messages: an optional system message and one user message (malloc'd). */
char *cli_messages_json(const char *system, const char *user);

/* Renders messages (a JSON array) through the model's chat template with the generation prompt into a
 * malloc'd *text. Returns 0, or prints the error and returns -1. */
int cli_render_chat(llm_model *model, const char *messages_json, size_t len, char **text, size_t *text_len);

/* Tokenizes text with the model's tokenizer into a malloc'd *ids (at least one id). Returns 0, or
 * prints the error (naming `what`) and returns -1. */
int cli_tokenize_text(llm_model *model, const char *what, const char *text, size_t len, unsigned flags,
                      int32_t **ids, size_t *n);

/* As cli_tokenize_text, with a given tokenizer (tok NULL: the model directory has none). */
int cli_tokenize_with(llm_tokenizer *tok, const char *what, const char *text, size_t len, unsigned flags,
                      int32_t **ids, size_t *n);

/* Starts a runner over engine with SIGINT blocked on its thread, so that Ctrl-C is always delivered
 * to the calling (main) thread. Returns 0, or prints the error and returns 1. */
int cli_start_runner(llm_engine *engine, const llm_runner_params *params, llm_runner **out);

/* Monotonic milliseconds. */
double cli_now_ms(void);

/* The bundled demo model: $LLAMAC_DEMO_MODEL, else models/kjv-tiny of the source tree. */
const char *cli_default_model_dir(void);

/* Model parameters from o: backend, threads, warnings (debug with --verbose) logged to stderr. */
llm_model_params cli_model_params(const cli_model_opts *o);

/* Loads the model named by o, with a progress bar when stderr is a terminal (prints the error and
 * returns NULL on failure). */
llm_model *cli_load_model(const cli_model_opts *o);

#endif
