#include "logfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "timeutil.h"

/* A record: fixed prefix and suffix, the escaped text, a newline. */
#define RECORD_MAX (JSON_ESCAPED_MAX(LOG_LINE_MAX) + 160)

static int open_log(struct log_file *lf, int extra_flags, shim_error_t *err)
{
  struct stat st;
  int fd = open(lf->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | extra_flags, 0640);

  if (fd < 0)
    return shim_error(err, errno, "open log file %s", lf->path);
  if (fstat(fd, &st) < 0)
    {
      close(fd);
      return shim_error(err, errno, "stat log file %s", lf->path);
    }
  lf->fd = fd;
  lf->size = (uint64_t) st.st_size;
  return 0;
}

int log_file_open(struct log_file *lf, const char *path, uint64_t max_bytes,
                  unsigned max_files, shim_error_t *err)
{
  lf->path = path;
  lf->fd = -1;
  lf->max_bytes = max_bytes;
  lf->max_files = max_files ? max_files : 1;
  lf->dropped = 0;
  return open_log(lf, 0, err);
}

void log_file_close(struct log_file *lf)
{
  if (lf->fd >= 0)
    close(lf->fd);
  lf->fd = -1;
}

/* FILE.(k-1) -> FILE.k for k = max_files-1 .. 2, then FILE -> FILE.1 (or
 * FILE removed when only one file is kept), then a fresh FILE. */
static int rotate(struct log_file *lf, shim_error_t *err)
{
  char from[PATH_MAX], to[PATH_MAX];

  log_file_close(lf);
  for (unsigned k = lf->max_files - 1; k >= 2; k--)
    {
      snprintf(from, sizeof from, "%s.%u", lf->path, k - 1);
      snprintf(to, sizeof to, "%s.%u", lf->path, k);
      if (rename(from, to) < 0 && errno != ENOENT)
        return shim_error(err, errno, "rotate %s", from);
    }
  if (lf->max_files >= 2)
    {
      snprintf(to, sizeof to, "%s.1", lf->path);
      if (rename(lf->path, to) < 0 && errno != ENOENT)
        return shim_error(err, errno, "rotate %s", lf->path);
    }
  else if (unlink(lf->path) < 0 && errno != ENOENT)
    return shim_error(err, errno, "truncate %s", lf->path);
  return open_log(lf, O_TRUNC, err);
}

static int write_all(int fd, const char *p, size_t n)
{
  while (n > 0)
    {
      ssize_t w = write(fd, p, n);
      if (w < 0)
        {
          if (errno == EINTR)
            continue;
          return -1;
        }
      p += w;
      n -= (size_t) w;
    }
  return 0;
}

int log_file_append(struct log_file *lf, const char *stream, const char *text,
                    size_t n, bool partial, shim_error_t *err)
{
  static char record[RECORD_MAX];
  char ts[RFC3339NANO_LEN];
  struct timespec now = time_now();
  size_t len;

  if (n > LOG_LINE_MAX)
    n = LOG_LINE_MAX;
  time_format_rfc3339nano(&now, ts);
  len = (size_t) snprintf(record, RECORD_MAX, "{\"time\":\"%s\",\"stream\":\"%s\",\"log\":\"", ts, stream);
  len += json_escape(record + len, text, n);
  memcpy(record + len, partial ? "\",\"partial\":true}\n" : "\"}\n", partial ? 18 : 3);
  len += partial ? 18 : 3;

  if (lf->fd < 0 || (lf->max_bytes > 0 && lf->size > 0 && lf->size + len > lf->max_bytes))
    if (rotate(lf, err) < 0)
      {
        lf->dropped++;
        return -1;
      }
  if (write_all(lf->fd, record, len) < 0)
    {
      lf->dropped++;
      return shim_error(err, errno, "write log file %s", lf->path);
    }
  lf->size += len;
  return 0;
}

void log_stream_init(struct log_stream *s, const char *name, int fd)
{
  s->name = name;
  s->fd = fd;
  s->len = 0;
}

static void emit(struct log_stream *s, struct log_file *lf, const char *text, size_t n, bool partial)
{
  shim_error_t err;
  /* A write error must not stop the reading: the container would block. */
  (void) log_file_append(lf, s->name, text, n, partial, &err);
}

/* Writes every complete line in buf and, when the buffer is full, a partial
 * piece (cut before a split UTF-8 character); keeps the rest at the front. */
static void flush_lines(struct log_stream *s, struct log_file *lf)
{
  size_t start = 0;

  for (;;)
    {
      char *nl = memchr(s->buf + start, '\n', s->len - start);
      if (nl)
        {
          size_t end = (size_t) (nl - s->buf) + 1;
          emit(s, lf, s->buf + start, end - start, false);
          start = end;
          continue;
        }
      if (start == 0 && s->len == LOG_LINE_MAX)
        {
          size_t cut = LOG_LINE_MAX - utf8_incomplete_tail(s->buf, LOG_LINE_MAX);
          emit(s, lf, s->buf, cut, true);
          start = cut;
        }
      break;
    }
  if (start > 0)
    {
      memmove(s->buf, s->buf + start, s->len - start);
      s->len -= start;
    }
}

enum log_read_result log_stream_read(struct log_stream *s, struct log_file *lf)
{
  ssize_t r;

  if (s->fd < 0)
    return LOG_READ_EOF;
  do
    r = read(s->fd, s->buf + s->len, LOG_LINE_MAX - s->len);
  while (r < 0 && errno == EINTR);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return LOG_READ_AGAIN;
  if (r <= 0)
    {
      /* EOF (or an error, which we treat alike): the rest is a partial line. */
      close(s->fd);
      s->fd = -1;
      if (s->len > 0)
        emit(s, lf, s->buf, s->len, true);
      s->len = 0;
      return LOG_READ_EOF;
    }
  s->len += (size_t) r;
  flush_lines(s, lf);
  return LOG_READ_DATA;
}

void log_stream_drain(struct log_stream *s, struct log_file *lf)
{
  /* Bounded: a process that escaped the container may still be writing. */
  for (int i = 0; i < 4096 && log_stream_read(s, lf) == LOG_READ_DATA; i++)
    ;
  if (s->len > 0)
    {
      emit(s, lf, s->buf, s->len, true);
      s->len = 0;
    }
}
