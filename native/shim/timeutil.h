/* Wall-clock timestamps in RFC 3339 with nanoseconds, UTC. */
#ifndef BERTH_SHIM_TIMEUTIL_H
#define BERTH_SHIM_TIMEUTIL_H

#include <time.h>

#define RFC3339NANO_LEN 48

struct timespec time_now(void);

/* Writes e.g. "2026-11-22T07:27:50.123456789Z" (always nine fraction digits). */
void time_format_rfc3339nano(const struct timespec *ts, char out[RFC3339NANO_LEN]);

#endif
