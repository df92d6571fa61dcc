#include "monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "container.h"
#include "control.h"
#include "daemon.h"
#include "fsutil.h"
#include "logfile.h"
#include "oom.h"
#include "runtime.h"
#include "timeutil.h"

struct monitor
{
  const struct shim_options *o;
  int sync_fd;
  int sig_fd;
  struct runtime rt;
  struct log_file log;
  struct log_stream out, err;
  struct oom_watch oom;
  struct ctl_server ctl;
  struct container ct;
  char container_pid_path[PATH_MAX], shim_pid_path[PATH_MAX], runtime_log_path[PATH_MAX];
};

/* Static: the line buffers are large and only touched when used. */
static struct monitor M;

static int setup_signals(struct monitor *m, shim_error_t *err)
{
  sigset_t set;

  /* Whatever the caller had (an ignored SIGCHLD would make waitpid useless):
   * defaults, SIGHUP and SIGPIPE ignored, only our three signals blocked. */
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP)
      signal(sig, SIG_DFL);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (sigprocmask(SIG_SETMASK, &set, NULL) < 0)
    return shim_error(err, errno, "sigprocmask");
  m->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (m->sig_fd < 0)
    return shim_error(err, errno, "signalfd");
  return 0;
}

static int write_shim_pid(struct monitor *m, shim_error_t *err)
{
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%d", (int) getpid());
  return write_file_atomic(m->o->state_dir, "shim.pid", buf, (size_t) n, 0644, false, err);
}

static int read_pid(const char *path, pid_t *pid, shim_error_t *err)
{
  char buf[32];
  long v;
  char *end;

  if (read_file(path, buf, sizeof buf, err) < 0)
    return -1;
  v = strtol(buf, &end, 10);
  if (end == buf || v <= 0 || v > INT_MAX)
    return shim_error(err, 0, "bad pid in %s: \"%s\"", path, buf);
  *pid = (pid_t) v;
  return 0;
}

/* Reaps every child that has exited; notes the container's status. */
static void reap(struct monitor *m)
{
  pid_t pid;
  int st;

  while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
    if (pid == m->ct.pid && m->ct.status == CONTAINER_RUNNING)
      {
        m->ct.exit.exited_at = time_now();
        exit_record_set_status(&m->ct.exit, st);
        m->ct.status = CONTAINER_EXITING;
      }
}

static void on_signals(struct monitor *m)
{
  struct signalfd_siginfo si;

  while (read(m->sig_fd, &si, sizeof si) == (ssize_t) sizeof si)
    {
      if (si.ssi_signo == SIGCHLD)
        reap(m);
      else if (m->ct.status == CONTAINER_RUNNING)
        kill(m->ct.pid, (int) si.ssi_signo); /* SIGTERM, SIGINT: forwarded */
    }
}

/* Start failed: leave nothing behind, tell the caller why. */
static int fail_start(struct monitor *m, shim_error_t *err)
{
  shim_error_t ignored;

  runtime_delete_force(&m->rt, m->o->id, &ignored);
  if (m->ctl.listen_fd >= 0)
    ctl_close(&m->ctl);
  unlink(m->container_pid_path);
  unlink(m->runtime_log_path);
  unlink(m->shim_pid_path);
  daemon_report_error(m->sync_fd, err->msg);
  return 1;
}

static int start_container(struct monitor *m, shim_error_t *err)
{
  int out[2], errp[2];

  if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0)
    return shim_error(err, errno, "pipe");
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  fcntl(errp[0], F_SETFL, O_NONBLOCK);
  log_stream_init(&m->out, "stdout", out[0]);
  log_stream_init(&m->err, "stderr", errp[0]);

  int r = runtime_create(&m->rt, m->o->id, m->o->bundle, m->container_pid_path, out[1], errp[1], errp[0], err);
  /* only the container holds the write sides now: EOF when it is gone */
  close(out[1]);
  close(errp[1]);
  if (r < 0)
    return -1;
  if (read_pid(m->container_pid_path, &m->ct.pid, err) < 0)
    return shim_error_wrap(err, "container pid");
  /* the init waits for `start` in its cgroup: read the OOM baseline now */
  oom_watch_init(&m->oom, m->ct.pid);
  if (runtime_start(&m->rt, m->o->id, err) < 0)
    return -1;
  m->ct.exit.started_at = time_now();
  m->ct.status = CONTAINER_RUNNING;
  return 0;
}

/* Buffers go back to the kernel after this long without output or clients. */
#define IDLE_RELEASE_MS 1000

enum
{
  PFD_SIGNAL,
  PFD_STDOUT,
  PFD_STDERR,
  PFD_LISTEN,
  PFD_OOM,
  PFD_CLIENTS,
};

