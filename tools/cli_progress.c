#include "cli_progress.h"

#include <stdio.h>
#include <unistd.h>

#define BAR_WIDTH 30

void cli_progress_set(cli_progress *p, float fraction) {
    if (!p->tty) return;
    int pct = (int)(fraction * 100.0f + 0.5f);
    if (pct < 0) pct = 0;
    if (pct > 100) pct = 100;
    if (pct == p->last_pct) return; /* the callback may come thousands of times */
    p->last_pct = pct;
    char bar[BAR_WIDTH + 1];
    const int filled = pct * BAR_WIDTH / 100;
    for (int i = 0; i < BAR_WIDTH; i++) bar[i] = i < filled ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    fprintf(stderr, "\r%s [%s] %3d%%", p->label, bar, pct);
    fflush(stderr);
    p->drawn = 1;
}

static void draw(float fraction, void *user) {
    cli_progress_set(user, fraction);
}

void cli_progress_begin(cli_progress *p, const char *label) {
    p->label = label;
    p->tty = isatty(STDERR_FILENO);
    p->drawn = 0;
    p->last_pct = -1;
}

void cli_progress_attach(cli_progress *p, const char *label, llm_model_params *mp) {
    cli_progress_begin(p, label);
    if (!p->tty) return;
    mp->progress_fn = draw;
    mp->progress_user_data = p;
}

void cli_progress_end(cli_progress *p) {
    if (!p->drawn) return;
    fputs("\r\033[K", stderr); /* back to the start of the line, and clear it */
    fflush(stderr);
    p->drawn = 0;
}
