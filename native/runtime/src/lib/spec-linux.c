/* config.json: the `linux` object. */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "spec-internal.h"
#include "utils.h"

static const struct
{
  const char *name;
  int flag;
} namespace_table[] = {
  { "pid", CLONE_NEWPID },     { "network", CLONE_NEWNET }, { "mount", CLONE_NEWNS },
  { "ipc", CLONE_NEWIPC },     { "uts", CLONE_NEWUTS },     { "user", CLONE_NEWUSER },
  { "cgroup", CLONE_NEWCGROUP },
};

const char *
namespace_name (int flag)
{
  for (size_t i = 0; i < sizeof (namespace_table) / sizeof (namespace_table[0]); i++)
    if (namespace_table[i].flag == flag)
      return namespace_table[i].name;
  return "?";
}

static int
parse_device_rule (struct spec_device_rule *r, json_node *n, berth_error_t *err)
{
  json_node *allow = json_get (n, "allow"), *major = json_get (n, "major"), *minor = json_get (n, "minor");
  const char *type = json_get_string (n, "type"), *access = json_get_string (n, "access");
  int64_t v;

  if (want (allow, JSON_BOOL, "linux.resources.devices[].allow", err) < 0)
    return -1;
  r->allow = allow->boolean;
  r->type = type ? type[0] : 'a';
  if (r->type != 'a' && r->type != 'c' && r->type != 'b')
    return berth_make_error (err, 0, "linux.resources.devices[]: bad type `%s`", type);
  r->major = r->minor = -1;
  if (major && get_int (major, "linux.resources.devices[].major", -1, INT32_MAX, &v, err) < 0)
    return -1;
  if (major)
    r->major = v;
  if (minor && get_int (minor, "linux.resources.devices[].minor", -1, INT32_MAX, &v, err) < 0)
    return -1;
  if (minor)
    r->minor = v;
  if (access == NULL || access[0] == '\0')
    access = "rwm";
  if (strlen (access) > 3 || strspn (access, "rwm") != strlen (access))
    return berth_make_error (err, 0, "linux.resources.devices[]: bad access `%s`", access);
  strcpy (r->access, access);
  return 0;
}

static int
parse_resources (struct spec_resources *r, json_node *res, berth_error_t *err)
{
  json_node *mem = json_get (res, "memory"), *cpu = json_get (res, "cpu"), *pids = json_get (res, "pids");
  json_node *blkio = json_get (res, "blockIO"), *devices = json_get (res, "devices"), *n;
  int64_t v;

  if (mem)
    {
      if ((n = json_get (mem, "limit")))
        {
          if (get_int (n, "linux.resources.memory.limit", -1, INT64_MAX, &r->memory_limit, err) < 0)
            return -1;
          r->has_memory_limit = r->memory_limit > 0;
          if (r->memory_limit == 0)
            return berth_make_error (err, 0, "linux.resources.memory.limit = 0 is below what the kernel accepts");
        }
      if ((n = json_get (mem, "reservation")))
        {
          if (get_int (n, "linux.resources.memory.reservation", -1, INT64_MAX, &r->memory_reservation, err) < 0)
            return -1;
          r->has_memory_reservation = r->memory_reservation > 0;
        }
      if ((n = json_get (mem, "swap")))
        {
          if (get_int (n, "linux.resources.memory.swap", -1, INT64_MAX, &r->memory_swap, err) < 0)
            return -1;
          r->has_memory_swap = true;
        }
      if ((n = json_get (mem, "swappiness")))
        {
          if (get_uint64 (n, "linux.resources.memory.swappiness", &r->swappiness, err) < 0)
            return -1;
          if (r->swappiness > 100)
            return berth_make_error (err, 0, "linux.resources.memory.swappiness = %llu must be 0..100",
                                     (unsigned long long) r->swappiness);
          r->has_swappiness = true;
        }
      if (r->has_memory_limit && r->has_memory_swap && r->memory_swap > 0 && r->memory_swap < r->memory_limit)
        return berth_make_error (err, 0, "linux.resources.memory.swap (%lld) must not be below memory.limit (%lld)",
                                 (long long) r->memory_swap, (long long) r->memory_limit);
    }
  if (cpu)
    {
      const char *cpus = json_get_string (cpu, "cpus"), *mems = json_get_string (cpu, "mems");
      if ((n = json_get (cpu, "shares")))
        {
          if (get_uint64 (n, "linux.resources.cpu.shares", &r->cpu_shares, err) < 0)
            return -1;
          r->has_cpu_shares = r->cpu_shares > 0;
        }
      if ((n = json_get (cpu, "quota")))
        {
          if (get_int (n, "linux.resources.cpu.quota", -1, INT64_MAX, &r->cpu_quota, err) < 0)
            return -1;
          r->has_cpu_quota = r->cpu_quota != 0;
        }
      if ((n = json_get (cpu, "period")))
        {
          if (get_uint64 (n, "linux.resources.cpu.period", &r->cpu_period, err) < 0)
            return -1;
          r->has_cpu_period = r->cpu_period > 0;
        }
      if (cpus && *cpus)
        r->cpuset_cpus = xstrdup (cpus);
      if (mems && *mems)
        r->cpuset_mems = xstrdup (mems);
    }
  if (pids && (n = json_get (pids, "limit")))
    {
      if (get_int (n, "linux.resources.pids.limit", INT64_MIN, INT64_MAX, &r->pids_limit, err) < 0)
        return -1;
      r->has_pids_limit = r->pids_limit != 0;
    }
  if (blkio && (n = json_get (blkio, "weight")))
    {
      if (get_int (n, "linux.resources.blockIO.weight", 0, 1000, &v, err) < 0)
        return -1;
      r->has_blkio_weight = v > 0;
      r->blkio_weight = (uint16_t) v;
    }
  if ((r->unified = json_get (res, "unified")))
    {
      if (want (r->unified, JSON_OBJECT, "linux.resources.unified", err) < 0)
        return -1;
      for (size_t i = 0; i < r->unified->len; i++)
        if (strchr (r->unified->keys[i], '/') || r->unified->keys[i][0] == '.' || r->unified->items[i]->type != JSON_STRING)
          return berth_make_error (err, 0, "linux.resources.unified: bad entry `%s`", r->unified->keys[i]);
    }
  if (devices)
    {
      if (want (devices, JSON_ARRAY, "linux.resources.devices", err) < 0)
        return -1;
      r->device_rules = xmalloc0 (devices->len * sizeof (*r->device_rules));
      for (size_t i = 0; i < devices->len; i++)
        if (parse_device_rule (&r->device_rules[r->n_device_rules++], devices->items[i], err) < 0)
          return -1;
    }
  return 0;
}

