#include "utils.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

void
cleanup_freep (void *p)
{
  free (*(void **) p);
}

void
cleanup_closep (int *fd)
{
  if (*fd >= 0)
    {
      int saved = errno;
      close (*fd);
      errno = saved;
    }
}

void
cleanup_fclosep (FILE **f)
{
  if (*f)
    fclose (*f);
}

void
cleanup_errorp (berth_error_t *err)
{
  berth_error_release (err);
}

void *
xmalloc0 (size_t size)
{
  void *p = calloc (1, size ? size : 1);
  if (p == NULL)
    abort ();
  return p;
}

char *
xstrdup (const char *s)
{
  char *r = strdup (s ? s : "");
  if (r == NULL)
    abort ();
  return r;
}

char *
xasprintf (const char *fmt, ...)
{
  va_list ap;
  char *s;
  va_start (ap, fmt);
  if (vasprintf (&s, fmt, ap) < 0)
    abort ();
  va_end (ap);
  return s;
}

int
write_all (int fd, const void *buf, size_t len)
{
  const char *p = buf;
  while (len > 0)
    {
      ssize_t n = write (fd, p, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return -1;
      p += n;
      len -= n;
    }
  return 0;
}

int
read_file_at (int dirfd, const char *path, char **out, size_t *len, berth_error_t *err)
{
  cleanup_close int fd = openat (dirfd, path, O_RDONLY | O_CLOEXEC);
  cleanup_free char *buf = NULL;
  size_t size = 0, cap = 0;

  if (fd < 0)
    return berth_make_error (err, errno, "open `%s`", path);
  for (;;)
    {
      ssize_t n;
      if (cap - size < 4096)
        {
          cap = cap ? cap * 2 : 8192;
          char *nb = realloc (buf, cap + 1);
          if (nb == NULL)
            return berth_make_error (err, ENOMEM, "read `%s`", path);
          buf = nb;
        }
      n = read (fd, buf + size, cap - size);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return berth_make_error (err, errno, "read `%s`", path);
      if (n == 0)
        break;
      size += n;
    }
  buf[size] = '\0';
  if (len)
    *len = size;
  *out = steal_pointer (&buf);
  return 0;
}

int
write_file_at (int dirfd, const char *path, const char *data, size_t len, berth_error_t *err)
{
  cleanup_close int fd = openat (dirfd, path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return berth_make_error (err, errno, "open `%s`", path);
  if (write_all (fd, data, len) < 0)
    return berth_make_error (err, errno, "write `%s`", path);
  return 0;
}

int
write_file_atomic (const char *path, const char *data, size_t len, mode_t mode, berth_error_t *err)
{
  /* Per-process temp name: concurrent writers of one path never share it. */
  cleanup_free char *tmp = xasprintf ("%s.%d.tmp", path, getpid ());
  cleanup_close int fd = (unlink (tmp), open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
  if (fd < 0)
    return berth_make_error (err, errno, "create `%s`", tmp);
  if (write_all (fd, data, len) < 0)
    {
      unlink (tmp);
      return berth_make_error (err, errno, "write `%s`", tmp);
    }
  if (rename (tmp, path) < 0)
    {
      unlink (tmp);
      return berth_make_error (err, errno, "rename `%s`", tmp);
    }
  return 0;
}

int
mkdir_p (const char *path, mode_t mode, berth_error_t *err)
{
  cleanup_free char *parent = NULL;
  char *slash;

  /* The usual case is one missing level: try the whole path first. */
  if (mkdir (path, mode) == 0 || errno == EEXIST)
    return 0;
  if (errno != ENOENT)
    return berth_make_error (err, errno, "mkdir `%s`", path);
  parent = xstrdup (path);
  slash = strrchr (parent, '/');
  if (slash == NULL || slash == parent)
    return berth_make_error (err, ENOENT, "mkdir `%s`", path);
  *slash = '\0';
  if (mkdir_p (parent, mode, err) < 0)
    return -1;
  if (mkdir (path, mode) < 0 && errno != EEXIST)
    return berth_make_error (err, errno, "mkdir `%s`", path);
  return 0;
}

static int
remove_tree_at (int dirfd, const char *name)
{
  int fd = openat (dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  DIR *d;
  struct dirent *de;

  if (fd < 0)
    return unlinkat (dirfd, name, 0);
  d = fdopendir (fd);
  if (d == NULL)
    {
      close (fd);
      return -1;
    }
  while ((de = readdir (d)))
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      if (de->d_type == DT_DIR)
        remove_tree_at (fd, de->d_name);
      else
        unlinkat (fd, de->d_name, 0);
    }
  closedir (d);
  return unlinkat (dirfd, name, AT_REMOVEDIR);
}

int
remove_tree (const char *path)
{
  return remove_tree_at (AT_FDCWD, path);
}

int
unix_addr (const char *path, struct sockaddr_un *addr, int *dirfd, berth_error_t *err)
{
  cleanup_free char *dir = NULL;
  const char *base;

  memset (addr, 0, sizeof (*addr));
  addr->sun_family = AF_UNIX;
  *dirfd = -1;
  if (strlen (path) < sizeof (addr->sun_path))
    {
      strcpy (addr->sun_path, path);
      return 0;
    }
  base = strrchr (path, '/');
  if (base == NULL)
    return berth_make_error (err, ENAMETOOLONG, "socket `%s`", path);
  dir = strndup (path, base - path);
  *dirfd = open (dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (*dirfd < 0)
    return berth_make_error (err, errno, "open `%s`", dir);
  if (snprintf (addr->sun_path, sizeof (addr->sun_path), "/proc/self/fd/%d%s", *dirfd, base) >= (int) sizeof (addr->sun_path))
    return berth_make_error (err, ENAMETOOLONG, "socket `%s`", path);
  return 0;
}

bool
has_prefix (const char *s, const char *prefix)
{
  return strncmp (s, prefix, strlen (prefix)) == 0;
}

const char *
fd_path (int fd, char *buf)
{
  snprintf (buf, 32, "/proc/self/fd/%d", fd);
  return buf;
}
