/* Small file-system helpers. */
#ifndef BERTH_SHIM_FSUTIL_H
#define BERTH_SHIM_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

/* mkdir -p; the last component gets `mode` (and is chmod'ed to it). */
int mkdir_p(const char *path, mode_t mode, shim_error_t *err);

/* Writes data to dir/name.tmp and renames it to dir/name; when `durable`, the
 * file is fsynced before the rename and the directory after it (what must
 * survive a host crash: exit.json; not a pid file, meaningless after one). */
int write_file_atomic(const char *dir, const char *name, const char *data,
                      size_t n, mode_t mode, bool durable, shim_error_t *err);

/* Reads at most cap-1 bytes of a file into buf, NUL-terminated. Returns the
 * length or -1. */
ssize_t read_file(const char *path, char *buf, size_t cap, shim_error_t *err);

/* Joins dir and name into out (PATH_MAX); -1 when too long. */
int path_join(char *out, size_t cap, const char *dir, const char *name, shim_error_t *err);

#endif
