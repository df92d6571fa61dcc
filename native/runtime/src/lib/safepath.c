#include "safepath.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "utils.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

static int have_openat2 = -1;

void
safepath_use_openat2 (bool on)
{
  have_openat2 = on ? -1 : 0;
}

static int
sys_openat2 (int dirfd, const char *path, int flags, unsigned long long resolve)
{
  struct open_how how = { .flags = flags, .mode = 0, .resolve = resolve };
  return (int) syscall (SYS_openat2, dirfd, path, &how, sizeof (how));
}

/* Lexical resolution inside the root, following symlinks read from the rootfs
 * (like filepath-securejoin): returns the resolved path, missing tail kept. */
static int
secure_join (int rootfd, const char *path, char **out, berth_error_t *err)
{
  cleanup_free char *resolved = xmalloc0 (PATH_MAX);
  cleanup_free char *todo = xstrdup (path);
  int links = 0;
  size_t rlen = 0;

  while (*todo)
    {
      char *slash, *comp, *rest;
      while (*todo == '/')
        memmove (todo, todo + 1, strlen (todo));
      if (*todo == '\0')
        break;
      slash = strchr (todo, '/');
      comp = todo;
      rest = slash ? slash + 1 : todo + strlen (todo);
      if (slash)
        *slash = '\0';
      if (strcmp (comp, ".") == 0)
        ;
      else if (strcmp (comp, "..") == 0)
        {
          char *last = strrchr (resolved, '/');
          rlen = last ? (size_t) (last - resolved) : 0;
          resolved[rlen] = '\0';
        }
      else
        {
          char link[PATH_MAX];
          ssize_t n;
          if (rlen + strlen (comp) + 2 >= PATH_MAX)
            return berth_make_error (err, ENAMETOOLONG, "resolve `%s`", path);
          resolved[rlen++] = '/';
          strcpy (resolved + rlen, comp);
          rlen += strlen (comp);
          n = readlinkat (rootfd, resolved + 1, link, sizeof (link) - 1);
          if (n >= 0)
            {
              char *next;
              if (++links > 255)
                return berth_make_error (err, ELOOP, "resolve `%s`", path);
              link[n] = '\0';
              /* Drop the symlink itself; an absolute target restarts at the root. */
              rlen -= strlen (comp) + 1;
              resolved[rlen] = '\0';
              if (link[0] == '/')
                {
                  rlen = 0;
                  resolved[0] = '\0';
                }
              next = xasprintf ("%s/%s", link, rest);
              free (todo);
              todo = next;
              continue;
            }
        }
      memmove (todo, rest, strlen (rest) + 1);
    }
  *out = rlen ? xstrdup (resolved) : xstrdup ("/");
  return 0;
}

/* Walks `resolved` (already free of symlinks) one component at a time. */
static int
walk_open (int rootfd, const char *resolved, int flags, berth_error_t *err)
{
  cleanup_free char *copy = xstrdup (resolved);
  char *save = NULL, *comp, *next;
  int fd = dup (rootfd);

  if (fd < 0)
    return berth_make_error (err, errno, "dup");
  comp = strtok_r (copy, "/", &save);
  if (comp == NULL)
    {
      close (fd);
      return openat (rootfd, ".", flags | O_CLOEXEC);
    }
  for (; comp; comp = next)
    {
      int nfd;
      next = strtok_r (NULL, "/", &save);
      nfd = openat (fd, comp, (next ? O_PATH | O_DIRECTORY : flags) | O_NOFOLLOW | O_CLOEXEC);
      close (fd);
      if (nfd < 0)
        return berth_make_error (err, errno, "open `%s` in the rootfs", resolved);
      fd = nfd;
    }
  return fd;
}

