/* create and run: the parent side of starting a container. */
#include "container.h"
#include <errno.h>
#include <linux/sched.h>
#include <stdint.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "cgroup.h"
#include "init.h"
#include "log.h"
#include "procfs.h"
#include "seccomp-filter.h"
#include "spec.h"
#include "state.h"
#include "sync.h"
#include "utils.h"
#include "timing.h"

static void
cleanup_programp (struct seccomp_program *p)
{
  free (p->insns);
}

/* What a failed create must undo; everything it made, in reverse. */
struct undo
{
  char *state_dir;
  struct cgroup *cg;
  pid_t pid;
};

static void
undo_create (struct undo *u)
{
  berth_error_t ignored = NULL;
  if (u->pid > 0)
    {
      kill (u->pid, SIGKILL);
      waitpid (u->pid, NULL, 0);
      u->pid = 0;
    }
  if (u->cg)
    {
      cgroup_destroy (u->cg, &ignored);
      berth_error_release (&ignored);
    }
  if (u->state_dir)
    remove_tree (u->state_dir);
}

static int
validate (const struct spec *s, berth_error_t *err)
{
  if (!spec_find_namespace (s, CLONE_NEWNS) || spec_find_namespace (s, CLONE_NEWNS)->path)
    return berth_make_error (err, 0, "config.json: a new mount namespace is required");
  if (has_prefix (s->cwd, "/proc/") || strcmp (s->cwd, "/proc") == 0)
    return berth_make_error (err, 0, "config.json: process.cwd `%s` is inside /proc: refused", s->cwd);
  if (s->terminal)
    return berth_make_error (err, 0, "config.json: process.terminal is not supported (use a shim that holds the stdio)");
  return 0;
}

static int
write_id_maps (pid_t pid, const struct spec *s, berth_error_t *err)
{
  for (int g = 0; g < 2; g++)
    {
      const struct spec_idmap *m = g ? s->gid_mappings : s->uid_mappings;
      size_t n = g ? s->n_gid_mappings : s->n_uid_mappings;
      cleanup_free char *buf = xmalloc0 (n * 40 + 1);
      cleanup_free char *path = xasprintf ("/proc/%d/%s", pid, g ? "gid_map" : "uid_map");
      size_t len = 0;
      if (n == 0)
        continue;
      for (size_t i = 0; i < n; i++)
        len += sprintf (buf + len, "%u %u %u\n", m[i].container_id, m[i].host_id, m[i].size);
      if (procfs_write (AT_FDCWD, path, buf, err) < 0)
        return berth_error_wrap (err, "linux.%s", g ? "gidMappings" : "uidMappings");
    }
  return 0;
}

static int
listen_exec_socket (const char *path, berth_error_t *err)
{
  struct sockaddr_un addr;
  cleanup_close int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cleanup_close int dirfd = -1;
  if (fd < 0)
    return berth_make_error (err, errno, "socket");
  if (unix_addr (path, &addr, &dirfd, err) < 0)
    return -1;
  if (bind (fd, (struct sockaddr *) &addr, sizeof (addr)) < 0 || listen (fd, 1) < 0)
    return berth_make_error (err, errno, "exec socket `%s`", path);
  chmod (path, 0600);
  return steal_fd (&fd);
}

static char *
now_rfc3339 (void)
{
  struct timespec ts;
  struct tm tm;
  char buf[64];
  clock_gettime (CLOCK_REALTIME, &ts);
  gmtime_r (&ts.tv_sec, &tm);
  strftime (buf, sizeof (buf), "%Y-%m-%dT%H:%M:%S", &tm);
  return xasprintf ("%s.%09ldZ", buf, ts.tv_nsec);
}

static int
explain_setup_death (pid_t pid, struct cgroup *cg, const struct spec *s, berth_error_t *err)
{
  int status = 0;
  if (waitpid (pid, &status, 0) == pid && WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL && cgroup_oom_killed (cg))
    return berth_make_error (err, 0, "the container init was OOM-killed during setup: memory limit %lld bytes is below what it needs",
                             (long long) s->resources.memory_limit);
  if (WIFSIGNALED (status))
    return berth_make_error (err, 0, "the container init was killed by signal %d during setup", WTERMSIG (status));
  return berth_make_error (err, 0, "the container init exited with status %d during setup", WEXITSTATUS (status));
}

/* clone3 straight into the cgroup2 hierarchy when there is one (no migration
 * later), else a fork-like clone. Returns 0 in the child. */
