#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include "container.h"
#include "signals.h"
#include "verbs.h"

int
verb_kill (struct global_args *g, int argc, char **argv, berth_error_t *err)
{
  static const struct option opts[] = { { "all", no_argument, 0, 'a' }, { 0, 0, 0, 0 } };
  bool all = false;
  int sig = SIGTERM, c;

  optind = 0;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "a", opts, NULL)) != -1)
    {
      if (c != 'a')
        return berth_make_error (err, 0, "kill: unknown option `%s`", argv[optind - 1]);
      all = true;
    }
  if (argc - optind < 1 || argc - optind > 2)
    return berth_make_error (err, 0, "kill: usage: kill [--all] ID [SIGNAL]");
  if (argc - optind == 2 && signal_parse (argv[optind + 1], &sig, err) < 0)
    return berth_error_wrap (err, "kill");
  return container_kill (g->root, argv[optind], sig, all, err);
}
