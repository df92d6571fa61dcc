#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "fsutil.h"
#include "json.h"
#include "timeutil.h"

/* Request buffers, one per slot; a page is only resident once a client used it. */
static char request_buffers[CTL_MAX_CLIENTS][CTL_REQUEST_MAX] __attribute__((aligned(4096)));

void ctl_release_memory(struct ctl_server *s)
{
  for (size_t i = 0; i < CTL_MAX_CLIENTS; i++)
    if (s->clients[i].fd < 0)
      (void) madvise(request_buffers[i], CTL_REQUEST_MAX, MADV_DONTNEED);
}

int ctl_open(struct ctl_server *s, const char *state_dir, shim_error_t *err)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  cleanup_close int fd = -1;
  cleanup_close int dirfd = -1;
  mode_t old_umask;
  int r;

  s->listen_fd = -1;
  for (size_t i = 0; i < CTL_MAX_CLIENTS; i++)
    {
      s->clients[i].fd = -1;
      s->clients[i].buf = request_buffers[i];
      s->clients[i].eof = false;
      s->clients[i].waiting = false;
      s->clients[i].draining = false;
    }
  if (path_join(s->path, sizeof s->path, state_dir, "shim.sock", err) < 0)
    return -1;
  if (strlen(s->path) < sizeof addr.sun_path)
    memcpy(addr.sun_path, s->path, strlen(s->path) + 1);
  else
    {
      /* too long for sun_path: bind through the directory's fd */
      dirfd = open(state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (dirfd < 0)
        return shim_error(err, errno, "open %s", state_dir);
      snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d/shim.sock", dirfd);
    }
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return shim_error(err, errno, "socket");
  unlink(s->path);
  old_umask = umask(0177);
  r = bind(fd, (struct sockaddr *) &addr, sizeof addr);
  umask(old_umask);
  if (r < 0)
    return shim_error(err, errno, "bind %s", s->path);
  if (chmod(s->path, 0600) < 0)
    return shim_error(err, errno, "chmod %s", s->path);
  if (listen(fd, 128) < 0)
    return shim_error(err, errno, "listen %s", s->path);
  s->listen_fd = steal_fd(&fd);
  return 0;
}

bool ctl_probe(const char *state_dir)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  cleanup_close int fd = -1;
  int n = snprintf(addr.sun_path, sizeof addr.sun_path, "%s/shim.sock", state_dir);

  if (n < 0 || (size_t) n >= sizeof addr.sun_path)
    return false;
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  return fd >= 0 && connect(fd, (struct sockaddr *) &addr, sizeof addr) == 0;
}

static void drop_client(struct ctl_client *c)
{
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  c->waiting = false;
  c->eof = false;
  c->draining = false;
  c->len = 0;
}

void ctl_close(struct ctl_server *s)
{
  for (size_t i = 0; i < CTL_MAX_CLIENTS; i++)
    drop_client(&s->clients[i]);
  if (s->listen_fd >= 0)
    {
      close(s->listen_fd);
      unlink(s->path);
    }
  s->listen_fd = -1;
}

/* Sends the line (responses are small, the socket buffer empty), then ends
 * our side; the slot is freed when the client closes its side. */
static void respond(struct ctl_client *c, const char *line, size_t n)
{
  (void) send(c->fd, line, n, MSG_NOSIGNAL | MSG_DONTWAIT);
  (void) shutdown(c->fd, SHUT_WR);
  c->waiting = false;
  c->draining = true;
}

static void respond_error(struct ctl_client *c, const char *msg)
{
  char buf[CTL_REQUEST_MAX * 2];
  size_t n = strlen(msg), len;

  if (n > 900)
    n = 900;
  len = (size_t) snprintf(buf, sizeof buf, "{\"ok\":false,\"error\":\"");
  len += json_escape(buf + len, msg, n);
  len += (size_t) snprintf(buf + len, sizeof buf - len, "\"}\n");
  respond(c, buf, len);
}

static void respond_exit(struct ctl_client *c, const struct container *ct, const char *extra)
{
  char buf[512];
  size_t n = exit_record_json(&ct->exit, extra, buf, sizeof buf - 1);
  buf[n++] = '\n';
  respond(c, buf, n);
}

static void op_state(struct ctl_client *c, const struct container *ct)
{
  char buf[256], started[RFC3339NANO_LEN];
  int n;

  if (ct->status == CONTAINER_STOPPED)
    {
      respond_exit(c, ct, "\"status\":\"stopped\",");
      return;
    }
  time_format_rfc3339nano(&ct->exit.started_at, started);
  n = snprintf(buf, sizeof buf, "{\"status\":\"%s\",\"pid\":%d,\"startedAt\":\"%s\"}\n",
               ct->status == CONTAINER_RUNNING ? "running" : "exiting", (int) ct->pid, started);
  respond(c, buf, (size_t) n);
}

