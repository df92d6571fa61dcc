/* exec: a new process in a running container, as its init was made: the same
 * namespaces, cgroup, user, capabilities, rlimits, no_new_privs and seccomp
 * filter, from the container's config.json. */
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "cgroup.h"
#include "container.h"
#include "init.h"
#include "seccomp-filter.h"
#include "spec-internal.h"
#include "state.h"
#include "utils.h"

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

/* /proc/<pid>/ns/ names, in the order they are joined. The parent, still the
 * host's root in the host's mount namespace, joins the first ones, so its child
 * is born in the container's pid namespace. The child first moves itself into
 * the container's cgroup through the host's cgroupfs, then joins the user
 * namespace (whose privileges the next ones need), the cgroup namespace (rooted
 * at the cgroup it now sits in) and the mount namespace (which changes its root). */
static const struct
{
  int flag;
  const char *proc_name;
  bool in_child;
} join_order[] = {
  { CLONE_NEWIPC, "ipc", false },  { CLONE_NEWUTS, "uts", false },      { CLONE_NEWNET, "net", false },
  { CLONE_NEWPID, "pid", false },  { CLONE_NEWUSER, "user", true },     { CLONE_NEWCGROUP, "cgroup", true },
  { CLONE_NEWNS, "mnt", true },
};
#define N_JOIN (sizeof (join_order) / sizeof (join_order[0]))

static char **
copy_strings (char *const *src, size_t n)
{
  char **out = xmalloc0 ((n + 1) * sizeof (char *));
  for (size_t i = 0; i < n; i++)
    out[i] = xstrdup (src[i]);
  return out;
}

/* The process to run: the container's own process settings with the caller's
 * command, environment additions (replacing a variable of the same name) and cwd. */
static void
apply_overrides (struct spec *s, const struct exec_options *o)
{
  free_string_array (s->args, s->n_args);
  s->args = copy_strings (o->args, o->n_args);
  s->n_args = o->n_args;
  if (o->n_env)
    {
      char **env = xmalloc0 ((s->n_env + o->n_env + 1) * sizeof (char *));
      size_t n = 0;
      for (size_t i = 0; i < s->n_env; i++)
        {
          size_t name_len = strcspn (s->env[i], "=");
          bool replaced = false;
          for (size_t j = 0; j < o->n_env && !replaced; j++)
            replaced = strncmp (o->env[j], s->env[i], name_len) == 0 && o->env[j][name_len] == '=';
          if (replaced)
            free (s->env[i]);
          else
            env[n++] = s->env[i];
        }
      for (size_t j = 0; j < o->n_env; j++)
        env[n++] = xstrdup (o->env[j]);
      free (s->env);
      s->env = env;
      s->n_env = n;
    }
  if (o->cwd)
    {
      free (s->cwd);
      s->cwd = xstrdup (o->cwd);
    }
}

static int
validate_overrides (const struct exec_options *o, berth_error_t *err)
{
  if (o->n_args == 0)
    return berth_make_error (err, 0, "exec: no command given");
  for (size_t j = 0; j < o->n_env; j++)
    if (strchr (o->env[j], '=') == NULL || o->env[j][0] == '=')
      return berth_make_error (err, 0, "exec: --env `%s` is not NAME=VALUE", o->env[j]);
  if (o->cwd && o->cwd[0] != '/')
    return berth_make_error (err, 0, "exec: --cwd `%s` is not an absolute path", o->cwd);
  return 0;
}

/* Opens the init's namespaces that config.json gives the container, while this
 * process still sees the host's /proc. The pidfd pins the init, so the fds are
 * its namespaces and not those of a process that reused its pid. */
