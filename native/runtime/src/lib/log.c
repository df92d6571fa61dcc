#include "log.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "json.h"
#include "utils.h"

static int log_file = -1;
static int log_json;
static int log_level_debug;

int
log_init (const char *path, const char *format, int debug, berth_error_t *err)
{
  log_level_debug = debug;
  if (format && strcmp (format, "json") == 0)
    log_json = 1;
  else if (format && strcmp (format, "text") != 0)
    return berth_make_error (err, 0, "unknown --log-format `%s`", format);
  if (path && *path)
    {
      log_file = open (path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
      if (log_file < 0)
        return berth_make_error (err, errno, "open log `%s`", path);
    }
  return 0;
}

int
log_fd (void)
{
  return log_file;
}

static void
vlog (const char *level, int to_stderr, const char *fmt, va_list ap)
{
  char *msg = NULL, *line = NULL;
  size_t len = 0;
  struct timespec ts;
  struct tm tm;
  char when[64];

  if (vasprintf (&msg, fmt, ap) < 0)
    return;
  for (char *p = msg; *p; p++)
    if (*p == '\n')
      *p = ' ';
  if (to_stderr)
    dprintf (STDERR_FILENO, "berth-runtime: %s\n", msg);
  if (log_file >= 0)
    {
      FILE *f = open_memstream (&line, &len);
      clock_gettime (CLOCK_REALTIME, &ts);
      gmtime_r (&ts.tv_sec, &tm);
      strftime (when, sizeof (when), "%Y-%m-%dT%H:%M:%S", &tm);
      if (f)
        {
          if (log_json)
            {
              fputs ("{\"level\":", f);
              json_write_string (f, level);
              fputs (",\"msg\":", f);
              json_write_string (f, msg);
              fprintf (f, ",\"time\":\"%s.%09ldZ\"}\n", when, ts.tv_nsec);
            }
          else
            fprintf (f, "time=\"%s.%09ldZ\" level=%s msg=\"%s\"\n", when, ts.tv_nsec, level, msg);
          fclose (f);
          write_all (log_file, line, len);
          free (line);
        }
    }
  free (msg);
}

void
log_error (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vlog ("error", 1, fmt, ap);
  va_end (ap);
}

void
log_warning (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vlog ("warning", 0, fmt, ap);
  va_end (ap);
}

void
log_debug (const char *fmt, ...)
{
  va_list ap;
  if (!log_level_debug)
    return;
  va_start (ap, fmt);
  vlog ("debug", 0, fmt, ap);
  va_end (ap);
}
