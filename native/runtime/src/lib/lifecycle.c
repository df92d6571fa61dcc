/* start, state, kill, delete: verbs on a container that exists. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>
#include "cgroup.h"
#include "container.h"
#include "json.h"
#include "state.h"
#include "utils.h"
#include "timing.h"

#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

int
container_start (const char *root, const char *id, berth_error_t *err)
{
  cleanup_state struct container_state *st = NULL;
  cleanup_free char *sock = NULL;
  cleanup_close int fd = -1;
  struct sockaddr_un addr;
  cleanup_close int dirfd = -1;
  enum container_status status;
  char c;

  if (state_read (root, id, &st, err) < 0)
    return -1;
  status = state_status (root, st);
  if (status != STATUS_CREATED)
    return berth_make_error (err, 0, "cannot start container `%s`: it is %s, not created", id, status_name (status));
  sock = state_exec_socket (root, id);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return berth_make_error (err, errno, "socket");
  if (unix_addr (sock, &addr, &dirfd, err) < 0)
    return -1;
  if (connect (fd, (struct sockaddr *) &addr, sizeof (addr)) < 0)
    return berth_make_error (err, errno, "start container `%s`", id);
  unlink (sock);
  if (read (fd, &c, 1) != 1)
    return berth_make_error (err, 0, "start container `%s`: the init went away", id);
  return 0;
}

int
container_state (const char *root, const char *id, FILE *out, berth_error_t *err)
{
  cleanup_state struct container_state *st = NULL;
  enum container_status status;
  cleanup_free char *buf = NULL;
  size_t len;
  FILE *f;

  if (state_read (root, id, &st, err) < 0)
    return -1;
  status = state_status (root, st);
  f = open_memstream (&buf, &len);
  if (f == NULL)
    return berth_make_error (err, errno, "state");
  fputs ("{\n  \"ociVersion\": ", f);
  json_write_string (f, st->oci_version);
  fputs (",\n  \"id\": ", f);
  json_write_string (f, st->id);
  fprintf (f, ",\n  \"status\": \"%s\",\n  \"pid\": %d,\n  \"bundle\": ", status_name (status),
           status == STATUS_STOPPED ? 0 : st->pid);
  json_write_string (f, st->bundle);
  fputs (",\n  \"created\": ", f);
  json_write_string (f, st->created);
  if (st->annotations && st->annotations->type == JSON_OBJECT)
    {
      fputs (",\n  \"annotations\": {", f);
      for (size_t i = 0; i < st->annotations->len; i++)
        {
          fputs (i ? ", " : "", f);
          json_write_string (f, st->annotations->keys[i]);
          fputs (": ", f);
          json_write_string (f, st->annotations->items[i]->type == JSON_STRING ? st->annotations->items[i]->string : "");
        }
      fputs ("}", f);
    }
  fputs ("\n}\n", f);
  fclose (f);
  fwrite (buf, 1, len, out);
  fflush (out);
  return 0;
}

int
container_kill (const char *root, const char *id, int sig, bool all, berth_error_t *err)
{
  cleanup_state struct container_state *st = NULL;
  cleanup_close int pidfd = -1;

  if (state_read (root, id, &st, err) < 0)
    return -1;
  if (all)
    {
      struct cgroup *cg = NULL;
      if (cgroup_open (st->cgroups_path, &cg, err) < 0)
        return -1;
      int r = cgroup_kill_all (cg, sig, err);
      cgroup_free (cg);
      return r < 0 ? -1 : 0;
    }
  pidfd = state_pidfd (st);
  if (pidfd < 0)
    return berth_make_error (err, 0, "cannot kill container `%s`: it is not running", id);
  if (syscall (SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0)
    return berth_make_error (err, errno, "kill container `%s`", id);
  return 0;
}

/* Waits for the process behind a pidfd to exit (it is not our child). */
static void
wait_pidfd (int pidfd, int timeout_ms)
{
  struct pollfd p = { .fd = pidfd, .events = POLLIN };
  while (poll (&p, 1, timeout_ms) < 0 && errno == EINTR)
    ;
}

int
container_delete (const char *root, const char *id, bool force, berth_error_t *err)
{
  cleanup_state struct container_state *st = NULL;
  cleanup_close int pidfd = -1;
  cleanup_free char *sdir = NULL;
  struct cgroup *cg = NULL;
  enum container_status status;

  if (state_read (root, id, &st, err) < 0)
    return -1;
  status = state_status (root, st);
  if (status == STATUS_RUNNING && !force)
    return berth_make_error (err, 0, "cannot delete container `%s` that is not stopped: running (use --force)", id);
  pidfd = state_pidfd (st);
  if (pidfd >= 0)
    {
      syscall (SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
      wait_pidfd (pidfd, 10000);
    }
  if (cgroup_open (st->cgroups_path, &cg, err) < 0)
    return -1;
  TIMING ("delete: killed");
  if (cgroup_destroy (cg, err) < 0)
    {
      cgroup_free (cg);
      return berth_error_wrap (err, "delete container `%s`", id);
    }
  cgroup_free (cg);
  sdir = state_dir (root, id);
  TIMING ("delete: cgroups gone");
  if (remove_tree (sdir) < 0 && errno != ENOENT)
    return berth_make_error (err, errno, "remove `%s`", sdir);
  return 0;
}
