#include "cgroup-internal.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "utils.h"

static bool
has_token (const char *list, const char *tok)
{
  size_t l = strlen (tok);
  for (const char *p = list; p && *p;)
    {
      const char *c = strchr (p, ',');
      size_t n = c ? (size_t) (c - p) : strlen (p);
      if (n == l && strncmp (p, tok, l) == 0)
        return true;
      p = c ? c + 1 : NULL;
    }
  return false;
}

/* mountinfo: id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
static int
read_hierarchies (struct cgroup *cg, berth_error_t *err)
{
  cleanup_free char *text = NULL;
  char *save = NULL;
  size_t cap = 0;
  bool have_v1 = false, have_v2 = false;

  if (read_file_at (AT_FDCWD, "/proc/self/mountinfo", &text, NULL, err) < 0)
    return berth_error_wrap (err, "detect cgroups");
  for (char *line = strtok_r (text, "\n", &save); line; line = strtok_r (NULL, "\n", &save))
    {
      char *fields[16], *sep, *post, *fstype, *superopts, *tok, *s2 = NULL;
      int nf = 0;
      sep = strstr (line, " - ");
      if (sep == NULL)
        continue;
      *sep = '\0';
      post = sep + 3;
      for (tok = strtok_r (line, " ", &s2); tok && nf < 16; tok = strtok_r (NULL, " ", &s2))
        fields[nf++] = tok;
      if (nf < 5)
        continue;
      fstype = strtok_r (post, " ", &s2);
      strtok_r (NULL, " ", &s2); /* source */
      superopts = strtok_r (NULL, " ", &s2);
      if (fstype == NULL)
        continue;
      bool v2 = strcmp (fstype, "cgroup2") == 0;
      if (!v2 && strcmp (fstype, "cgroup") != 0)
        continue;
      /* Controllers of a v1 mount: its super options minus rw/ro and flags with '='
       * other than name=. */
      cleanup_free char *ctrl = NULL;
      if (!v2)
        {
          size_t cl = 0;
          ctrl = xmalloc0 (strlen (superopts ? superopts : "") + 1);
          char *s3 = NULL;
          for (char *o = strtok_r (superopts, ",", &s3); o; o = strtok_r (NULL, ",", &s3))
            {
              if (strcmp (o, "rw") == 0 || strcmp (o, "ro") == 0 || strcmp (o, "clone_children") == 0
                  || has_prefix (o, "release_agent=") || strcmp (o, "noprefix") == 0 || strcmp (o, "xattr") == 0
                  || strcmp (o, "cpuset_v2_mode") == 0 || strcmp (o, "favordynmods") == 0)
                continue;
              if (strchr (o, '=') && !has_prefix (o, "name="))
                continue;
              if (cl)
                ctrl[cl++] = ',';
              strcpy (ctrl + cl, o);
              cl += strlen (o);
            }
        }
      /* One mount per hierarchy: the first seen wins. */
      bool dup = false;
      for (size_t i = 0; i < cg->n_h; i++)
        if (cg->h[i].v2 == v2 && (v2 || strcmp (cg->h[i].controllers, ctrl) == 0))
          dup = true;
      if (dup)
        continue;
      if (cg->n_h == cap)
        {
          cap = cap ? cap * 2 : 16;
          cg->h = realloc (cg->h, cap * sizeof (*cg->h));
          if (cg->h == NULL)
            abort ();
        }
      struct cgroup_hierarchy *h = &cg->h[cg->n_h++];
      memset (h, 0, sizeof (*h));
      h->mountpoint = xstrdup (fields[4]);
      h->controllers = v2 ? NULL : steal_pointer (&ctrl);
      h->v2 = v2;
      h->dir = xasprintf ("%s%s", h->mountpoint, cg->path);
      if (v2)
        have_v2 = true;
      else
        have_v1 = true;
    }
  if (!have_v1 && !have_v2)
    return berth_make_error (err, 0, "detect cgroups: no cgroup filesystem is mounted");
  cg->mode = have_v1 ? (have_v2 ? CGROUP_MODE_HYBRID : CGROUP_MODE_V1) : CGROUP_MODE_V2;
  cg->ops = cg->mode == CGROUP_MODE_V2 ? &cgroup_ops_v2 : cg->mode == CGROUP_MODE_HYBRID ? &cgroup_ops_hybrid : &cgroup_ops_v1;
  if (cg->mode == CGROUP_MODE_V2)
    {
      /* Only the first cgroup2 mount matters. */
      for (size_t i = 0; i < cg->n_h; i++)
        if (cg->h[i].v2)
          {
            struct cgroup_hierarchy t = cg->h[0];
            cg->h[0] = cg->h[i];
            cg->h[i] = t;
            break;
          }
    }
  return 0;
}

