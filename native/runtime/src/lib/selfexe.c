#include "selfexe.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>
#include "utils.h"

#define SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

extern char **environ;

/* A binary on a read-only mount, or marked immutable (clearing that needs
 * CAP_LINUX_IMMUTABLE on the host), cannot be overwritten through
 * /proc/PID/exe whatever a container does: no copy needed. */
static bool
cannot_be_written (int fd)
{
  struct statvfs sv;
  int flags = 0;
  if (fstatvfs (fd, &sv) == 0 && (sv.f_flag & ST_RDONLY))
    return true;
  return ioctl (fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags & FS_IMMUTABLE_FL);
}

int
selfexe_ensure_sealed (char **argv, berth_error_t *err)
{
  cleanup_close int self = open ("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  cleanup_close int mfd = -1;
  struct stat st;
  off_t off = 0;
  int seals;

  if (self < 0)
    return berth_make_error (err, errno, "open /proc/self/exe");
  seals = fcntl (self, F_GET_SEALS);
  if (seals >= 0 && (seals & SEALS) == SEALS)
    return 0;
  if (cannot_be_written (self))
    return 0;
  if (fstat (self, &st) < 0)
    return berth_make_error (err, errno, "stat /proc/self/exe");
  mfd = memfd_create ("berth-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (mfd < 0)
    return berth_make_error (err, errno, "memfd_create");
  while (off < st.st_size)
    {
      ssize_t n = sendfile (mfd, self, NULL, st.st_size - off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return berth_make_error (err, n < 0 ? errno : EIO, "copy the runtime binary");
      off += n;
    }
  if (fcntl (mfd, F_ADD_SEALS, SEALS) < 0)
    return berth_make_error (err, errno, "seal the runtime copy");
  fexecve (mfd, argv, environ);
  return berth_make_error (err, errno, "exec the sealed runtime copy");
}
