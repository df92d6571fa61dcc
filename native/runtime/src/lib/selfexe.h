/* CVE-2019-5736: the container init is a clone of this process until it execs the
 * user's program, and a container could reach the runtime binary through
 * /proc/PID/exe (e.g. with an entrypoint whose interpreter is /proc/self/exe) and
 * overwrite it on the host. `create` and `run` therefore re-exec themselves from a
 * sealed memfd copy first: what /proc/PID/exe then names cannot be written. */
#ifndef BERTH_SELFEXE_H
#define BERTH_SELFEXE_H

#include "error.h"

/* Returns 0 when already running from a sealed copy, or when the binary cannot be
 * written anyway (read-only mount, immutable file); otherwise execs a sealed copy
 * and only returns on failure. */
int selfexe_ensure_sealed (char **argv, berth_error_t *err);

#endif
