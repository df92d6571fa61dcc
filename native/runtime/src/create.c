#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include "container.h"
#include "selfexe.h"
#include "verbs.h"

int
parse_create_args (const char *verb, struct global_args *g, int argc, char **argv, struct create_options *o, int *detach,
                   berth_error_t *err)
{
  static const struct option opts[] = {
    { "bundle", required_argument, 0, 'b' },      { "pid-file", required_argument, 0, 'p' },
    { "console-socket", required_argument, 0, 'c' }, { "preserve-fds", required_argument, 0, 'f' },
    { "no-pivot", no_argument, 0, 'P' },         { "no-new-keyring", no_argument, 0, 'k' },
    { "detach", no_argument, 0, 'd' },           { "keep", no_argument, 0, 'K' },
    { 0, 0, 0, 0 },
  };
  int c;
  memset (o, 0, sizeof (*o));
  o->root = g->root;
  o->bundle = ".";
  optind = 0;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "b:d", opts, NULL)) != -1)
    switch (c)
      {
      case 'b': o->bundle = optarg; break;
      case 'p': o->pid_file = optarg; break;
      case 'f': o->preserve_fds = atoi (optarg); break;
      case 'd':
        if (detach)
          *detach = 1;
        break;
      case 'c':
        return berth_make_error (err, 0, "%s: --console-socket is not supported (process.terminal is not)", verb);
      case 'P': case 'k': case 'K': break;
      default:
        return berth_make_error (err, 0, "%s: unknown option `%s`", verb, argv[optind - 1]);
      }
  if (optind != argc - 1)
    return berth_make_error (err, 0, "%s: expected exactly one container id", verb);
  o->id = argv[optind];
  if (o->preserve_fds < 0)
    return berth_make_error (err, 0, "%s: bad --preserve-fds", verb);
  return 0;
}

int
verb_create (struct global_args *g, int argc, char **argv, berth_error_t *err)
{
  struct create_options o;
  if (parse_create_args ("create", g, argc, argv, &o, NULL, err) < 0)
    return -1;
  if (selfexe_ensure_sealed (g->full_argv, err) < 0)
    return -1;
  if (container_create (&o, err) < 0)
    return berth_error_wrap (err, "create `%s`", o.id);
  return 0;
}
