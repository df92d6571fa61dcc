/* Scope-bound cleanup helpers (GCC/Clang `cleanup` attribute). */
#ifndef BERTH_SHIM_CLEANUP_H
#define BERTH_SHIM_CLEANUP_H

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static inline void cleanup_freep(void *p)
{
  free(*(void **) p);
}

static inline void cleanup_closep(int *fd)
{
  if (*fd >= 0)
    {
      int saved = errno;
      close(*fd);
      errno = saved;
    }
}

#define cleanup_free __attribute__((cleanup(cleanup_freep)))
#define cleanup_close __attribute__((cleanup(cleanup_closep)))

/* Takes ownership of *fd away from a cleanup_close variable. */
static inline int steal_fd(int *fd)
{
  int r = *fd;
  *fd = -1;
  return r;
}

#endif
