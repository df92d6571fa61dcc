/* linux.seccomp (the spec's object) compiled with libseccomp and loaded. */
#ifndef BERTH_SECCOMP_FILTER_H
#define BERTH_SECCOMP_FILTER_H

#include "error.h"
#include "json.h"

#include <linux/filter.h>
#include <stddef.h>

/* A compiled filter, ready for seccomp(SECCOMP_SET_MODE_FILTER). */
struct seccomp_program
{
  struct sock_filter *insns; /* NULL: no profile */
  size_t len;
  unsigned int flags; /* SECCOMP_FILTER_FLAG_* */
};

/* Compiles the profile (libseccomp, plus runc's ENOSYS stub for syscalls newer than
 * the profile), in `create` before cloning, so a bad profile fails early and the
 * init only has to load it. Compiled programs are cached in `cache_dir` (the
 * 0700 state root, in .seccomp-cache/) under a hash of the profile, which is stored and compared in
 * full: the same profile (Docker's default, say) is compiled once per host. */
int seccomp_prepare (const json_node *profile, const char *cache_dir, struct seccomp_program *out, berth_error_t *err);
/* Loads a prepared program into the calling process (no-op without a profile). */
int seccomp_load_program (const struct seccomp_program *p, berth_error_t *err);

#endif
