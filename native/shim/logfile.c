#include "logfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "timeutil.h"

/* A record: fixed prefix and suffix, the escaped text, a newline. */
#define RECORD_MAX (JSON_ESCAPED_MAX(LOG_LINE_MAX) + 160)

/* Records are batched and written with one write(2) per read from the pipes
 * (or once LOG_BATCH_FLUSH bytes are pending): each write holds whole lines. */
#define LOG_BATCH_FLUSH 65536
static char batch_buffer[LOG_BATCH_FLUSH + RECORD_MAX] __attribute__((aligned(4096)));

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
  lf->batch = batch_buffer;
  lf->batch_len = 0;
  lf->batch_records = 0;
  return open_log(lf, 0, err);
}

void log_file_close(struct log_file *lf)
{
  shim_error_t err;

  (void) log_file_flush(lf, &err);
  if (lf->fd >= 0)
    close(lf->fd);
  lf->fd = -1;
}

/* FILE.(k-1) -> FILE.k for k = max_files-1 .. 2, then FILE -> FILE.1 (or
 * FILE removed when only one file is kept), then a fresh FILE. */
static int rotate(struct log_file *lf, shim_error_t *err)
{
  char from[PATH_MAX], to[PATH_MAX];

  if (lf->fd >= 0)
    close(lf->fd);
  lf->fd = -1;
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

/* Appends a NUL-terminated string to a record being built. */
static inline void append(char *record, size_t *len, const char *s)
{
  size_t n = strlen(s);
  memcpy(record + *len, s, n);
  *len += n;
}

/* Writes the batched records with one write(2) and empties the batch. */
int log_file_flush(struct log_file *lf, shim_error_t *err)
{
  if (lf->batch_len == 0)
    return 0;
  if (lf->fd < 0 && rotate(lf, err) < 0)
    goto drop;
  if (write_all(lf->fd, lf->batch, lf->batch_len) < 0)
    {
      shim_error(err, errno, "write log file %s", lf->path);
      goto drop;
    }
  lf->size += lf->batch_len;
  lf->batch_len = 0;
  lf->batch_records = 0;
  return 0;

drop:
  lf->dropped += lf->batch_records;
  lf->batch_len = 0;
  lf->batch_records = 0;
  return -1;
}

int log_file_append(struct log_file *lf, const char *stream, const char *text,
                    size_t n, bool partial, shim_error_t *err)
{
  char ts[RFC3339NANO_LEN];
  struct timespec now = time_now();
  char *record = lf->batch + lf->batch_len;
  size_t len = 0;

  if (n > LOG_LINE_MAX)
    n = LOG_LINE_MAX;
  time_format_rfc3339nano(&now, ts);
  append(record, &len, "{\"time\":\"");
  append(record, &len, ts);
  append(record, &len, "\",\"stream\":\"");
  append(record, &len, stream);
  append(record, &len, "\",\"log\":\"");
  len += json_escape(record + len, text, n);
  append(record, &len, partial ? "\",\"partial\":true}\n" : "\"}\n");

  if (lf->max_bytes > 0 && lf->size + lf->batch_len > 0 && lf->size + lf->batch_len + len > lf->max_bytes)
    {
      /* the records before this one end the current file */
      int r = log_file_flush(lf, err);
      if (rotate(lf, err) < 0 || r < 0)
        {
          lf->dropped++;
          return -1;
        }
      memmove(lf->batch, record, len);
    }
  lf->batch_len += len;
  lf->batch_records++;
  if (lf->batch_len >= LOG_BATCH_FLUSH)
    return log_file_flush(lf, err);
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

static void flush_batch(struct log_file *lf)
{
  shim_error_t err;
  (void) log_file_flush(lf, &err);
}

/* Writes every complete line in buf and every LOG_LINE_MAX piece of a longer
 * one (cut before a split UTF-8 character); keeps the rest at the front. */
static void flush_lines(struct log_stream *s, struct log_file *lf)
{
  size_t start = 0;

  for (;;)
    {
      size_t avail = s->len - start;
      size_t window = avail < LOG_LINE_MAX ? avail : LOG_LINE_MAX;
      char *nl = memchr(s->buf + start, '\n', window);
      if (nl)
        {
          size_t end = (size_t) (nl - s->buf) + 1;
          emit(s, lf, s->buf + start, end - start, false);
          start = end;
          continue;
        }
      if (avail >= LOG_LINE_MAX)
        {
          size_t cut = LOG_LINE_MAX - utf8_incomplete_tail(s->buf + start, LOG_LINE_MAX);
          emit(s, lf, s->buf + start, cut, true);
          start += cut;
          continue;
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
    r = read(s->fd, s->buf + s->len, LOG_STREAM_BUF - s->len);
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
      flush_batch(lf);
      return LOG_READ_EOF;
    }
  s->len += (size_t) r;
  flush_lines(s, lf);
  flush_batch(lf);
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
      flush_batch(lf);
    }
}

/* Gives the pages of buf past its first `keep` bytes back to the kernel. */
static void release_tail(char *buf, size_t keep, size_t cap)
{
  uintptr_t page = (uintptr_t) sysconf(_SC_PAGESIZE);
  uintptr_t start = ((uintptr_t) buf + keep + page - 1) & ~(page - 1);
  uintptr_t end = ((uintptr_t) buf + cap) & ~(page - 1);

  if (end > start)
    (void) madvise((void *) start, end - start, MADV_DONTNEED);
}

void log_release_memory(struct log_file *lf, struct log_stream *const *streams, size_t n)
{
  shim_error_t err;

  (void) log_file_flush(lf, &err);
  release_tail(lf->batch, 0, LOG_BATCH_FLUSH + RECORD_MAX);
  for (size_t i = 0; i < n; i++)
    release_tail(streams[i]->buf, streams[i]->len, LOG_STREAM_BUF);
}
