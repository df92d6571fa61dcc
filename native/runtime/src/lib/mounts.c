#include "mounts.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/magic.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>
#include "devices.h"
#include "procfs.h"
#include "safepath.h"
#include "utils.h"
#include "timing.h"

#define PATH_FLAGS (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME)

/* Flags already set on the mount of `fd`: a bind remount must keep locked ones. */
static unsigned long
mount_flags_of (int fd)
{
  struct statvfs sv;
  unsigned long f = 0;
  if (fstatvfs (fd, &sv) < 0)
    return 0;
  if (sv.f_flag & ST_RDONLY)
    f |= MS_RDONLY;
  if (sv.f_flag & ST_NOSUID)
    f |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV)
    f |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC)
    f |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME)
    f |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME)
    f |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME)
    f |= MS_RELATIME;
  return f;
}

/* Reopens `path` in the root (to get the mount just placed on it) and remounts it. */
static int
remount_in_root (int rootfd, const char *path, unsigned long flags, berth_error_t *err)
{
  cleanup_close int fd = open_in_root (rootfd, path, O_PATH, err);
  char p[32];
  if (fd < 0)
    return -1;
  flags |= mount_flags_of (fd) & (MS_NOSUID | MS_NODEV | MS_NOEXEC);
  if (mount (NULL, fd_path (fd, p), NULL, MS_REMOUNT | MS_BIND | (flags & PATH_FLAGS), NULL) < 0)
    return berth_make_error (err, errno, "remount `%s`", path);
  return 0;
}

static int
set_propagation (int rootfd, const char *path, unsigned long prop, berth_error_t *err)
{
  cleanup_close int fd = -1;
  char p[32];
  if (prop == 0)
    return 0;
  fd = open_in_root (rootfd, path, O_PATH, err);
  if (fd < 0)
    return -1;
  if (mount (NULL, fd_path (fd, p), NULL, prop, NULL) < 0)
    return berth_make_error (err, errno, "set propagation of `%s`", path);
  return 0;
}

static int
mount_bind (int rootfd, const struct spec *s, const struct spec_mount *m, berth_error_t *err)
{
  cleanup_free char *source = m->source[0] == '/' ? xstrdup (m->source) : xasprintf ("%s/%s", s->bundle, m->source);
  cleanup_close int srcfd = open (source, O_PATH | O_CLOEXEC);
  cleanup_close int target = -1;
  struct stat st;
  char sp[32], tp[32];

  if (srcfd < 0 || fstat (srcfd, &st) < 0)
    return berth_make_error (err, errno, "bind source `%s`", source);
  target = mkdir_in_root (rootfd, m->destination, !S_ISDIR (st.st_mode), err);
  if (target < 0)
    return -1;
  if (mount (fd_path (srcfd, sp), fd_path (target, tp), NULL, MS_BIND | (m->flags & MS_REC), NULL) < 0)
    return berth_make_error (err, errno, "bind `%s`", source);
  if ((m->flags & PATH_FLAGS) && remount_in_root (rootfd, m->destination, m->flags, err) < 0)
    return -1;
  return 0;
}

