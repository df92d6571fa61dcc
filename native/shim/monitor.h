/* The monitor: starts the container through the runtime, then until it exits
 * copies its output to the log, serves the control socket, forwards SIGTERM
 * and SIGINT, reaps, and finally writes the exit record. */
#ifndef BERTH_SHIM_MONITOR_H
#define BERTH_SHIM_MONITOR_H

#include "options.h"

/* Runs in the detached monitor process; reports the start on sync_fd.
 * Returns the process exit code. */
int monitor_main(const struct shim_options *o, int sync_fd);

#endif
