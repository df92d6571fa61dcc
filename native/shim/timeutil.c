#include "timeutil.h"

#include <stdio.h>
#include <string.h>

struct timespec time_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts;
}

void time_format_rfc3339nano(const struct timespec *ts, char out[RFC3339NANO_LEN])
{
  /* The date and time of day change once a second: format them only then. */
  static time_t cached_sec = -1;
  static char cached[32];
  unsigned long ns = (unsigned long) ts->tv_nsec % 1000000000UL;
  size_t n;

  if (ts->tv_sec != cached_sec)
    {
      struct tm tm;
      time_t secs = ts->tv_sec;
      gmtime_r(&secs, &tm);
      strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm);
      cached_sec = ts->tv_sec;
    }
  n = strnlen(cached, 20);
  memcpy(out, cached, n);
  out[n++] = '.';
  for (int i = 8; i >= 0; i--, ns /= 10)
    out[n + (size_t) i] = (char) ('0' + ns % 10);
  n += 9;
  out[n++] = 'Z';
  out[n] = '\0';
}
