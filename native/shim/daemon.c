#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* The monitor's fd for the sync pipe after every other fd is closed. */
#define SYNC_FD 3

static int detach_stdio(void)
{
  int fd = open("/dev/null", O_RDWR);

  if (fd < 0)
    return -1;
  if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
    return -1;
  if (fd > 2)
    close(fd);
  return 0;
}

int daemonize(int *sync_fd, shim_error_t *err)
{
  int p[2];
  pid_t child, grandchild;
  int st;

  if (pipe2(p, O_CLOEXEC) < 0)
    return shim_error(err, errno, "pipe");
  child = fork();
  if (child < 0)
    return shim_error(err, errno, "fork");
  if (child > 0)
    {
      close(p[1]);
      while (waitpid(child, &st, 0) < 0 && errno == EINTR)
        ;
      *sync_fd = p[0];
      return DAEMON_CALLER;
    }

  /* intermediate: new session, fork the monitor, leave */
  close(p[0]);
  if (setsid() < 0)
    {
      dprintf(p[1], "1setsid: %s\n", strerror(errno));
      _exit(1);
    }
  signal(SIGHUP, SIG_IGN);
  grandchild = fork();
  if (grandchild < 0)
    {
      dprintf(p[1], "1fork: %s\n", strerror(errno));
      _exit(1);
    }
  if (grandchild > 0)
    _exit(0);

  /* monitor */
  signal(SIGPIPE, SIG_IGN);
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
    {
      dprintf(p[1], "1prctl(PR_SET_CHILD_SUBREAPER): %s\n", strerror(errno));
      _exit(1);
    }
  if (chdir("/") < 0 || detach_stdio() < 0)
    {
      dprintf(p[1], "1detach: %s\n", strerror(errno));
      _exit(1);
    }
  if (p[1] != SYNC_FD)
    {
      if (dup3(p[1], SYNC_FD, O_CLOEXEC) < 0)
        {
          dprintf(p[1], "1dup: %s\n", strerror(errno));
          _exit(1);
        }
    }
  syscall(SYS_close_range, SYNC_FD + 1U, ~0U, 0U);
  *sync_fd = SYNC_FD;
  return DAEMON_MONITOR;
}

int daemon_wait_report(int sync_fd)
{
  static char buf[8192];
  size_t len = 0;
  ssize_t r;

  while (len < sizeof buf - 1)
    {
      r = read(sync_fd, buf + len, sizeof buf - 1 - len);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        break;
      len += (size_t) r;
    }
  close(sync_fd);
  buf[len] = '\0';
  if (len > 0 && buf[len - 1] == '\n')
    buf[--len] = '\0';
  if (len > 0 && buf[0] == '0')
    {
      printf("%s\n", buf + 1);
      fflush(stdout);
      return 0;
    }
  if (len > 0 && buf[0] == '1')
    fprintf(stderr, "berth-shim: %s\n", buf + 1);
  else
    fprintf(stderr, "berth-shim: the monitor exited before reporting the start\n");
  return 1;
}

static void write_report(int fd, const char *s, size_t n)
{
  while (n > 0)
    {
      ssize_t w = write(fd, s, n);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        return; /* the caller is gone (EPIPE): nothing to do */
      s += w;
      n -= (size_t) w;
    }
}

void daemon_report_ok(int sync_fd, pid_t shim_pid, pid_t container_pid)
{
  char buf[128];
  int n = snprintf(buf, sizeof buf, "0{\"shimPid\":%d,\"pid\":%d}\n", (int) shim_pid, (int) container_pid);
  write_report(sync_fd, buf, (size_t) n);
}

void daemon_report_error(int sync_fd, const char *msg)
{
  write_report(sync_fd, "1", 1);
  write_report(sync_fd, msg, strlen(msg));
  write_report(sync_fd, "\n", 1);
}
