/* cgroup v2: one unified hierarchy. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cgroup-internal.h"
#include "device-filter.h"
#include "log.h"
#include "utils.h"

static bool
has_controller (const char *dir, const char *name)
{
  cleanup_free char *path = xasprintf ("%s/cgroup.controllers", dir);
  cleanup_free char *text = NULL;
  berth_error_t err = NULL;
  if (read_file_at (AT_FDCWD, path, &text, NULL, &err) < 0)
    {
      berth_error_release (&err);
      return false;
    }
  for (char *save = NULL, *t = strtok_r (text, " \n", &save); t; t = strtok_r (NULL, " \n", &save))
    if (strcmp (t, name) == 0)
      return true;
  return false;
}

/* Enables the controllers we use in every ancestor's subtree_control. */
static int
v2_create (struct cgroup *cg, berth_error_t *err)
{
  struct cgroup_hierarchy *h = cgroup_find_v2 (cg);
  static const char *const wanted[] = { "cpu", "cpuset", "memory", "pids", "io" };
  cleanup_free char *dir = NULL;
  cleanup_free char *rel = NULL;
  char *save = NULL;

  if (h == NULL)
    return berth_make_error (err, 0, "no cgroup2 mount");
  dir = xstrdup (h->mountpoint);
  rel = xstrdup (cg->path);
  for (char *comp = strtok_r (rel, "/", &save); comp; comp = strtok_r (NULL, "/", &save))
    {
      char *child;
      for (size_t i = 0; i < sizeof (wanted) / sizeof (wanted[0]); i++)
        if (has_controller (dir, wanted[i]))
          {
            cleanup_free char *v = xasprintf ("+%s", wanted[i]);
            berth_error_t e2 = NULL;
            if (cgroup_write (dir, "cgroup.subtree_control", v, &e2) < 0)
              log_warning ("%s", e2->msg);
            berth_error_release (&e2);
          }
      child = xasprintf ("%s/%s", dir, comp);
      if (mkdir (child, 0755) < 0 && errno != EEXIST)
        {
          berth_make_error (err, errno, "mkdir `%s`", child);
          free (child);
          return -1;
        }
      free (dir);
      dir = child;
    }
  return 0;
}

static int
v2_enter (struct cgroup *cg, pid_t pid, berth_error_t *err)
{
  return cgroup_write_pid (cgroup_find_v2 (cg)->dir, pid, err);
}

static int
v2_enter_self (struct cgroup *cg, bool placed_by_clone, berth_error_t *err)
{
  return placed_by_clone ? 0 : cgroup_write (cgroup_find_v2 (cg)->dir, "cgroup.procs", "0", err);
}

static int
write_num (const char *dir, const char *file, long long v, berth_error_t *err)
{
  char buf[32];
  snprintf (buf, sizeof (buf), "%lld", v);
  return cgroup_write (dir, file, buf, err);
}

static int
v2_apply (struct cgroup *cg, const struct spec_resources *r, berth_error_t *err)
{
  const char *dir = cgroup_find_v2 (cg)->dir;
  char buf[64];

  if (r->has_memory_reservation && write_num (dir, "memory.low", r->memory_reservation, err) < 0)
    return -1;
  if (r->has_memory_limit)
    {
      if (write_num (dir, "memory.max", r->memory_limit, err) < 0)
        return berth_error_wrap (err, "memory limit %lld bytes", (long long) r->memory_limit);
      if (cgroup_has_file (dir, "memory.swap.max"))
        {
          /* The spec's swap is memory+swap; v2 wants the swap alone. */
          long long swap = 0;
          if (r->has_memory_swap && r->memory_swap < 0)
            swap = -1;
          else if (r->has_memory_swap && r->memory_swap > r->memory_limit)
            swap = r->memory_swap - r->memory_limit;
          if (swap < 0 ? cgroup_write (dir, "memory.swap.max", "max", err) < 0
                       : write_num (dir, "memory.swap.max", swap, err) < 0)
            return -1;
        }
    }
  if (r->has_cpu_shares)
    {
      /* runc's conversion from shares [2, 262144] to weight [1, 10000]. */
      unsigned long long s = r->cpu_shares < 2 ? 2 : r->cpu_shares > 262144 ? 262144 : r->cpu_shares;
      if (write_num (dir, "cpu.weight", 1 + ((s - 2) * 9999) / 262142, err) < 0)
        return -1;
    }
  if (r->has_cpu_quota || r->has_cpu_period)
    {
      unsigned long long period = r->has_cpu_period ? r->cpu_period : 100000;
      if (r->has_cpu_quota && r->cpu_quota > 0)
        snprintf (buf, sizeof (buf), "%lld %llu", (long long) r->cpu_quota, period);
      else
        snprintf (buf, sizeof (buf), "max %llu", period);
      if (cgroup_write (dir, "cpu.max", buf, err) < 0)
        return -1;
    }
  if (r->cpuset_cpus && cgroup_write (dir, "cpuset.cpus", r->cpuset_cpus, err) < 0)
    return berth_error_wrap (err, "cpuset cpus `%s`", r->cpuset_cpus);
  if (r->cpuset_mems && cgroup_write (dir, "cpuset.mems", r->cpuset_mems, err) < 0)
    return berth_error_wrap (err, "cpuset mems `%s`", r->cpuset_mems);
  if (r->has_pids_limit
      && (r->pids_limit < 0 ? cgroup_write (dir, "pids.max", "max", err) < 0 : write_num (dir, "pids.max", r->pids_limit, err) < 0))
    return -1;
  for (size_t i = 0; r->unified && i < r->unified->len; i++)
    if (cgroup_write (dir, r->unified->keys[i], r->unified->items[i]->string, err) < 0)
      return berth_error_wrap (err, "linux.resources.unified");
  if (r->has_blkio_weight)
    {
      if (cgroup_has_file (dir, "io.weight"))
        {
          snprintf (buf, sizeof (buf), "default %u", 1 + ((unsigned) r->blkio_weight - 10) * 9999 / 990);
          if (cgroup_write (dir, "io.weight", buf, err) < 0)
            return -1;
        }
      else if (cgroup_has_file (dir, "io.bfq.weight"))
        {
          if (write_num (dir, "io.bfq.weight", r->blkio_weight, err) < 0)
            return -1;
        }
      else
        log_warning ("linux.resources.blockIO.weight ignored: the host has no io weight");
    }
  return 0;
}

static int
v2_apply_devices (struct cgroup *cg, const struct spec_resources *r, berth_error_t *err)
{
  return device_filter_attach (cgroup_find_v2 (cg)->dir, r->device_rules, r->n_device_rules, err);
}

static const char *
v2_procs_dir (struct cgroup *cg)
{
  return cgroup_find_v2 (cg)->dir;
}

static bool
v2_oom_killed (struct cgroup *cg)
{
  return cgroup_oom_counted (cgroup_find_v2 (cg)->dir, "memory.events");
}

const struct cgroup_ops cgroup_ops_v2 = {
  .name = "v2",
  .create = v2_create,
  .enter = v2_enter,
  .enter_self = v2_enter_self,
  .apply = v2_apply,
  .apply_devices = v2_apply_devices,
  .procs_dir = v2_procs_dir,
  .oom_killed = v2_oom_killed,
};
