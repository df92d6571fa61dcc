#include "spec.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "caps.h"
#include "spec-internal.h"
#include "utils.h"

static const struct
{
  const char *name;
  int resource;
} rlimit_table[] = {
  { "RLIMIT_AS", RLIMIT_AS },           { "RLIMIT_CORE", RLIMIT_CORE },
  { "RLIMIT_CPU", RLIMIT_CPU },         { "RLIMIT_DATA", RLIMIT_DATA },
  { "RLIMIT_FSIZE", RLIMIT_FSIZE },     { "RLIMIT_LOCKS", RLIMIT_LOCKS },
  { "RLIMIT_MEMLOCK", RLIMIT_MEMLOCK }, { "RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE },
  { "RLIMIT_NICE", RLIMIT_NICE },       { "RLIMIT_NOFILE", RLIMIT_NOFILE },
  { "RLIMIT_NPROC", RLIMIT_NPROC },     { "RLIMIT_RSS", RLIMIT_RSS },
  { "RLIMIT_RTPRIO", RLIMIT_RTPRIO },   { "RLIMIT_RTTIME", RLIMIT_RTTIME },
  { "RLIMIT_SIGPENDING", RLIMIT_SIGPENDING }, { "RLIMIT_STACK", RLIMIT_STACK },
};

static const struct mount_option mount_options[] = {
  { "ro", false, MS_RDONLY, false },         { "rw", true, MS_RDONLY, false },
  { "nosuid", false, MS_NOSUID, false },     { "suid", true, MS_NOSUID, false },
  { "nodev", false, MS_NODEV, false },       { "dev", true, MS_NODEV, false },
  { "noexec", false, MS_NOEXEC, false },     { "exec", true, MS_NOEXEC, false },
  { "sync", false, MS_SYNCHRONOUS, false },  { "async", true, MS_SYNCHRONOUS, false },
  { "dirsync", false, MS_DIRSYNC, false },   { "remount", false, MS_REMOUNT, false },
  { "mand", false, MS_MANDLOCK, false },     { "nomand", true, MS_MANDLOCK, false },
  { "atime", true, MS_NOATIME, false },      { "noatime", false, MS_NOATIME, false },
  { "diratime", true, MS_NODIRATIME, false }, { "nodiratime", false, MS_NODIRATIME, false },
  { "relatime", false, MS_RELATIME, false }, { "norelatime", true, MS_RELATIME, false },
  { "strictatime", false, MS_STRICTATIME, false }, { "nostrictatime", true, MS_STRICTATIME, false },
  { "lazytime", false, MS_LAZYTIME, false }, { "nolazytime", true, MS_LAZYTIME, false },
  { "bind", false, MS_BIND, false },         { "rbind", false, MS_BIND | MS_REC, false },
  { "private", false, MS_PRIVATE, true },    { "rprivate", false, MS_PRIVATE | MS_REC, true },
  { "shared", false, MS_SHARED, true },      { "rshared", false, MS_SHARED | MS_REC, true },
  { "slave", false, MS_SLAVE, true },        { "rslave", false, MS_SLAVE | MS_REC, true },
  { "unbindable", false, MS_UNBINDABLE, true }, { "runbindable", false, MS_UNBINDABLE | MS_REC, true },
};

const struct mount_option *
find_mount_option (const char *name)
{
  for (size_t i = 0; i < sizeof (mount_options) / sizeof (mount_options[0]); i++)
    if (strcmp (mount_options[i].name, name) == 0)
      return &mount_options[i];
  return NULL;
}

/* --- typed getters with clear messages --- */

int
want (json_node *n, enum json_type t, const char *what, berth_error_t *err)
{
  static const char *names[] = { "null", "a boolean", "a number", "a string", "an array", "an object" };
  if (n == NULL || n->type != t)
    return berth_make_error (err, 0, "%s must be %s", what, names[t]);
  return 0;
}

int
get_int (json_node *n, const char *what, int64_t min, int64_t max, int64_t *out, berth_error_t *err)
{
  if (n == NULL || n->type != JSON_NUMBER || !n->is_int)
    return berth_make_error (err, 0, "%s must be an integer", what);
  if (n->integer < min || n->integer > max)
    return berth_make_error (err, 0, "%s = %lld is out of range", what, (long long) n->integer);
  *out = n->integer;
  return 0;
}

int
get_uint64 (json_node *n, const char *what, uint64_t *out, berth_error_t *err)
{
  if (n == NULL || n->type != JSON_NUMBER || !n->is_int || (n->integer < 0 && n->uinteger <= INT64_MAX))
    return berth_make_error (err, 0, "%s must be a non-negative integer", what);
  *out = n->uinteger;
  return 0;
}

int
get_string_array (json_node *n, const char *what, char ***out, size_t *count, berth_error_t *err)
{
  if (n == NULL)
    {
      *out = xmalloc0 (sizeof (char *));
      *count = 0;
      return 0;
    }
  if (want (n, JSON_ARRAY, what, err) < 0)
    return -1;
  *out = xmalloc0 ((n->len + 1) * sizeof (char *));
  *count = n->len;
  for (size_t i = 0; i < n->len; i++)
    {
      if (n->items[i]->type != JSON_STRING)
        return berth_make_error (err, 0, "%s[%zu] must be a string", what, i);
      (*out)[i] = xstrdup (n->items[i]->string);
    }
  return 0;
}

void
free_string_array (char **a, size_t n)
{
  if (a == NULL)
    return;
  for (size_t i = 0; i < n; i++)
    free (a[i]);
  free (a);
}

int
check_abs_path (const char *what, const char *path, berth_error_t *err)
{
  if (path == NULL || path[0] != '/')
    return berth_make_error (err, 0, "%s `%s` must be an absolute path", what, path ? path : "");
  for (const char *p = path; *p; p++)
    if (*p == '\n')
      return berth_make_error (err, 0, "%s contains a newline", what);
  return 0;
}

/* --- sections --- */

static int
parse_caps_set (json_node *caps, const char *name, uint64_t *out, berth_error_t *err)
{
  json_node *set = json_get (caps, name);
  int last = cap_last_cap ();
  *out = 0;
  if (set == NULL)
    return 0;
  if (want (set, JSON_ARRAY, name, err) < 0)
    return berth_error_wrap (err, "process.capabilities");
  for (size_t i = 0; i < set->len; i++)
    {
      int c;
      if (set->items[i]->type != JSON_STRING)
        return berth_make_error (err, 0, "process.capabilities.%s[%zu] must be a string", name, i);
      c = cap_from_name (set->items[i]->string);
      if (c < 0)
        return berth_make_error (err, 0, "process.capabilities.%s: unknown capability `%s`", name, set->items[i]->string);
      if (c <= last)
        *out |= 1ULL << c;
    }
  return 0;
}

static int
parse_process (struct spec *s, json_node *p, berth_error_t *err)
{
  json_node *n, *user;
  int64_t v;

  if (want (p, JSON_OBJECT, "process", err) < 0)
    return -1;
  n = json_get (p, "terminal");
  s->terminal = n && n->type == JSON_BOOL && n->boolean;
  if (get_string_array (json_get (p, "args"), "process.args", &s->args, &s->n_args, err) < 0)
    return -1;
  if (s->n_args == 0)
    return berth_make_error (err, 0, "process.args must not be empty");
  if (get_string_array (json_get (p, "env"), "process.env", &s->env, &s->n_env, err) < 0)
    return -1;
  s->cwd = xstrdup (json_get_string (p, "cwd") ? json_get_string (p, "cwd") : "/");
  if (check_abs_path ("process.cwd", s->cwd, err) < 0)
    return -1;

  user = json_get (p, "user");
  if (user)
    {
      if (json_get (user, "uid") && get_int (json_get (user, "uid"), "process.user.uid", 0, UINT32_MAX - 1, &v, err) < 0)
        return -1;
      s->uid = json_get (user, "uid") ? (uid_t) v : 0;
      if (json_get (user, "gid") && get_int (json_get (user, "gid"), "process.user.gid", 0, UINT32_MAX - 1, &v, err) < 0)
        return -1;
      s->gid = json_get (user, "gid") ? (gid_t) v : 0;
      n = json_get (user, "additionalGids");
      if (n)
        {
          if (want (n, JSON_ARRAY, "process.user.additionalGids", err) < 0)
            return -1;
          s->additional_gids = xmalloc0 (n->len * sizeof (gid_t));
          for (size_t i = 0; i < n->len; i++)
            {
              if (get_int (n->items[i], "process.user.additionalGids[]", 0, UINT32_MAX - 1, &v, err) < 0)
                return -1;
              s->additional_gids[s->n_additional_gids++] = (gid_t) v;
            }
        }
    }

  n = json_get (p, "rlimits");
  if (n)
    {
      if (want (n, JSON_ARRAY, "process.rlimits", err) < 0)
        return -1;
      s->rlimits = xmalloc0 (n->len * sizeof (*s->rlimits));
      for (size_t i = 0; i < n->len; i++)
        {
          const char *type = json_get_string (n->items[i], "type");
          struct spec_rlimit *r = &s->rlimits[s->n_rlimits];
          r->resource = -1;
          for (size_t j = 0; type && j < sizeof (rlimit_table) / sizeof (rlimit_table[0]); j++)
            if (strcmp (type, rlimit_table[j].name) == 0)
              r->resource = rlimit_table[j].resource;
          if (r->resource < 0)
            return berth_make_error (err, 0, "process.rlimits: unknown rlimit type `%s`", type ? type : "");
          if (get_uint64 (json_get (n->items[i], "soft"), "process.rlimits[].soft", &r->soft, err) < 0
              || get_uint64 (json_get (n->items[i], "hard"), "process.rlimits[].hard", &r->hard, err) < 0)
            return -1;
          if (r->soft > r->hard)
            return berth_make_error (err, 0, "process.rlimits: %s soft limit %llu is above the hard limit %llu", type,
                                     (unsigned long long) r->soft, (unsigned long long) r->hard);
          s->n_rlimits++;
        }
    }

  n = json_get (p, "noNewPrivileges");
  s->no_new_privileges = n && n->type == JSON_BOOL && n->boolean;
  if (user && json_get (user, "umask"))
    {
      if (get_int (json_get (user, "umask"), "process.user.umask", 0, 0777, &v, err) < 0)
        return -1;
      s->has_umask = true;
      s->umask = (mode_t) v;
    }

  n = json_get (p, "capabilities");
  if (n)
    {
      s->has_caps = true;
      if (parse_caps_set (n, "bounding", &s->caps.bounding, err) < 0
          || parse_caps_set (n, "effective", &s->caps.effective, err) < 0
          || parse_caps_set (n, "permitted", &s->caps.permitted, err) < 0
          || parse_caps_set (n, "inheritable", &s->caps.inheritable, err) < 0
          || parse_caps_set (n, "ambient", &s->caps.ambient, err) < 0)
        return -1;
    }

  n = json_get (p, "oomScoreAdj");
  if (n)
    {
      if (get_int (n, "process.oomScoreAdj", -1000, 1000, &v, err) < 0)
        return -1;
      s->has_oom_score_adj = true;
      s->oom_score_adj = (int) v;
    }
  /* apparmorProfile and selinuxLabel: neither LSM is enabled for containers on
   * Berth hosts; accepted and not applied. */
  return 0;
}

static int
parse_mount (struct spec_mount *m, json_node *n, size_t i, berth_error_t *err)
{
  json_node *opts;
  const char *dest = json_get_string (n, "destination");
  size_t datalen = 0;

  if (dest == NULL)
    return berth_make_error (err, 0, "mounts[%zu].destination is missing", i);
  if (check_abs_path ("mount destination", dest, err) < 0)
    return -1;
  m->destination = xstrdup (dest);
  m->type = json_get_string (n, "type") ? xstrdup (json_get_string (n, "type")) : NULL;
  m->source = json_get_string (n, "source") ? xstrdup (json_get_string (n, "source")) : NULL;
  opts = json_get (n, "options");
  if (opts && want (opts, JSON_ARRAY, "mount options", err) < 0)
    return berth_error_wrap (err, "mount `%s`", dest);
  m->data = xmalloc0 (1);
  for (size_t j = 0; opts && j < opts->len; j++)
    {
      const char *o;
      const struct mount_option *mo;
      if (opts->items[j]->type != JSON_STRING)
        return berth_make_error (err, 0, "mount `%s`: options must be strings", dest);
      o = opts->items[j]->string;
      mo = find_mount_option (o);
      if (mo && mo->propagation)
        m->propagation = mo->flag;
      else if (mo && mo->clear)
        m->flags &= ~mo->flag;
      else if (mo)
        m->flags |= mo->flag;
      else if (strcmp (o, "tmpcopyup") == 0 || strcmp (o, "idmap") == 0 || strcmp (o, "ridmap") == 0)
        return berth_make_error (err, 0, "mount `%s`: option `%s` is not supported", dest, o);
      else
        {
          size_t l = strlen (o);
          m->data = realloc (m->data, datalen + l + 2);
          if (m->data == NULL)
            abort ();
          if (datalen)
            m->data[datalen++] = ',';
          memcpy (m->data + datalen, o, l + 1);
          datalen += l;
        }
    }
  m->bind = (m->flags & MS_BIND) || (m->type && strcmp (m->type, "bind") == 0);
  if (m->bind)
    m->flags |= MS_BIND;
  if (m->type == NULL && !m->bind)
    return berth_make_error (err, 0, "mount `%s`: no type and not a bind mount", dest);
  if (m->bind && (m->source == NULL || m->source[0] == '\0'))
    return berth_make_error (err, 0, "mount `%s`: a bind mount needs a source", dest);
  return 0;
}

/* The overlay rootfs the init mounts (spec.h). Only the three options overlayfs
 * needs for a container are accepted, and the base must be absolute. */
static int
parse_overlay_rootfs (struct spec *s, berth_error_t *err)
{
  const char *options = json_get_string (s->annotations, "berth.rootfs.overlay");
  const char *base = json_get_string (s->annotations, "berth.rootfs.overlay-base");
  if (options == NULL && base == NULL)
    return 0;
  if (options == NULL || base == NULL || *options == '\0' || base[0] != '/')
    return berth_make_error (err, 0, "annotations: berth.rootfs.overlay needs berth.rootfs.overlay-base, an absolute path");
  if (strlen (options) >= 4096)
    return berth_make_error (err, 0, "annotations: berth.rootfs.overlay is longer than a page");
  for (const char *p = options; *p;)
    {
      size_t len = strcspn (p, ",");
      if (!((len > 9 && strncmp (p, "lowerdir=", 9) == 0) || (len > 9 && strncmp (p, "upperdir=", 9) == 0)
            || (len > 8 && strncmp (p, "workdir=", 8) == 0)))
        return berth_make_error (err, 0, "annotations: berth.rootfs.overlay: `%.*s` is not lowerdir=, upperdir= or workdir=",
                                 (int) len, p);
      p += len + (p[len] == ',');
    }
  s->overlay_options = options;
  s->overlay_base = base;
  return 0;
}

static int
parse_spec (struct spec *s, berth_error_t *err)
{
  json_node *root = json_get (s->json, "root"), *n;
  const char *rp;

  if (s->json->type != JSON_OBJECT)
    return berth_make_error (err, 0, "config.json is not a JSON object");
  s->oci_version = xstrdup (json_get_string (s->json, "ociVersion"));
  if (strncmp (s->oci_version, "1.", 2) != 0)
    return berth_make_error (err, 0, "ociVersion `%s` is not supported (need 1.x)", s->oci_version);
  if (parse_process (s, json_get (s->json, "process"), err) < 0)
    return -1;
  rp = json_get_string (root, "path");
  if (rp == NULL || *rp == '\0')
    return berth_make_error (err, 0, "root.path is missing");
  s->root_path = rp[0] == '/' ? xstrdup (rp) : xasprintf ("%s/%s", s->bundle, rp);
  {
    struct stat st;
    if (stat (s->root_path, &st) < 0)
      return berth_make_error (err, errno, "rootfs `%s`", s->root_path);
    if (!S_ISDIR (st.st_mode))
      return berth_make_error (err, 0, "rootfs `%s` is not a directory", s->root_path);
  }
  n = json_get (root, "readonly");
  s->root_readonly = n && n->type == JSON_BOOL && n->boolean;
  if (json_get_string (s->json, "hostname"))
    s->hostname = xstrdup (json_get_string (s->json, "hostname"));
  n = json_get (s->json, "mounts");
  if (n)
    {
      if (want (n, JSON_ARRAY, "mounts", err) < 0)
        return -1;
      s->mounts = xmalloc0 (n->len * sizeof (*s->mounts));
      for (size_t i = 0; i < n->len; i++)
        if (parse_mount (&s->mounts[s->n_mounts++], n->items[i], i, err) < 0)
          return -1;
    }
  if (spec_parse_linux (s, json_get (s->json, "linux"), err) < 0)
    return -1;
  if (s->hostname && *s->hostname && !spec_find_namespace (s, CLONE_NEWUTS))
    return berth_make_error (err, 0, "hostname is set but there is no new uts namespace");
  s->annotations = json_get (s->json, "annotations");
  if (parse_overlay_rootfs (s, err) < 0)
    return -1;
  if (json_get (s->json, "hooks"))
    {
      json_node *h = json_get (s->json, "hooks");
      for (size_t i = 0; i < h->len; i++)
        if (h->items[i]->type == JSON_ARRAY && h->items[i]->len > 0)
          return berth_make_error (err, 0, "hooks are not supported (hooks.%s)", h->keys[i]);
    }
  return 0;
}

int
spec_load (const char *bundle, struct spec **out, berth_error_t *err)
{
  cleanup_spec struct spec *s = xmalloc0 (sizeof (*s));
  cleanup_free char *text = NULL;
  cleanup_free char *path = NULL;
  char abs[PATH_MAX];

  if (realpath (bundle, abs) == NULL)
    return berth_make_error (err, errno, "bundle `%s`", bundle);
  s->bundle = xstrdup (abs);
  path = xasprintf ("%s/config.json", abs);
  if (read_file_at (AT_FDCWD, path, &text, NULL, err) < 0)
    return -1;
  s->json = json_parse (text, err);
  if (s->json == NULL)
    return berth_error_wrap (err, "config.json");
  if (parse_spec (s, err) < 0)
    return berth_error_wrap (err, "config.json");
  *out = steal_pointer (&s);
  return 0;
}

const struct spec_namespace *
spec_find_namespace (const struct spec *s, int flag)
{
  for (size_t i = 0; i < s->n_namespaces; i++)
    if (s->namespaces[i].flag == flag)
      return &s->namespaces[i];
  return NULL;
}

void
spec_free (struct spec *s)
{
  if (s == NULL)
    return;
  json_free (s->json);
  free (s->oci_version);
  free (s->bundle);
  free_string_array (s->args, s->n_args);
  free_string_array (s->env, s->n_env);
  free (s->cwd);
  free (s->additional_gids);
  free (s->rlimits);
  free (s->hostname);
  free (s->root_path);
  for (size_t i = 0; i < s->n_mounts; i++)
    {
      free (s->mounts[i].destination);
      free (s->mounts[i].type);
      free (s->mounts[i].source);
      free (s->mounts[i].data);
    }
  free (s->mounts);
  for (size_t i = 0; i < s->n_namespaces; i++)
    free (s->namespaces[i].path);
  free (s->namespaces);
  free (s->uid_mappings);
  free (s->gid_mappings);
  for (size_t i = 0; i < s->n_devices; i++)
    free (s->devices[i].path);
  free (s->devices);
  free_string_array (s->masked_paths, s->n_masked_paths);
  free_string_array (s->readonly_paths, s->n_readonly_paths);
  for (size_t i = 0; i < s->n_sysctl; i++)
    {
      free (s->sysctl[i].key);
      free (s->sysctl[i].value);
    }
  free (s->sysctl);
  free (s->cgroups_path);
  free (s->resources.cpuset_cpus);
  free (s->resources.cpuset_mems);
  free (s->resources.device_rules);
  free (s);
}

void
cleanup_specp (struct spec **s)
{
  spec_free (*s);
}