static pid_t
clone_init (int flags, int cgroup_fd, int *join)
{
  if (cgroup_fd >= 0)
    {
      struct clone_args args = {
        .flags = (uint64_t) flags | CLONE_INTO_CGROUP,
        .exit_signal = SIGCHLD,
        .cgroup = (uint64_t) cgroup_fd,
      };
      pid_t pid = (pid_t) syscall (SYS_clone3, &args, sizeof (args));
      if (pid >= 0)
        {
          *join = GO_JOIN_V1;
          return pid;
        }
      if (errno != ENOSYS && errno != E2BIG && errno != EINVAL && errno != EBUSY && errno != EOPNOTSUPP)
        return -1;
    }
  *join = GO_JOIN_ALL;
  return (pid_t) syscall (SYS_clone, (unsigned long) flags | SIGCHLD, NULL, NULL, NULL, NULL);
}

/* The common part of create and run. `run_mode`: no exec socket, the init
 * execs as soon as it is ready. On success *pid_out is the init. */
static int
do_create (const struct create_options *o, bool run_mode, pid_t *pid_out, int *sync_out, berth_error_t *err)
{
  cleanup_spec struct spec *s = NULL;
  cleanup_free char *sdir = NULL;
  cleanup_free char *sock_path = NULL;
  cleanup_free char *cg_path = NULL;
  cleanup_close int listen_fd = -1;
  int sv[2] = { -1, -1 };
  struct undo u = { 0 };
  struct sync_msg msg;
  struct container_state st = { 0 };
  cleanup_free char *created = NULL;
  int flags = 0, join = GO_JOIN_ALL;
  cleanup_close int clone_cg = -1;
  __attribute__ ((cleanup (cleanup_programp))) struct seccomp_program filter = { 0 };
  bool alive;

  if (validate_id (o->id, err) < 0)
    return -1;
  if (spec_load (o->bundle, &s, err) < 0 || validate (s, err) < 0)
    return -1;
  TIMING ("spec loaded");
  if (mkdir_p (o->root, 0700, err) < 0)
    return berth_error_wrap (err, "state root");
  if (seccomp_prepare (s->seccomp, o->root, &filter, err) < 0)
    return berth_error_wrap (err, "config.json");
  sdir = state_dir (o->root, o->id);
  if (mkdir (sdir, 0700) < 0)
    {
      if (errno == EEXIST)
        return berth_make_error (err, 0, "container `%s` already exists", o->id);
      return berth_make_error (err, errno, "state dir `%s`", sdir);
    }
  u.state_dir = sdir;

  cg_path = s->cgroups_path ? xstrdup (s->cgroups_path) : xasprintf ("/berth/%s", o->id);
  if (cg_path[0] != '/')
    {
      /* A relative cgroupsPath is taken below /berth, as runc takes it below its own. */
      char *abs = xasprintf ("/berth/%s", cg_path);
      free (cg_path);
      cg_path = abs;
    }
  if (cgroup_open (cg_path, &u.cg, err) < 0)
    goto fail;
  if (cgroup_create (u.cg, err) < 0)
    {
      if ((*err)->status == EBUSY)
        {
          /* not ours: leave it alone */
          cgroup_free (u.cg);
          u.cg = NULL;
        }
      goto fail;
    }
  TIMING ("cgroups created");

  if (!run_mode)
    {
      sock_path = state_exec_socket (o->root, o->id);
      listen_fd = listen_exec_socket (sock_path, err);
      if (listen_fd < 0)
        goto fail;
    }
  if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    {
      berth_make_error (err, errno, "socketpair");
      goto fail;
    }
  for (size_t i = 0; i < s->n_namespaces; i++)
    {
      const struct spec_namespace *ns = &s->namespaces[i];
      if (ns->path == NULL && ns->flag != CLONE_NEWCGROUP)
        flags |= ns->flag;
      else if (ns->path && ns->flag == CLONE_NEWPID)
        {
          /* setns(pid) only affects children: join here, before cloning. */
          cleanup_close int fd = open (ns->path, O_RDONLY | O_CLOEXEC);
          if (fd < 0 || setns (fd, CLONE_NEWPID) < 0)
            {
              berth_make_error (err, errno, "join pid namespace `%s`", ns->path);
              goto fail;
            }
        }
    }

  /* Limits go on before anything runs in the cgroup. */
  if (cgroup_apply (u.cg, &s->resources, err) < 0)
    goto fail;
  clone_cg = cgroup_clone_fd (u.cg);
  u.pid = clone_init (flags, clone_cg, &join);
  if (u.pid < 0)
    {
      berth_make_error (err, errno, "clone the container init");
      goto fail;
    }
  if (u.pid == 0)
    {
      struct init_config ic = { .spec = s, .cg = u.cg, .sync_fd = sv[1], .exec_listen_fd = listen_fd, .preserve_fds = o->preserve_fds, .seccomp = &filter };
      close (sv[0]);
      container_init (&ic);
    }
  close (sv[1]);
  sv[1] = -1;
  TIMING ("cloned");

  if (write_id_maps (u.pid, s, err) < 0)
    goto fail;
  if (spec_find_namespace (s, CLONE_NEWUSER))
    {
      /* Root in a new user namespace may not write the host's cgroup files. */
      if (cgroup_enter (u.cg, u.pid, err) < 0)
        goto fail;
      join = GO_JOINED;
    }
  if (s->has_oom_score_adj)
    {
      char path[64], val[16];
      snprintf (path, sizeof (path), "/proc/%d/oom_score_adj", u.pid);
      snprintf (val, sizeof (val), "%d", s->oom_score_adj);
      if (procfs_write (AT_FDCWD, path, val, err) < 0)
        {
          berth_error_wrap (err, "process.oomScoreAdj");
          goto fail;
        }
    }
  if (sync_send (sv[0], SYNC_GO, join, NULL) < 0)
    {
      berth_make_error (err, errno, "start the container init");
      goto fail;
    }
  if (sync_recv (sv[0], &msg, err) < 0)
    {
      pid_t p = u.pid;
      u.pid = 0;
      berth_error_release (err);
      explain_setup_death (p, u.cg, s, err);
      goto fail;
    }
  if (msg.type == SYNC_ERROR)
    {
      berth_make_error (err, 0, "%s", msg.msg);
      goto fail;
    }
  TIMING ("child ready");

  /* Device rules last: the init had to make its device nodes first. */
  if (cgroup_apply_devices (u.cg, &s->resources, err) < 0)
    goto fail;
  st.id = (char *) o->id;
  st.bundle = s->bundle;
  st.oci_version = s->oci_version;
  st.cgroups_path = cg_path;
  st.pid = u.pid;
  st.annotations = s->annotations;
  created = now_rfc3339 ();
  st.created = created;
  if (proc_start_time (u.pid, &st.start_time, &alive) < 0)
    {
      berth_make_error (err, errno, "read the start time of the container init");
      goto fail;
    }
  if (state_write (o->root, &st, err) < 0)
    goto fail;
  if (o->pid_file)
    {
      char buf[32];
      int len = snprintf (buf, sizeof (buf), "%d", u.pid);
      if (write_file_atomic (o->pid_file, buf, len, 0644, err) < 0)
        {
          berth_error_wrap (err, "--pid-file");
          goto fail;
        }
    }
  if (sync_send (sv[0], SYNC_CREATED, 0, NULL) < 0)
    {
      berth_make_error (err, errno, "hand over to the container init");
      goto fail;
    }
  *pid_out = u.pid;
  if (sync_out)
    *sync_out = sv[0];
  else
    close (sv[0]);
  cgroup_free (u.cg);
  return 0;

fail:
  if (sv[0] >= 0)
    close (sv[0]);
  if (sv[1] >= 0)
    close (sv[1]);
  undo_create (&u);
  cgroup_free (u.cg);
  return -1;
}

