/* Small file helpers for loaders. */
#ifndef LLM_CORE_FILEUTIL_H
#define LLM_CORE_FILEUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* Reads a whole (small) file into a malloc'd, NUL-terminated buffer. max_bytes guards against reading
 * something huge by mistake. LLM_ERR_NOT_FOUND if it does not exist, LLM_ERR_IO otherwise. */
llm_status llm_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len, llm_error *err);

/* dir + "/" + name into out (out_cap bytes). Returns -1 if it does not fit. */
int llm_path_join(char *out, size_t out_cap, const char *dir, const char *name);

int llm_file_exists(const char *path);

/* Total physical memory in bytes (0 if unknown). */
uint64_t llm_physical_memory(void);

/* Online CPU cores (at least 1). */
int llm_cpu_count(void);

/* Formats a byte count as "1.23 GiB" into out. Returns out. */
char *llm_format_bytes(uint64_t bytes, char *out, size_t out_cap);

#endif
