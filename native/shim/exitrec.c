#include "exitrec.h"

#include <stdio.h>
#include <sys/wait.h>

#include "fsutil.h"
#include "timeutil.h"

void exit_record_set_status(struct exit_record *r, int st)
{
  if (WIFSIGNALED(st))
    {
      r->signal = WTERMSIG(st);
      r->exit_code = 128 + r->signal;
    }
  else
    {
      r->signal = 0;
      r->exit_code = WEXITSTATUS(st);
    }
}

size_t exit_record_json(const struct exit_record *r, const char *extra, char *buf, size_t cap)
{
  char started[RFC3339NANO_LEN], exited[RFC3339NANO_LEN], sig[16];
  int n;

  time_format_rfc3339nano(&r->started_at, started);
  time_format_rfc3339nano(&r->exited_at, exited);
  if (r->signal)
    snprintf(sig, sizeof sig, "%d", r->signal);
  else
    snprintf(sig, sizeof sig, "null");
  n = snprintf(buf, cap,
               "{%s\"exitCode\":%d,\"signal\":%s,\"oomKilled\":%s,\"startedAt\":\"%s\",\"exitedAt\":\"%s\"}",
               extra ? extra : "", r->exit_code, sig, r->oom_killed ? "true" : "false", started, exited);
  if (n < 0)
    return 0;
  return (size_t) n < cap ? (size_t) n : cap - 1;
}

int exit_record_write(const struct exit_record *r, const char *state_dir, shim_error_t *err)
{
  char buf[512];
  size_t n = exit_record_json(r, NULL, buf, sizeof buf - 1);

  buf[n++] = '\n';
  if (write_file_atomic(state_dir, "exit.json", buf, n, 0644, true, err) < 0)
    return shim_error_wrap(err, "write exit record");
  return 0;
}