int
cgroup_open (const char *path, struct cgroup **out, berth_error_t *err)
{
  cleanup_cgroup struct cgroup *cg = xmalloc0 (sizeof (*cg));
  if (path == NULL || path[0] != '/' || strstr (path, ".."))
    return berth_make_error (err, 0, "cgroupsPath `%s` must be an absolute path", path ? path : "");
  cg->path = xstrdup (path);
  /* no trailing slash */
  for (size_t l = strlen (cg->path); l > 1 && cg->path[l - 1] == '/'; l--)
    cg->path[l - 1] = '\0';
  if (read_hierarchies (cg, err) < 0)
    return -1;
  *out = steal_pointer (&cg);
  return 0;
}

void
cgroup_free (struct cgroup *cg)
{
  if (cg == NULL)
    return;
  for (size_t i = 0; i < cg->n_h; i++)
    {
      free (cg->h[i].mountpoint);
      free (cg->h[i].controllers);
      free (cg->h[i].dir);
    }
  free (cg->h);
  free (cg->path);
  free (cg);
}

void
cleanup_cgroupp (struct cgroup **cg)
{
  cgroup_free (*cg);
}

enum cgroup_mode
cgroup_mode (const struct cgroup *cg)
{
  return cg->mode;
}

const char *
cgroup_mode_name (const struct cgroup *cg)
{
  return cg->ops->name;
}

const struct cgroup_hierarchy *
cgroup_hierarchies (const struct cgroup *cg, size_t *n)
{
  *n = cg->n_h;
  return cg->h;
}

struct cgroup_hierarchy *
cgroup_find_v1 (struct cgroup *cg, const char *controller)
{
  for (size_t i = 0; i < cg->n_h; i++)
    if (!cg->h[i].v2 && has_token (cg->h[i].controllers, controller))
      return &cg->h[i];
  return NULL;
}

struct cgroup_hierarchy *
cgroup_find_v2 (struct cgroup *cg)
{
  for (size_t i = 0; i < cg->n_h; i++)
    if (cg->h[i].v2)
      return &cg->h[i];
  return NULL;
}

int
cgroup_write (const char *dir, const char *file, const char *value, berth_error_t *err)
{
  cleanup_free char *path = xasprintf ("%s/%s", dir, file);
  cleanup_close int fd = open (path, O_WRONLY | O_CLOEXEC);
  size_t len = strlen (value);
  ssize_t n;

  if (fd < 0)
    return berth_make_error (err, errno, "open `%s`", path);
  n = write (fd, value, len);
  if (n < 0 || (size_t) n != len)
    return berth_make_error (err, n < 0 ? errno : EIO, "write `%s` to `%s`", value, path);
  return 0;
}

bool
cgroup_has_file (const char *dir, const char *file)
{
  cleanup_free char *path = xasprintf ("%s/%s", dir, file);
  return access (path, F_OK) == 0;
}

int
cgroup_write_pid (const char *dir, pid_t pid, berth_error_t *err)
{
  char buf[32];
  snprintf (buf, sizeof (buf), "%d", pid);
  return cgroup_write (dir, "cgroup.procs", buf, err);
}

static bool
in_use (const char *dir)
{
  cleanup_free char *path = xasprintf ("%s/cgroup.procs", dir);
  cleanup_free char *text = NULL;
  berth_error_t ignored = NULL;
  if (read_file_at (AT_FDCWD, path, &text, NULL, &ignored) < 0)
    {
      berth_error_release (&ignored);
      return false;
    }
  return text[0] != '\0';
}

int
cgroup_create (struct cgroup *cg, berth_error_t *err)
{
  /* Another container's cgroup is not ours to fill, nor to clean up on failure. */
  for (size_t i = 0; i < cg->n_h; i++)
    if (in_use (cg->h[i].dir))
      return berth_make_error (err, EBUSY, "cgroup `%s` is in use by other processes", cg->h[i].dir);
  if (cg->ops->create (cg, err) < 0)
    {
      berth_error_t ignored = NULL;
      cgroup_destroy (cg, &ignored);
      berth_error_release (&ignored);
      return berth_error_wrap (err, "create cgroup %s (%s)", cg->path, cg->ops->name);
    }
  return 0;
}

