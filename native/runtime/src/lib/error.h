/* Errors as values: every fallible function takes `berth_error_t *err` last and
 * returns a negative number on failure; callers add context with berth_error_wrap. */
#ifndef BERTH_ERROR_H
#define BERTH_ERROR_H

struct berth_error_s
{
  int status; /* errno of the root cause, 0 if none */
  char *msg;  /* one line, without a trailing newline */
};
typedef struct berth_error_s *berth_error_t;

/* Sets *err to "<fmt>: strerror(errnum)" (or "<fmt>" when errnum is 0); returns -1. */
int berth_make_error (berth_error_t *err, int errnum, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* Prefixes the message in *err with "<fmt>: "; returns -1. */
int berth_error_wrap (berth_error_t *err, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

void berth_error_release (berth_error_t *err);

#endif
