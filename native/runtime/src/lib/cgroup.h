/* The cgroup manager: one interface, a v1 / hybrid implementation and a v2 one
 * (cgroup-internal.h holds the function table), chosen at run time from
 * /proc/self/mountinfo. */
#ifndef BERTH_CGROUP_H
#define BERTH_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "error.h"
#include "spec.h"

enum cgroup_mode { CGROUP_MODE_V1, CGROUP_MODE_HYBRID, CGROUP_MODE_V2 };

/* One mounted hierarchy: a v1 controller set ("cpu", "name=systemd") or the cgroup2 mount. */
struct cgroup_hierarchy
{
  char *mountpoint;
  char *controllers; /* comma separated, NULL for cgroup2 */
  char *dir;         /* mountpoint + container path */
  bool v2;
};

struct cgroup;

/* Finds the hierarchies of this host for the container path (e.g. /berth/<id>). */
int cgroup_open (const char *path, struct cgroup **out, berth_error_t *err);
void cgroup_free (struct cgroup *cg);
void cleanup_cgroupp (struct cgroup **cg);
#define cleanup_cgroup __attribute__ ((cleanup (cleanup_cgroupp)))

enum cgroup_mode cgroup_mode (const struct cgroup *cg);
const char *cgroup_mode_name (const struct cgroup *cg);
const struct cgroup_hierarchy *cgroup_hierarchies (const struct cgroup *cg, size_t *n);

/* Makes the container's directories in every hierarchy. */
int cgroup_create (struct cgroup *cg, berth_error_t *err);
/* Moves `pid` into the container's cgroup in every hierarchy. This takes the
 * kernel's global threadgroup lock, whose first taking waits for an RCU grace
 * period (10-20 ms here): cgroup_enter_self is the fast way. */
int cgroup_enter (struct cgroup *cg, pid_t pid, berth_error_t *err);
/* Moves the calling, single-threaded process in by writing "0" to each v1
 * hierarchy's `tasks` file, which skips that global lock. `placed_by_clone`:
 * the cgroup2 hierarchy was already joined through CLONE_INTO_CGROUP. */
int cgroup_enter_self (struct cgroup *cg, bool placed_by_clone, berth_error_t *err);
/* An fd of the container's cgroup2 directory for clone3(CLONE_INTO_CGROUP), or
 * -1 when the host has no cgroup2 hierarchy. */
int cgroup_clone_fd (struct cgroup *cg);
/* Writes linux.resources but the device rules. */
int cgroup_apply (struct cgroup *cg, const struct spec_resources *r, berth_error_t *err);
/* Applies linux.resources.devices (v1 devices controller, or an eBPF filter on v2). */
int cgroup_apply_devices (struct cgroup *cg, const struct spec_resources *r, berth_error_t *err);
/* Sends `sig` to every process in the container's cgroup; returns how many. */
int cgroup_kill_all (struct cgroup *cg, int sig, berth_error_t *err);
/* Removes the container's directories (killing stragglers); absent ones are fine. */
int cgroup_destroy (struct cgroup *cg, berth_error_t *err);
/* True when the memory controller recorded an OOM kill. */
bool cgroup_oom_killed (struct cgroup *cg);

#endif
