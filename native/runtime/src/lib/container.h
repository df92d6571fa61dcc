/* The container lifecycle behind the CLI verbs: created → running → stopped,
 * each verb refusing a state it cannot act on with a clear error. */
#ifndef BERTH_CONTAINER_H
#define BERTH_CONTAINER_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>
#include "error.h"

struct create_options
{
  const char *root; /* state root, e.g. /run/berth-runtime */
  const char *id;
  const char *bundle;
  const char *pid_file; /* may be NULL */
  int preserve_fds;
};

/* Sets everything up and leaves the init waiting for `start`. */
int container_create (const struct create_options *o, berth_error_t *err);
/* create + start + wait + delete; *status is the exit code (128+signal if killed). */
int container_run (const struct create_options *o, int *status, berth_error_t *err);
int container_start (const char *root, const char *id, berth_error_t *err);
int container_state (const char *root, const char *id, FILE *out, berth_error_t *err);
int container_kill (const char *root, const char *id, int sig, bool all, berth_error_t *err);
int container_delete (const char *root, const char *id, bool force, berth_error_t *err);

struct exec_options
{
  const char *root;
  const char *id;
  char *const *args; /* the command */
  size_t n_args;
  char *const *env;  /* NAME=VALUE, added to (or replacing in) the container's env */
  size_t n_env;
  const char *cwd;   /* NULL: the container's */
};

/* Runs a process in a running container and waits for it; *status is its exit
 * code (128+signal if killed). */
int container_exec (const struct exec_options *o, int *status, berth_error_t *err);

#endif
