/* cgroup v1, and hybrid (v1 controllers plus a cgroup2 mount used for membership). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cgroup-internal.h"
#include "log.h"
#include "utils.h"

/* A new cpuset cgroup starts with empty cpus/mems: copy the parent's down each level. */
static int
cpuset_init_path (struct cgroup_hierarchy *h, const char *path, berth_error_t *err)
{
  cleanup_free char *dir = xstrdup (h->mountpoint);
  cleanup_free char *rel = xstrdup (path);
  char *save = NULL;

  for (char *comp = strtok_r (rel, "/", &save); comp; comp = strtok_r (NULL, "/", &save))
    {
      char *child = xasprintf ("%s/%s", dir, comp);
      for (int i = 0; i < 2; i++)
        {
          const char *file = i ? "cpuset.mems" : "cpuset.cpus";
          cleanup_free char *mine = NULL;
          cleanup_free char *parent = NULL;
          cleanup_free char *p1 = xasprintf ("%s/%s", child, file);
          cleanup_free char *p2 = xasprintf ("%s/%s", dir, file);
          if (read_file_at (AT_FDCWD, p1, &mine, NULL, err) < 0)
            {
              free (child);
              return -1;
            }
          if (mine[0] != '\n' && mine[0] != '\0')
            continue;
          if (read_file_at (AT_FDCWD, p2, &parent, NULL, err) < 0 || cgroup_write (child, file, parent, err) < 0)
            {
              free (child);
              return -1;
            }
        }
      free (dir);
      dir = child;
    }
  return 0;
}

static int
v1_create (struct cgroup *cg, berth_error_t *err)
{
  for (size_t i = 0; i < cg->n_h; i++)
    {
      struct cgroup_hierarchy *h = &cg->h[i];
      if (mkdir_p (h->dir, 0755, err) < 0)
        return -1;
      if (!h->v2 && strcmp (h->controllers, "cpuset") == 0 && cpuset_init_path (h, cg->path, err) < 0)
        return -1;
      if (!h->v2 && strstr (h->controllers, "cpuset") && strcmp (h->controllers, "cpuset") != 0
          && cpuset_init_path (h, cg->path, err) < 0)
        return -1;
    }
  return 0;
}

static int
v1_enter (struct cgroup *cg, pid_t pid, berth_error_t *err)
{
  for (size_t i = 0; i < cg->n_h; i++)
    if (cgroup_write_pid (cg->h[i].dir, pid, err) < 0)
      return -1;
  return 0;
}

static int
v1_enter_self (struct cgroup *cg, bool placed_by_clone, berth_error_t *err)
{
  for (size_t i = 0; i < cg->n_h; i++)
    {
      if (cg->h[i].v2 && placed_by_clone)
        continue;
      if (cgroup_write (cg->h[i].dir, cg->h[i].v2 ? "cgroup.procs" : "tasks", "0", err) < 0)
        return -1;
    }
  return 0;
}

static int
write_num (const char *dir, const char *file, long long v, berth_error_t *err)
{
  char buf[32];
  snprintf (buf, sizeof (buf), "%lld", v);
  return cgroup_write (dir, file, buf, err);
}

static int
v1_apply_memory (struct cgroup *cg, const struct spec_resources *r, berth_error_t *err)
{
  struct cgroup_hierarchy *h = cgroup_find_v1 (cg, "memory");
  if (!r->has_memory_limit && !r->has_memory_reservation && !r->has_swappiness && !r->has_memory_swap)
    return 0;
  if (h == NULL)
    return berth_make_error (err, 0, "linux.resources.memory is set but the host has no memory controller");
  if (r->has_memory_reservation && write_num (h->dir, "memory.soft_limit_in_bytes", r->memory_reservation, err) < 0)
    return -1;
  if (r->has_memory_limit)
    {
      /* No swap beyond the limit unless the config asks: memsw = swap, or = limit. */
      long long memsw = r->has_memory_swap && r->memory_swap != 0 ? r->memory_swap : r->memory_limit;
      if (write_num (h->dir, "memory.limit_in_bytes", r->memory_limit, err) < 0)
        return berth_error_wrap (err, "memory limit %lld bytes", (long long) r->memory_limit);
      if (cgroup_has_file (h->dir, "memory.memsw.limit_in_bytes")
          && write_num (h->dir, "memory.memsw.limit_in_bytes", memsw, err) < 0)
        return berth_error_wrap (err, "memory+swap limit %lld bytes", memsw);
    }
  if (r->has_swappiness && write_num (h->dir, "memory.swappiness", (long long) r->swappiness, err) < 0)
    return -1;
  return 0;
}