int
cgroup_enter (struct cgroup *cg, pid_t pid, berth_error_t *err)
{
  if (cg->ops->enter (cg, pid, err) < 0)
    return berth_error_wrap (err, "join cgroup %s", cg->path);
  return 0;
}

int
cgroup_enter_self (struct cgroup *cg, bool placed_by_clone, berth_error_t *err)
{
  if (cg->ops->enter_self (cg, placed_by_clone, err) < 0)
    return berth_error_wrap (err, "join cgroup %s", cg->path);
  return 0;
}

int
cgroup_clone_fd (struct cgroup *cg)
{
  struct cgroup_hierarchy *h = cgroup_find_v2 (cg);
  return h ? open (h->dir, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
}

int
cgroup_apply (struct cgroup *cg, const struct spec_resources *r, berth_error_t *err)
{
  if (cg->ops->apply (cg, r, err) < 0)
    return berth_error_wrap (err, "apply linux.resources");
  return 0;
}

static int
read_pids (const char *dir, pid_t **pids, size_t *n)
{
  cleanup_free char *path = xasprintf ("%s/cgroup.procs", dir);
  cleanup_free char *text = NULL;
  berth_error_t err = NULL;
  size_t cap = 0;
  char *save = NULL;

  *pids = NULL;
  *n = 0;
  if (read_file_at (AT_FDCWD, path, &text, NULL, &err) < 0)
    {
      int e = err->status;
      berth_error_release (&err);
      return e == ENOENT ? 0 : -1;
    }
  for (char *t = strtok_r (text, "\n", &save); t; t = strtok_r (NULL, "\n", &save))
    {
      if (*n == cap)
        {
          cap = cap ? cap * 2 : 32;
          *pids = realloc (*pids, cap * sizeof (pid_t));
          if (*pids == NULL)
            abort ();
        }
      (*pids)[(*n)++] = atoi (t);
    }
  return 0;
}

int
cgroup_kill_all (struct cgroup *cg, int sig, berth_error_t *err)
{
  const char *dir = cg->ops->procs_dir (cg);
  cleanup_free pid_t *pids = NULL;
  size_t n = 0;
  int killed = 0;

  if (dir == NULL)
    return 0;
  if (read_pids (dir, &pids, &n) < 0)
    return berth_make_error (err, errno, "list processes of cgroup %s", cg->path);
  for (size_t i = 0; i < n; i++)
    if (pids[i] > 0 && kill (pids[i], sig) == 0)
      killed++;
  return killed;
}

int
cgroup_destroy (struct cgroup *cg, berth_error_t *err)
{
  int first_errno = 0;
  const char *first_dir = NULL;

  for (int attempt = 0; attempt < 200; attempt++)
    {
      bool busy = false;
      first_errno = 0;
      for (size_t i = 0; i < cg->n_h; i++)
        {
          if (rmdir (cg->h[i].dir) == 0 || errno == ENOENT)
            continue;
          if (errno == EBUSY)
            busy = true;
          else if (first_errno == 0)
            {
              first_errno = errno;
              first_dir = cg->h[i].dir;
            }
        }
      if (!busy)
        break;
      if (attempt == 0 || attempt % 20 == 0)
        {
          berth_error_t ignored = NULL;
          cgroup_kill_all (cg, SIGKILL, &ignored);
          berth_error_release (&ignored);
        }
      struct timespec ts = { 0, attempt < 20 ? 1000000 : 10000000 };
      nanosleep (&ts, NULL);
      if (attempt == 199)
        return berth_make_error (err, EBUSY, "remove cgroup %s", cg->path);
    }
  if (first_errno)
    return berth_make_error (err, first_errno, "remove cgroup `%s`", first_dir);
  return 0;
}

int
cgroup_apply_devices (struct cgroup *cg, const struct spec_resources *r, berth_error_t *err)
{
  if (r->n_device_rules && cg->ops->apply_devices (cg, r, err) < 0)
    return berth_error_wrap (err, "apply linux.resources.devices");
  return 0;
}

bool
cgroup_oom_killed (struct cgroup *cg)
{
  return cg->ops->oom_killed (cg);
}

bool
cgroup_oom_counted (const char *dir, const char *file)
{
  cleanup_free char *path = xasprintf ("%s/%s", dir, file);
  cleanup_free char *text = NULL;
  berth_error_t err = NULL;
  const char *p;

  if (read_file_at (AT_FDCWD, path, &text, NULL, &err) < 0)
    {
      berth_error_release (&err);
      return false;
    }
  p = strstr (text, "oom_kill ");
  return p && atoi (p + 9) > 0;
}
