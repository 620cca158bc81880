# cython: language_level=3
"""Reserving a file's disk blocks ahead of the writes that fill them, in C (Linux ``fallocate``).

Appending to a file makes ext4 (and most Linux file systems) reserve and
account its blocks page by page as the data comes: for the gigabyte of lines
a replay writes, more kernel time than the copy itself. Blocks reserved ahead,
many megabytes at a time, are only filled in. ``FALLOC_FL_KEEP_SIZE`` leaves
the file's size alone, so a reader (or a crash) never sees the reserved part;
the writer gives back what it did not fill by truncating the file to what it
wrote.
"""

cdef extern from *:
    """
    #include <errno.h>
    #if defined(__linux__)
    #include <fcntl.h>
    #include <linux/falloc.h>
    static int winnow_fallocate_ahead(int fd, long long offset, long long length) {
        return fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length) == 0 ? 0 : errno;
    }
    #else
    static int winnow_fallocate_ahead(int fd, long long offset, long long length) {
        (void)fd; (void)offset; (void)length;
        return EOPNOTSUPP;
    }
    #endif
    """
    int winnow_fallocate_ahead(int fd, long long offset, long long length) nogil


def reserve(int fd, long long offset, long long length) -> int:
    """Have the file system reserve ``length`` bytes of file ``fd`` from ``offset`` without changing its
    size; 0 when it did, else the error number (a file system without the call, a full disk, a pipe)."""
    if offset < 0 or length <= 0:
        raise ValueError(f"cannot reserve {length} bytes at offset {offset} of a file.")
    cdef int error
    with nogil:
        error = winnow_fallocate_ahead(fd, offset, length)
    return error
