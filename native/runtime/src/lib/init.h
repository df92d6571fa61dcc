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

/* Steps of the init that `exec` repeats for a process joining a running container. */
int enter_cwd (const struct spec *s, berth_error_t *err);
int find_executable (const struct spec *s, char **out, berth_error_t *err);
int set_rlimits (const struct spec *s, berth_error_t *err);
/* Drops to the process's user and capabilities. */
int change_user (const struct spec *s, berth_error_t *err);
/* The process's env, with HOME from the container's /etc/passwd when unset. */
char **build_env (const struct spec *s);

#endif
