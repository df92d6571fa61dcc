#include "json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Allowed range of the second byte after lead byte c. */
static void second_byte_range(unsigned char c, unsigned char *lo, unsigned char *hi)
{
  *lo = 0x80;
  *hi = 0xBF;
  if (c == 0xE0)
    *lo = 0xA0;
  else if (c == 0xED)
    *hi = 0x9F;
  else if (c == 0xF0)
    *lo = 0x90;
  else if (c == 0xF4)
    *hi = 0x8F;
}

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if invalid
 * or cut short. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
  unsigned char c = s[0];
  size_t len;
  unsigned char lo, hi;

  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF)
    len = 2;
  else if (c >= 0xE0 && c <= 0xEF)
    len = 3;
  else if (c >= 0xF0 && c <= 0xF4)
    len = 4;
  else
    return 0;
  second_byte_range(c, &lo, &hi);
  if (n < len)
    return 0;
  if (s[1] < lo || s[1] > hi)
    return 0;
  for (size_t i = 2; i < len; i++)
    if (s[i] < 0x80 || s[i] > 0xBF)
      return 0;
  return len;
}

size_t utf8_incomplete_tail(const char *str, size_t n)
{
  const unsigned char *s = (const unsigned char *) str;

  /* Find a lead byte among the last three bytes whose sequence runs past the end. */
  for (size_t back = 1; back <= 3 && back <= n; back++)
    {
      unsigned char c = s[n - back], lo, hi;
      size_t need;

      if (c >= 0x80 && c <= 0xBF)
        continue; /* continuation byte: keep looking for the lead */
      if (c >= 0xC2 && c <= 0xDF)
        need = 2;
      else if (c >= 0xE0 && c <= 0xEF)
        need = 3;
      else if (c >= 0xF0 && c <= 0xF4)
        need = 4;
      else
        return 0;
      if (need <= back)
        return 0; /* complete (or too long): nothing is cut short */
      second_byte_range(c, &lo, &hi);
      for (size_t i = 1; i < back; i++)
        {
          unsigned char b = s[n - back + i];
          if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
            return 0;
        }
      return back;
    }
  return 0;
}

size_t json_escape(char *out, const char *str, size_t n)
{
  static const char hex[] = "0123456789abcdef";
  const unsigned char *s = (const unsigned char *) str;
  char *o = out;
  size_t i = 0;

  while (i < n)
    {
      unsigned char c = s[i];
      if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\')
        {
          *o++ = (char) c;
          i++;
          continue;
        }
      if (c < 0x80)
        {
          *o++ = '\\';
          switch (c)
            {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            case '\b': *o++ = 'b'; break;
            case '\f': *o++ = 'f'; break;
            default:
              *o++ = 'u';
              *o++ = '0';
              *o++ = '0';
              *o++ = hex[c >> 4];
              *o++ = hex[c & 0xF];
            }
          i++;
          continue;
        }
      size_t len = utf8_seq_len(s + i, n - i);
      if (len == 0)
        {
          /* U+FFFD REPLACEMENT CHARACTER */
          *o++ = (char) 0xEF;
          *o++ = (char) 0xBF;
          *o++ = (char) 0xBD;
          i++;
          continue;
        }
      memcpy(o, s + i, len);
      o += len;
      i += len;
    }
  return (size_t) (o - out);
}

/* A cursor over the input for the recursive-descent reader. */
struct reader
{
  const char *p, *end;
  shim_error_t *err;
};

#define MAX_DEPTH 32

static void skip_ws(struct reader *r)
{
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
    r->p++;
}

static int bad(struct reader *r, const char *what)
{
  return shim_error(r->err, 0, "bad JSON: %s", what);
}

