/* A read-only memory map of a whole file. Weights are used in place from the map: loading a model
 * costs page-table entries, not copies. */
#ifndef LLM_IO_MAPPED_FILE_H
#define LLM_IO_MAPPED_FILE_H

#include <stddef.h>

#include "core/error.h"

typedef struct llm_mapped_file {
    const unsigned char *data; /* NULL for an empty file */
    size_t size;
} llm_mapped_file;

llm_status llm_map_file(const char *path, llm_mapped_file *out, llm_error *err);
void llm_unmap_file(llm_mapped_file *mf); /* zeroed or already unmapped: no-op */

/* Reads bytes [begin, end) of the map into memory and maps them (page-table entries included), so later
 * accesses do not fault. Best effort: never fails. */
void llm_map_prefetch(const llm_mapped_file *mf, size_t begin, size_t end);

#endif