int
container_create (const struct create_options *o, berth_error_t *err)
{
  pid_t pid;
  return do_create (o, false, &pid, NULL, err);
}

static volatile pid_t forward_to;

static void
forward_signal (int sig)
{
  if (forward_to > 0)
    kill (forward_to, sig);
}

int
container_run (const struct create_options *o, int *exit_status, berth_error_t *err)
{
  static const int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };
  struct sigaction sa = { .sa_handler = forward_signal };
  struct sync_msg msg;
  cleanup_close int sync_fd = -1;
  pid_t pid;
  int status = 0, r;
  berth_error_t exec_err = NULL;

  if (do_create (o, true, &pid, &sync_fd, err) < 0)
    return -1;
  forward_to = pid;
  for (size_t i = 0; i < sizeof (forwarded) / sizeof (forwarded[0]); i++)
    sigaction (forwarded[i], &sa, NULL);
  /* EOF means the exec happened (the socket is close-on-exec). */
  if (sync_recv (sync_fd, &msg, &exec_err) == 0 && msg.type == SYNC_ERROR)
    berth_make_error (&exec_err, 0, "%s", msg.msg);
  else
    berth_error_release (&exec_err);
  do
    r = waitpid (pid, &status, 0);
  while (r < 0 && errno == EINTR);
  forward_to = 0;
  TIMING ("child exited");
  if (r < 0)
    status = 0;
  *exit_status = WIFSIGNALED (status) ? 128 + WTERMSIG (status) : WEXITSTATUS (status);
  if (container_delete (o->root, o->id, true, err) < 0)
    {
      berth_error_release (&exec_err);
      return -1;
    }
  if (exec_err)
    {
      *err = exec_err;
      return -1;
    }
  return 0;
}