static int
parse_idmaps (json_node *n, const char *what, struct spec_idmap **out, size_t *count, berth_error_t *err)
{
  int64_t v;
  if (n == NULL)
    return 0;
  if (want (n, JSON_ARRAY, what, err) < 0)
    return -1;
  *out = xmalloc0 (n->len * sizeof (**out));
  for (size_t i = 0; i < n->len; i++)
    {
      struct spec_idmap *m = &(*out)[(*count)++];
      if (get_int (json_get (n->items[i], "containerID"), what, 0, UINT32_MAX, &v, err) < 0)
        return -1;
      m->container_id = v;
      if (get_int (json_get (n->items[i], "hostID"), what, 0, UINT32_MAX, &v, err) < 0)
        return -1;
      m->host_id = v;
      if (get_int (json_get (n->items[i], "size"), what, 1, UINT32_MAX, &v, err) < 0)
        return -1;
      m->size = v;
    }
  return 0;
}

int
spec_parse_linux (struct spec *s, json_node *l, berth_error_t *err)
{
  json_node *n;
  int64_t v;
  const char *prop;

  if (l == NULL)
    return 0;
  n = json_get (l, "namespaces");
  if (n)
    {
      if (want (n, JSON_ARRAY, "linux.namespaces", err) < 0)
        return -1;
      s->namespaces = xmalloc0 (n->len * sizeof (*s->namespaces));
      for (size_t i = 0; i < n->len; i++)
        {
          const char *type = json_get_string (n->items[i], "type"), *path = json_get_string (n->items[i], "path");
          int flag = 0;
          for (size_t j = 0; type && j < sizeof (namespace_table) / sizeof (namespace_table[0]); j++)
            if (strcmp (type, namespace_table[j].name) == 0)
              flag = namespace_table[j].flag;
          if (flag == 0)
            return berth_make_error (err, 0, "linux.namespaces: unknown namespace type `%s`", type ? type : "");
          if (spec_find_namespace (s, flag))
            return berth_make_error (err, 0, "linux.namespaces: namespace `%s` listed twice", type);
          if (path && *path)
            {
              if (check_abs_path ("namespace path", path, err) < 0)
                return berth_error_wrap (err, "linux.namespaces");
              if (access (path, F_OK) < 0)
                return berth_make_error (err, errno, "linux.namespaces: %s namespace path `%s`", type, path);
            }
          s->namespaces[s->n_namespaces].flag = flag;
          s->namespaces[s->n_namespaces].path = path && *path ? xstrdup (path) : NULL;
          s->n_namespaces++;
        }
    }
  if (parse_idmaps (json_get (l, "uidMappings"), "linux.uidMappings", &s->uid_mappings, &s->n_uid_mappings, err) < 0
      || parse_idmaps (json_get (l, "gidMappings"), "linux.gidMappings", &s->gid_mappings, &s->n_gid_mappings, err) < 0)
    return -1;
  if ((s->n_uid_mappings || s->n_gid_mappings) && !spec_find_namespace (s, CLONE_NEWUSER))
    return berth_make_error (err, 0, "linux.uidMappings set without a user namespace");

  n = json_get (l, "devices");
  if (n)
    {
      if (want (n, JSON_ARRAY, "linux.devices", err) < 0)
        return -1;
      s->devices = xmalloc0 (n->len * sizeof (*s->devices));
      for (size_t i = 0; i < n->len; i++)
        {
          struct spec_device *d = &s->devices[s->n_devices++];
          const char *path = json_get_string (n->items[i], "path"), *type = json_get_string (n->items[i], "type");
          if (check_abs_path ("linux.devices[].path", path, err) < 0)
            return -1;
          d->path = xstrdup (path);
          d->type = type ? type[0] : 0;
          if (d->type != 'c' && d->type != 'b' && d->type != 'u' && d->type != 'p')
            return berth_make_error (err, 0, "linux.devices `%s`: bad type `%s`", path, type ? type : "");
          d->major = d->minor = 0;
          if (d->type != 'p'
              && (get_int (json_get (n->items[i], "major"), "linux.devices[].major", 0, INT32_MAX, &d->major, err) < 0
                  || get_int (json_get (n->items[i], "minor"), "linux.devices[].minor", 0, INT32_MAX, &d->minor, err) < 0))
            return -1;
          d->mode = 0666;
          if (json_get (n->items[i], "fileMode"))
            {
              if (get_int (json_get (n->items[i], "fileMode"), "linux.devices[].fileMode", 0, 07777, &v, err) < 0)
                return -1;
              d->mode = v;
            }
          if (json_get (n->items[i], "uid") && get_int (json_get (n->items[i], "uid"), "linux.devices[].uid", 0, UINT32_MAX, &v, err) == 0)
            d->uid = v;
          if (json_get (n->items[i], "gid") && get_int (json_get (n->items[i], "gid"), "linux.devices[].gid", 0, UINT32_MAX, &v, err) == 0)
            d->gid = v;
        }
    }
  if (get_string_array (json_get (l, "maskedPaths"), "linux.maskedPaths", &s->masked_paths, &s->n_masked_paths, err) < 0
      || get_string_array (json_get (l, "readonlyPaths"), "linux.readonlyPaths", &s->readonly_paths, &s->n_readonly_paths, err) < 0)
    return -1;
  for (size_t i = 0; i < s->n_masked_paths; i++)
    if (check_abs_path ("linux.maskedPaths entry", s->masked_paths[i], err) < 0)
      return -1;
  for (size_t i = 0; i < s->n_readonly_paths; i++)
    if (check_abs_path ("linux.readonlyPaths entry", s->readonly_paths[i], err) < 0)
      return -1;

  n = json_get (l, "sysctl");
  if (n)
    {
      if (want (n, JSON_OBJECT, "linux.sysctl", err) < 0)
        return -1;
      s->sysctl = xmalloc0 (n->len * sizeof (*s->sysctl));
      for (size_t i = 0; i < n->len; i++)
        {
          if (n->items[i]->type != JSON_STRING)
            return berth_make_error (err, 0, "linux.sysctl `%s` must be a string", n->keys[i]);
          if (strstr (n->keys[i], "..") || n->keys[i][0] == '/' || n->keys[i][0] == '.' || n->keys[i][0] == '\0')
            return berth_make_error (err, 0, "linux.sysctl: bad key `%s`", n->keys[i]);
          s->sysctl[s->n_sysctl].key = xstrdup (n->keys[i]);
          s->sysctl[s->n_sysctl].value = xstrdup (n->items[i]->string);
          s->n_sysctl++;
        }
    }
  if (json_get_string (l, "cgroupsPath"))
    {
      const char *cp = json_get_string (l, "cgroupsPath");
      if (strstr (cp, "..") || strchr (cp, ':'))
        return berth_make_error (err, 0, "linux.cgroupsPath `%s`: only plain paths are supported (no `..`, no systemd slices)", cp);
      if (*cp)
        s->cgroups_path = xstrdup (cp);
    }
  prop = json_get_string (l, "rootfsPropagation");
  if (prop && *prop)
    {
      const struct mount_option *mo = find_mount_option (prop);
      if (mo == NULL || !mo->propagation)
        return berth_make_error (err, 0, "linux.rootfsPropagation: unknown propagation `%s`", prop);
      s->rootfs_propagation = mo->flag;
    }
  s->seccomp = json_get (l, "seccomp");
  if (json_get (l, "resources") && parse_resources (&s->resources, json_get (l, "resources"), err) < 0)
    return -1;
  if (json_get (l, "intelRdt"))
    return berth_make_error (err, 0, "linux.intelRdt is not supported");
  return 0;
}