int
open_in_root (int rootfd, const char *path, int flags, berth_error_t *err)
{
  int fd;
  cleanup_free char *resolved = NULL;

  if (have_openat2 != 0)
    {
      fd = sys_openat2 (rootfd, path, flags | O_CLOEXEC, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
      if (fd >= 0)
        {
          have_openat2 = 1;
          return fd;
        }
      if (errno != ENOSYS)
        return berth_make_error (err, errno, "open `%s` in the rootfs", path);
      have_openat2 = 0;
    }
  if (secure_join (rootfd, path, &resolved, err) < 0)
    return -1;
  return walk_open (rootfd, resolved, flags, err);
}

int
mkdir_in_root (int rootfd, const char *path, bool last_is_file, berth_error_t *err)
{
  cleanup_free char *resolved = NULL;
  cleanup_free char *copy = NULL;
  int fd;
  char *save = NULL, *comp, *next;
  cleanup_free char *prefix = NULL;

  fd = open_in_root (rootfd, path, O_PATH, err);
  if (fd >= 0)
    return fd;
  if ((*err)->status != ENOENT)
    return -1;
  berth_error_release (err);
  if (secure_join (rootfd, path, &resolved, err) < 0)
    return -1;
  {
    /* Usually only the last component is missing: try its parent first. */
    cleanup_free char *dir = xstrdup (resolved);
    char *slash = strrchr (dir, '/');
    if (slash && slash[1])
      {
        cleanup_close int parent = -1;
        const char *base = resolved + (slash - dir) + 1;
        *slash = '\0';
        parent = open_in_root (rootfd, dir[0] ? dir : "/", O_PATH | O_DIRECTORY, err);
        if (parent >= 0)
          {
            int r;
            if (last_is_file)
              {
                r = openat (parent, base, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (r >= 0)
                  close (r);
              }
            else
              r = mkdirat (parent, base, 0755);
            if (r < 0 && errno != EEXIST)
              return berth_make_error (err, errno, "create `%s` in the rootfs", path);
            return open_in_root (rootfd, resolved, O_PATH, err);
          }
        berth_error_release (err);
      }
  }
  copy = xstrdup (resolved);
  prefix = xstrdup ("/");
  for (comp = strtok_r (copy, "/", &save); comp; comp = next)
    {
      cleanup_close int parent = -1;
      char *np;
      int r;
      next = strtok_r (NULL, "/", &save);
      parent = open_in_root (rootfd, prefix, O_PATH | O_DIRECTORY, err);
      if (parent < 0)
        return -1;
      if (next == NULL && last_is_file)
        {
          r = openat (parent, comp, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
          if (r >= 0)
            close (r);
        }
      else
        r = mkdirat (parent, comp, 0755);
      if (r < 0 && errno != EEXIST)
        return berth_make_error (err, errno, "create `%s` in the rootfs", path);
      np = xasprintf ("%s%s%s", prefix, strcmp (prefix, "/") == 0 ? "" : "/", comp);
      free (prefix);
      prefix = np;
    }
  return open_in_root (rootfd, resolved, O_PATH, err);
}

int
check_no_symlinks (int rootfd, const char *path, berth_error_t *err)
{
  cleanup_free char *copy = xstrdup (path);
  cleanup_close int fd = dup (rootfd);
  char *save = NULL;

  for (char *comp = strtok_r (copy, "/", &save); comp; comp = strtok_r (NULL, "/", &save))
    {
      struct stat st;
      int nfd;
      if (strcmp (comp, "..") == 0)
        return berth_make_error (err, 0, "`%s` contains `..`", path);
      if (fstatat (fd, comp, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : berth_make_error (err, errno, "stat `%s` in the rootfs", path);
      if (S_ISLNK (st.st_mode))
        return berth_make_error (err, 0, "`%s` in the rootfs is a symlink (or crosses one): refused", path);
      nfd = openat (fd, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
      if (nfd < 0)
        return berth_make_error (err, errno, "open `%s` in the rootfs", path);
      close (fd);
      fd = nfd;
    }
  return 0;
}
