/* llama-cli: the command-line front end of libllamac. One file per subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli_common.h"

int cli_inspect(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_generate(int argc, char **argv);
int cli_chat(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_template(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_convert(int argc, char **argv);

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"inspect", cli_inspect,
     "show a model's architecture, dimensions, parameters, dtypes and memory footprint"},
    {"generate", cli_generate,
     "stream a continuation of a prompt (the bundled demo model when --model is omitted)"},
    {"chat", cli_chat, "interactive multi-turn chat through the model's chat template"},
    {"eval", cli_eval,
     "run a token sequence through the model; print per-position argmax, optionally dump logits"},
    {"tokenize", cli_tokenize, "encode text with the model's tokenizer.json; print the token ids"},
    {"template", cli_template, "render a model's chat template over a conversation (as transformers does)"},
#ifndef LLAMAC_NO_SERVER
    {"serve", cli_serve, "OpenAI-compatible HTTP server: chat, completions, embeddings, streaming, tools, metrics"},
#endif
    {"convert", cli_convert,
     "write a model (directory, GGUF, or --random-weights) as a llama.cpp GGUF file, optionally quantized"},
    {"bench", cli_bench,
     "prefill and decode tok/s vs the memory roofline and compute peak (--random-weights: no files)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: llama-cli <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'llama-cli <command> --help' shows a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("llama-cli (llamac) %d.%d.%d\n", LLAMAC_VERSION_MAJOR, LLAMAC_VERSION_MINOR,
               LLAMAC_VERSION_PATCH);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    return cli_error("unknown command '%s' (try 'llama-cli --help')", argv[1]);
}
