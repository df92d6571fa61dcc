#include "options.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"

static const char usage[] =
    "usage: berth-shim --id ID --bundle DIR --runtime PATH [--runtime-root DIR]\n"
    "                  --state-dir DIR --log-path FILE\n"
    "                  [--log-max-bytes N (default 10485760)] [--log-max-files N (default 2)]\n";

static int parse_u64(const char *name, const char *s, uint64_t *out, shim_error_t *err)
{
  char *end;
  unsigned long long v;

  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno || *s == '\0' || *end != '\0' || *s == '-')
    return shim_error(err, 0, "%s: not a number: %s", name, s);
  *out = v;
  return 0;
}

int options_parse(int argc, char **argv, struct shim_options *o, shim_error_t *err)
{
  memset(o, 0, sizeof *o);
  o->log_max_bytes = DEFAULT_LOG_MAX_BYTES;
  o->log_max_files = DEFAULT_LOG_MAX_FILES;

  for (int i = 1; i < argc; i++)
    {
      const char *arg = argv[i], *value;
      char name[64];
      const char *eq = strchr(arg, '=');
      uint64_t n;

      if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
        {
          fputs(usage, stdout);
          return 1;
        }
      if (strcmp(arg, "--version") == 0)
        {
          puts("berth-shim 0.1.0");
          return 1;
        }
      if (strncmp(arg, "--", 2) != 0)
        return shim_error(err, 0, "unexpected argument %s", arg);
      if (eq)
        {
          snprintf(name, sizeof name, "%.*s", (int) (eq - arg), arg);
          value = eq + 1;
        }
      else
        {
          snprintf(name, sizeof name, "%s", arg);
          if (i + 1 >= argc)
            return shim_error(err, 0, "%s needs a value", name);
          value = argv[++i];
        }

      if (strcmp(name, "--id") == 0)
        o->id = value;
      else if (strcmp(name, "--bundle") == 0)
        o->bundle = value;
      else if (strcmp(name, "--runtime") == 0)
        o->runtime = value;
      else if (strcmp(name, "--runtime-root") == 0)
        o->runtime_root = value;
      else if (strcmp(name, "--state-dir") == 0)
        o->state_dir = value;
      else if (strcmp(name, "--log-path") == 0)
        o->log_path = value;
      else if (strcmp(name, "--log-max-bytes") == 0)
        {
          if (parse_u64(name, value, &o->log_max_bytes, err) < 0)
            return -1;
        }
      else if (strcmp(name, "--log-max-files") == 0)
        {
          if (parse_u64(name, value, &n, err) < 0)
            return -1;
          if (n < 1 || n > 1000)
            return shim_error(err, 0, "--log-max-files must be between 1 and 1000");
          o->log_max_files = (unsigned) n;
        }
      else
        return shim_error(err, 0, "unknown option %s", name);
    }

  if (!o->id || !o->bundle || !o->runtime || !o->state_dir || !o->log_path)
    return shim_error(err, 0, "missing option: --id, --bundle, --runtime, --state-dir and --log-path are required");
  if (o->id[0] == '\0' || strchr(o->id, '/') || strlen(o->id) > 1024)
    return shim_error(err, 0, "invalid --id %s", o->id);
  if (o->runtime[0] == '\0' || o->state_dir[0] == '\0' || o->log_path[0] == '\0' || o->bundle[0] == '\0')
    return shim_error(err, 0, "empty option value");
  return 0;
}

/* cwd-relative path made absolute (not resolved: the target may not exist). */
static int absolute(const char **p, char *buf, size_t cap, shim_error_t *err)
{
  char cwd[PATH_MAX];

  if ((*p)[0] == '/')
    return 0;
  if (!getcwd(cwd, sizeof cwd))
    return shim_error(err, errno, "getcwd");
  if (path_join(buf, cap, cwd, *p, err) < 0)
    return -1;
  *p = buf;
  return 0;
}

int options_prepare(struct shim_options *o, shim_error_t *err)
{
  static char state[PATH_MAX], bundle[PATH_MAX], log_path[PATH_MAX], root[PATH_MAX], runtime[PATH_MAX];

  if (absolute(&o->state_dir, state, sizeof state, err) < 0)
    return -1;
  if (mkdir_p(o->state_dir, 0700, err) < 0)
    return shim_error_wrap(err, "state directory");
  if (!realpath(o->bundle, bundle))
    return shim_error(err, errno, "bundle %s", o->bundle);
  o->bundle = bundle;
  if (absolute(&o->log_path, log_path, sizeof log_path, err) < 0)
    return -1;
  if (o->runtime_root && absolute(&o->runtime_root, root, sizeof root, err) < 0)
    return -1;
  if (strchr(o->runtime, '/'))
    {
      if (absolute(&o->runtime, runtime, sizeof runtime, err) < 0)
        return -1;
      if (access(o->runtime, X_OK) < 0)
        return shim_error(err, errno, "runtime %s", o->runtime);
    }
  return 0;
}
