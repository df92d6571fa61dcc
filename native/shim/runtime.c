#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "json.h"

#define MAX_ARGS 24
/* A runtime verb that takes longer is killed (the agent gives up after 60 s);
 * BERTH_SHIM_RUNTIME_TIMEOUT (seconds) overrides it. */
#define RUNTIME_TIMEOUT_S 50

static int runtime_timeout_s(void)
{
  const char *env = getenv("BERTH_SHIM_RUNTIME_TIMEOUT");
  long v = env ? strtol(env, NULL, 10) : 0;
  return v > 0 && v < 86400 ? (int) v : RUNTIME_TIMEOUT_S;
}

void reset_signals_for_exec(void)
{
  sigset_t none;

  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP)
      signal(sig, SIG_DFL);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Copies src into out, truncated to cap-1 bytes. */
static void copy_str(char *out, size_t cap, const char *src)
{
  size_t n = strnlen(src, cap - 1);
  memcpy(out, src, n);
  out[n] = '\0';
}

/* Global options, then the verb's arguments. */
static size_t build_argv(const struct runtime *rt, const char **argv, const char *const *verb)
{
  size_t n = 0;

  argv[n++] = rt->path;
  if (rt->root)
    {
      argv[n++] = "--root";
      argv[n++] = rt->root;
    }
  argv[n++] = "--log";
  argv[n++] = rt->log_path;
  argv[n++] = "--log-format";
  argv[n++] = "json";
  for (; *verb && n < MAX_ARGS - 1; verb++)
    argv[n++] = *verb;
  argv[n] = NULL;
  return n;
}

/* Forks and execs argv with the given stdio, waits for it (killing it after
 * the timeout). Returns the wait status or -1. SIGCHLD must be blocked. */
static int spawn_wait(const char **argv, const char *verb_name, int in_fd, int out_fd, int err_fd, shim_error_t *err)
{
  struct timespec deadline, now;
  sigset_t chld;
  pid_t pid = fork();
  int st;

  if (pid < 0)
    return shim_error(err, errno, "fork");
  if (pid == 0)
    {
      reset_signals_for_exec();
      if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
        _exit(127);
      syscall(SYS_close_range, 3U, ~0U, 0U);
      execvp(argv[0], (char *const *) argv);
      dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
      _exit(127);
    }
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  int timeout_s = runtime_timeout_s();
  deadline.tv_sec += timeout_s;
  for (;;)
    {
      pid_t r = waitpid(pid, &st, WNOHANG);
      if (r == pid)
        return st;
      if (r < 0 && errno != EINTR)
        return shim_error(err, errno, "waitpid %s", argv[0]);
      clock_gettime(CLOCK_MONOTONIC, &now);
      if (now.tv_sec > deadline.tv_sec || (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec))
        {
          kill(pid, SIGKILL);
          while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
          return shim_error(err, 0, "%s %s: no answer in %d s, killed", argv[0], verb_name, timeout_s);
        }
      /* sleep until a child changes state, at most 100 ms */
      struct timespec tick = { 0, 100 * 1000 * 1000 };
      sigtimedwait(&chld, NULL, &tick);
    }
}

static off_t file_size(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 ? st.st_size : 0;
}

/* The msg of the last error-level JSON line after offset in the runtime's log. */
static int last_log_error(const char *path, off_t offset, char *out, size_t cap)
{
  static char buf[65536];
  cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n;
  int found = 0;

  if (fd < 0)
    return 0;
  /* only the tail matters */
  off_t size = file_size(path);
  if (size - offset > (off_t) sizeof buf - 1)
    offset = size - (off_t) sizeof buf + 1;
  n = pread(fd, buf, sizeof buf - 1, offset);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  for (char *line = buf; line && *line;)
    {
      char *nl = strchr(line, '\n');
      size_t len = nl ? (size_t) (nl - line) : strlen(line);
      struct json_field f[] = { { .key = "level" }, { .key = "msg" } };
      shim_error_t e;

      if (json_parse_object(line, len, f, 2, &e) == 0 && f[0].kind == JSON_STRING && f[1].kind == JSON_STRING
          && (strcmp(f[0].str, "error") == 0 || strcmp(f[0].str, "fatal") == 0))
        {
          copy_str(out, cap, f[1].str);
          found = 1;
        }
      line = nl ? nl + 1 : NULL;
    }
  return found;
}

/* The last non-empty line of what is readable now on fd. */
static int last_stderr_line(int fd, char *out, size_t cap)
{
  static char buf[65536];
  size_t len = 0;
  ssize_t r;

  if (fd < 0)
    return 0;
  while ((r = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
    {
      len += (size_t) r;
      if (len == sizeof buf - 1)
        {
          /* keep the second half */
          memmove(buf, buf + len / 2, len - len / 2);
          len -= len / 2;
        }
    }
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' ' || buf[len - 1] == '\r'))
    len--;
  if (len == 0)
    return 0;
  buf[len] = '\0';
  char *start = memrchr(buf, '\n', len);
  copy_str(out, cap, start ? start + 1 : buf);
  return 1;
}

/* Runs one verb; on failure the message names the verb and carries the
 * runtime's own error. */
static int run_verb(const struct runtime *rt, const char *verb_name, const char *const *verb,
                    int out_fd, int err_fd, int err_read_fd, shim_error_t *err)
{
  const char *argv[MAX_ARGS];
  cleanup_close int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  cleanup_close int pipe_r = -1;
  int pfd[2] = { -1, -1 };
  char msg[1024];
  off_t log_offset = file_size(rt->log_path);
  int st;

  if (null_fd < 0)
    return shim_error(err, errno, "open /dev/null");
  if (err_fd < 0)
    {
      /* capture the runtime's stderr ourselves */
      if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK) < 0)
        return shim_error(err, errno, "pipe");
      pipe_r = pfd[0];
      err_fd = pfd[1];
      err_read_fd = pfd[0];
    }
  build_argv(rt, argv, verb);
  st = spawn_wait(argv, verb_name, null_fd, out_fd < 0 ? null_fd : out_fd, err_fd, err);
  if (pfd[1] >= 0)
    close(pfd[1]);
  if (st < 0)
    return -1;
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
    return 0;

  if (!last_log_error(rt->log_path, log_offset, msg, sizeof msg) && !last_stderr_line(err_read_fd, msg, sizeof msg))
    snprintf(msg, sizeof msg, "no error message");
  if (WIFSIGNALED(st))
    return shim_error(err, 0, "%s %s: killed by signal %d: %s", rt->path, verb_name, WTERMSIG(st), msg);
  return shim_error(err, 0, "%s %s: exit status %d: %s", rt->path, verb_name, WEXITSTATUS(st), msg);
}

int runtime_create(const struct runtime *rt, const char *id, const char *bundle,
                   const char *pid_file, int out_fd, int err_fd, int err_read_fd,
                   shim_error_t *err)
{
  const char *verb[] = { "create", "--bundle", bundle, "--pid-file", pid_file, id, NULL };
  return run_verb(rt, "create", verb, out_fd, err_fd, err_read_fd, err);
}

int runtime_start(const struct runtime *rt, const char *id, shim_error_t *err)
{
  const char *verb[] = { "start", id, NULL };
  return run_verb(rt, "start", verb, -1, -1, -1, err);
}

int runtime_delete_force(const struct runtime *rt, const char *id, shim_error_t *err)
{
  const char *verb[] = { "delete", "--force", id, NULL };
  return run_verb(rt, "delete", verb, -1, -1, -1, err);
}