static int
open_namespaces (const struct spec *s, pid_t pid, int pidfd, int fds[N_JOIN], berth_error_t *err)
{
  for (size_t i = 0; i < N_JOIN; i++)
    {
      fds[i] = -1;
      if (spec_find_namespace (s, join_order[i].flag) == NULL)
        continue;
      cleanup_free char *path = xasprintf ("/proc/%d/ns/%s", pid, join_order[i].proc_name);
      fds[i] = open (path, O_RDONLY | O_CLOEXEC);
      if (fds[i] < 0)
        return berth_make_error (err, errno, "open %s", path);
    }
  if (syscall (SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0)
    return berth_make_error (err, 0, "the container's init exited");
  return 0;
}

static int
join_namespaces_of (int fds[N_JOIN], bool in_child, berth_error_t *err)
{
  for (size_t i = 0; i < N_JOIN; i++)
    if (fds[i] >= 0 && join_order[i].in_child == in_child && setns (fds[i], join_order[i].flag) < 0)
      return berth_make_error (err, errno, "join the container's %s namespace", join_order[i].proc_name);
  return 0;
}

/* The forked child: becomes the process and execs it. Setup errors go back to
 * the parent through `error_fd` (closed on exec, so EOF there means success). */
static __attribute__ ((noreturn)) void
exec_child (struct spec *s, struct cgroup *cg, int ns_fds[N_JOIN], const struct seccomp_program *filter, int error_fd)
{
  cleanup_error berth_error_t err = NULL;
  cleanup_free char *exe = NULL;
  char **env;

  /* As the init: not ptraceable (nor /proc/self/exe readable) by the
   * container's processes until the exec of the user's program. */
  prctl (PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (cgroup_enter_self (cg, false, &err) < 0 || join_namespaces_of (ns_fds, true, &err) < 0)
    goto fail;
  umask (s->has_umask ? s->umask : 022);
  if (enter_cwd (s, &err) < 0 || find_executable (s, &exe, &err) < 0 || set_rlimits (s, &err) < 0)
    goto fail;
  if (s->no_new_privileges && prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    {
      berth_make_error (&err, errno, "set no_new_privs");
      goto fail;
    }
  env = build_env (s);
  if (!s->no_new_privileges && seccomp_load_program (filter, &err) < 0)
    goto fail;
  if (change_user (s, &err) < 0)
    goto fail;
  /* After change_user: a change of credentials clears the parent-death signal. */
  prctl (PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (syscall (SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
    {
      berth_make_error (&err, errno, "close the runtime's fds");
      goto fail;
    }
  if (s->no_new_privileges && seccomp_load_program (filter, &err) < 0)
    goto fail;
  execve (exe, s->args, env);
  berth_make_error (&err, errno, "exec `%s`", exe);
fail:
  if (write (error_fd, err->msg, strlen (err->msg)) < 0)
    _exit (126);
  _exit (126);
}

int
container_exec (const struct exec_options *o, int *status, berth_error_t *err)
{
  cleanup_state struct container_state *st = NULL;
  cleanup_spec struct spec *s = NULL;
  cleanup_cgroup struct cgroup *cg = NULL;
  cleanup_close int pidfd = -1;
  struct seccomp_program filter = { 0 };
  int ns_fds[N_JOIN], pipe_fds[2] = { -1, -1 }, ret = -1, wstatus;
  char msg[3072];
  ssize_t n;
  pid_t child;

  for (size_t i = 0; i < N_JOIN; i++)
    ns_fds[i] = -1;
  if (validate_overrides (o, err) < 0 || state_read (o->root, o->id, &st, err) < 0)
    return -1;
  if (state_status (o->root, st) != STATUS_RUNNING)
    return berth_make_error (err, 0, "cannot exec in container `%s`: it is %s, not running", o->id,
                             status_name (state_status (o->root, st)));
  pidfd = state_pidfd (st);
  if (pidfd < 0)
    return berth_make_error (err, 0, "cannot exec in container `%s`: its init exited", o->id);
  if (spec_load (st->bundle, &s, err) < 0)
    return berth_error_wrap (err, "container `%s`", o->id);
  apply_overrides (s, o);
  if (seccomp_prepare (s->seccomp, o->root, &filter, err) < 0)
    return berth_error_wrap (err, "config.json");
  if (cgroup_open (st->cgroups_path, &cg, err) < 0)
    goto out;
  if (open_namespaces (s, st->pid, pidfd, ns_fds, err) < 0)
    goto out;
  if (join_namespaces_of (ns_fds, false, err) < 0)
    goto out;
  if (pipe2 (pipe_fds, O_CLOEXEC) < 0)
    {
      berth_make_error (err, errno, "pipe");
      goto out;
    }
  child = fork ();
  if (child < 0)
    {
      berth_make_error (err, errno, "fork");
      goto out;
    }
  if (child == 0)
    {
      close (pipe_fds[0]);
      exec_child (s, cg, ns_fds, &filter, pipe_fds[1]);
    }
  close (pipe_fds[1]);
  pipe_fds[1] = -1;
  do
    n = read (pipe_fds[0], msg, sizeof (msg) - 1);
  while (n < 0 && errno == EINTR);
  while (waitpid (child, &wstatus, 0) < 0)
    if (errno != EINTR)
      {
        berth_make_error (err, errno, "wait for the exec'd process");
        goto out;
      }
  if (n > 0)
    {
      msg[n] = '\0';
      berth_make_error (err, 0, "exec in container `%s`: %s", o->id, msg);
      goto out;
    }
  *status = WIFEXITED (wstatus) ? WEXITSTATUS (wstatus) : 128 + WTERMSIG (wstatus);
  ret = 0;
out:
  free (filter.insns);
  for (size_t i = 0; i < N_JOIN; i++)
    if (ns_fds[i] >= 0)
      close (ns_fds[i]);
  if (pipe_fds[0] >= 0)
    close (pipe_fds[0]);
  if (pipe_fds[1] >= 0)
    close (pipe_fds[1]);
  return ret;
}
