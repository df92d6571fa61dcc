#include <getopt.h>
#include <stdbool.h>
#include "container.h"
#include "verbs.h"

int
verb_delete (struct global_args *g, int argc, char **argv, berth_error_t *err)
{
  static const struct option opts[] = { { "force", no_argument, 0, 'f' }, { 0, 0, 0, 0 } };
  bool force = false;
  int c;

  optind = 0;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "f", opts, NULL)) != -1)
    {
      if (c != 'f')
        return berth_make_error (err, 0, "delete: unknown option `%s`", argv[optind - 1]);
      force = true;
    }
  if (argc - optind != 1)
    return berth_make_error (err, 0, "delete: expected exactly one container id");
  return container_delete (g->root, argv[optind], force, err);
}
