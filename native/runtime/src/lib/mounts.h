/* The container's filesystem view: mounts from the config resolved inside the
 * rootfs, /dev, sysctls, masked and read-only paths, then pivot_root. */
#ifndef BERTH_MOUNTS_H
#define BERTH_MOUNTS_H

#include <stdbool.h>
#include "cgroup.h"
#include "error.h"
#include "spec.h"

/* Runs in the container init, in its new mount namespace; ends with the process
 * inside the new root, cwd `/`. */
int rootfs_setup (const struct spec *s, struct cgroup *cg, bool in_userns, berth_error_t *err);

#endif
