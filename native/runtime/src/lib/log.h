/* Logging as runc does it: --log FILE, --log-format text|json (JSON lines with
 * level, msg, time). Errors also go to stderr as one line. */
#ifndef BERTH_LOG_H
#define BERTH_LOG_H

#include "error.h"

int log_init (const char *path, const char *format, int debug, berth_error_t *err);
void log_error (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
void log_warning (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
void log_debug (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
/* The fd of the log file (or -1), so a child can keep it across setup. */
int log_fd (void);

#endif