static int
v1_apply_cpu (struct cgroup *cg, const struct spec_resources *r, berth_error_t *err)
{
  struct cgroup_hierarchy *h = cgroup_find_v1 (cg, "cpu"), *cs = cgroup_find_v1 (cg, "cpuset");
  if ((r->has_cpu_shares || r->has_cpu_quota || r->has_cpu_period) && h == NULL)
    return berth_make_error (err, 0, "linux.resources.cpu is set but the host has no cpu controller");
  if (r->has_cpu_shares && write_num (h->dir, "cpu.shares", (long long) r->cpu_shares, err) < 0)
    return -1;
  if (r->has_cpu_period && write_num (h->dir, "cpu.cfs_period_us", (long long) r->cpu_period, err) < 0)
    return -1;
  if (r->has_cpu_quota && write_num (h->dir, "cpu.cfs_quota_us", (long long) r->cpu_quota, err) < 0)
    return -1;
  if ((r->cpuset_cpus || r->cpuset_mems) && cs == NULL)
    return berth_make_error (err, 0, "linux.resources.cpu.cpus is set but the host has no cpuset controller");
  if (r->cpuset_cpus && cgroup_write (cs->dir, "cpuset.cpus", r->cpuset_cpus, err) < 0)
    {
      cleanup_free char *host = NULL;
      berth_error_t e2 = NULL;
      cleanup_free char *p = xasprintf ("%s/cpuset.effective_cpus", cs->mountpoint);
      if (read_file_at (AT_FDCWD, p, &host, NULL, &e2) == 0)
        {
          host[strcspn (host, "\n")] = '\0';
          berth_error_release (&e2);
          return berth_error_wrap (err, "cpuset cpus `%s` (the host has cpus %s)", r->cpuset_cpus, host);
        }
      berth_error_release (&e2);
      return berth_error_wrap (err, "cpuset cpus `%s`", r->cpuset_cpus);
    }
  if (r->cpuset_mems && cgroup_write (cs->dir, "cpuset.mems", r->cpuset_mems, err) < 0)
    return berth_error_wrap (err, "cpuset mems `%s`", r->cpuset_mems);
  return 0;
}

static int
v1_apply_devices (struct cgroup *cg, const struct spec_resources *r, berth_error_t *err)
{
  struct cgroup_hierarchy *h = cgroup_find_v1 (cg, "devices");
  if (h == NULL || r->n_device_rules == 0)
    return 0;
  for (size_t i = 0; i < r->n_device_rules; i++)
    {
      const struct spec_device_rule *d = &r->device_rules[i];
      char rule[96], maj[24], min[24];
      if (d->major < 0)
        strcpy (maj, "*");
      else
        snprintf (maj, sizeof (maj), "%lld", (long long) d->major);
      if (d->minor < 0)
        strcpy (min, "*");
      else
        snprintf (min, sizeof (min), "%lld", (long long) d->minor);
      if (d->type == 'a')
        snprintf (rule, sizeof (rule), "a");
      else
        snprintf (rule, sizeof (rule), "%c %s:%s %s", d->type, maj, min, d->access);
      if (d->type == 'a' && strcmp (d->access, "rwm") != 0)
        snprintf (rule, sizeof (rule), "a *:* %s", d->access);
      if (cgroup_write (h->dir, d->allow ? "devices.allow" : "devices.deny", rule, err) < 0)
        return berth_error_wrap (err, "device rule");
    }
  return 0;
}

static int
v1_apply (struct cgroup *cg, const struct spec_resources *r, berth_error_t *err)
{
  struct cgroup_hierarchy *h;
  if (r->unified && r->unified->len)
    return berth_make_error (err, 0, "linux.resources.unified needs a cgroup v2 host (this one is %s)", cg->ops->name);
  if (v1_apply_memory (cg, r, err) < 0 || v1_apply_cpu (cg, r, err) < 0)
    return -1;
  if (r->has_pids_limit)
    {
      h = cgroup_find_v1 (cg, "pids");
      if (h == NULL)
        return berth_make_error (err, 0, "linux.resources.pids is set but the host has no pids controller");
      if (r->pids_limit < 0 ? cgroup_write (h->dir, "pids.max", "max", err) < 0
                            : write_num (h->dir, "pids.max", r->pids_limit, err) < 0)
        return -1;
    }
  if (r->has_blkio_weight)
    {
      h = cgroup_find_v1 (cg, "blkio");
      const char *file = NULL;
      if (h && cgroup_has_file (h->dir, "blkio.weight"))
        file = "blkio.weight";
      else if (h && cgroup_has_file (h->dir, "blkio.bfq.weight"))
        file = "blkio.bfq.weight";
      if (file == NULL)
        log_warning ("linux.resources.blockIO.weight ignored: the host's blkio controller has no weight");
      else if (write_num (h->dir, file, r->blkio_weight, err) < 0)
        return -1;
    }
  return 0;
}

static const char *
v1_procs_dir (struct cgroup *cg)
{
  struct cgroup_hierarchy *h = cgroup_find_v1 (cg, "pids");
  if (h == NULL)
    h = cgroup_find_v1 (cg, "memory");
  if (h == NULL)
    h = cg->n_h ? &cg->h[0] : NULL;
  return h ? h->dir : NULL;
}

static bool
v1_oom_killed (struct cgroup *cg)
{
  struct cgroup_hierarchy *h = cgroup_find_v1 (cg, "memory");
  return h != NULL && cgroup_oom_counted (h->dir, "memory.oom_control");
}

const struct cgroup_ops cgroup_ops_v1 = {
  .name = "v1",
  .create = v1_create,
  .enter = v1_enter,
  .enter_self = v1_enter_self,
  .apply = v1_apply,
  .apply_devices = v1_apply_devices,
  .procs_dir = v1_procs_dir,
  .oom_killed = v1_oom_killed,
};

/* Hybrid: the same, with the unified mount (a cgroup2 hierarchy in the list) joined
 * for membership only; the controllers it may hold (hugetlb here) are not limited. */
const struct cgroup_ops cgroup_ops_hybrid = {
  .name = "hybrid",
  .create = v1_create,
  .enter = v1_enter,
  .enter_self = v1_enter_self,
  .apply = v1_apply,
  .apply_devices = v1_apply_devices,
  .procs_dir = v1_procs_dir,
  .oom_killed = v1_oom_killed,
};
