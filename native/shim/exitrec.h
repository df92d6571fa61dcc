/* The exit record: <state-dir>/exit.json and the answers to `state`/`wait`. */
#ifndef BERTH_SHIM_EXITREC_H
#define BERTH_SHIM_EXITREC_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "error.h"

struct exit_record
{
  int exit_code;  /* status, or 128 + signal */
  int signal;     /* 0 when the process exited normally */
  bool oom_killed;
  struct timespec started_at, exited_at;
};

/* Fills exit_code/signal from a waitpid status. */
void exit_record_set_status(struct exit_record *r, int wait_status);

/* {"exitCode":N,"signal":S|null,"oomKilled":B,"startedAt":"…","exitedAt":"…"}
 * with `extra` (e.g. "\"status\":\"stopped\",") right after the brace.
 * Returns the length (no newline). */
size_t exit_record_json(const struct exit_record *r, const char *extra, char *buf, size_t cap);

/* Writes <state_dir>/exit.json atomically (tmp + fsync + rename). */
int exit_record_write(const struct exit_record *r, const char *state_dir, shim_error_t *err);

#endif
