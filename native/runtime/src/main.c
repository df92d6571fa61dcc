/* berth-runtime: an OCI runtime with runc's command line for the verbs Berth uses. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "state.h"
#include "utils.h"
#include "timing.h"
#include "verbs.h"

#define BERTH_RUNTIME_VERSION "0.1.0"

static const struct
{
  const char *name;
  int (*fn) (struct global_args *, int, char **, berth_error_t *);
} verbs[] = {
  { "create", verb_create }, { "start", verb_start }, { "state", verb_state },
  { "kill", verb_kill },     { "delete", verb_delete }, { "run", verb_run },
  { "exec", verb_exec },
};

static void
usage (FILE *f)
{
  fputs ("usage: berth-runtime [--root DIR] [--log FILE] [--log-format text|json] COMMAND ...\n"
         "commands:\n"
         "  create [--bundle DIR] [--pid-file FILE] [--preserve-fds N] ID\n"
         "  start ID\n"
         "  state ID\n"
         "  kill [--all] ID [SIGNAL]\n"
         "  delete [--force] ID\n"
         "  run [--bundle DIR] [--pid-file FILE] [--detach] ID\n"
         "  exec [--env NAME=VALUE]... [--cwd DIR] ID COMMAND [ARG...]\n",
         f);
}

int
main (int argc, char **argv)
{
  static const struct option opts[] = {
    { "root", required_argument, 0, 'r' },     { "log", required_argument, 0, 'l' },
    { "log-format", required_argument, 0, 'F' }, { "debug", optional_argument, 0, 'D' },
    { "systemd-cgroup", optional_argument, 0, 's' }, { "rootless", required_argument, 0, 'R' },
    { "criu", required_argument, 0, 'C' },     { "version", no_argument, 0, 'v' },
    { "help", no_argument, 0, 'h' },           { 0, 0, 0, 0 },
  };
  struct global_args g = { .root = DEFAULT_STATE_ROOT, .argv0 = argv[0], .full_argv = argv };
  const char *log_path = NULL, *log_format = "text";
  cleanup_error berth_error_t err = NULL;
  int c, debug = 0, ret;

  TIMING ("main");
  opterr = 0;
  while ((c = getopt_long (argc, argv, "+vh", opts, NULL)) != -1)
    switch (c)
      {
      case 'r': g.root = optarg; break;
      case 'l': log_path = optarg; break;
      case 'F': log_format = optarg; break;
      case 'D': debug = !(optarg && strcmp (optarg, "false") == 0); break;
      case 's': /* accepted: cgroups are managed through cgroupfs */
      case 'R':
      case 'C': break;
      case 'v':
        printf ("berth-runtime version %s\nspec: 1.0.2\n", BERTH_RUNTIME_VERSION);
        return 0;
      case 'h':
        usage (stdout);
        return 0;
      default:
        fprintf (stderr, "berth-runtime: unknown global option `%s`\n", argv[optind - 1]);
        return 1;
      }
  if (log_init (log_path, log_format, debug, &err) < 0)
    {
      fprintf (stderr, "berth-runtime: %s\n", err->msg);
      return 1;
    }
  if (optind >= argc)
    {
      usage (stderr);
      return 1;
    }
  for (size_t i = 0; i < sizeof (verbs) / sizeof (verbs[0]); i++)
    if (strcmp (argv[optind], verbs[i].name) == 0)
      {
        ret = verbs[i].fn (&g, argc - optind, argv + optind, &err);
        if (ret < 0)
          {
            log_error ("%s", err ? err->msg : "unknown error");
            return 1;
          }
        return ret;
      }
  log_error ("unknown command `%s`", argv[optind]);
  return 1;
}
