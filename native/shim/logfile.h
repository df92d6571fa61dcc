/* The container log: one JSON object per line,
 * {"time":"<RFC3339Nano>","stream":"stdout|stderr","log":"<text>"[,"partial":true]},
 * each line written with one write(2), rotated by size. */
#ifndef BERTH_SHIM_LOGFILE_H
#define BERTH_SHIM_LOGFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* A line longer than this is cut into pieces marked partial. */
#define LOG_LINE_MAX 16384

struct log_file
{
  const char *path;
  int fd;
  uint64_t size;      /* bytes in the current file */
  uint64_t max_bytes; /* 0: never rotate */
  unsigned max_files; /* files kept, the current one included (>= 1) */
  uint64_t dropped;   /* records lost to write errors */
  char *batch;        /* records not yet written */
  size_t batch_len;
  uint64_t batch_records;
};

int log_file_open(struct log_file *lf, const char *path, uint64_t max_bytes,
                  unsigned max_files, shim_error_t *err);
void log_file_close(struct log_file *lf);

/* Adds one record to the batch (rotating first when it would not fit under
 * max_bytes). A failure is counted in lf->dropped and returned; the caller
 * keeps reading the container's output regardless. */
int log_file_append(struct log_file *lf, const char *stream, const char *text,
                    size_t n, bool partial, shim_error_t *err);

/* Writes the batch with one write(2): whole records only. log_stream_read and
 * log_file_close call it. */
int log_file_flush(struct log_file *lf, shim_error_t *err);

/* Bytes read from a pipe at once (an unfinished line stays below LOG_LINE_MAX). */
#define LOG_STREAM_BUF 65536

/* One of the container's output pipes and the lines it is assembling. */
struct log_stream
{
  const char *name; /* "stdout" or "stderr" */
  int fd;           /* read end, non-blocking; -1 once at EOF */
  size_t len;
  char buf[LOG_STREAM_BUF] __attribute__((aligned(4096)));
};

void log_stream_init(struct log_stream *s, const char *name, int fd);

enum log_read_result
{
  LOG_READ_DATA,  /* read something; may be more */
  LOG_READ_AGAIN, /* nothing available now */
  LOG_READ_EOF,   /* writer side closed; fd closed and set to -1 */
};

/* One read(2) from the pipe; complete lines and full 16 KiB pieces go to lf,
 * written with one write(2). */
enum log_read_result log_stream_read(struct log_stream *s, struct log_file *lf);

/* Reads until nothing is available or EOF, then writes what is left of an
 * unfinished line as a partial record. For after the container has exited. */
void log_stream_drain(struct log_stream *s, struct log_file *lf);

/* After a burst of output: returns the buffers' unused pages to the kernel so
 * an idle shim stays small (they are touched again only by the next burst). */
void log_release_memory(struct log_file *lf, struct log_stream *const *streams, size_t n);

#endif
