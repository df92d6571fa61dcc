/* The container init: the child `create` clones with the new namespaces. It
 * finishes the namespaces, builds the rootfs, waits for `start`, drops privileges
 * and execs the user's program. It never execs the runtime binary. */
#ifndef BERTH_INIT_H
#define BERTH_INIT_H

#include "cgroup.h"
#include "seccomp-filter.h"
#include "spec.h"

struct init_config
{
  struct spec *spec;
  struct cgroup *cg;
  int sync_fd;
  int exec_listen_fd; /* -1: exec right after setup (`run`) */
  int preserve_fds;   /* fds 3 .. 3+N-1 passed to the process */
  const struct seccomp_program *seccomp; /* compiled by the parent */
};

__attribute__ ((noreturn)) void container_init (struct init_config *c);

#endif
