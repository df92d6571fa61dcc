/* berth-shim: the per-container monitor. See README.md. */
#include <stdio.h>

#include "control.h"
#include "daemon.h"
#include "error.h"
#include "monitor.h"
#include "options.h"

int main(int argc, char **argv)
{
  struct shim_options o;
  shim_error_t err;
  int sync_fd, role, r;

  r = options_parse(argc, argv, &o, &err);
  if (r > 0)
    return 0;
  if (r < 0)
    {
      fprintf(stderr, "berth-shim: %s (see --help)\n", err.msg);
      return 2;
    }
  if (options_prepare(&o, &err) < 0)
    {
      fprintf(stderr, "berth-shim: %s\n", err.msg);
      return 1;
    }
  if (ctl_probe(o.state_dir))
    {
      fprintf(stderr, "berth-shim: a shim is already running in %s\n", o.state_dir);
      return 1;
    }
  fflush(stdout);
  fflush(stderr);
  role = daemonize(&sync_fd, &err);
  if (role < 0)
    {
      fprintf(stderr, "berth-shim: %s\n", err.msg);
      return 1;
    }
  if (role == DAEMON_CALLER)
    return daemon_wait_report(sync_fd);
  return monitor_main(&o, sync_fd);
}
