/*
 * strbuf.c - growable text buffer; see strbuf.h for the contract.
 */
#include "core/strbuf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Small first allocation: most buffers hold a short message or a small
 * JSON fragment, and doubling takes care of the rest. */
#define STRBUF_MIN_CAPACITY 64

static int strbuf_fail(llm_strbuf *sb) {
    sb->oom = 1;
    return -1;
}

int llm_strbuf_reserve(llm_strbuf *sb, size_t extra) {
    if (sb == NULL) {
        return -1;
    }
    if (sb->oom) {
        return -1;
    }
    /* needed = len + extra + 1 (for the NUL), checked for overflow. */
    if (extra > SIZE_MAX - 1 - sb->len) {
        return strbuf_fail(sb);
    }
    size_t needed = sb->len + extra + 1;
    if (sb->data != NULL && needed <= sb->cap) {
        return 0;
    }
    size_t new_cap = sb->cap < STRBUF_MIN_CAPACITY ? STRBUF_MIN_CAPACITY : sb->cap;
    while (new_cap < needed) {
        if (new_cap > SIZE_MAX / 2) {
            new_cap = needed;
            break;
        }
        new_cap *= 2;
    }
    char *grown = realloc(sb->data, new_cap);
    if (grown == NULL) {
        return strbuf_fail(sb);
    }
    if (sb->data == NULL) {
        grown[0] = '\0';
    }
    sb->data = grown;
    sb->cap = new_cap;
    return 0;
}

int llm_strbuf_append(llm_strbuf *sb, const void *bytes, size_t len) {
    if (llm_strbuf_reserve(sb, len) != 0) {
        return -1;
    }
    if (len > 0) {
        memcpy(sb->data + sb->len, bytes, len);
    }
    sb->len += len;
    sb->data[sb->len] = '\0';
    return 0;
}

int llm_strbuf_append_str(llm_strbuf *sb, const char *s) {
    return llm_strbuf_append(sb, s, s != NULL ? strlen(s) : 0);
}

int llm_strbuf_append_char(llm_strbuf *sb, char c) {
    return llm_strbuf_append(sb, &c, 1);
}

int llm_strbuf_vappendf(llm_strbuf *sb, const char *fmt, va_list args) {
    /* Make sure data exists so the first attempt can format in place. */
    if (llm_strbuf_reserve(sb, 0) != 0) {
        return -1;
    }
    size_t avail = sb->cap - sb->len; /* includes room for the NUL */
    va_list first_try;
    va_copy(first_try, args);
    int needed = vsnprintf(sb->data + sb->len, avail, fmt, first_try);
    va_end(first_try);
    if (needed < 0) {
        sb->data[sb->len] = '\0'; /* vsnprintf may have left partial output */
        return strbuf_fail(sb);
    }
    if ((size_t)needed >= avail) {
        /* Did not fit: grow to the exact size and format again. */
        if (llm_strbuf_reserve(sb, (size_t)needed) != 0) {
            sb->data[sb->len] = '\0';
            return -1;
        }
        va_list second_try;
        va_copy(second_try, args);
        int written = vsnprintf(sb->data + sb->len, sb->cap - sb->len, fmt, second_try);
        va_end(second_try);
        if (written != needed) {
            sb->data[sb->len] = '\0';
            return strbuf_fail(sb);
        }
    }
    sb->len += (size_t)needed;
    return 0;
}

int llm_strbuf_appendf(llm_strbuf *sb, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    int rc = llm_strbuf_vappendf(sb, fmt, args);
    va_end(args);
    return rc;
}

const char *llm_strbuf_str(const llm_strbuf *sb) {
    return (sb != NULL && sb->data != NULL) ? sb->data : "";
}

void llm_strbuf_clear(llm_strbuf *sb) {
    if (sb == NULL) {
        return;
    }
    sb->len = 0;
    sb->oom = 0;
    if (sb->data != NULL) {
        sb->data[0] = '\0';
    }
}

char *llm_strbuf_detach(llm_strbuf *sb, size_t *len) {
    if (len != NULL) {
        *len = 0;
    }
    if (sb == NULL) {
        return NULL;
    }
    if (sb->oom) {
        llm_strbuf_free(sb);
        return NULL;
    }
    if (llm_strbuf_reserve(sb, 0) != 0) { /* an empty buffer still yields "" */
        llm_strbuf_free(sb);
        return NULL;
    }
    char *data = sb->data;
    if (len != NULL) {
        *len = sb->len;
    }
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
    sb->oom = 0;
    return data;
}

void llm_strbuf_free(llm_strbuf *sb) {
    if (sb == NULL) {
        return;
    }
    free(sb->data);
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
    sb->oom = 0;
}
