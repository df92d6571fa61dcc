#include "oom.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "cleanup.h"
#include "fsutil.h"

#define CGROUP_ROOT "/sys/fs/cgroup"

int oom_read_counter(const char *path, uint64_t *out)
{
  char buf[1024];
  shim_error_t err;
  const char *p;

  if (read_file(path, buf, sizeof buf, &err) < 0)
    return -1;
  for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
    if (strncmp(p, "oom_kill ", 9) == 0)
      {
        *out = strtoull(p + 9, NULL, 10);
        return 0;
      }
  return -1;
}

void oom_parse_proc_cgroup(char *buf, char *v1, char *v2, size_t cap)
{
  char *line, *save = NULL;

  v1[0] = v2[0] = '\0';
  for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
    {
      char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
      if (!c2)
        continue;
      *c2 = '\0';
      const char *ctls = c1 + 1, *cg = c2 + 1;
      if (strncmp(line, "0:", 2) == 0 && *ctls == '\0')
        snprintf(v2, cap, "%s", cg);
      else
        {
          /* controllers are comma-separated: look for the word "memory" */
          char list[256];
          char *tok, *s2 = NULL;
          snprintf(list, sizeof list, "%s", ctls);
          for (tok = strtok_r(list, ",", &s2); tok; tok = strtok_r(NULL, ",", &s2))
            if (strcmp(tok, "memory") == 0)
              snprintf(v1, cap, "%s", cg);
        }
    }
}

static void watch_v1(struct oom_watch *w, const char *dir)
{
  char ctl[PATH_MAX + 32], line[64];
  cleanup_close int efd = -1;
  cleanup_close int ofd = -1;
  cleanup_close int cfd = -1;
  int n;

  if (snprintf(ctl, sizeof ctl, "%s/cgroup.event_control", dir) >= (int) sizeof ctl)
    return;
  efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ofd = open(w->counter_path, O_RDONLY | O_CLOEXEC);
  cfd = open(ctl, O_WRONLY | O_CLOEXEC);
  if (efd < 0 || ofd < 0 || cfd < 0)
    return;
  n = snprintf(line, sizeof line, "%d %d", efd, ofd);
  if (write(cfd, line, (size_t) n) != n)
    return;
  /* the kernel holds its own reference to the oom_control file */
  w->fd = steal_fd(&efd);
}

static void watch_v2(struct oom_watch *w)
{
  cleanup_close int ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);

  if (ifd < 0 || inotify_add_watch(ifd, w->counter_path, IN_MODIFY) < 0)
    return;
  w->fd = steal_fd(&ifd);
}

void oom_watch_init(struct oom_watch *w, pid_t pid)
{
  char v1[PATH_MAX], v2[PATH_MAX], dir[PATH_MAX];
  const char *const v2_roots[] = { CGROUP_ROOT, CGROUP_ROOT "/unified" };

  char proc_path[64], buf[8192];
  shim_error_t err;

  memset(w, 0, sizeof *w);
  w->fd = -1;
  snprintf(proc_path, sizeof proc_path, "/proc/%d/cgroup", (int) pid);
  if (read_file(proc_path, buf, sizeof buf, &err) < 0)
    return;
  oom_parse_proc_cgroup(buf, v1, v2, sizeof v1);

  if (v1[0] && snprintf(dir, sizeof dir, "%s/memory%s", CGROUP_ROOT, v1) < (int) sizeof dir
      && snprintf(w->counter_path, sizeof w->counter_path, "%s/memory.oom_control", dir) < (int) sizeof w->counter_path
      && access(w->counter_path, R_OK) == 0)
    {
      w->kind = OOM_V1;
      w->have_counter = oom_read_counter(w->counter_path, &w->baseline) == 0;
      w->latest = w->baseline;
      watch_v1(w, dir);
      return;
    }
  for (size_t i = 0; v2[0] && i < sizeof v2_roots / sizeof v2_roots[0]; i++)
    {
      if (snprintf(w->counter_path, sizeof w->counter_path, "%s%s/memory.events", v2_roots[i], v2) >= (int) sizeof w->counter_path
          || access(w->counter_path, R_OK) != 0)
        continue;
      w->kind = OOM_V2;
      w->have_counter = oom_read_counter(w->counter_path, &w->baseline) == 0;
      w->latest = w->baseline;
      watch_v2(w);
      return;
    }
  w->counter_path[0] = '\0';
}

static void refresh(struct oom_watch *w)
{
  uint64_t v;

  if (w->have_counter && oom_read_counter(w->counter_path, &v) == 0 && v > w->latest)
    w->latest = v;
}

void oom_watch_on_event(struct oom_watch *w)
{
  char buf[4096];

  if (w->fd < 0)
    return;
  /* eventfd: one 8-byte counter; inotify: events we do not need to parse */
  while (read(w->fd, buf, sizeof buf) > 0)
    ;
  if (w->kind == OOM_V1)
    w->event_seen = true;
  refresh(w);
}

bool oom_watch_killed(struct oom_watch *w)
{
  if (w->kind == OOM_NONE)
    return false;
  refresh(w);
  if (w->have_counter)
    return w->latest > w->baseline;
  return w->event_seen;
}

void oom_watch_close(struct oom_watch *w)
{
  if (w->fd >= 0)
    close(w->fd);
  w->fd = -1;
}
