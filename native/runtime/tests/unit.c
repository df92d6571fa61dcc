/* Unit tests for the parts of berth-runtime that need no container: the JSON
 * reader, signal names, container ids, and path resolution inside a root (with
 * openat2 and with the fallback walk). Prints "N passed, M failed". */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "error.h"
#include "json.h"
#include "safepath.h"
#include "signals.h"
#include "state.h"
#include "utils.h"

static int passed, failed;

#define CHECK(cond)                                                                  \
  do                                                                                 \
    {                                                                                \
      if (cond)                                                                      \
        passed++;                                                                    \
      else                                                                           \
        {                                                                            \
          failed++;                                                                  \
          fprintf (stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, __func__, #cond); \
        }                                                                            \
    }                                                                                \
  while (0)

static void
test_json (void)
{
  berth_error_t err = NULL;
  json_node *n = json_parse ("{\"a\": [1, -2, 18446744073709551615, 1.5e3], \"s\": \"x\\u00e9\\n\\ud83d\\ude00\", \"t\": true, \"z\": null}", &err);
  CHECK (n != NULL);
  if (n == NULL)
    return;
  json_node *a = json_get (n, "a");
  CHECK (a && a->type == JSON_ARRAY && a->len == 4);
  CHECK (a->items[0]->is_int && a->items[0]->integer == 1);
  CHECK (a->items[1]->is_int && a->items[1]->integer == -2);
  CHECK (a->items[2]->is_int && a->items[2]->uinteger == UINT64_MAX);
  CHECK (!a->items[3]->is_int && a->items[3]->number == 1500.0);
  CHECK (strcmp (json_get_string (n, "s"), "x\xc3\xa9\n\xf0\x9f\x98\x80") == 0);
  CHECK (json_get (n, "t")->boolean);
  CHECK (json_get (n, "z") == NULL); /* null reads as absent */
  CHECK (json_get (n, "missing") == NULL);
  json_free (n);

  static const char *const bad[] = { "{", "{\"a\":}", "[1,]", "\"\\x\"", "{\"a\":1} x", "\"\\u0000\"", "tru", "" };
  for (size_t i = 0; i < sizeof (bad) / sizeof (bad[0]); i++)
    {
      n = json_parse (bad[i], &err);
      CHECK (n == NULL && err && strstr (err->msg, "invalid JSON at offset"));
      berth_error_release (&err);
    }
}

static void
test_signals (void)
{
  berth_error_t err = NULL;
  int sig = 0;
  CHECK (signal_parse ("TERM", &sig, &err) == 0 && sig == SIGTERM);
  CHECK (signal_parse ("SIGKILL", &sig, &err) == 0 && sig == SIGKILL);
  CHECK (signal_parse ("sigusr1", &sig, &err) == 0 && sig == SIGUSR1);
  CHECK (signal_parse ("9", &sig, &err) == 0 && sig == 9);
  CHECK (signal_parse ("RTMIN+2", &sig, &err) == 0 && sig == SIGRTMIN + 2);
  CHECK (signal_parse ("SIGNOPE", &sig, &err) < 0 && strcmp (err->msg, "unknown signal `SIGNOPE`") == 0);
  berth_error_release (&err);
  CHECK (signal_parse ("0", &sig, &err) < 0);
  berth_error_release (&err);
}

static void
test_ids (void)
{
  berth_error_t err = NULL;
  CHECK (validate_id ("berth-test_1.2+x", &err) == 0);
  static const char *const bad[] = { "", ".", "..", "a/b", "a b", "../x" };
  for (size_t i = 0; i < sizeof (bad) / sizeof (bad[0]); i++)
    {
      CHECK (validate_id (bad[i], &err) < 0);
      berth_error_release (&err);
    }
}

static void
test_errors (void)
{
  berth_error_t err = NULL;
  berth_make_error (&err, ENOENT, "open `%s`", "x\ny");
  berth_error_wrap (&err, "create `%s`", "c1");
  CHECK (strcmp (err->msg, "create `c1`: open `x y`: No such file or directory") == 0);
  CHECK (err->status == ENOENT);
  berth_error_release (&err);
}

/* root/ with: etc/ (dir), up -> /../../../tmp/escape, rel -> ../../.., loop -> loop,
 * abs -> /etc; paths resolved through them must stay inside root/. */
static void
test_safepath (bool openat2)
{
  char tmpl[] = "/tmp/berth-unit-XXXXXX";
  char *top = mkdtemp (tmpl);
  berth_error_t err = NULL;
  char buf[256];
  int rootfd, fd;
  struct stat st, st2;

  safepath_use_openat2 (openat2);
  CHECK (top != NULL);
  snprintf (buf, sizeof (buf), "%s/etc", top);
  mkdir (buf, 0755);
  snprintf (buf, sizeof (buf), "%s/up", top);
  symlink ("/../../../tmp/escape-berth-unit", buf);
  snprintf (buf, sizeof (buf), "%s/rel", top);
  symlink ("../../..", buf);
  snprintf (buf, sizeof (buf), "%s/loop", top);
  symlink ("loop", buf);
  snprintf (buf, sizeof (buf), "%s/abs", top);
  symlink ("/etc", buf);
  rootfd = open (top, O_PATH | O_DIRECTORY);

  /* A symlink to /etc means the root's etc. */
  fd = open_in_root (rootfd, "/abs", O_PATH, &err);
  snprintf (buf, sizeof (buf), "%s/etc", top);
  CHECK (fd >= 0 && fstat (fd, &st) == 0 && stat (buf, &st2) == 0 && st.st_ino == st2.st_ino);
  close (fd);
  /* .. above the root stays at the root. */
  fd = open_in_root (rootfd, "/rel/etc", O_PATH, &err);
  CHECK (fd >= 0 && fstat (fd, &st) == 0 && st.st_ino == st2.st_ino);
  close (fd);
  /* A dangling symlink climbing out is created inside the root. */
  fd = mkdir_in_root (rootfd, "/up/deeper", false, &err);
  CHECK (fd >= 0);
  close (fd);
  snprintf (buf, sizeof (buf), "%s/tmp/escape-berth-unit/deeper", top);
  CHECK (stat (buf, &st) == 0 && S_ISDIR (st.st_mode));
  CHECK (access ("/tmp/escape-berth-unit", F_OK) < 0);
  /* A file target. */
  fd = mkdir_in_root (rootfd, "/etc/file", true, &err);
  snprintf (buf, sizeof (buf), "%s/etc/file", top);
  CHECK (fd >= 0 && stat (buf, &st) == 0 && S_ISREG (st.st_mode));
  close (fd);
  /* A symlink loop fails with ELOOP. */
  fd = open_in_root (rootfd, "/loop/x", O_PATH, &err);
  CHECK (fd < 0 && err && err->status == ELOOP);
  berth_error_release (&err);
  /* check_no_symlinks sees the symlink. */
  CHECK (check_no_symlinks (rootfd, "/abs/x", &err) < 0);
  berth_error_release (&err);
  CHECK (check_no_symlinks (rootfd, "/etc/file", &err) == 0);

  close (rootfd);
  remove_tree (top);
  safepath_use_openat2 (true);
}

int
main (void)
{
  test_json ();
  test_signals ();
  test_ids ();
  test_errors ();
  test_safepath (true);
  test_safepath (false);
  printf ("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
