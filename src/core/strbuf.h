/*
 * strbuf.h - a growable, NUL-terminated byte buffer for building text.
 *
 * Used by writers (JSON output, messages) that append many small pieces.
 * A zero-initialised llm_strbuf is a valid empty buffer:
 *
 *     llm_strbuf sb = LLM_STRBUF_INIT;
 *     llm_strbuf_append_str(&sb, "hello ");
 *     llm_strbuf_appendf(&sb, "%d", 42);
 *     if (sb.oom) { ...handle failure... }
 *     use(sb.data, sb.len);
 *     llm_strbuf_free(&sb);
 *
 * Failure is sticky: the first allocation (or formatting) failure sets
 * `oom`, and every later append becomes a no-op returning -1. That lets a
 * writer append freely and check once at the end, while never leaving a
 * silently truncated buffer that looks complete: if oom is 0, the content
 * is exactly what was appended.
 */
#ifndef LLAMAC_CORE_STRBUF_H
#define LLAMAC_CORE_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

#if defined(__GNUC__) || defined(__clang__)
#define LLM_STRBUF_PRINTF_LIKE(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define LLM_STRBUF_PRINTF_LIKE(fmt_index, first_arg)
#endif

typedef struct {
    char *data; /* NULL until the first successful append; then always NUL-terminated */
    size_t len; /* bytes of content, excluding the terminating NUL */
    size_t cap; /* bytes allocated for data */
    int oom;    /* sticky: set once an allocation or format failed; appends then do nothing */
} llm_strbuf;

#define LLM_STRBUF_INIT                                                                                      \
    { NULL, 0, 0, 0 }

/* Ensures room for `extra` more bytes plus the NUL. Returns 0, or -1 (and sets oom). */
int llm_strbuf_reserve(llm_strbuf *sb, size_t extra);

/* Append functions return 0 on success, -1 if the buffer is (now or already) in the oom state. */
int llm_strbuf_append(llm_strbuf *sb, const void *bytes, size_t len);
int llm_strbuf_append_str(llm_strbuf *sb, const char *s); /* s must be NUL-terminated */
int llm_strbuf_append_char(llm_strbuf *sb, char c);
int llm_strbuf_appendf(llm_strbuf *sb, const char *fmt, ...) LLM_STRBUF_PRINTF_LIKE(2, 3);
int llm_strbuf_vappendf(llm_strbuf *sb, const char *fmt, va_list args) LLM_STRBUF_PRINTF_LIKE(2, 0);

/* Content as a C string; "" for a buffer that never allocated. Never NULL. */
const char *llm_strbuf_str(const llm_strbuf *sb);

/* Empties the buffer (keeping its allocation) and clears the oom flag. */
void llm_strbuf_clear(llm_strbuf *sb);

/* Hands the allocation to the caller (free() it) and resets sb to empty.
 * Returns NULL if the buffer is in the oom state (its memory is released)
 * or could not allocate an empty string. *len (if non-NULL) gets the length. */
char *llm_strbuf_detach(llm_strbuf *sb, size_t *len);

/* Releases the memory and resets sb to empty. NULL-safe. */
void llm_strbuf_free(llm_strbuf *sb);

#endif /* LLAMAC_CORE_STRBUF_H */
