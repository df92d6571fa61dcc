/* Detaching the monitor from the caller (double fork, setsid) and the sync
 * pipe through which the monitor tells the waiting caller how the start went. */
#ifndef BERTH_SHIM_DAEMON_H
#define BERTH_SHIM_DAEMON_H

#include <sys/types.h>

#include "error.h"

enum daemon_role
{
  DAEMON_CALLER,  /* the process the agent started: wait with daemon_wait_report */
  DAEMON_MONITOR, /* the detached grandchild: report with daemon_report_* */
};

/* Forks twice. In the monitor: own session, stdio on /dev/null, every other
 * fd closed, cwd "/", child subreaper, SIGHUP/SIGPIPE ignored. *sync_fd is
 * the pipe end of the role returned. Returns the role, or -1. */
int daemonize(int *sync_fd, shim_error_t *err);

/* Caller: waits for the report; prints the JSON line on stdout (returns 0) or
 * the error line on stderr (returns 1). */
int daemon_wait_report(int sync_fd);

/* Monitor: success. */
void daemon_report_ok(int sync_fd, pid_t shim_pid, pid_t container_pid);

/* Monitor: failure, one line. */
void daemon_report_error(int sync_fd, const char *msg);

#endif
