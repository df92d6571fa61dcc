/* Paths inside the container's rootfs, resolved as if the rootfs were `/`: symlinks
 * and `..` never leave it (openat2 RESOLVE_IN_ROOT, or a careful walk on old kernels). */
#ifndef BERTH_SAFEPATH_H
#define BERTH_SAFEPATH_H

#include <stdbool.h>
#include "error.h"

/* Opens `path` below `rootfd`; `flags` are open flags. Returns an fd. */
int open_in_root (int rootfd, const char *path, int flags, berth_error_t *err);
/* Creates what is missing of `path` inside the root (directories, and the last
 * component as an empty file when `last_is_file`), returning an O_PATH fd to it. */
int mkdir_in_root (int rootfd, const char *path, bool last_is_file, berth_error_t *err);
/* For tests: false forces the walk used on kernels without openat2. */
void safepath_use_openat2 (bool on);
/* Fails when any component of `path` inside the root is a symlink. */
int check_no_symlinks (int rootfd, const char *path, berth_error_t *err);

#endif
