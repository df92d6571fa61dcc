/* berth-spawner: starts the node agent's child processes. See README.md.
 *
 * Frames on stdin and stdout, integers little-endian, each `u32 length` and
 * then that many bytes:
 *   request SPAWN  u8 1, u32 id, u32 argc, u32 envc, u32 cwd_len, u32 input_len,
 *                  argc then envc NUL-terminated strings, cwd, input
 *   request KILL   u8 2, u32 id, u32 signal
 *   response       u32 id, u8 how, i32 value, u32 stdout_len, u32 stderr_len,
 *                  stdout, stderr
 * how: 0 exited (value: status), 1 killed (value: signal), 2 not started
 * (value: errno). envc 0 passes the spawner's own environment; cwd_len 0 keeps
 * its directory. EOF on stdin ends the spawner; its children keep running.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_FRAME (64u << 20)
#define MAX_CHILDREN 256
/* Output past this is read and dropped, so a chatty child cannot fill memory. */
#define MAX_CAPTURE (8u << 20)
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

enum { REQ_SPAWN = 1, REQ_KILL = 2 };
enum { HOW_EXITED = 0, HOW_KILLED = 1, HOW_NOT_STARTED = 2 };

extern char **environ;

struct buf
{
  char *data;
  size_t len, cap;
};

struct child
{
  bool used;
  uint32_t id;
  pid_t pid;
  int in_fd, out_fd, err_fd; /* -1 once closed */
  char *input;
  size_t input_len, input_off;
  struct buf out, err;
  bool exited;
  int status;
};

static struct child children[MAX_CHILDREN];
static struct buf requests, responses;

