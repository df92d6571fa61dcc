/* The little JSON the shim needs: escaping text into strings, and reading
 * flat objects (control requests, the runtime's JSON log lines). */
#ifndef BERTH_SHIM_JSON_H
#define BERTH_SHIM_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* Upper bound of json_escape's output for n input bytes. */
#define JSON_ESCAPED_MAX(n) ((n) * 6)

/* Writes s[0..n) as the inside of a JSON string (no quotes) to out, which
 * must hold JSON_ESCAPED_MAX(n) bytes: control characters become \u00XX (or
 * \n, \t, ...), invalid UTF-8 bytes become U+FFFD. Returns bytes written. */
size_t json_escape(char *out, const char *s, size_t n);

/* Length of a trailing sequence that is the valid beginning of a multi-byte
 * UTF-8 character cut short (0 to 3). */
size_t utf8_incomplete_tail(const char *s, size_t n);

enum json_kind
{
  JSON_ABSENT = 0,
  JSON_STRING,
  JSON_NUMBER,
  JSON_BOOL,
  JSON_NULL,
  JSON_OTHER, /* object or array: skipped */
};

/* One member wanted from an object: fill in `key`, read the rest after
 * json_parse_object. Strings longer than `str` are truncated. */
struct json_field
{
  const char *key;
  enum json_kind kind;
  char str[1024];
  double number;
  bool boolean;
};

/* Parses one JSON object from text[0..n) (trailing whitespace allowed) and
 * fills the fields whose key matches a top-level member. Returns 0 or -1. */
int json_parse_object(const char *text, size_t n, struct json_field *fields,
                      size_t nfields, shim_error_t *err);

#endif