static int
mount_cgroups (int rootfd, const struct spec *s, const struct spec_mount *m, struct cgroup *cg, berth_error_t *err)
{
  size_t n;
  const struct cgroup_hierarchy *h = cgroup_hierarchies (cg, &n);
  bool cgns = spec_find_namespace (s, CLONE_NEWCGROUP) != NULL;
  unsigned long flags = (m->flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME)) | MS_NOSUID | MS_NODEV | MS_NOEXEC;
  cleanup_close int target = mkdir_in_root (rootfd, m->destination, false, err);
  char tp[32];

  if (target < 0)
    return -1;
  if (cgroup_mode (cg) == CGROUP_MODE_V2)
    {
      if (cgns)
        {
          if (mount ("cgroup2", fd_path (target, tp), "cgroup2", flags | (m->flags & MS_RDONLY), NULL) < 0)
            return berth_make_error (err, errno, "mount cgroup2");
        }
      else
        {
          if (mount (h[0].dir, fd_path (target, tp), NULL, MS_BIND, NULL) < 0)
            return berth_make_error (err, errno, "bind `%s`", h[0].dir);
          if (remount_in_root (rootfd, m->destination, flags | (m->flags & MS_RDONLY), err) < 0)
            return -1;
        }
      return 0;
    }
  /* v1 and hybrid: a tmpfs holding one directory per hierarchy, as runc lays it out. */
  if (mount ("tmpfs", fd_path (target, tp), "tmpfs", flags, "mode=755") < 0)
    return berth_make_error (err, errno, "mount tmpfs on `%s`", m->destination);
  for (size_t i = 0; i < n; i++)
    {
      cleanup_free char *copy = xstrdup (h[i].mountpoint);
      cleanup_free char *dest = xasprintf ("%s/%s", m->destination, basename (copy));
      cleanup_close int sub = mkdir_in_root (rootfd, dest, false, err);
      char sp[32];
      if (sub < 0)
        return -1;
      if (cgns)
        {
          if (mount ("cgroup", fd_path (sub, sp), h[i].v2 ? "cgroup2" : "cgroup", flags | (m->flags & MS_RDONLY),
                     h[i].v2 ? NULL : h[i].controllers) < 0)
            return berth_make_error (err, errno, "mount cgroup `%s` on `%s`", h[i].v2 ? "cgroup2" : h[i].controllers, dest);
        }
      else
        {
          if (mount (h[i].dir, fd_path (sub, sp), NULL, MS_BIND, NULL) < 0)
            return berth_make_error (err, errno, "bind `%s`", h[i].dir);
          if (remount_in_root (rootfd, dest, flags | (m->flags & MS_RDONLY), err) < 0)
            return -1;
        }
      /* cpu,cpuacct mounted together: make both names work. */
      if (!h[i].v2 && strchr (h[i].controllers, ',') && !has_prefix (h[i].controllers, "name="))
        {
          cleanup_free char *ctrls = xstrdup (h[i].controllers);
          cleanup_close int parent = open_in_root (rootfd, m->destination, O_PATH | O_DIRECTORY, err);
          char *save = NULL;
          if (parent < 0)
            return -1;
          for (char *c = strtok_r (ctrls, ",", &save); c; c = strtok_r (NULL, ",", &save))
            if (strcmp (c, basename (copy)) != 0)
              symlinkat (basename (copy), parent, c);
        }
    }
  if ((m->flags & MS_RDONLY) && remount_in_root (rootfd, m->destination, flags | MS_RDONLY, err) < 0)
    return -1;
  return 0;
}

static int
mount_one (int rootfd, const struct spec *s, const struct spec_mount *m, struct cgroup *cg, bool in_userns,
           berth_error_t *err)
{
  cleanup_close int target = -1;
  char tp[32];
  unsigned long flags = m->flags & ~(MS_BIND | MS_REC | MS_REMOUNT);

  if (m->bind)
    return mount_bind (rootfd, s, m, err);
  if (strcmp (m->type, "cgroup") == 0 || strcmp (m->type, "cgroup2") == 0)
    return mount_cgroups (rootfd, s, m, cg, err);
  /* procfs and sysfs must sit on a real directory of the rootfs (CVE-2019-19921). */
  if ((strcmp (m->type, "proc") == 0 || strcmp (m->type, "sysfs") == 0)
      && check_no_symlinks (rootfd, m->destination, err) < 0)
    return -1;
  target = mkdir_in_root (rootfd, m->destination, false, err);
  if (target < 0)
    return -1;
  if (strcmp (m->type, "proc") == 0 || strcmp (m->type, "sysfs") == 0)
    {
      struct stat st;
      if (fstat (target, &st) < 0 || !S_ISDIR (st.st_mode))
        return berth_make_error (err, 0, "mount destination `%s` is not a directory", m->destination);
    }
  if (mount (m->source ? m->source : m->type, fd_path (target, tp), m->type, flags, m->data[0] ? m->data : NULL) < 0)
    {
      int e = errno;
      if (e == EPERM && in_userns && strcmp (m->type, "sysfs") == 0)
        {
          /* sysfs of a network namespace we do not own: bind the host's, read-only. */
          if (mount ("/sys", tp, NULL, MS_BIND | MS_REC, NULL) < 0)
            return berth_make_error (err, errno, "bind /sys");
          return remount_in_root (rootfd, m->destination, flags | MS_RDONLY, err);
        }
      if (e == EPERM && in_userns && strcmp (m->type, "mqueue") == 0)
        return 0;
      return berth_make_error (err, e, "mount %s on `%s`", m->type, m->destination);
    }
  return 0;
}

