#include "procfs.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>
#include "utils.h"

int
procfs_write (int dirfd, const char *path, const char *value, berth_error_t *err)
{
  cleanup_close int fd = openat (dirfd, path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return berth_make_error (err, errno, "open `%s`", path);
  return procfs_write_fd (fd, path, value, err);
}

int
procfs_write_fd (int fd, const char *path, const char *value, berth_error_t *err)
{
  struct statfs sfs;
  size_t len = strlen (value);
  ssize_t n;

  if (fstatfs (fd, &sfs) < 0)
    return berth_make_error (err, errno, "fstatfs `%s`", path);
  if (sfs.f_type != PROC_SUPER_MAGIC)
    return berth_make_error (err, 0, "`%s` is not on procfs: refused", path);
  n = write (fd, value, len);
  if (n < 0 || (size_t) n != len)
    return berth_make_error (err, n < 0 ? errno : EIO, "write `%s` to `%s`", value, path);
  return 0;
}

int
proc_start_time (pid_t pid, unsigned long long *start, bool *alive)
{
  char path[64], buf[1024];
  int fd;
  ssize_t n;
  char *p;

  *alive = false;
  *start = 0;
  snprintf (path, sizeof (path), "/proc/%d/stat", pid);
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  n = read (fd, buf, sizeof (buf) - 1);
  close (fd);
  if (n <= 0)
    return -1;
  buf[n] = '\0';
  p = strrchr (buf, ')');
  if (p == NULL || p[1] == '\0')
    return -1;
  p += 2; /* field 3: state */
  *alive = *p != 'Z' && *p != 'X' && *p != 'x';
  for (int field = 3; field < 22 && p; field++)
    {
      p = strchr (p, ' ');
      if (p)
        p++;
    }
  if (p == NULL)
    return -1;
  *start = strtoull (p, NULL, 10);
  return 0;
}
