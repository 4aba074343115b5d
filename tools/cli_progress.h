/* A one-line progress bar on stderr for model loading, drawn only when stderr is a terminal. */
#ifndef LLAMA_CLI_PROGRESS_H
#define LLAMA_CLI_PROGRESS_H

#include "llamac.h"

typedef struct cli_progress {
    const char *label;
    int tty;      /* stderr is a terminal: draw */
    int drawn;    /* something is on the line */
    int last_pct; /* last percentage drawn, -1 before the first */
} cli_progress;

/* Prepares p for a bar labelled label (borrowed; must outlive p). */
void cli_progress_begin(cli_progress *p, const char *label);

/* Prepares p and, when stderr is a terminal, points mp's progress callback at it (p must then outlive
 * the load). Otherwise mp is left as it is and nothing is ever drawn. */
void cli_progress_attach(cli_progress *p, const char *label, llm_model_params *mp);

/* Draws fraction (0..1) done, if stderr is a terminal and the percentage changed. */
void cli_progress_set(cli_progress *p, float fraction);

/* Erases the bar, if one was drawn, so the next output starts on a clean line. */
void cli_progress_end(cli_progress *p);

#endif
