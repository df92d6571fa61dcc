/* Running the OCI runtime's runc-compatible verbs. */
#ifndef BERTH_SHIM_RUNTIME_H
#define BERTH_SHIM_RUNTIME_H

#include <sys/types.h>

#include "error.h"

struct runtime
{
  const char *path;     /* the runtime binary (searched in PATH if no '/') */
  const char *root;     /* --root, or NULL */
  const char *log_path; /* --log (JSON format) */
};

/* `RUNTIME create --bundle B --pid-file P ID` with stdin /dev/null and the
 * given stdout/stderr, which the runtime passes on to the container. On
 * failure, err_fd (the read side of the stderr pipe, non-blocking) supplies
 * the message when the runtime's log has none. */
int runtime_create(const struct runtime *rt, const char *id, const char *bundle,
                   const char *pid_file, int out_fd, int err_fd, int err_read_fd,
                   shim_error_t *err);

/* `RUNTIME start ID`. */
int runtime_start(const struct runtime *rt, const char *id, shim_error_t *err);

/* `RUNTIME delete --force ID`; errors are ignored by the callers. */
int runtime_delete_force(const struct runtime *rt, const char *id, shim_error_t *err);

/* Restores what a child must not inherit from the monitor: the signal mask
 * and the ignored SIGPIPE/SIGHUP. */
void reset_signals_for_exec(void);

#endif
