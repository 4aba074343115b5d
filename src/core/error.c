#include "core/error.h"

#include <stdio.h>
#include <string.h>

llm_status llm_fail(llm_error *err, llm_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

void llm_error_prefix(llm_error *err, const char *fmt, ...) {
    if (!err) return;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char joined[LLM_ERROR_CAP];
    snprintf(joined, sizeof joined, "%s%s", prefix, err->msg);
    memcpy(err->msg, joined, sizeof joined);
}

void llm_error_clear(llm_error *err) {
    if (!err) return;
    err->status = LLM_OK;
    err->msg[0] = '\0';
}

void llm_log(const llm_logger *logger, llm_log_level level, const char *fmt, ...) {
    if (!logger || !logger->fn || level < logger->level) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    logger->fn(level, msg, logger->user_data);
}
