/* Unit tests for the shim's pure parts: JSON escaping and reading, UTF-8 cuts,
 * line assembly, log records and rotation, the exit record.
 * Run with `make -C native/shim check`. Prints one line per failure and
 * "N passed, N failed" at the end. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../exitrec.h"
#include "../fsutil.h"
#include "../json.h"
#include "../logfile.h"
#include "../oom.h"

static int passed, failed;

#define CHECK(cond)                                                                   \
  do                                                                                  \
    {                                                                                 \
      if (cond)                                                                       \
        passed++;                                                                     \
      else                                                                            \
        {                                                                             \
          failed++;                                                                   \
          fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);              \
        }                                                                             \
    }                                                                                 \
  while (0)

static char escaped[JSON_ESCAPED_MAX(256) + 1];

static const char *esc(const char *s, size_t n)
{
  size_t len = json_escape(escaped, s, n);
  escaped[len] = '\0';
  return escaped;
}

static void test_escape(void)
{
  CHECK(strcmp(esc("plain text", 10), "plain text") == 0);
  CHECK(strcmp(esc("a\"b\\c\n\t\r", 8), "a\\\"b\\\\c\\n\\t\\r") == 0);
  CHECK(strcmp(esc("\x01\x1f\x7f", 3), "\\u0001\\u001f\x7f") == 0);
  CHECK(strcmp(esc("\0x", 2), "\\u0000x") == 0);
  /* valid multi-byte characters pass through */
  CHECK(strcmp(esc("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80") == 0);
  /* invalid bytes, overlongs, surrogates, cut sequences become U+FFFD each */
  CHECK(strcmp(esc("\xff", 1), "\xef\xbf\xbd") == 0);
  CHECK(strcmp(esc("\xc0\xaf", 2), "\xef\xbf\xbd\xef\xbf\xbd") == 0);
  CHECK(strcmp(esc("\xed\xa0\x80", 3), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd") == 0);
  CHECK(strcmp(esc("\xe2\x82", 2), "\xef\xbf\xbd\xef\xbf\xbd") == 0);
  CHECK(strcmp(esc("\xf4\x90\x80\x80", 4), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd") == 0);
  /* the bound holds for the worst case */
  char worst[64];
  memset(worst, 1, sizeof worst);
  CHECK(json_escape(escaped, worst, sizeof worst) == JSON_ESCAPED_MAX(sizeof worst));
}

static void test_utf8_tail(void)
{
  CHECK(utf8_incomplete_tail("abc", 3) == 0);
  CHECK(utf8_incomplete_tail("ab\xc3", 3) == 1);
  CHECK(utf8_incomplete_tail("ab\xc3\xa9", 4) == 0);
  CHECK(utf8_incomplete_tail("a\xe2\x82", 3) == 2);
  CHECK(utf8_incomplete_tail("\xf0\x9f\x98", 3) == 3);
  CHECK(utf8_incomplete_tail("\xf0\x9f\x98\x80", 4) == 0);
  CHECK(utf8_incomplete_tail("a\xff", 2) == 0);        /* not a lead byte */
  CHECK(utf8_incomplete_tail("a\xe0\x80", 3) == 0);    /* overlong start: invalid anyway */
  CHECK(utf8_incomplete_tail("\x80\x80\x80", 3) == 0); /* stray continuations */
  CHECK(utf8_incomplete_tail("", 0) == 0);
}

static int parse(const char *text, struct json_field *f, size_t n)
{
  shim_error_t err;
  return json_parse_object(text, strlen(text), f, n, &err);
}

static void test_parse(void)
{
  struct json_field f[] = { { .key = "op" }, { .key = "signal" } };

  CHECK(parse("{\"op\":\"kill\",\"signal\":9}", f, 2) == 0);
  CHECK(f[0].kind == JSON_STRING && strcmp(f[0].str, "kill") == 0);
  CHECK(f[1].kind == JSON_NUMBER && f[1].number == 9);
  CHECK(parse("  {\"x\":[1,{\"y\":null}],\"op\":\"st\\u0061te\"} \n", f, 2) == 0);
  CHECK(f[0].kind == JSON_STRING && strcmp(f[0].str, "state") == 0 && f[1].kind == JSON_ABSENT);
  CHECK(parse("{}", f, 2) == 0 && f[0].kind == JSON_ABSENT);
  CHECK(parse("{\"op\":true,\"signal\":null}", f, 2) == 0 && f[0].kind == JSON_BOOL && f[1].kind == JSON_NULL);
  CHECK(parse("{\"op\":\"\\ud83d\\ude00\"}", f, 1) == 0 && strcmp(f[0].str, "\xf0\x9f\x98\x80") == 0);

  const char *bad[] = {
    "", "garbage", "[]", "{", "{\"op\"}", "{\"op\":}", "{\"op\":\"x\",}", "{\"op\":\"x\"} extra",
    "{\"op\":\"unterminated}", "{\"op\":1e999}", "{\"op\":-}", "{\"op\":\"a\x01\"}", "{op:1}",
    "{\"op\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
    "{\"op\":\"\\x\"}", "{\"op\":\"\\u12\"}", "{\"op\":tru}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      int r = parse(bad[i], f, 2);
      if (r != -1)
        fprintf(stderr, "accepted: %s\n", bad[i]);
      CHECK(r == -1);
    }
  /* a long string value is truncated, not overflowed */
  static char big[8192];
  strcpy(big, "{\"op\":\"");
  memset(big + 7, 'z', 5000);
  strcpy(big + 5007, "\"}");
  CHECK(parse(big, f, 1) == 0 && strlen(f[0].str) == sizeof f[0].str - 1);
}

static char dir[] = "/tmp/berth-shim-unit-XXXXXX";

static size_t count_lines(const char *path, char *last, size_t cap)
{
  static char buf[1 << 20];
  shim_error_t err;
  ssize_t n = read_file(path, buf, sizeof buf, &err);
  size_t lines = 0;
  const char *start = buf;

  if (n < 0)
    return 0;
  for (ssize_t i = 0; i < n; i++)
    if (buf[i] == '\n')
      {
        if (last)
          snprintf(last, cap, "%.*s", (int) (buf + i - start), start);
        start = buf + i + 1;
        lines++;
      }
  return lines;
}

/* Feeds data through a real pipe into a log stream, then EOF. */
static void feed(struct log_file *lf, const char *data, size_t n)
{
  static struct log_stream s;
  int p[2];

  if (pipe(p) < 0)
    abort();
  fcntl(p[0], F_SETFL, O_NONBLOCK);
  log_stream_init(&s, "stdout", p[0]);
  for (size_t off = 0; off < n;)
    {
      size_t chunk = n - off < 4096 ? n - off : 4096;
      if (write(p[1], data + off, chunk) != (ssize_t) chunk)
        abort();
      off += chunk;
      while (log_stream_read(&s, lf) == LOG_READ_DATA)
        ;
    }
  close(p[1]);
  while (log_stream_read(&s, lf) != LOG_READ_EOF)
    ;
}

static void test_log_lines(void)
{
  char path[PATH_MAX], last[70000];
  struct log_file lf;
  shim_error_t err;
  static char data[40001];

  snprintf(path, sizeof path, "%s/lines.log", dir);
  CHECK(log_file_open(&lf, path, 0, 1, &err) == 0);
  feed(&lf, "one\ntwo\nthree", 13);
  CHECK(count_lines(path, last, sizeof last) == 3);
  CHECK(strstr(last, "\"log\":\"three\",\"partial\":true}") != NULL);

  memset(data, 'a', 40000);
  data[40000] = '\n';
  feed(&lf, data, sizeof data);
  CHECK(count_lines(path, last, sizeof last) == 6);
  CHECK(strstr(last, "\"partial\"") == NULL);
  log_file_close(&lf);
}

static void test_rotation(void)
{
  char path[PATH_MAX], p1[PATH_MAX + 8], p2[PATH_MAX + 8], p3[PATH_MAX + 8];
  struct log_file lf;
  shim_error_t err;
  struct stat st;

  snprintf(path, sizeof path, "%s/rot.log", dir);
  snprintf(p1, sizeof p1, "%s.1", path);
  snprintf(p2, sizeof p2, "%s.2", path);
  snprintf(p3, sizeof p3, "%s.3", path);
  CHECK(log_file_open(&lf, path, 500, 3, &err) == 0);
  for (int i = 0; i < 100; i++)
    {
      char line[32];
      int n = snprintf(line, sizeof line, "line %d\n", i);
      CHECK(log_file_append(&lf, "stderr", line, (size_t) n, false, &err) == 0);
    }
  log_file_close(&lf);
  CHECK(stat(path, &st) == 0 && st.st_size <= 500);
  CHECK(stat(p1, &st) == 0 && st.st_size <= 500);
  CHECK(stat(p2, &st) == 0 && st.st_size <= 500);
  CHECK(stat(p3, &st) < 0 && errno == ENOENT);

  /* a record bigger than the cap goes alone into a fresh file */
  static char big[2000];
  memset(big, 'b', sizeof big);
  CHECK(log_file_open(&lf, path, 500, 3, &err) == 0);
  CHECK(log_file_append(&lf, "stdout", big, sizeof big, true, &err) == 0);
  CHECK(log_file_append(&lf, "stdout", "x\n", 2, false, &err) == 0);
  log_file_close(&lf);
  CHECK(count_lines(p1, NULL, 0) == 1);
  CHECK(count_lines(path, NULL, 0) == 1);
}

static void test_exit_record(void)
{
  struct exit_record r = { .started_at = { 1, 5 }, .exited_at = { 86400, 999999999 } };
  char buf[512];
  shim_error_t err;

  exit_record_set_status(&r, 3 << 8); /* exited 3 */
  CHECK(r.exit_code == 3 && r.signal == 0);
  exit_record_set_status(&r, 9); /* killed by SIGKILL */
  CHECK(r.exit_code == 137 && r.signal == 9);
  r.oom_killed = true;
  exit_record_json(&r, NULL, buf, sizeof buf);
  CHECK(strcmp(buf, "{\"exitCode\":137,\"signal\":9,\"oomKilled\":true,"
                    "\"startedAt\":\"1970-01-01T00:00:01.000000005Z\",\"exitedAt\":\"1970-01-02T00:00:00.999999999Z\"}") == 0);
  CHECK(exit_record_write(&r, dir, &err) == 0);
  char path[PATH_MAX], tmp[PATH_MAX + 8];
  snprintf(path, sizeof path, "%s/exit.json", dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  CHECK(count_lines(path, NULL, 0) == 1);
  CHECK(access(tmp, F_OK) < 0);
}

static void test_oom_parsing(void)
{
  char v1[PATH_MAX], v2[PATH_MAX], path[PATH_MAX];
  char hybrid[] = "12:pids:/berth/x\n4:cpu,memory:/berth/x\n1:name=systemd:/\n0::/\n";
  char unified[] = "0::/system.slice/berth-x.scope\n";
  char nomem[] = "3:cpu:/a\n";
  uint64_t n = 0;
  FILE *f;

  oom_parse_proc_cgroup(hybrid, v1, v2, sizeof v1);
  CHECK(strcmp(v1, "/berth/x") == 0 && strcmp(v2, "/") == 0);
  oom_parse_proc_cgroup(unified, v1, v2, sizeof v1);
  CHECK(v1[0] == '\0' && strcmp(v2, "/system.slice/berth-x.scope") == 0);
  oom_parse_proc_cgroup(nomem, v1, v2, sizeof v1);
  CHECK(v1[0] == '\0' && v2[0] == '\0');

  snprintf(path, sizeof path, "%s/memory.events", dir);
  f = fopen(path, "w");
  fputs("low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n", f);
  fclose(f);
  CHECK(oom_read_counter(path, &n) == 0 && n == 2);
  snprintf(path, sizeof path, "%s/memory.oom_control", dir);
  f = fopen(path, "w");
  fputs("oom_kill_disable 0\nunder_oom 0\noom_kill 7\n", f);
  fclose(f);
  CHECK(oom_read_counter(path, &n) == 0 && n == 7);
  f = fopen(path, "w");
  fputs("oom_kill_disable 0\nunder_oom 0\n", f); /* kernel < 4.13 */
  fclose(f);
  CHECK(oom_read_counter(path, &n) == -1);
}

int main(void)
{
  if (!mkdtemp(dir))
    {
      perror("mkdtemp");
      return 1;
    }
  test_escape();
  test_utf8_tail();
  test_parse();
  test_log_lines();
  test_rotation();
  test_exit_record();
  test_oom_parsing();
  {
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", dir);
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
