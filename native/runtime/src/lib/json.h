/* A small JSON reader (a tree of nodes) and string escaper, enough for config.json
 * and the state file. */
#ifndef BERTH_JSON_H
#define BERTH_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "error.h"

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

typedef struct json_node
{
  enum json_type type;
  bool boolean;
  double number;
  bool is_int;
  int64_t integer;
  uint64_t uinteger; /* for values above INT64_MAX (e.g. seccomp masks) */
  char *string;
  size_t len;              /* items in an array or object */
  struct json_node **items; /* array items, or object values */
  char **keys;             /* object keys */
} json_node;

/* Parses `text`; on error the message names the offset. */
json_node *json_parse (const char *text, berth_error_t *err);
void json_free (json_node *n);

/* Object member, or NULL when absent, null or `n` is not an object. */
json_node *json_get (const json_node *n, const char *key);
const char *json_get_string (const json_node *n, const char *key);

/* Writes a node back as compact JSON. */
void json_write_node (FILE *f, const json_node *n);
/* Writes a JSON string literal with escapes. */
void json_write_string (FILE *f, const char *s);

#endif
