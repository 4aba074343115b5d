/* Detailed error messages kept by handles, and the logger every handle carries. */
#ifndef LLM_CORE_ERROR_H
#define LLM_CORE_ERROR_H

#include <stdarg.h>
#include <stddef.h>

#include "llamac.h"

#define LLM_ERROR_CAP 768

/* A message buffer plus the status it explains. Functions deep in the loader fill one of these and
 * return the status; the public entry point copies the text where the caller can see it. */
typedef struct llm_error {
    llm_status status;
    char msg[LLM_ERROR_CAP];
} llm_error;

/* Records status + formatted message in err (if err is not NULL) and returns status, so that
 * `return llm_fail(err, LLM_ERR_IO, "...", ...);` reads naturally. */
llm_status llm_fail(llm_error *err, llm_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes an existing message with context ("model.safetensors: " + msg). */
void llm_error_prefix(llm_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void llm_error_clear(llm_error *err);

typedef struct llm_logger {
    llm_log_fn fn;
    void *user_data;
    llm_log_level level;
} llm_logger;

void llm_log(const llm_logger *logger, llm_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Internal invariants only (never for input validation): a broken invariant is a bug in llamac. */
#include <assert.h>
#define LLM_ASSERT(cond) assert(cond)

#endif
