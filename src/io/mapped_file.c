#include "io/mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

llm_status llm_map_file(const char *path, llm_mapped_file *out, llm_error *err) {
    out->data = NULL;
    out->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return llm_fail(err, e == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, "%s: cannot open: %s", path,
                        strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return llm_fail(err, LLM_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return LLM_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the file alive */
    if (p == MAP_FAILED) return llm_fail(err, LLM_ERR_IO, "%s: mmap failed: %s", path, strerror(e));
    out->data = p;
    out->size = (size_t)st.st_size;
    return LLM_OK;
}

void llm_unmap_file(llm_mapped_file *mf) {
    if (mf->data) munmap((void *)mf->data, mf->size);
    mf->data = NULL;
    mf->size = 0;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14; older kernels answer EINVAL and we touch the pages instead */
#endif

void llm_map_prefetch(const llm_mapped_file *mf, size_t begin, size_t end) {
    if (!mf->data || begin >= end || end > mf->size) return;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t start = begin / page * page;
    unsigned char *p = (unsigned char *)mf->data + start;
    if (madvise(p, end - start, MADV_POPULATE_READ) == 0) return;
    madvise(p, end - start, MADV_WILLNEED);
    const volatile unsigned char *v = mf->data;
    unsigned char sink = 0;
    for (size_t off = start; off < end; off += page) sink ^= v[off];
    (void)sink;
}
