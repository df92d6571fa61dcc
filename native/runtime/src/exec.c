#include <getopt.h>
#include <stdlib.h>
#include "container.h"
#include "selfexe.h"
#include "utils.h"
#include "verbs.h"

int
verb_exec (struct global_args *g, int argc, char **argv, berth_error_t *err)
{
  static const struct option opts[] = {
    { "env", required_argument, 0, 'e' }, { "cwd", required_argument, 0, 'w' }, { 0, 0, 0, 0 }
  };
  cleanup_free char **env = xmalloc0 ((size_t) argc * sizeof (char *));
  struct exec_options o = { .root = g->root, .env = env };
  int c, status = 0;

  optind = 0;
  opterr = 0;
  /* "+": options end at the container id; the command's own options are its own. */
  while ((c = getopt_long (argc, argv, "+e:w:", opts, NULL)) != -1)
    switch (c)
      {
      case 'e': env[o.n_env++] = optarg; break;
      case 'w': o.cwd = optarg; break;
      default: return berth_make_error (err, 0, "exec: unknown option `%s`", argv[optind - 1]);
      }
  if (argc - optind < 2)
    return berth_make_error (err, 0, "exec: usage: exec [--env NAME=VALUE]... [--cwd DIR] ID COMMAND [ARG...]");
  o.id = argv[optind];
  o.args = argv + optind + 1;
  o.n_args = (size_t) (argc - optind - 1);
  /* The runtime binary briefly runs in the container's namespaces: from a sealed
   * copy, as `create` does (CVE-2019-5736). */
  if (selfexe_ensure_sealed (g->full_argv, err) < 0)
    return -1;
  if (container_exec (&o, &status, err) < 0)
    return -1;
  return status;
}
