/* One thin file per CLI verb: parse its arguments, call the library. */
#ifndef BERTH_VERBS_H
#define BERTH_VERBS_H

#include "error.h"

struct global_args
{
  const char *root;
  const char *argv0;
  char **full_argv; /* for the sealed re-exec */
};

int verb_create (struct global_args *g, int argc, char **argv, berth_error_t *err);
int verb_start (struct global_args *g, int argc, char **argv, berth_error_t *err);
int verb_state (struct global_args *g, int argc, char **argv, berth_error_t *err);
int verb_kill (struct global_args *g, int argc, char **argv, berth_error_t *err);
int verb_delete (struct global_args *g, int argc, char **argv, berth_error_t *err);
/* Returns the container's exit status (>= 0) on success. */
int verb_run (struct global_args *g, int argc, char **argv, berth_error_t *err);

/* Returns the process's exit status (>= 0) on success. */
int verb_exec (struct global_args *g, int argc, char **argv, berth_error_t *err);

/* Shared by create and run. */
struct create_options;
int parse_create_args (const char *verb, struct global_args *g, int argc, char **argv, struct create_options *o,
                       int *detach, berth_error_t *err);

#endif