static int
check_sysctl (const struct spec *s, const char *key, berth_error_t *err)
{
  const struct spec_namespace *net = spec_find_namespace (s, CLONE_NEWNET);
  const struct spec_namespace *ipc = spec_find_namespace (s, CLONE_NEWIPC);
  const struct spec_namespace *uts = spec_find_namespace (s, CLONE_NEWUTS);

  if (has_prefix (key, "net."))
    return net ? 0 : berth_make_error (err, 0, "sysctl `%s` needs a network namespace: refused", key);
  if (has_prefix (key, "fs.mqueue.") || strcmp (key, "kernel.msgmax") == 0 || strcmp (key, "kernel.msgmnb") == 0
      || strcmp (key, "kernel.msgmni") == 0 || strcmp (key, "kernel.sem") == 0 || strcmp (key, "kernel.shmall") == 0
      || strcmp (key, "kernel.shmmax") == 0 || strcmp (key, "kernel.shmmni") == 0
      || strcmp (key, "kernel.shm_rmid_forced") == 0)
    return ipc ? 0 : berth_make_error (err, 0, "sysctl `%s` needs an ipc namespace: refused", key);
  if (strcmp (key, "kernel.hostname") == 0 || strcmp (key, "kernel.domainname") == 0)
    return uts ? 0 : berth_make_error (err, 0, "sysctl `%s` needs a uts namespace: refused", key);
  return berth_make_error (err, 0, "sysctl `%s` is not namespaced: refused", key);
}

static int
apply_sysctls (int rootfd, const struct spec *s, berth_error_t *err)
{
  cleanup_close int sys = -1;
  if (s->n_sysctl == 0)
    return 0;
  sys = open_in_root (rootfd, "/proc/sys", O_PATH | O_DIRECTORY, err);
  if (sys < 0)
    return berth_error_wrap (err, "linux.sysctl needs /proc mounted");
  for (size_t i = 0; i < s->n_sysctl; i++)
    {
      cleanup_free char *rel = xstrdup (s->sysctl[i].key);
      cleanup_close int fd = -1;
      if (check_sysctl (s, s->sysctl[i].key, err) < 0)
        return -1;
      for (char *p = rel; *p; p++)
        if (*p == '.')
          *p = '/';
      fd = open_in_root (sys, rel, O_WRONLY, err);
      if (fd < 0)
        return berth_error_wrap (err, "sysctl `%s`", s->sysctl[i].key);
      if (procfs_write_fd (fd, rel, s->sysctl[i].value, err) < 0)
        return berth_error_wrap (err, "sysctl `%s`", s->sysctl[i].key);
    }
  return 0;
}

