#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"

int path_join(char *out, size_t cap, const char *dir, const char *name, shim_error_t *err)
{
  int n = snprintf(out, cap, "%s/%s", dir, name);
  if (n < 0 || (size_t) n >= cap)
    return shim_error(err, ENAMETOOLONG, "path %s/%s", dir, name);
  return 0;
}

int mkdir_p(const char *path, mode_t mode, shim_error_t *err)
{
  char buf[PATH_MAX];
  size_t n = strlen(path);

  if (n == 0 || n >= sizeof buf)
    return shim_error(err, ENAMETOOLONG, "mkdir %s", path);
  memcpy(buf, path, n + 1);
  for (char *p = buf + 1; *p; p++)
    {
      if (*p != '/')
        continue;
      *p = '\0';
      if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return shim_error(err, errno, "mkdir %s", buf);
      *p = '/';
    }
  if (mkdir(buf, mode) < 0 && errno != EEXIST)
    return shim_error(err, errno, "mkdir %s", buf);
  if (chmod(buf, mode) < 0)
    return shim_error(err, errno, "chmod %s", buf);
  return 0;
}

int write_file_atomic(const char *dir, const char *name, const char *data,
                      size_t n, mode_t mode, bool durable, shim_error_t *err)
{
  char tmp[PATH_MAX], final[PATH_MAX];
  cleanup_close int fd = -1;
  cleanup_close int dfd = -1;

  if (path_join(final, sizeof final, dir, name, err) < 0)
    return -1;
  if (snprintf(tmp, sizeof tmp, "%s.tmp", final) >= (int) sizeof tmp)
    return shim_error(err, ENAMETOOLONG, "path %s.tmp", final);
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0)
    return shim_error(err, errno, "open %s", tmp);
  for (size_t off = 0; off < n;)
    {
      ssize_t w = write(fd, data + off, n - off);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        return shim_error(err, errno, "write %s", tmp);
      off += (size_t) w;
    }
  if (durable && fsync(fd) < 0)
    return shim_error(err, errno, "fsync %s", tmp);
  if (rename(tmp, final) < 0)
    return shim_error(err, errno, "rename %s", tmp);
  if (!durable)
    return 0;
  dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0)
    (void) fsync(dfd);
  return 0;
}

ssize_t read_file(const char *path, char *buf, size_t cap, shim_error_t *err)
{
  cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
  size_t len = 0;

  if (fd < 0)
    return shim_error(err, errno, "open %s", path);
  while (len + 1 < cap)
    {
      ssize_t r = read(fd, buf + len, cap - 1 - len);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        return shim_error(err, errno, "read %s", path);
      if (r == 0)
        break;
      len += (size_t) r;
    }
  buf[len] = '\0';
  return (ssize_t) len;
}
