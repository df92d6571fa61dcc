#include "timeutil.h"

#include <stdio.h>

struct timespec time_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts;
}

void time_format_rfc3339nano(const struct timespec *ts, char out[RFC3339NANO_LEN])
{
  struct tm tm;
  time_t secs = ts->tv_sec;
  char date[32];

  gmtime_r(&secs, &tm);
  strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, RFC3339NANO_LEN, "%.20s.%09uZ", date, (unsigned) (ts->tv_nsec % 1000000000));
}
