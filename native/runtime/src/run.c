#include "container.h"
#include "selfexe.h"
#include "verbs.h"

int
verb_run (struct global_args *g, int argc, char **argv, berth_error_t *err)
{
  struct create_options o;
  int detach = 0, status = 0;
  if (parse_create_args ("run", g, argc, argv, &o, &detach, err) < 0)
    return -1;
  if (selfexe_ensure_sealed (g->full_argv, err) < 0)
    return -1;
  if (detach)
    {
      if (container_create (&o, err) < 0 || container_start (o.root, o.id, err) < 0)
        return berth_error_wrap (err, "run `%s`", o.id);
      return 0;
    }
  if (container_run (&o, &status, err) < 0)
    return berth_error_wrap (err, "run `%s`", o.id);
  return status;
}
