#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Keeps the message on one line: the CLI prints it as one stderr line. */
static void one_line(char *s)
{
  for (; *s; s++)
    if (*s == '\n' || *s == '\r')
      *s = ' ';
}

int shim_error(shim_error_t *err, int errnum, const char *fmt, ...)
{
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  if (n < 0)
    n = 0;
  if (errnum && (size_t) n < sizeof err->msg)
    snprintf(err->msg + n, sizeof err->msg - n, ": %s", strerror(errnum));
  err->errnum = errnum;
  one_line(err->msg);
  return -1;
}

int shim_error_wrap(shim_error_t *err, const char *fmt, ...)
{
  char prefix[512], old[SHIM_ERROR_MAX];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, err->msg, sizeof old);
  old[sizeof old - 1] = '\0';
  size_t np = strnlen(prefix, sizeof prefix);
  size_t no = strnlen(old, sizeof old);
  char *o = err->msg;
  size_t room = sizeof err->msg - 1;
  if (np > room)
    np = room;
  memcpy(o, prefix, np);
  o += np;
  room -= np;
  if (room >= 2)
    {
      memcpy(o, ": ", 2);
      o += 2;
      room -= 2;
    }
  if (no > room)
    no = room;
  memcpy(o, old, no);
  o[no] = '\0';
  one_line(err->msg);
  return -1;
}
