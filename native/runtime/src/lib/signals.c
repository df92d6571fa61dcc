#include "signals.h"
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct
{
  const char *name;
  int sig;
} signal_table[] = {
  { "HUP", SIGHUP },   { "INT", SIGINT },       { "QUIT", SIGQUIT },   { "ILL", SIGILL },   { "TRAP", SIGTRAP },
  { "ABRT", SIGABRT }, { "IOT", SIGIOT },       { "BUS", SIGBUS },     { "FPE", SIGFPE },   { "KILL", SIGKILL },
  { "USR1", SIGUSR1 }, { "SEGV", SIGSEGV },     { "USR2", SIGUSR2 },   { "PIPE", SIGPIPE }, { "ALRM", SIGALRM },
  { "TERM", SIGTERM }, { "STKFLT", SIGSTKFLT }, { "CHLD", SIGCHLD },   { "CONT", SIGCONT }, { "STOP", SIGSTOP },
  { "TSTP", SIGTSTP }, { "TTIN", SIGTTIN },     { "TTOU", SIGTTOU },   { "URG", SIGURG },   { "XCPU", SIGXCPU },
  { "XFSZ", SIGXFSZ }, { "VTALRM", SIGVTALRM }, { "PROF", SIGPROF },   { "WINCH", SIGWINCH }, { "IO", SIGIO },
  { "POLL", SIGPOLL }, { "PWR", SIGPWR },       { "SYS", SIGSYS },
};

int
signal_parse (const char *s, int *out, berth_error_t *err)
{
  char *end;
  long n;
  const char *name = s;

  if (s == NULL || *s == '\0')
    return berth_make_error (err, 0, "empty signal");
  n = strtol (s, &end, 10);
  if (*end == '\0')
    {
      if (n <= 0 || n > SIGRTMAX)
        return berth_make_error (err, 0, "invalid signal `%s`", s);
      *out = (int) n;
      return 0;
    }
  if (strncasecmp (name, "SIG", 3) == 0)
    name += 3;
  for (size_t i = 0; i < sizeof (signal_table) / sizeof (signal_table[0]); i++)
    if (strcasecmp (name, signal_table[i].name) == 0)
      {
        *out = signal_table[i].sig;
        return 0;
      }
  if (strncasecmp (name, "RTMIN", 5) == 0 || strncasecmp (name, "RTMAX", 5) == 0)
    {
      long off = name[5] ? strtol (name + 5, &end, 10) : 0;
      int sig = strncasecmp (name, "RTMIN", 5) == 0 ? SIGRTMIN + (int) off : SIGRTMAX + (int) off;
      if ((name[5] == '\0' || *end == '\0') && sig >= SIGRTMIN && sig <= SIGRTMAX)
        {
          *out = sig;
          return 0;
        }
    }
  return berth_make_error (err, 0, "unknown signal `%s`", s);
}
