/* Errors as values: a fallible function takes `shim_error_t *err` last and
 * returns a negative number on failure, with the message in *err. */
#ifndef BERTH_SHIM_ERROR_H
#define BERTH_SHIM_ERROR_H

#define SHIM_ERROR_MAX 2048

typedef struct shim_error
{
  int errnum;               /* errno of the root cause, 0 if none */
  char msg[SHIM_ERROR_MAX]; /* one line, no trailing newline */
} shim_error_t;

/* Sets *err to "<fmt...>: strerror(errnum)" (no suffix when errnum is 0). Returns -1. */
int shim_error(shim_error_t *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message in *err with "<fmt...>: ". Returns -1. */
int shim_error_wrap(shim_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
