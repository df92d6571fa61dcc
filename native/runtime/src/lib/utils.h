/* Small helpers: cleanup attributes, whole-file reads and writes, path joins. */
#ifndef BERTH_UTILS_H
#define BERTH_UTILS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>
#include "error.h"

void cleanup_freep (void *p);
void cleanup_closep (int *fd);
void cleanup_fclosep (FILE **f);
void cleanup_errorp (berth_error_t *err);

#define cleanup_free __attribute__ ((cleanup (cleanup_freep)))
#define cleanup_close __attribute__ ((cleanup (cleanup_closep)))
#define cleanup_fclose __attribute__ ((cleanup (cleanup_fclosep)))
#define cleanup_error __attribute__ ((cleanup (cleanup_errorp)))

/* Moves ownership out of a cleanup variable. */
#define steal_pointer(pp) ({ __typeof__ (*(pp)) _p = *(pp); *(pp) = NULL; _p; })
#define steal_fd(fdp) ({ int _fd = *(fdp); *(fdp) = -1; _fd; })

void *xmalloc0 (size_t size);
char *xstrdup (const char *s);
char *xasprintf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* Reads a whole file (NUL-terminated); dirfd may be AT_FDCWD. */
int read_file_at (int dirfd, const char *path, char **out, size_t *len, berth_error_t *err);
/* Writes `data` to an existing file (O_WRONLY, no create). */
int write_file_at (int dirfd, const char *path, const char *data, size_t len, berth_error_t *err);
/* Creates or truncates a file with `mode`, writing it through a temp file and rename. */
int write_file_atomic (const char *path, const char *data, size_t len, mode_t mode, berth_error_t *err);

int write_all (int fd, const void *buf, size_t len);
int mkdir_p (const char *path, mode_t mode, berth_error_t *err);
/* Removes a directory tree (no symlink following). */
int remove_tree (const char *path);

bool has_prefix (const char *s, const char *prefix);
/* The /proc/self/fd/N path of an fd, in `buf` (at least 32 bytes). */
const char *fd_path (int fd, char *buf);
/* A sockaddr_un for `path`; long paths go through /proc/self/fd of their directory
 * (sun_path holds 108 bytes). *dirfd is set when used and must be closed after. */
struct sockaddr_un;
int unix_addr (const char *path, struct sockaddr_un *addr, int *dirfd, berth_error_t *err);

#endif
