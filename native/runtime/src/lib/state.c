#include "state.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "procfs.h"
#include "utils.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

int
validate_id (const char *id, berth_error_t *err)
{
  if (id == NULL || *id == '\0')
    return berth_make_error (err, 0, "a container id is required");
  if (strlen (id) > 1024 || id[0] == '.'
      || strspn (id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.") != strlen (id))
    return berth_make_error (err, 0, "invalid container id `%s`", id);
  return 0;
}

char *
state_dir (const char *root, const char *id)
{
  return xasprintf ("%s/%s", root, id);
}

char *
state_exec_socket (const char *root, const char *id)
{
  return xasprintf ("%s/%s/exec.sock", root, id);
}

int
state_write (const char *root, const struct container_state *st, berth_error_t *err)
{
  cleanup_free char *buf = NULL;
  cleanup_free char *path = xasprintf ("%s/%s/state.json", root, st->id);
  size_t len = 0;
  FILE *f = open_memstream (&buf, &len);

  if (f == NULL)
    return berth_make_error (err, errno, "write state");
  fputs ("{\"ociVersion\":", f);
  json_write_string (f, st->oci_version);
  fputs (",\"id\":", f);
  json_write_string (f, st->id);
  fprintf (f, ",\"pid\":%d,\"startTime\":%llu,\"bundle\":", st->pid, st->start_time);
  json_write_string (f, st->bundle);
  fputs (",\"cgroupsPath\":", f);
  json_write_string (f, st->cgroups_path);
  fputs (",\"created\":", f);
  json_write_string (f, st->created);
  if (st->annotations)
    {
      fputs (",\"annotations\":", f);
      json_write_node (f, st->annotations);
    }
  fputs ("}\n", f);
  fclose (f);
  return write_file_atomic (path, buf, len, 0600, err);
}

int
state_read (const char *root, const char *id, struct container_state **out, berth_error_t *err)
{
  cleanup_free char *path = NULL;
  cleanup_free char *text = NULL;
  struct container_state *st;
  json_node *n;

  if (validate_id (id, err) < 0)
    return -1;
  path = xasprintf ("%s/%s/state.json", root, id);
  if (read_file_at (AT_FDCWD, path, &text, NULL, err) < 0)
    {
      if ((*err)->status == ENOENT)
        return berth_make_error (err, 0, "container `%s` does not exist", id);
      return -1;
    }
  st = xmalloc0 (sizeof (*st));
  st->json = json_parse (text, err);
  if (st->json == NULL)
    {
      state_free (st);
      return berth_error_wrap (err, "state of `%s`", id);
    }
  st->id = xstrdup (json_get_string (st->json, "id"));
  st->bundle = xstrdup (json_get_string (st->json, "bundle"));
  st->oci_version = xstrdup (json_get_string (st->json, "ociVersion"));
  st->cgroups_path = xstrdup (json_get_string (st->json, "cgroupsPath"));
  st->created = xstrdup (json_get_string (st->json, "created"));
  n = json_get (st->json, "pid");
  st->pid = n ? (pid_t) n->integer : 0;
  n = json_get (st->json, "startTime");
  st->start_time = n ? n->uinteger : 0;
  st->annotations = json_get (st->json, "annotations");
  *out = st;
  return 0;
}

void
state_free (struct container_state *st)
{
  if (st == NULL)
    return;
  free (st->id);
  free (st->bundle);
  free (st->oci_version);
  free (st->cgroups_path);
  free (st->created);
  json_free (st->json);
  free (st);
}

void
cleanup_statep (struct container_state **st)
{
  state_free (*st);
}

static bool
init_alive (const struct container_state *st)
{
  unsigned long long start;
  bool alive;
  if (st->pid <= 0 || proc_start_time (st->pid, &start, &alive) < 0)
    return false;
  return alive && start == st->start_time;
}

enum container_status
state_status (const char *root, const struct container_state *st)
{
  cleanup_free char *sock = state_exec_socket (root, st->id);
  if (!init_alive (st))
    return STATUS_STOPPED;
  return access (sock, F_OK) == 0 ? STATUS_CREATED : STATUS_RUNNING;
}

const char *
status_name (enum container_status s)
{
  return s == STATUS_CREATED ? "created" : s == STATUS_RUNNING ? "running" : "stopped";
}

int
state_pidfd (const struct container_state *st)
{
  int fd;
  if (st->pid <= 0)
    return -1;
  fd = (int) syscall (SYS_pidfd_open, st->pid, 0);
  if (fd < 0)
    return -1;
  /* The pidfd pins this pid: check after opening that it is still our process. */
  if (!init_alive (st))
    {
      close (fd);
      return -1;
    }
  return fd;
}