static int hex4(const char *p, unsigned *out)
{
  unsigned v = 0;
  for (int i = 0; i < 4; i++)
    {
      char c = p[i];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= (unsigned) (c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= (unsigned) (c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= (unsigned) (c - 'A' + 10);
      else
        return -1;
    }
  *out = v;
  return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
  if (cp < 0x80)
    {
      o[0] = (char) cp;
      return 1;
    }
  if (cp < 0x800)
    {
      o[0] = (char) (0xC0 | (cp >> 6));
      o[1] = (char) (0x80 | (cp & 0x3F));
      return 2;
    }
  if (cp < 0x10000)
    {
      o[0] = (char) (0xE0 | (cp >> 12));
      o[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
      o[2] = (char) (0x80 | (cp & 0x3F));
      return 3;
    }
  o[0] = (char) (0xF0 | (cp >> 18));
  o[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
  o[3] = (char) (0x80 | (cp & 0x3F));
  return 4;
}

/* Reads a string at r->p (on the opening quote); decodes it into out (cap
 * bytes, NUL-terminated, truncated) when out is not NULL. */
static int read_string(struct reader *r, char *out, size_t cap)
{
  size_t len = 0;

  r->p++; /* opening quote */
  while (r->p < r->end)
    {
      char c = *r->p++;
      char tmp[4];
      size_t tn = 0;

      if (c == '"')
        {
          if (out)
            out[len] = '\0';
          return 0;
        }
      if ((unsigned char) c < 0x20)
        return bad(r, "control character in string");
      if (c != '\\')
        {
          tmp[0] = c;
          tn = 1;
        }
      else
        {
          if (r->p >= r->end)
            break;
          c = *r->p++;
          switch (c)
            {
            case '"': case '\\': case '/': tmp[0] = c; tn = 1; break;
            case 'n': tmp[0] = '\n'; tn = 1; break;
            case 't': tmp[0] = '\t'; tn = 1; break;
            case 'r': tmp[0] = '\r'; tn = 1; break;
            case 'b': tmp[0] = '\b'; tn = 1; break;
            case 'f': tmp[0] = '\f'; tn = 1; break;
            case 'u':
              {
                unsigned cp;
                if (r->end - r->p < 4 || hex4(r->p, &cp) < 0)
                  return bad(r, "bad \\u escape");
                r->p += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF && r->end - r->p >= 6 && r->p[0] == '\\' && r->p[1] == 'u')
                  {
                    unsigned lo;
                    if (hex4(r->p + 2, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF)
                      {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        r->p += 6;
                      }
                  }
                if (cp >= 0xD800 && cp <= 0xDFFF)
                  cp = 0xFFFD;
                tn = put_utf8(tmp, cp);
                break;
              }
            default:
              return bad(r, "bad escape");
            }
        }
      if (out && len + tn < cap)
        {
          memcpy(out + len, tmp, tn);
          len += tn;
        }
    }
  return bad(r, "unterminated string");
}

static int read_number(struct reader *r, double *out)
{
  char buf[64];
  size_t n = 0;
  char *endp;

  while (r->p < r->end && n < sizeof buf - 1 && strchr("+-0123456789.eE", *r->p))
    buf[n++] = *r->p++;
  buf[n] = '\0';
  if (n == 0 || !(buf[0] == '-' || (buf[0] >= '0' && buf[0] <= '9')))
    return bad(r, "bad number");
  *out = strtod(buf, &endp);
  if (*endp != '\0' || !isfinite(*out))
    return bad(r, "bad number");
  return 0;
}

static int read_literal(struct reader *r, const char *lit)
{
  size_t n = strlen(lit);
  if ((size_t) (r->end - r->p) < n || memcmp(r->p, lit, n) != 0)
    return bad(r, "unexpected character");
  r->p += n;
  return 0;
}

static int skip_value(struct reader *r, int depth);

static int skip_container(struct reader *r, int depth, char close)
{
  if (depth > MAX_DEPTH)
    return bad(r, "nested too deeply");
  r->p++;
  skip_ws(r);
  if (r->p < r->end && *r->p == close)
    {
      r->p++;
      return 0;
    }
  for (;;)
    {
      skip_ws(r);
      if (close == '}')
        {
          if (r->p >= r->end || *r->p != '"')
            return bad(r, "expected a key");
          if (read_string(r, NULL, 0) < 0)
            return -1;
          skip_ws(r);
          if (r->p >= r->end || *r->p != ':')
            return bad(r, "expected ':'");
          r->p++;
        }
      if (skip_value(r, depth + 1) < 0)
        return -1;
      skip_ws(r);
      if (r->p < r->end && *r->p == ',')
        {
          r->p++;
          continue;
        }
      if (r->p < r->end && *r->p == close)
        {
          r->p++;
          return 0;
        }
      return bad(r, "expected ',' or end of container");
    }
}

static int skip_value(struct reader *r, int depth)
{
  double d;

  skip_ws(r);
  if (r->p >= r->end)
    return bad(r, "unexpected end");
  switch (*r->p)
    {
    case '{': return skip_container(r, depth, '}');
    case '[': return skip_container(r, depth, ']');
    case '"': return read_string(r, NULL, 0);
    case 't': return read_literal(r, "true");
    case 'f': return read_literal(r, "false");
    case 'n': return read_literal(r, "null");
    default: return read_number(r, &d);
    }
}

static int read_member_value(struct reader *r, struct json_field *f)
{
  skip_ws(r);
  if (r->p >= r->end)
    return bad(r, "unexpected end");
  switch (*r->p)
    {
    case '"':
      f->kind = JSON_STRING;
      return read_string(r, f->str, sizeof f->str);
    case 't':
      f->kind = JSON_BOOL;
      f->boolean = true;
      return read_literal(r, "true");
    case 'f':
      f->kind = JSON_BOOL;
      f->boolean = false;
      return read_literal(r, "false");
    case 'n':
      f->kind = JSON_NULL;
      return read_literal(r, "null");
    case '{':
    case '[':
      f->kind = JSON_OTHER;
      return skip_value(r, 1);
    default:
      f->kind = JSON_NUMBER;
      return read_number(r, &f->number);
    }
}

int json_parse_object(const char *text, size_t n, struct json_field *fields,
                      size_t nfields, shim_error_t *err)
{
  struct reader r = { text, text + n, err };
  char key[128];

  for (size_t i = 0; i < nfields; i++)
    fields[i].kind = JSON_ABSENT;
  skip_ws(&r);
  if (r.p >= r.end || *r.p != '{')
    return bad(&r, "expected an object");
  r.p++;
  skip_ws(&r);
  if (r.p < r.end && *r.p == '}')
    r.p++;
  else
    for (;;)
      {
        struct json_field *target = NULL, scratch;

        skip_ws(&r);
        if (r.p >= r.end || *r.p != '"')
          return bad(&r, "expected a key");
        if (read_string(&r, key, sizeof key) < 0)
          return -1;
        skip_ws(&r);
        if (r.p >= r.end || *r.p != ':')
          return bad(&r, "expected ':'");
        r.p++;
        for (size_t i = 0; i < nfields; i++)
          if (strcmp(fields[i].key, key) == 0)
            target = &fields[i];
        if (read_member_value(&r, target ? target : &scratch) < 0)
          return -1;
        skip_ws(&r);
        if (r.p < r.end && *r.p == ',')
          {
            r.p++;
            continue;
          }
        if (r.p < r.end && *r.p == '}')
          {
            r.p++;
            break;
          }
        return bad(&r, "expected ',' or '}'");
      }
  skip_ws(&r);
  if (r.p != r.end)
    return bad(&r, "trailing characters");
  return 0;
}
