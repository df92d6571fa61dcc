/* The container's filesystem view: mounts from the config resolved inside the
 * rootfs, /dev, sysctls, masked and read-only paths, then pivot_root. */
#ifndef BERTH_MOUNTS_H
#define BERTH_MOUNTS_H

#include <stdbool.h>
#include "cgroup.h"
#include "error.h"
#include "spec.h"

/* Called once before the first mount that needs the container's cgroup (the
 * parent moves the init into its cgroups while the mounts are being made). */
struct rootfs_hooks
{
  int (*cgroup_ready) (void *data, berth_error_t *err);
  void *data;
};

/* Runs in the container init, in its new mount namespace; ends with the process
 * inside the new root, cwd `/`. */
int rootfs_setup (const struct spec *s, struct cgroup *cg, bool in_userns, struct rootfs_hooks *hooks,
                  berth_error_t *err);

#endif
