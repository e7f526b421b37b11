#ifndef SCROLLBACK_CWRITEBACK_SHIM_H
#define SCROLLBACK_CWRITEBACK_SHIM_H
#include <errno.h>

/* Writes back the dirty page-cache pages of [offset, offset + count) of `fd` and waits until
   they reached the device (Linux sync_file_range with WAIT_BEFORE | WRITE | WAIT_AFTER).
   Not a durability point: it commits no metadata and flushes no device cache; a later
   fdatasync is still required. Used to pace a large write so that the final fdatasync has
   little left to do. Returns 0 or an errno (ENOSYS where the call does not exist). The GNU
   declaration is not visible to Swift's Glibc module, so it is declared here (LP64: off64_t
   is long; the flag values are the kernel ABI's). */
#if defined(__linux__) && defined(__LP64__)
extern int sync_file_range(int fd, long offset, long count, unsigned int flags);
static inline int scrollback_write_back(int fd, long offset, long count) {
    int result;
    do {
        result = sync_file_range(fd, offset, count, 1u /* WAIT_BEFORE */ | 2u /* WRITE */ | 4u /* WAIT_AFTER */);
    } while (result != 0 && errno == EINTR);
    return result == 0 ? 0 : errno;
}
#else
static inline int scrollback_write_back(int fd, long offset, long count) {
    (void)fd; (void)offset; (void)count;
    return ENOSYS;
}
#endif
#endif