static int
mask_paths (int rootfd, const struct spec *s, int nullfd, berth_error_t *err)
{
  char np[32], tp[32];
  for (size_t i = 0; i < s->n_masked_paths; i++)
    {
      cleanup_close int fd = open_in_root (rootfd, s->masked_paths[i], O_PATH | O_NOFOLLOW, err);
      struct stat st;
      if (fd < 0 && (*err)->status == ENOENT)
        {
          berth_error_release (err);
          continue;
        }
      if (fd < 0 || fstat (fd, &st) < 0)
        return berth_error_wrap (err, "maskedPaths");
      if (S_ISDIR (st.st_mode))
        {
          if (mount ("tmpfs", fd_path (fd, tp), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0k") < 0)
            return berth_make_error (err, errno, "mask `%s`", s->masked_paths[i]);
        }
      else if (mount (fd_path (nullfd, np), fd_path (fd, tp), NULL, MS_BIND, NULL) < 0)
        return berth_make_error (err, errno, "mask `%s`", s->masked_paths[i]);
    }
  return 0;
}

static int
readonly_paths (int rootfd, const struct spec *s, berth_error_t *err)
{
  char tp[32];
  for (size_t i = 0; i < s->n_readonly_paths; i++)
    {
      cleanup_close int fd = open_in_root (rootfd, s->readonly_paths[i], O_PATH | O_NOFOLLOW, err);
      if (fd < 0 && (*err)->status == ENOENT)
        {
          berth_error_release (err);
          continue;
        }
      if (fd < 0)
        return berth_error_wrap (err, "readonlyPaths");
      if (mount (fd_path (fd, tp), tp, NULL, MS_BIND | MS_REC, NULL) < 0)
        return berth_make_error (err, errno, "bind `%s`", s->readonly_paths[i]);
      if (remount_in_root (rootfd, s->readonly_paths[i], MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, err) < 0)
        return -1;
    }
  return 0;
}

static int
do_pivot_root (int rootfd, berth_error_t *err)
{
  if (fchdir (rootfd) < 0)
    return berth_make_error (err, errno, "chdir to the rootfs");
  if (syscall (SYS_pivot_root, ".", ".") == 0)
    {
      /* The old root is stacked on top of the new one: detach it without
       * propagating the unmount anywhere. */
      if (mount (NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
        return berth_make_error (err, errno, "make the old root a slave");
      if (umount2 (".", MNT_DETACH) < 0)
        return berth_make_error (err, errno, "detach the old root");
    }
  else if (errno == EINVAL)
    {
      /* The host root is an initramfs/ramfs: pivot_root cannot leave it. */
      if (mount (".", "/", NULL, MS_MOVE, NULL) < 0)
        return berth_make_error (err, errno, "move the rootfs onto /");
      if (chroot (".") < 0)
        return berth_make_error (err, errno, "chroot");
    }
  else
    return berth_make_error (err, errno, "pivot_root");
  if (chdir ("/") < 0)
    return berth_make_error (err, errno, "chdir /");
  return 0;
}

static bool
has_mount_at (const struct spec *s, const char *dest)
{
  for (size_t i = 0; i < s->n_mounts; i++)
    if (strcmp (s->mounts[i].destination, dest) == 0)
      return true;
  return false;
}

/* Mounts the overlay rootfs from the overlay annotations, with relative layer
 * paths taken from the base (short options: many layers fit in one page). */
static int
mount_overlay_rootfs (const struct spec *s, berth_error_t *err)
{
  cleanup_close int cwd = open (".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  int ret = 0;
  if (cwd < 0)
    return berth_make_error (err, errno, "open the working directory");
  if (chdir (s->overlay_base) < 0)
    return berth_make_error (err, errno, "chdir to the overlay base `%s`", s->overlay_base);
  if (mount ("overlay", s->root_path, "overlay", 0, s->overlay_options) < 0)
    ret = berth_make_error (err, errno, "mount the overlay rootfs on `%s`", s->root_path);
  if (fchdir (cwd) < 0 && ret == 0)
    ret = berth_make_error (err, errno, "return to the working directory");
  return ret;
}

int
rootfs_setup (const struct spec *s, struct cgroup *cg, bool in_userns, berth_error_t *err)
{
  cleanup_close int rootfd = -1;
  cleanup_close int nullfd = -1;
  unsigned long prop = s->rootfs_propagation ? s->rootfs_propagation : MS_PRIVATE | MS_REC;

  /* Nothing we mount may propagate back to the host. A shared rootfs propagation is
   * set after pivot_root. */
  if (mount (NULL, "/", NULL, (prop & (MS_SHARED)) ? MS_PRIVATE | MS_REC : prop | MS_REC, NULL) < 0)
    return berth_make_error (err, errno, "make / private");
  if (s->overlay_options)
    {
      if (mount_overlay_rootfs (s, err) < 0)
        return -1;
    }
  else if (mount (s->root_path, s->root_path, NULL, MS_BIND | MS_REC, NULL) < 0)
    return berth_make_error (err, errno, "bind the rootfs `%s`", s->root_path);
  rootfd = open (s->root_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  TIMING ("child: rootfs bound");
  if (rootfd < 0)
    return berth_make_error (err, errno, "open the rootfs `%s`", s->root_path);

  for (size_t i = 0; i < s->n_mounts; i++)
    {
      if (mount_one (rootfd, s, &s->mounts[i], cg, in_userns, err) < 0)
        return berth_error_wrap (err, "mount `%s`", s->mounts[i].destination);
      if (set_propagation (rootfd, s->mounts[i].destination, s->mounts[i].propagation, err) < 0)
        return -1;
    }
  if (devices_setup (rootfd, s, in_userns, err) < 0)
    return -1;
  TIMING ("child: mounts+devices done");
  nullfd = devices_open_null (rootfd, err);
  if (nullfd < 0)
    return -1;
  if (has_mount_at (s, "/proc"))
    {
      /* The rootfs's /proc must now be a procfs (no symlinked or bind-faked one). */
      cleanup_close int pfd = open_in_root (rootfd, "/proc", O_PATH | O_DIRECTORY, err);
      struct statfs sfs;
      if (pfd < 0)
        return -1;
      if (fstatfs (pfd, &sfs) < 0 || sfs.f_type != PROC_SUPER_MAGIC)
        return berth_make_error (err, 0, "/proc in the rootfs is not procfs after mounting: refused");
    }
  if (apply_sysctls (rootfd, s, err) < 0 || mask_paths (rootfd, s, nullfd, err) < 0
      || readonly_paths (rootfd, s, err) < 0)
    return -1;
  TIMING ("child: masked/ro done");
  {
    /* process.cwd is made if missing, inside the root. */
    cleanup_close int cwd = mkdir_in_root (rootfd, s->cwd, false, err);
    if (cwd < 0)
      return berth_error_wrap (err, "process.cwd");
  }
  if (do_pivot_root (rootfd, err) < 0)
    return -1;
  if (s->root_readonly)
    {
      cleanup_close int fd = open ("/", O_PATH | O_CLOEXEC);
      if (mount (NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | (mount_flags_of (fd) & (MS_NOSUID | MS_NODEV | MS_NOEXEC)),
                 NULL) < 0)
        return berth_make_error (err, errno, "remount / read-only");
    }
  if ((prop & MS_SHARED) && mount (NULL, "/", NULL, prop, NULL) < 0)
    return berth_make_error (err, errno, "set rootfs propagation");
  return 0;
}
