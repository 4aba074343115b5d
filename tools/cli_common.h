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
} cli_model_opts;

/* Tries to consume argv[*i] (and its value) as a common flag. Returns 1 if consumed, 0 if not ours,
 * -1 after printing an error for a bad value. */
int cli_parse_model_flag(int argc, char **argv, int *i, cli_model_opts *o);

/* Strict integer parsing: the whole string, in range. Returns 0 on success. */
int cli_parse_int(const char *s, long long lo, long long hi, long long *out);

/* Parses "1,2,3" into a malloc'd array. Returns 0 on success, else prints an error and returns -1. */
int cli_parse_token_list(const char *s, int32_t **out, size_t *n);

/* Loads the model named by o (prints the error and returns NULL on failure). */
llm_model *cli_load_model(const cli_model_opts *o);

#endif
