#include "json.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "utils.h"

struct parser
{
  const char *s;
  size_t pos;
  int depth;
};

static json_node *parse_value (struct parser *p, berth_error_t *err);

static void
skip_ws (struct parser *p)
{
  while (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' || p->s[p->pos] == '\r')
    p->pos++;
}

static int
fail (struct parser *p, berth_error_t *err, const char *what)
{
  return berth_make_error (err, 0, "invalid JSON at offset %zu: %s", p->pos, what);
}

static void
append_utf8 (char *out, size_t *o, unsigned cp)
{
  if (cp < 0x80)
    out[(*o)++] = cp;
  else if (cp < 0x800)
    {
      out[(*o)++] = 0xc0 | (cp >> 6);
      out[(*o)++] = 0x80 | (cp & 0x3f);
    }
  else if (cp < 0x10000)
    {
      out[(*o)++] = 0xe0 | (cp >> 12);
      out[(*o)++] = 0x80 | ((cp >> 6) & 0x3f);
      out[(*o)++] = 0x80 | (cp & 0x3f);
    }
  else
    {
      out[(*o)++] = 0xf0 | (cp >> 18);
      out[(*o)++] = 0x80 | ((cp >> 12) & 0x3f);
      out[(*o)++] = 0x80 | ((cp >> 6) & 0x3f);
      out[(*o)++] = 0x80 | (cp & 0x3f);
    }
}

static int
parse_hex4 (const char *s, unsigned *out)
{
  unsigned v = 0;
  for (int i = 0; i < 4; i++)
    {
      char c = s[i];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= c - '0';
      else if (c >= 'a' && c <= 'f')
        v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        v |= c - 'A' + 10;
      else
        return -1;
    }
  *out = v;
  return 0;
}

static char *
parse_string (struct parser *p, berth_error_t *err)
{
  size_t start = ++p->pos, end = start, o = 0;
  char *out;

  while (p->s[end] && p->s[end] != '"')
    end += (p->s[end] == '\\' && p->s[end + 1]) ? 2 : 1;
  if (p->s[end] != '"')
    {
      fail (p, err, "unterminated string");
      return NULL;
    }
  out = xmalloc0 (end - start + 1);
  while (p->pos < end)
    {
      char c = p->s[p->pos++];
      unsigned cp;
      if ((unsigned char) c < 0x20)
        {
          free (out);
          fail (p, err, "control character in string");
          return NULL;
        }
      if (c != '\\')
        {
          out[o++] = c;
          continue;
        }
      c = p->s[p->pos++];
      switch (c)
        {
        case '"': out[o++] = '"'; break;
        case '\\': out[o++] = '\\'; break;
        case '/': out[o++] = '/'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u':
          if (p->pos + 4 > end || parse_hex4 (p->s + p->pos, &cp) < 0)
            {
              free (out);
              fail (p, err, "bad \\u escape");
              return NULL;
            }
          p->pos += 4;
          if (cp >= 0xd800 && cp < 0xdc00 && p->pos + 6 <= end && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u')
            {
              unsigned lo;
              if (parse_hex4 (p->s + p->pos + 2, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000)
                {
                  cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                  p->pos += 6;
                }
            }
          if (cp == 0)
            {
              free (out);
              fail (p, err, "NUL in string");
              return NULL;
            }
          append_utf8 (out, &o, cp);
          break;
        default:
          free (out);
          fail (p, err, "bad escape");
          return NULL;
        }
    }
  out[o] = '\0';
  p->pos = end + 1;
  return out;
}

static json_node *
parse_number (struct parser *p, berth_error_t *err)
{
  const char *start = p->s + p->pos;
  char *end;
  json_node *n;

  n = xmalloc0 (sizeof (*n));
  n->type = JSON_NUMBER;
  errno = 0;
  n->number = strtod (start, &end);
  if (end == start)
    {
      free (n);
      fail (p, err, "unexpected character");
      return NULL;
    }
  if (strcspn (start, ".eE") >= (size_t) (end - start))
    {
      char *iend;
      errno = 0;
      if (*start == '-')
        {
          n->integer = strtoll (start, &iend, 10);
          n->is_int = errno == 0;
          n->uinteger = (uint64_t) n->integer;
        }
      else
        {
          n->uinteger = strtoull (start, &iend, 10);
          n->is_int = errno == 0;
          n->integer = n->uinteger > INT64_MAX ? INT64_MAX : (int64_t) n->uinteger;
        }
    }
  p->pos += end - start;
  return n;
}

static json_node *
parse_container (struct parser *p, bool object, berth_error_t *err)
{
  json_node *n = xmalloc0 (sizeof (*n));
  size_t cap = 0;
  char close = object ? '}' : ']';

  n->type = object ? JSON_OBJECT : JSON_ARRAY;
  if (++p->depth > 200)
    goto fail_depth;
  p->pos++;
  skip_ws (p);
  if (p->s[p->pos] == close)
    {
      p->pos++;
      p->depth--;
      return n;
    }
  for (;;)
    {
      char *key = NULL;
      json_node *v;
      skip_ws (p);
      if (object)
        {
          if (p->s[p->pos] != '"')
            {
              fail (p, err, "expected a key");
              goto fail;
            }
          key = parse_string (p, err);
          if (key == NULL)
            goto fail;
          skip_ws (p);
          if (p->s[p->pos] != ':')
            {
              free (key);
              fail (p, err, "expected ':'");
              goto fail;
            }
          p->pos++;
        }
      v = parse_value (p, err);
      if (v == NULL)
        {
          free (key);
          goto fail;
        }
      if (n->len == cap)
        {
          cap = cap ? cap * 2 : 8;
          n->items = realloc (n->items, cap * sizeof (*n->items));
          if (object)
            n->keys = realloc (n->keys, cap * sizeof (*n->keys));
          if (n->items == NULL || (object && n->keys == NULL))
            abort ();
        }
      n->items[n->len] = v;
      if (object)
        n->keys[n->len] = key;
      n->len++;
      skip_ws (p);
      if (p->s[p->pos] == ',')
        {
          p->pos++;
          continue;
        }
      if (p->s[p->pos] == close)
        {
          p->pos++;
          break;
        }
      fail (p, err, object ? "expected ',' or '}'" : "expected ',' or ']'");
      goto fail;
    }
  p->depth--;
  return n;
fail_depth:
  fail (p, err, "nested too deep");
fail:
  json_free (n);
  return NULL;
}

static json_node *
parse_value (struct parser *p, berth_error_t *err)
{
  json_node *n;
  skip_ws (p);
  switch (p->s[p->pos])
    {
    case '{': return parse_container (p, true, err);
    case '[': return parse_container (p, false, err);
    case '"':
      {
        char *s = parse_string (p, err);
        if (s == NULL)
          return NULL;
        n = xmalloc0 (sizeof (*n));
        n->type = JSON_STRING;
        n->string = s;
        return n;
      }
    case 't':
    case 'f':
    case 'n':
      n = xmalloc0 (sizeof (*n));
      if (strncmp (p->s + p->pos, "true", 4) == 0)
        {
          n->type = JSON_BOOL;
          n->boolean = true;
          p->pos += 4;
        }
      else if (strncmp (p->s + p->pos, "false", 5) == 0)
        {
          n->type = JSON_BOOL;
          p->pos += 5;
        }
      else if (strncmp (p->s + p->pos, "null", 4) == 0)
        {
          n->type = JSON_NULL;
          p->pos += 4;
        }
      else
        {
          free (n);
          fail (p, err, "unexpected word");
          return NULL;
        }
      return n;
    default:
      return parse_number (p, err);
    }
}

json_node *
json_parse (const char *text, berth_error_t *err)
{
  struct parser p = { .s = text };
  json_node *n = parse_value (&p, err);
  if (n == NULL)
    return NULL;
  skip_ws (&p);
  if (p.s[p.pos] != '\0')
    {
      json_free (n);
      fail (&p, err, "trailing data");
      return NULL;
    }
  return n;
}

void
json_free (json_node *n)
{
  if (n == NULL)
    return;
  for (size_t i = 0; i < n->len; i++)
    {
      json_free (n->items[i]);
      if (n->keys)
        free (n->keys[i]);
    }
  free (n->items);
  free (n->keys);
  free (n->string);
  free (n);
}

json_node *
json_get (const json_node *n, const char *key)
{
  if (n == NULL || n->type != JSON_OBJECT)
    return NULL;
  for (size_t i = 0; i < n->len; i++)
    if (strcmp (n->keys[i], key) == 0)
      return n->items[i]->type == JSON_NULL ? NULL : n->items[i];
  return NULL;
}

const char *
json_get_string (const json_node *n, const char *key)
{
  json_node *v = json_get (n, key);
  return v && v->type == JSON_STRING ? v->string : NULL;
}

void
json_write_string (FILE *f, const char *s)
{
  fputc ('"', f);
  for (const unsigned char *p = (const unsigned char *) s; *p; p++)
    {
      switch (*p)
        {
        case '"': fputs ("\\\"", f); break;
        case '\\': fputs ("\\\\", f); break;
        case '\n': fputs ("\\n", f); break;
        case '\r': fputs ("\\r", f); break;
        case '\t': fputs ("\\t", f); break;
        default:
          if (*p < 0x20)
            fprintf (f, "\\u%04x", *p);
          else
            fputc (*p, f);
        }
    }
  fputc ('"', f);
}

void
json_write_node (FILE *f, const json_node *n)
{
  switch (n->type)
    {
    case JSON_NULL: fputs ("null", f); break;
    case JSON_BOOL: fputs (n->boolean ? "true" : "false", f); break;
    case JSON_NUMBER:
      if (n->is_int)
        fprintf (f, "%lld", (long long) n->integer);
      else
        fprintf (f, "%.17g", n->number);
      break;
    case JSON_STRING: json_write_string (f, n->string); break;
    case JSON_ARRAY:
    case JSON_OBJECT:
      fputc (n->type == JSON_ARRAY ? '[' : '{', f);
      for (size_t i = 0; i < n->len; i++)
        {
          if (i)
            fputc (',', f);
          if (n->type == JSON_OBJECT)
            {
              json_write_string (f, n->keys[i]);
              fputc (':', f);
            }
          json_write_node (f, n->items[i]);
        }
      fputc (n->type == JSON_ARRAY ? ']' : '}', f);
      break;
    }
}