static void die(const char *what)
{
  fprintf(stderr, "berth-spawner: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void buf_append(struct buf *b, const void *p, size_t n)
{
  if (b->len + n > b->cap)
    {
      size_t cap = b->cap ? b->cap : 4096;
      while (cap < b->len + n)
        cap *= 2;
      char *d = realloc(b->data, cap);
      if (!d)
        die("out of memory");
      b->data = d;
      b->cap = cap;
    }
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

static void buf_free(struct buf *b)
{
  free(b->data);
  *b = (struct buf){ 0 };
}

static void put_u32(uint32_t v)
{
  unsigned char b[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24 };
  buf_append(&responses, b, 4);
}

static uint32_t get_u32(const char *p)
{
  const unsigned char *b = (const unsigned char *) p;
  return (uint32_t) b[0] | (uint32_t) b[1] << 8 | (uint32_t) b[2] << 16 | (uint32_t) b[3] << 24;
}

static void respond(uint32_t id, int how, int32_t value, const struct buf *out, const struct buf *err)
{
  size_t out_len = out ? out->len : 0, err_len = err ? err->len : 0;
  put_u32((uint32_t) (4 + 1 + 4 + 4 + 4 + out_len + err_len));
  put_u32(id);
  buf_append(&responses, &(unsigned char){ (unsigned char) how }, 1);
  put_u32((uint32_t) value);
  put_u32((uint32_t) out_len);
  put_u32((uint32_t) err_len);
  if (out_len)
    buf_append(&responses, out->data, out_len);
  if (err_len)
    buf_append(&responses, err->data, err_len);
}

static void set_nonblock(int fd)
{
  int flags = fcntl(fd, F_GETFL);
  if (flags >= 0)
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static void close_fd(int *fd)
{
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

/* The program `file` names: itself when it has a slash, else the first executable on PATH. */
static int resolve(const char *file, char *const *envp, char *out, size_t size)
{
  const char *path = NULL;

  if (strchr(file, '/'))
    return snprintf(out, size, "%s", file) < (int) size ? 0 : ENAMETOOLONG;
  for (char *const *e = envp; *e && !path; e++)
    if (strncmp(*e, "PATH=", 5) == 0)
      path = *e + 5;
  if (!path)
    path = DEFAULT_PATH;
  int found = ENOENT;
  while (*path)
    {
      const char *end = strchrnul(path, ':');
      int n = snprintf(out, size, "%.*s%s%s", (int) (end - path), path, end == path ? "" : "/", file);
      if (n > 0 && (size_t) n < size)
        {
          if (access(out, X_OK) == 0)
            return 0;
          if (errno == EACCES)
            found = EACCES;
        }
      path = *end ? end + 1 : end;
    }
  return found;
}

static struct child *free_slot(void)
{
  for (int i = 0; i < MAX_CHILDREN; i++)
    if (!children[i].used)
      return &children[i];
  return NULL;
}

/* Starts the child a SPAWN frame (after its type byte) asks for; any failure is the response. */
static void spawn_child(const char *p, const char *end)
{
  uint32_t id, argc, envc, cwd_len, input_len;
  char **argv = NULL, **envp = NULL, *cwd = NULL;
  char resolved[4096];
  int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  struct child *c;
  pid_t pid;
  int rc;

  if (end - p < 20)
    {
      errno = EPROTO;
      die("a short spawn request");
    }
  id = get_u32(p), argc = get_u32(p + 4), envc = get_u32(p + 8), cwd_len = get_u32(p + 12), input_len = get_u32(p + 16);
  p += 20;
  if (argc == 0 || argc > (1u << 20) || envc > (1u << 20))
    {
      respond(id, HOW_NOT_STARTED, EINVAL, NULL, NULL);
      return;
    }
  argv = calloc(argc + 1, sizeof *argv);
  envp = calloc(envc + 1, sizeof *envp);
  if (!argv || !envp)
    die("out of memory");
  for (uint32_t i = 0; i < argc + envc; i++)
    {
      const char *nul = memchr(p, '\0', end - p);
      if (!nul)
        {
          errno = EPROTO;
          die("an unterminated string in a spawn request");
        }
      if (i < argc)
        argv[i] = (char *) p;
      else
        envp[i - argc] = (char *) p;
      p = nul + 1;
    }
  if ((size_t) (end - p) != (size_t) cwd_len + input_len)
    {
      errno = EPROTO;
      die("a spawn request of the wrong length");
    }
  if (cwd_len)
    {
      cwd = strndup(p, cwd_len);
      if (!cwd)
        die("out of memory");
    }
  p += cwd_len;

  c = free_slot();
  rc = c ? resolve(argv[0], envc ? envp : environ, resolved, sizeof resolved) : EAGAIN;
  if (rc == 0 && (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0))
    rc = errno;
  if (rc == 0 && input_len && pipe2(in, O_CLOEXEC) < 0)
    rc = errno;
  if (rc == 0 && !input_len && (in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
    rc = errno;
  if (rc == 0)
    {
      sigset_t none, defaults;
      sigemptyset(&none);
      sigemptyset(&defaults);
      sigaddset(&defaults, SIGPIPE);
      sigaddset(&defaults, SIGCHLD);
      posix_spawn_file_actions_init(&actions);
      posix_spawn_file_actions_adddup2(&actions, in[0], 0);
      posix_spawn_file_actions_adddup2(&actions, out[1], 1);
      posix_spawn_file_actions_adddup2(&actions, err[1], 2);
      if (cwd)
        posix_spawn_file_actions_addchdir_np(&actions, cwd);
      posix_spawnattr_init(&attr);
      posix_spawnattr_setsigmask(&attr, &none);
      posix_spawnattr_setsigdefault(&attr, &defaults);
      posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
      rc = posix_spawn(&pid, resolved, &actions, &attr, argv, envc ? envp : environ);
      posix_spawn_file_actions_destroy(&actions);
      posix_spawnattr_destroy(&attr);
    }
  close_fd(&in[0]);
  close_fd(&out[1]);
  close_fd(&err[1]);
  if (rc != 0)
    {
      close_fd(&in[1]);
      close_fd(&out[0]);
      close_fd(&err[0]);
      respond(id, HOW_NOT_STARTED, rc, NULL, NULL);
    }
  else
    {
      *c = (struct child){ .used = true, .id = id, .pid = pid, .in_fd = in[1], .out_fd = out[0], .err_fd = err[0] };
      if (input_len)
        {
          c->input = malloc(input_len);
          if (!c->input)
            die("out of memory");
          memcpy(c->input, p, input_len);
          c->input_len = input_len;
          set_nonblock(c->in_fd);
        }
      set_nonblock(c->out_fd);
      set_nonblock(c->err_fd);
    }
  free(cwd);
  free(argv);
  free(envp);
}

static void kill_child(const char *p, const char *end)
{
  if (end - p < 8)
    {
      errno = EPROTO;
      die("a short kill request");
    }
  uint32_t id = get_u32(p), sig = get_u32(p + 4);
  for (int i = 0; i < MAX_CHILDREN; i++)
    if (children[i].used && children[i].id == id && !children[i].exited)
      kill(children[i].pid, (int) sig);
}

static void handle_requests(void)
{
  size_t at = 0;
  while (requests.len - at >= 4)
    {
      uint32_t len = get_u32(requests.data + at);
      if (len == 0 || len > MAX_FRAME)
        {
          errno = EPROTO;
          die("a request frame of a bad size");
        }
      if (requests.len - at - 4 < len)
        break;
      const char *body = requests.data + at + 4, *end = body + len;
      if (body[0] == REQ_SPAWN)
        spawn_child(body + 1, end);
      else if (body[0] == REQ_KILL)
        kill_child(body + 1, end);
      else
        {
          errno = EPROTO;
          die("an unknown request");
        }
      at += 4 + len;
    }
  memmove(requests.data, requests.data + at, requests.len - at);
  requests.len -= at;
}

static void drain(int *fd, struct buf *into)
{
  char chunk[65536];
  for (;;)
    {
      ssize_t n = read(*fd, chunk, sizeof chunk);
      if (n > 0)
        {
          size_t keep = into->len >= MAX_CAPTURE ? 0 : MAX_CAPTURE - into->len;
          buf_append(into, chunk, (size_t) n < keep ? (size_t) n : keep);
          continue;
        }
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        return;
      close_fd(fd);
      return;
    }
}

static void feed(struct child *c)
{
  while (c->input_off < c->input_len)
    {
      ssize_t n = write(c->in_fd, c->input + c->input_off, c->input_len - c->input_off);
      if (n > 0)
        c->input_off += (size_t) n;
      else if (n < 0 && errno == EINTR)
        continue;
      else if (n < 0 && errno == EAGAIN)
        return;
      else
        break; /* EPIPE: the child closed its stdin */
    }
  close_fd(&c->in_fd);
}

static void reap(void)
{
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
    for (int i = 0; i < MAX_CHILDREN; i++)
      if (children[i].used && children[i].pid == pid)
        {
          children[i].exited = true;
          children[i].status = status;
          close_fd(&children[i].in_fd);
        }
}

/* A child is answered once it has exited and closed its output (as Node's 'close'). */
static void answer_finished(void)
{
  for (int i = 0; i < MAX_CHILDREN; i++)
    {
      struct child *c = &children[i];
      if (!c->used || !c->exited || c->out_fd >= 0 || c->err_fd >= 0)
        continue;
      if (WIFSIGNALED(c->status))
        respond(c->id, HOW_KILLED, WTERMSIG(c->status), &c->out, &c->err);
      else
        respond(c->id, HOW_EXITED, WEXITSTATUS(c->status), &c->out, &c->err);
      buf_free(&c->out);
      buf_free(&c->err);
      free(c->input);
      *c = (struct child){ 0 };
    }
}

int main(void)
{
  struct pollfd pfd[3 + 3 * MAX_CHILDREN];
  struct child *owner[3 + 3 * MAX_CHILDREN];
  sigset_t chld;
  int sig_fd;

  signal(SIGPIPE, SIG_IGN);
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &chld, NULL) < 0 || (sig_fd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
    die("signalfd");
  set_nonblock(0);
  set_nonblock(1);

  for (;;)
    {
      nfds_t n = 0;
      pfd[n] = (struct pollfd){ .fd = 0, .events = POLLIN }, owner[n++] = NULL;
      pfd[n] = (struct pollfd){ .fd = responses.len ? 1 : -1, .events = POLLOUT }, owner[n++] = NULL;
      pfd[n] = (struct pollfd){ .fd = sig_fd, .events = POLLIN }, owner[n++] = NULL;
      for (int i = 0; i < MAX_CHILDREN; i++)
        {
          struct child *c = &children[i];
          if (!c->used)
            continue;
          if (c->in_fd >= 0)
            pfd[n] = (struct pollfd){ .fd = c->in_fd, .events = POLLOUT }, owner[n++] = c;
          if (c->out_fd >= 0)
            pfd[n] = (struct pollfd){ .fd = c->out_fd, .events = POLLIN }, owner[n++] = c;
          if (c->err_fd >= 0)
            pfd[n] = (struct pollfd){ .fd = c->err_fd, .events = POLLIN }, owner[n++] = c;
        }
      if (poll(pfd, n, -1) < 0)
        {
          if (errno == EINTR)
            continue;
          die("poll");
        }

      if (pfd[2].revents)
        {
          struct signalfd_siginfo si;
          while (read(sig_fd, &si, sizeof si) == sizeof si)
            ;
          reap();
        }
      for (nfds_t i = 3; i < n; i++)
        {
          struct child *c = owner[i];
          if (!pfd[i].revents)
            continue;
          if (pfd[i].fd == c->in_fd)
            feed(c);
          else if (pfd[i].fd == c->out_fd)
            drain(&c->out_fd, &c->out);
          else if (pfd[i].fd == c->err_fd)
            drain(&c->err_fd, &c->err);
        }
      if (pfd[0].revents)
        {
          char chunk[65536];
          ssize_t r = read(0, chunk, sizeof chunk);
          if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
            return 0; /* the agent is gone */
          if (r > 0)
            {
              buf_append(&requests, chunk, (size_t) r);
              handle_requests();
            }
        }
      answer_finished();
      if (pfd[1].revents || responses.len)
        {
          ssize_t w = write(1, responses.data, responses.len);
          if (w < 0 && errno != EINTR && errno != EAGAIN)
            return 0; /* the agent is gone */
          if (w > 0)
            {
              memmove(responses.data, responses.data + w, responses.len - (size_t) w);
              responses.len -= (size_t) w;
            }
        }
    }
}
