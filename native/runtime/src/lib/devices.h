/* /dev inside the container: the default nodes, the config's devices, the
 * usual symlinks, and the check that /dev/null really is the null device. */
#ifndef BERTH_DEVICES_H
#define BERTH_DEVICES_H

#include <stdbool.h>
#include "error.h"
#include "spec.h"

/* `bind_nodes`: in a user namespace mknod is not allowed, bind the host's nodes. */
int devices_setup (int rootfd, const struct spec *s, bool bind_nodes, berth_error_t *err);
/* Returns an O_PATH fd of the rootfs's /dev/null after checking it is char 1:3
 * and not a symlink (CVE-2025-31133). */
int devices_open_null (int rootfd, berth_error_t *err);

#endif
