#include <stdio.h>
#include "container.h"
#include "verbs.h"

int
verb_state (struct global_args *g, int argc, char **argv, berth_error_t *err)
{
  if (argc != 2)
    return berth_make_error (err, 0, "state: expected exactly one container id");
  return container_state (g->root, argv[1], stdout, err);
}