static void run_loop(struct monitor *m)
{
  struct pollfd pfd[PFD_CLIENTS + CTL_MAX_CLIENTS];
  struct log_stream *const streams[] = { &m->out, &m->err };
  bool busy = false; /* output or clients since the buffers were last released */
  int ready;

  reap(m); /* SIGCHLDs of the start phase */
  while (m->ct.status == CONTAINER_RUNNING)
    {
      pfd[PFD_SIGNAL] = (struct pollfd){ .fd = m->sig_fd, .events = POLLIN };
      pfd[PFD_STDOUT] = (struct pollfd){ .fd = m->out.fd, .events = POLLIN };
      pfd[PFD_STDERR] = (struct pollfd){ .fd = m->err.fd, .events = POLLIN };
      pfd[PFD_LISTEN] = (struct pollfd){ .fd = m->ctl.listen_fd, .events = ctl_listen_events(&m->ctl) };
      pfd[PFD_OOM] = (struct pollfd){ .fd = m->oom.fd, .events = POLLIN };
      for (size_t i = 0; i < CTL_MAX_CLIENTS; i++)
        pfd[PFD_CLIENTS + i] = (struct pollfd){ .fd = m->ctl.clients[i].fd, .events = ctl_client_events(&m->ctl, i) };

      ready = poll(pfd, PFD_CLIENTS + CTL_MAX_CLIENTS, busy ? IDLE_RELEASE_MS : -1);
      if (ready == 0)
        {
          log_release_memory(&m->log, streams, 2);
          ctl_release_memory(&m->ctl);
          busy = false;
          continue;
        }
      if (ready < 0)
        {
          /* EINTR, or a transient ENOMEM: try again without spinning */
          if (errno != EINTR)
            nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
          continue;
        }
      if (pfd[PFD_OOM].revents)
        oom_watch_on_event(&m->oom);
      if (pfd[PFD_STDOUT].revents || pfd[PFD_STDERR].revents || pfd[PFD_LISTEN].revents)
        busy = true;
      if (pfd[PFD_STDOUT].revents)
        log_stream_read(&m->out, &m->log);
      if (pfd[PFD_STDERR].revents)
        log_stream_read(&m->err, &m->log);
      if (pfd[PFD_LISTEN].revents)
        ctl_accept(&m->ctl);
      for (size_t i = 0; i < CTL_MAX_CLIENTS; i++)
        if (pfd[PFD_CLIENTS + i].revents && pfd[PFD_CLIENTS + i].fd == m->ctl.clients[i].fd)
          ctl_client_event(&m->ctl, i, pfd[PFD_CLIENTS + i].revents, &m->ct);
      if (pfd[PFD_SIGNAL].revents)
        on_signals(m);
    }
}

static void finish(struct monitor *m)
{
  shim_error_t err;

  /* everything the container wrote is in the pipes by now */
  log_stream_drain(&m->out, &m->log);
  log_stream_drain(&m->err, &m->log);
  m->ct.exit.oom_killed = oom_watch_killed(&m->oom);
  oom_watch_close(&m->oom);
  (void) exit_record_write(&m->ct.exit, m->o->state_dir, &err);
  m->ct.status = CONTAINER_STOPPED;
  ctl_answer_waiters(&m->ctl, &m->ct);
  ctl_close(&m->ctl);
  unlink(m->shim_pid_path);
  log_file_close(&m->log);
}

int monitor_main(const struct shim_options *o, int sync_fd)
{
  struct monitor *m = &M;
  shim_error_t err;

  m->o = o;
  m->sync_fd = sync_fd;
  m->ctl.listen_fd = -1;
  m->oom.fd = -1;
  m->out.fd = m->err.fd = -1;
  m->rt = (struct runtime){ .path = o->runtime, .root = o->runtime_root, .log_path = m->runtime_log_path };
  if (path_join(m->container_pid_path, PATH_MAX, o->state_dir, "container.pid", &err) < 0
      || path_join(m->shim_pid_path, PATH_MAX, o->state_dir, "shim.pid", &err) < 0
      || path_join(m->runtime_log_path, PATH_MAX, o->state_dir, "runtime.log", &err) < 0)
    {
      daemon_report_error(sync_fd, err.msg);
      return 1;
    }

  if (setup_signals(m, &err) < 0 || write_shim_pid(m, &err) < 0)
    {
      daemon_report_error(sync_fd, err.msg);
      return 1;
    }
  {
    /* a stale record from an earlier container would mislead the agent */
    char stale[PATH_MAX];
    if (path_join(stale, sizeof stale, o->state_dir, "exit.json", &err) == 0)
      unlink(stale);
    unlink(m->container_pid_path);
  }
  if (log_file_open(&m->log, o->log_path, o->log_max_bytes, o->log_max_files, &err) < 0)
    {
      unlink(m->shim_pid_path);
      daemon_report_error(sync_fd, err.msg);
      return 1;
    }
  if (start_container(m, &err) < 0 || ctl_open(&m->ctl, o->state_dir, &err) < 0)
    return fail_start(m, &err);

  daemon_report_ok(sync_fd, getpid(), m->ct.pid);
  close(sync_fd);
  m->sync_fd = -1;

  run_loop(m);
  finish(m);
  return 0;
}
