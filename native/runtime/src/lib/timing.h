/* Phase timestamps on stderr when built with -DBERTH_TIMING (for profiling only). */
#ifndef BERTH_TIMING_H
#define BERTH_TIMING_H
#ifdef BERTH_TIMING
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#define TIMING(name)                                                                                  \
  do                                                                                                  \
    {                                                                                                 \
      struct timespec _ts;                                                                            \
      clock_gettime (CLOCK_MONOTONIC, &_ts);                                                          \
      dprintf (2, "T %d %ld.%06ld %s\n", getpid (), (long) _ts.tv_sec % 1000, _ts.tv_nsec / 1000, name); \
    }                                                                                                 \
  while (0)
#else
#define TIMING(name) do { } while (0)
#endif
#endif
