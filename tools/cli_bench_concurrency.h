/* The --concurrency mode of llama-cli bench. */
#ifndef LLAMA_CLI_BENCH_CONCURRENCY_H
#define LLAMA_CLI_BENCH_CONCURRENCY_H

#include "cli_common.h"

/* Parses "1,8,32,64" (each 1..1024) into levels; returns the count, or -1. */
int cli_parse_levels(const char *s, int *levels, int cap);

/* Runs the levels; prints a table, or one JSON object per level with --json. Returns the exit status. */
int cli_bench_concurrency(llm_model *model, const llm_model_info *mi, const char *name, const int *levels,
                          int n_levels, int prompt, int gen, uint64_t seed, int json);

#endif
