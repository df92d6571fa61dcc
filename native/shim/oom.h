/* Telling an OOM kill from any other SIGKILL: the memory cgroup's oom_kill
 * counter (v1 memory.oom_control, v2 memory.events) read at start and at exit,
 * plus a live watch (v1 eventfd via cgroup.event_control, v2 inotify) so the
 * counter is also read while the cgroup surely exists. */
#ifndef BERTH_SHIM_OOM_H
#define BERTH_SHIM_OOM_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

enum oom_cgroup_kind
{
  OOM_NONE = 0, /* no memory cgroup found: oom_killed is always false */
  OOM_V1,
  OOM_V2,
};

struct oom_watch
{
  enum oom_cgroup_kind kind;
  char counter_path[PATH_MAX]; /* memory.oom_control or memory.events */
  bool have_counter;           /* the file has an oom_kill line */
  uint64_t baseline, latest;
  bool event_seen; /* the v1 eventfd fired (counter-less kernels) */
  int fd;          /* eventfd (v1) or inotify (v2), -1 if none; poll for POLLIN */
};

/* Finds the memory cgroup of pid and reads the baseline. Never fatal: when
 * nothing is found the watch is OOM_NONE. */
void oom_watch_init(struct oom_watch *w, pid_t pid);

/* Call when w->fd is readable. */
void oom_watch_on_event(struct oom_watch *w);

/* Reads the counter once more; true when it went up (or the event fired on a
 * kernel without the counter). */
bool oom_watch_killed(struct oom_watch *w);

void oom_watch_close(struct oom_watch *w);

/* Exposed for the unit tests. */
/* The memory controller's v1 path and the v2 ("0::") path from the text of
 * /proc/<pid>/cgroup (modified in place); "" when absent. */
void oom_parse_proc_cgroup(char *text, char *v1, char *v2, size_t cap);
/* The N of the "oom_kill N" line of memory.oom_control or memory.events. */
int oom_read_counter(const char *path, uint64_t *out);

#endif
