/* The command line:
 *   berth-shim --id ID --bundle DIR --runtime PATH [--runtime-root DIR]
 *              --state-dir DIR --log-path FILE
 *              [--log-max-bytes N] [--log-max-files N]
 */
#ifndef BERTH_SHIM_OPTIONS_H
#define BERTH_SHIM_OPTIONS_H

#include <stdint.h>

#include "error.h"

#define DEFAULT_LOG_MAX_BYTES 10485760ULL
#define DEFAULT_LOG_MAX_FILES 2U

struct shim_options
{
  const char *id;
  const char *bundle;       /* absolute */
  const char *runtime;      /* absolute if it had a '/', else a name for PATH */
  const char *runtime_root; /* absolute, or NULL */
  const char *state_dir;    /* absolute; created mode 0700 by options_prepare */
  const char *log_path;     /* absolute */
  uint64_t log_max_bytes;   /* 0: no rotation */
  unsigned log_max_files;   /* files kept, the current one included */
};

/* Returns 0, -1 on a usage error, or 1 when --help/--version was printed. */
int options_parse(int argc, char **argv, struct shim_options *o, shim_error_t *err);

/* Creates the state directory and makes every path absolute (the monitor
 * runs in "/"). */
int options_prepare(struct shim_options *o, shim_error_t *err);

#endif