static void op_kill(struct ctl_client *c, const struct container *ct, const struct json_field *sig)
{
  int signo = SIGTERM;

  if (sig->kind == JSON_NUMBER)
    {
      if (sig->number != (double) (int) sig->number || sig->number < 1 || sig->number > SIGRTMAX)
        {
          respond_error(c, "signal must be an integer between 1 and 64");
          return;
        }
      signo = (int) sig->number;
    }
  else if (sig->kind != JSON_ABSENT)
    {
      respond_error(c, "signal must be a number");
      return;
    }
  if (ct->status != CONTAINER_RUNNING)
    {
      respond_error(c, "container has exited");
      return;
    }
  /* The pid cannot have been reused: we reap it, and have not yet. */
  if (kill(ct->pid, signo) < 0)
    {
      char msg[256];
      snprintf(msg, sizeof msg, "kill %d: %s", (int) ct->pid, strerror(errno));
      respond_error(c, msg);
      return;
    }
  respond(c, "{\"ok\":true}\n", 12);
}

static void handle_request(struct ctl_client *c, struct container *ct, const char *line, size_t n)
{
  struct json_field f[] = { { .key = "op" }, { .key = "signal" } };
  shim_error_t err;

  if (json_parse_object(line, n, f, 2, &err) < 0)
    {
      respond_error(c, err.msg);
      return;
    }
  if (f[0].kind != JSON_STRING)
    respond_error(c, "missing \"op\"");
  else if (strcmp(f[0].str, "state") == 0)
    op_state(c, ct);
  else if (strcmp(f[0].str, "kill") == 0)
    op_kill(c, ct, &f[1]);
  else if (strcmp(f[0].str, "wait") == 0)
    {
      if (ct->status == CONTAINER_STOPPED)
        respond_exit(c, ct, NULL);
      else
        c->waiting = true;
    }
  else
    {
      char msg[128];
      snprintf(msg, sizeof msg, "unknown op \"%.60s\"", f[0].str);
      respond_error(c, msg);
    }
}

/* A free slot, else one whose client has had its answer; -1 if none. */
static int find_slot(const struct ctl_server *s)
{
  int draining = -1;

  for (int i = 0; i < CTL_MAX_CLIENTS; i++)
    {
      if (s->clients[i].fd < 0)
        return i;
      if (s->clients[i].draining && draining < 0)
        draining = i;
    }
  return draining;
}

short ctl_listen_events(const struct ctl_server *s)
{
  return find_slot(s) >= 0 ? POLLIN : 0;
}

void ctl_accept(struct ctl_server *s)
{
  for (;;)
    {
      int i = find_slot(s), fd;

      if (i < 0)
        return; /* the rest wait in the backlog */
      fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0)
        return;
      /* a draining client has its answer queued; it can still read it */
      drop_client(&s->clients[i]);
      s->clients[i].fd = fd;
    }
}

short ctl_client_events(const struct ctl_server *s, size_t i)
{
  const struct ctl_client *c = &s->clients[i];
  return c->eof && !c->draining ? 0 : POLLIN;
}

void ctl_client_event(struct ctl_server *s, size_t i, short revents, struct container *ct)
{
  struct ctl_client *c = &s->clients[i];
  char scratch[256];
  ssize_t r;
  char *nl;

  if (c->fd < 0)
    return;
  if (c->draining)
    {
      /* discard whatever else it sends; close once it has closed */
      r = recv(c->fd, scratch, sizeof scratch, MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
        drop_client(c);
      return;
    }
  if (c->eof)
    {
      /* only POLLHUP/POLLERR can come: the client is gone */
      if (revents & (POLLHUP | POLLERR))
        drop_client(c);
      return;
    }
  if (c->waiting)
    {
      /* a waiting client has nothing more to say: read and ignore */
      r = recv(c->fd, scratch, sizeof scratch, MSG_DONTWAIT);
      if (r == 0)
        c->eof = true;
      else if (r < 0 && errno != EAGAIN && errno != EINTR)
        drop_client(c);
      return;
    }
  r = recv(c->fd, c->buf + c->len, CTL_REQUEST_MAX - 1 - c->len, MSG_DONTWAIT);
  if (r < 0)
    {
      if (errno != EAGAIN && errno != EINTR)
        drop_client(c);
      return;
    }
  if (r == 0)
    {
      /* EOF: a request without its newline still counts */
      c->eof = true;
      if (c->len > 0)
        handle_request(c, ct, c->buf, c->len);
      else
        drop_client(c);
      return;
    }
  c->len += (size_t) r;
  nl = memchr(c->buf, '\n', c->len);
  if (nl)
    handle_request(c, ct, c->buf, (size_t) (nl - c->buf));
  else if (c->len == CTL_REQUEST_MAX - 1)
    respond_error(c, "request too long");
}

void ctl_answer_waiters(struct ctl_server *s, const struct container *ct)
{
  for (size_t i = 0; i < CTL_MAX_CLIENTS; i++)
    if (s->clients[i].fd >= 0 && s->clients[i].waiting)
      respond_exit(&s->clients[i], ct, NULL);
}
