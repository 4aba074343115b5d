#include "core/fileutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

llm_status llm_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len, llm_error *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return llm_fail(err, e == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, "%s: cannot open: %s", path,
                        strerror(e));
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return llm_fail(err, LLM_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        return llm_fail(err, LLM_ERR_BAD_FORMAT, "%s: file is %lld bytes, more than the %zu allowed", path,
                        (long long)st.st_size, max_bytes);
    }
    size_t len = (size_t)st.st_size;
    char *buf = malloc(len + 1);
    if (!buf) {
        fclose(f);
        return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "%s: out of memory reading %zu bytes", path, len);
    }
    size_t got = fread(buf, 1, len, f);
    int read_error = ferror(f);
    fclose(f);
    if (got != len || read_error) {
        free(buf);
        return llm_fail(err, LLM_ERR_IO, "%s: short read (%zu of %zu bytes)", path, got, len);
    }
    buf[len] = '\0';
    *out = buf;
    if (out_len) *out_len = len;
    return LLM_OK;
}

int llm_path_join(char *out, size_t out_cap, const char *dir, const char *name) {
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    int n = snprintf(out, out_cap, "%.*s/%s", (int)dl, dir, name);
    return (n < 0 || (size_t)n >= out_cap) ? -1 : 0;
}

int llm_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

uint64_t llm_physical_memory(void) {
    long pages = sysconf(_SC_PHYS_PAGES);
    long page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return 0;
    return (uint64_t)pages * (uint64_t)page;
}

int llm_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

char *llm_format_bytes(uint64_t bytes, char *out, size_t out_cap) {
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(out, out_cap, "%llu B", (unsigned long long)bytes);
    else
        snprintf(out, out_cap, "%.2f %s", v, units[u]);
    return out;
}
