#include "container.h"
#include "verbs.h"

int
verb_start (struct global_args *g, int argc, char **argv, berth_error_t *err)
{
  if (argc != 2)
    return berth_make_error (err, 0, "start: expected exactly one container id");
  return container_start (g->root, argv[1], err);
}
