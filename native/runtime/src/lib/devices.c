#include "devices.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include "safepath.h"
#include "utils.h"

static const struct
{
  const char *path;
  unsigned major, minor;
} default_devices[] = {
  { "/dev/null", 1, 3 }, { "/dev/zero", 1, 5 }, { "/dev/full", 1, 7 },
  { "/dev/random", 1, 8 }, { "/dev/urandom", 1, 9 }, { "/dev/tty", 5, 0 },
};

static const struct
{
  const char *target, *link;
} dev_symlinks[] = {
  { "/proc/self/fd", "fd" }, { "/proc/self/fd/0", "stdin" }, { "/proc/self/fd/1", "stdout" },
  { "/proc/self/fd/2", "stderr" }, { "/proc/kcore", "core" }, { "pts/ptmx", "ptmx" },
};

static int
split_parent (int rootfd, const char *path, char **base, berth_error_t *err)
{
  cleanup_free char *dir = xstrdup (path);
  char *slash = strrchr (dir, '/');
  *base = xstrdup (slash + 1);
  if (slash == dir)
    dir[1] = '\0';
  else
    *slash = '\0';
  int fd = mkdir_in_root (rootfd, dir, false, err);
  if (fd < 0)
    return -1;
  /* mkdir_in_root gives O_PATH; reopen as a directory for *at calls. */
  int dfd = openat (fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  close (fd);
  if (dfd < 0)
    return berth_make_error (err, errno, "open `%s`", dir);
  return dfd;
}

static int
make_node (int rootfd, const char *path, mode_t type, unsigned major, unsigned minor, mode_t mode, uid_t uid, gid_t gid,
           bool bind, berth_error_t *err)
{
  cleanup_free char *base = NULL;
  cleanup_close int dirfd = split_parent (rootfd, path, &base, err);
  struct stat st;
  dev_t dev = makedev (major, minor);

  if (dirfd < 0)
    return -1;
  if (fstatat (dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0)
    {
      if (S_ISLNK (st.st_mode))
        return berth_make_error (err, 0, "`%s` in the rootfs is a symlink: refused", path);
      if ((st.st_mode & S_IFMT) == type && st.st_rdev == dev)
        return 0;
      if (!bind && unlinkat (dirfd, base, S_ISDIR (st.st_mode) ? AT_REMOVEDIR : 0) < 0)
        return berth_make_error (err, errno, "replace `%s`", path);
    }
  if (bind)
    {
      char target[32];
      cleanup_close int fd = openat (dirfd, base, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
      cleanup_close int tfd = -1;
      if (fd < 0)
        return berth_make_error (err, errno, "create `%s`", path);
      tfd = openat (dirfd, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
      if (tfd < 0)
        return berth_make_error (err, errno, "open `%s`", path);
      if (mount (path, fd_path (tfd, target), NULL, MS_BIND, NULL) < 0)
        return berth_make_error (err, errno, "bind host `%s`", path);
      return 0;
    }
  if (mknodat (dirfd, base, type | (mode & 07777), dev) < 0)
    return berth_make_error (err, errno, "mknod `%s`", path);
  if (fchownat (dirfd, base, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
    return berth_make_error (err, errno, "chown `%s`", path);
  return 0;
}

int
devices_setup (int rootfd, const struct spec *s, bool bind_nodes, berth_error_t *err)
{
  cleanup_close int devfd = -1;

  for (size_t i = 0; i < sizeof (default_devices) / sizeof (default_devices[0]); i++)
    if (make_node (rootfd, default_devices[i].path, S_IFCHR, default_devices[i].major, default_devices[i].minor, 0666, 0, 0,
                   bind_nodes, err) < 0)
      return berth_error_wrap (err, "default device");
  for (size_t i = 0; i < s->n_devices; i++)
    {
      const struct spec_device *d = &s->devices[i];
      mode_t type = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;
      if (make_node (rootfd, d->path, type, d->major, d->minor, d->mode, d->uid, d->gid, bind_nodes && d->type != 'p', err) < 0)
        return berth_error_wrap (err, "linux.devices");
    }
  devfd = open_in_root (rootfd, "/dev", O_PATH | O_DIRECTORY, err);
  if (devfd < 0)
    return berth_error_wrap (err, "/dev");
  for (size_t i = 0; i < sizeof (dev_symlinks) / sizeof (dev_symlinks[0]); i++)
    {
      struct stat st;
      if (strcmp (dev_symlinks[i].link, "ptmx") == 0)
        {
          /* /dev/ptmx points at the container's own devpts instance. */
          if (fstatat (devfd, "pts/ptmx", &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
          if (fstatat (devfd, "ptmx", &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR (st.st_mode))
            unlinkat (devfd, "ptmx", 0);
        }
      if (strcmp (dev_symlinks[i].link, "core") == 0 && access ("/proc/kcore", F_OK) < 0)
        continue;
      if (symlinkat (dev_symlinks[i].target, devfd, dev_symlinks[i].link) < 0 && errno != EEXIST)
        return berth_make_error (err, errno, "symlink /dev/%s", dev_symlinks[i].link);
    }
  if (mkdirat (devfd, "shm", 01777) < 0 && errno != EEXIST)
    return berth_make_error (err, errno, "mkdir /dev/shm");
  return 0;
}

int
devices_open_null (int rootfd, berth_error_t *err)
{
  cleanup_close int dev = open_in_root (rootfd, "/dev", O_PATH | O_DIRECTORY, err);
  struct stat st;
  int fd;

  if (dev < 0)
    return -1;
  fd = openat (dev, "null", O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return berth_make_error (err, errno, "open /dev/null in the rootfs");
  if (fstat (fd, &st) < 0 || S_ISLNK (st.st_mode) || !S_ISCHR (st.st_mode) || st.st_rdev != makedev (1, 3))
    {
      close (fd);
      return berth_make_error (err, 0, "/dev/null in the rootfs is not the null device (a symlink?): refused");
    }
  return fd;
}
