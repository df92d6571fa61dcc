#include "init.h"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <linux/magic.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>
#include "caps.h"
#include "log.h"
#include "mounts.h"
#include "seccomp-filter.h"
#include "sync.h"
#include "utils.h"
#include "timing.h"

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

static __attribute__ ((noreturn)) void
fail (struct init_config *c, berth_error_t *err)
{
  sync_send (c->sync_fd, SYNC_ERROR, (*err)->status, (*err)->msg);
  _exit (1);
}

static const char *
env_get (char **env, size_t n, const char *name)
{
  size_t l = strlen (name);
  for (size_t i = 0; i < n; i++)
    if (strncmp (env[i], name, l) == 0 && env[i][l] == '=')
      return env[i] + l + 1;
  return NULL;
}

/* args[0] looked up in the container's PATH, checked before `start` so a bad
 * command fails `create` (as runc does). */
int
find_executable (const struct spec *s, char **out, berth_error_t *err)
{
  const char *name = s->args[0];
  struct stat st;

  if (strchr (name, '/'))
    {
      if (stat (name, &st) < 0)
        return berth_make_error (err, errno, "exec `%s`", name);
      if (!S_ISREG (st.st_mode) || access (name, X_OK) < 0)
        return berth_make_error (err, EACCES, "exec `%s`", name);
      *out = xstrdup (name);
      return 0;
    }
  const char *path = env_get (s->env, s->n_env, "PATH");
  cleanup_free char *copy = xstrdup (path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  char *save = NULL;
  for (char *dir = strtok_r (copy, ":", &save); dir; dir = strtok_r (NULL, ":", &save))
    {
      char *cand = xasprintf ("%s/%s", *dir ? dir : ".", name);
      if (stat (cand, &st) == 0 && S_ISREG (st.st_mode) && access (cand, X_OK) == 0)
        {
          *out = cand;
          return 0;
        }
      free (cand);
    }
  return berth_make_error (err, 0, "exec `%s`: executable file not found in $PATH", name);
}

static int
join_namespaces (const struct spec *s, berth_error_t *err)
{
  /* The user namespace first: the others are then joined with its privileges. */
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < s->n_namespaces; i++)
      {
        const struct spec_namespace *ns = &s->namespaces[i];
        if (ns->path == NULL || ns->flag == CLONE_NEWPID || (pass == 0) != (ns->flag == CLONE_NEWUSER))
          continue;
        cleanup_close int fd = open (ns->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
          return berth_make_error (err, errno, "open %s namespace `%s`", namespace_name (ns->flag), ns->path);
        if (setns (fd, ns->flag) < 0)
          return berth_make_error (err, errno, "join %s namespace `%s`", namespace_name (ns->flag), ns->path);
      }
  return 0;
}

int
set_rlimits (const struct spec *s, berth_error_t *err)
{
  for (size_t i = 0; i < s->n_rlimits; i++)
    {
      struct rlimit rl = { .rlim_cur = s->rlimits[i].soft, .rlim_max = s->rlimits[i].hard };
      if (setrlimit (s->rlimits[i].resource, &rl) < 0)
        return berth_make_error (err, errno, "process.rlimits: set limit %d to %llu/%llu", s->rlimits[i].resource,
                                 (unsigned long long) rl.rlim_cur, (unsigned long long) rl.rlim_max);
    }
  return 0;
}

int
change_user (const struct spec *s, berth_error_t *err)
{
  struct spec_caps none = { 0 };
  const struct spec_caps *caps = s->has_caps ? &s->caps : &none;

  if (s->has_caps && caps_drop_bounding (caps, err) < 0)
    return -1;
  if (prctl (PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
    return berth_make_error (err, errno, "keep capabilities");
  if (setgroups (s->n_additional_gids, s->additional_gids) < 0 && !(errno == EPERM && s->n_additional_gids == 0))
    return berth_make_error (err, errno, "setgroups");
  if (setresgid (s->gid, s->gid, s->gid) < 0)
    return berth_make_error (err, errno, "setgid %u", s->gid);
  if (setresuid (s->uid, s->uid, s->uid) < 0)
    return berth_make_error (err, errno, "setuid %u", s->uid);
  if (prctl (PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
    return berth_make_error (err, errno, "reset keep capabilities");
  return caps_apply (caps, err);
}

/* CVE-2024-21626: the cwd must be inside the new root, never reached through a
 * leaked fd (/proc/self/fd/N). */
int
enter_cwd (const struct spec *s, berth_error_t *err)
{
  char buf[4096];
  struct statfs sfs;
  if (chdir (s->cwd) < 0)
    return berth_make_error (err, errno, "process.cwd `%s`", s->cwd);
  if (getcwd (buf, sizeof (buf)) == NULL || buf[0] != '/')
    return berth_make_error (err, 0, "process.cwd `%s` is outside the container's root: refused", s->cwd);
  if (statfs (".", &sfs) == 0 && sfs.f_type == PROC_SUPER_MAGIC)
    return berth_make_error (err, 0, "process.cwd `%s` is on procfs: refused", s->cwd);
  return 0;
}

char **
build_env (const struct spec *s)
{
  char **env = xmalloc0 ((s->n_env + 2) * sizeof (char *));
  size_t n = 0;
  for (size_t i = 0; i < s->n_env; i++)
    env[n++] = s->env[i];
  if (env_get (s->env, s->n_env, "HOME") == NULL)
    {
      /* As runc: HOME from the container's /etc/passwd, else /. */
      const char *home = "/";
      FILE *f = fopen ("/etc/passwd", "re");
      char line[1024];
      while (f && fgets (line, sizeof (line), f))
        {
          char *fields[7], *save = NULL, *t = strtok_r (line, ":\n", &save);
          int nf = 0;
          for (; t && nf < 7; t = strtok_r (NULL, ":\n", &save))
            fields[nf++] = t;
          if (nf >= 6 && (uid_t) strtoul (fields[2], NULL, 10) == s->uid)
            {
              home = xstrdup (fields[5]);
              break;
            }
        }
      if (f)
        fclose (f);
      env[n++] = xasprintf ("HOME=%s", home);
    }
  return env;
}

static int
prepare_fds (const struct init_config *c, berth_error_t *err)
{
  unsigned first = 3 + (unsigned) c->preserve_fds;
  for (int fd = 3; fd < (int) first; fd++)
    {
      int fl = fcntl (fd, F_GETFD);
      /* A caller asking for more fds than it passed must not get ours. */
      if (fd == c->sync_fd || fd == c->exec_listen_fd || fd == log_fd ())
        return berth_make_error (err, 0, "--preserve-fds %d covers fd %d, which the caller did not pass", c->preserve_fds, fd);
      if (fl >= 0 && fcntl (fd, F_SETFD, fl & ~FD_CLOEXEC) < 0)
        return berth_make_error (err, errno, "keep fd %d", fd);
    }
  /* CVE-2024-21626: nothing but stdio and the preserved fds survives exec. */
  if (syscall (SYS_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
    {
      for (int fd = first; fd < 65536; fd++)
        {
          int fl = fcntl (fd, F_GETFD);
          if (fl >= 0)
            fcntl (fd, F_SETFD, fl | FD_CLOEXEC);
        }
    }
  return 0;
}

static void
wait_for_start (struct init_config *c)
{
  int conn;
  do
    conn = accept4 (c->exec_listen_fd, NULL, NULL, SOCK_CLOEXEC);
  while (conn < 0 && errno == EINTR);
  if (conn < 0)
    _exit (1);
  if (write (conn, "1", 1) != 1)
    _exit (1);
  close (conn);
  close (c->exec_listen_fd);
  c->exec_listen_fd = -1;
}

/* Joins the container's cgroups itself unless the parent did (fast path, see
 * cgroup_enter_self). */
static int
join_cgroups (struct init_config *c, int how, berth_error_t *err)
{
  if (how != GO_JOINED && cgroup_enter_self (c->cg, how == GO_JOIN_V1, err) < 0)
    return -1;
  return 0;
}

void
container_init (struct init_config *c)
{
  cleanup_error berth_error_t err = NULL;
  struct spec *s = c->spec;
  struct sync_msg msg;
  cleanup_free char *exe = NULL;
  bool userns = spec_find_namespace (s, CLONE_NEWUSER) != NULL;
  char **env;

  prctl (PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  /* Not ptraceable (nor its /proc files readable) by what else runs in the
   * container's namespaces while it still holds the runtime's privileges
   * (CVE-2016-9962); the exec of the user's program makes it dumpable again. */
  prctl (PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (sync_recv (c->sync_fd, &msg, &err) < 0 || msg.type != SYNC_GO)
    _exit (1);
  TIMING ("child: go");
  if (join_cgroups (c, msg.status, &err) < 0 || join_namespaces (s, &err) < 0)
    fail (c, &err);
  TIMING ("child: cgroups joined");
  /* The cgroup namespace is made now that we sit in the container's cgroup, so
   * that cgroup is its root. */
  const struct spec_namespace *cgns = spec_find_namespace (s, CLONE_NEWCGROUP);
  if (cgns && cgns->path == NULL && unshare (CLONE_NEWCGROUP) < 0)
    {
      berth_make_error (&err, errno, "new cgroup namespace");
      fail (c, &err);
    }
  if (userns && (setresgid (0, 0, 0) < 0 || setresuid (0, 0, 0) < 0))
    {
      berth_make_error (&err, errno, "become root in the user namespace");
      fail (c, &err);
    }
  if (setsid () < 0)
    {
      berth_make_error (&err, errno, "setsid");
      fail (c, &err);
    }
  umask (0);
  if (s->hostname && *s->hostname && sethostname (s->hostname, strlen (s->hostname)) < 0)
    {
      berth_make_error (&err, errno, "sethostname `%s`", s->hostname);
      fail (c, &err);
    }
  if (rootfs_setup (s, c->cg, userns, &err) < 0)
    {
      berth_error_wrap (&err, "rootfs");
      fail (c, &err);
    }
  umask (s->has_umask ? s->umask : 022);
  TIMING ("child: rootfs done");
  if (enter_cwd (s, &err) < 0 || find_executable (s, &exe, &err) < 0 || set_rlimits (s, &err) < 0)
    fail (c, &err);
  if (s->no_new_privileges && prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    {
      berth_make_error (&err, errno, "set no_new_privs");
      fail (c, &err);
    }
  env = build_env (s);

  /* In `create` the container outlives the parent once the parent has recorded
   * it: stop dying with the parent before saying we are ready. Then wait for its
   * word, which also means the device rules are in place (they come after our
   * mknods); EOF: it failed or died, and we exit. */
  if (c->exec_listen_fd >= 0)
    prctl (PR_SET_PDEATHSIG, 0, 0, 0, 0);
  if (sync_send (c->sync_fd, SYNC_READY, 0, NULL) < 0)
    _exit (1);
  if (sync_recv (c->sync_fd, &msg, &err) < 0 || msg.type != SYNC_CREATED)
    _exit (1);
  if (c->exec_listen_fd >= 0)
    {
      close (c->sync_fd);
      c->sync_fd = -1;
      wait_for_start (c);
    }

  /* Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it while we
   * still have it (runc's order). */
  if (!s->no_new_privileges && seccomp_load_program (c->seccomp, &err) < 0)
    goto late_fail;
  if (change_user (s, &err) < 0 || prepare_fds (c, &err) < 0)
    goto late_fail;
  if (s->no_new_privileges && seccomp_load_program (c->seccomp, &err) < 0)
    goto late_fail;
  execve (exe, s->args, env);
  berth_make_error (&err, errno, "exec `%s`", exe);
late_fail:
  if (c->sync_fd >= 0)
    sync_send (c->sync_fd, SYNC_ERROR, err->status, err->msg);
  else
    log_error ("%s", err->msg);
  _exit (127);
}
