/* The table every cgroup manager fills in, and helpers they share. */
#ifndef BERTH_CGROUP_INTERNAL_H
#define BERTH_CGROUP_INTERNAL_H

#include "cgroup.h"

struct cgroup_ops
{
  const char *name;
  int (*create) (struct cgroup *cg, berth_error_t *err);
  int (*enter) (struct cgroup *cg, pid_t pid, berth_error_t *err);
  int (*enter_self) (struct cgroup *cg, bool placed_by_clone, berth_error_t *err);
  int (*apply) (struct cgroup *cg, const struct spec_resources *r, berth_error_t *err);
  int (*apply_devices) (struct cgroup *cg, const struct spec_resources *r, berth_error_t *err);
  /* The directory whose cgroup.procs lists every process of the container. */
  const char *(*procs_dir) (struct cgroup *cg);
  bool (*oom_killed) (struct cgroup *cg);
};

struct cgroup
{
  const struct cgroup_ops *ops;
  enum cgroup_mode mode;
  char *path;
  struct cgroup_hierarchy *h;
  size_t n_h;
};

extern const struct cgroup_ops cgroup_ops_v1;
extern const struct cgroup_ops cgroup_ops_hybrid;
extern const struct cgroup_ops cgroup_ops_v2;

/* The hierarchy holding a v1 controller, or NULL. */
struct cgroup_hierarchy *cgroup_find_v1 (struct cgroup *cg, const char *controller);
struct cgroup_hierarchy *cgroup_find_v2 (struct cgroup *cg);
/* Writes `value` to dir/file; the error names the file and the value. */
int cgroup_write (const char *dir, const char *file, const char *value, berth_error_t *err);
bool cgroup_has_file (const char *dir, const char *file);
int cgroup_write_pid (const char *dir, pid_t pid, berth_error_t *err);
/* Whether dir/file (memory.oom_control on v1, memory.events on v2) counts an OOM kill. */
bool cgroup_oom_counted (const char *dir, const char *file);

#endif
