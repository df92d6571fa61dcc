/* seccomp-probe: calls syscalls directly and prints `name=result` per call, the
 * result being `ok` or the errno's name (EPERM, ENOSYS, ...). Built static by
 * test/runtime/seccomp.test.ts (gcc -static -pthread) and run inside containers.
 *
 * Each call runs in a forked child that exits with the errno (0 for success), so a
 * call that unexpectedly works (a new namespace, being traced) cannot change the
 * probe itself. Harmless outside a container too: every call that could change
 * something aims at nothing (a missing mount point, an unsettable clock, the
 * current tick). Usage: seccomp-probe [name...] (no names: every probe). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timex.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Numbers newer than some headers (x86_64 and the generic table agree on these). */
#define NR_CACHESTAT 451
#define NR_FCHMODAT2 452
#define NR_STATMOUNT 457
#define NR_MSEAL 462
#define NR_NOT_A_SYSCALL 1000

/* A call's result: 0 for success, else the errno. */
static int
ret (long r)
{
  return r < 0 ? errno : 0;
}

/* Runs a raw clone-like call: the child exits at once, the parent reaps it. */
static int
forked (long pid)
{
  if (pid == 0)
    _exit (0);
  if (pid < 0)
    return errno;
  waitpid ((pid_t) pid, NULL, __WALL);
  return 0;
}

static int p_fork (void) { return forked (fork ()); }
static int p_clone_plain (void) { return forked (syscall (SYS_clone, SIGCHLD, 0, 0, 0, 0)); }
static int p_clone_newns (void) { return forked (syscall (SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0)); }
static int p_clone_newuser (void) { return forked (syscall (SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)); }

static int
clone3_with (uint64_t flags)
{
  struct clone_args args;
  memset (&args, 0, sizeof args);
  args.flags = flags;
  args.exit_signal = SIGCHLD;
  return forked (syscall (SYS_clone3, &args, sizeof args));
}
static int p_clone3 (void) { return clone3_with (0); }
static int p_clone3_newuser (void) { return clone3_with (CLONE_NEWUSER); }

static void *thread_main (void *arg) { return arg; }
static int
p_thread (void)
{
  pthread_t t;
  int r = pthread_create (&t, NULL, thread_main, NULL);
  if (r == 0)
    pthread_join (t, NULL);
  return r;
}

static int p_unshare_user (void) { return ret (unshare (CLONE_NEWUSER)); }
static int p_unshare_net (void) { return ret (unshare (CLONE_NEWNET)); }
static int p_setns (void) { return ret (setns (0, 0)); }
/* A mount point that does not exist: ENOENT where mount is allowed, EPERM where it is not. */
static int p_mount (void) { return ret (mount ("t", "/nonexistent-berth-probe", "tmpfs", 0, NULL)); }
static int p_chroot (void) { return ret (chroot ("/")); }

/* keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, create) */
static int p_keyctl (void) { return ret (syscall (SYS_keyctl, 0, -3, 1)); }
/* add_key("user", "berth", "x", 1, KEY_SPEC_PROCESS_KEYRING) */
static int p_add_key (void) { return ret (syscall (SYS_add_key, "user", "berth", "x", 1, -2)); }
static int p_request_key (void) { return ret (syscall (SYS_request_key, "user", "berth-none", NULL, 0)); }

static int p_ptrace_traceme (void) { return ret (ptrace (PTRACE_TRACEME, 0, NULL, NULL)); }
static int
p_ptrace_attach (void)
{
  pid_t child = fork ();
  int r;
  if (child == 0)
    {
      pause ();
      _exit (0);
    }
  r = ret (ptrace (PTRACE_ATTACH, child, NULL, NULL));
  kill (child, SIGKILL);
  waitpid (child, NULL, __WALL);
  return r;
}
static int
p_process_vm_readv (void)
{
  char src[8] = "berth", dst[8];
  struct iovec local = { dst, sizeof dst }, remote = { src, sizeof src };
  return ret (syscall (SYS_process_vm_readv, getpid (), &local, 1, &remote, 1, 0));
}
/* kcmp(pid, pid, KCMP_VM, 0, 0) */
static int p_kcmp (void) { return ret (syscall (SYS_kcmp, getpid (), getpid (), 1, 0, 0)); }

static int p_bpf (void) { return ret (syscall (SYS_bpf, -1, NULL, 0)); }
static int p_perf_event_open (void) { return ret (syscall (SYS_perf_event_open, NULL, 0, -1, -1, 0)); }
static int p_userfaultfd (void) { return ret (syscall (SYS_userfaultfd, O_CLOEXEC)); }
static int p_io_uring_setup (void) { return ret (syscall (SYS_io_uring_setup, 1, NULL)); }
static int p_open_by_handle_at (void) { return ret (syscall (SYS_open_by_handle_at, -1, NULL, 0)); }
static int p_name_to_handle_at (void) { return ret (syscall (SYS_name_to_handle_at, AT_FDCWD, "/", NULL, NULL, 0)); }
/* syslog(SYSLOG_ACTION_SIZE_BUFFER) */
static int p_syslog (void) { return ret (syscall (SYS_syslog, 10, NULL, 0)); }

static int p_personality_query (void) { return ret (personality (0xffffffff)); }
static int
p_personality_linux32 (void)
{
  int r = ret (personality (PER_LINUX32));
  personality (PER_LINUX);
  return r;
}
static int p_personality_norandom (void) { return ret (personality (ADDR_NO_RANDOMIZE)); }

static int
socket_of (int family)
{
  int fd = socket (family, SOCK_STREAM, 0);
  if (fd < 0)
    return errno;
  close (fd);
  return 0;
}
static int p_socket_inet (void) { return socket_of (AF_INET); }
static int p_socket_unix (void) { return socket_of (AF_UNIX); }
static int p_socket_vsock (void) { return socket_of (40 /* AF_VSOCK */); }

/* CLOCK_MONOTONIC cannot be set (EINVAL): only the filter or a missing capability says EPERM. */
static int
p_clock_settime (void)
{
  struct timespec now;
  clock_gettime (CLOCK_MONOTONIC, &now);
  return ret (clock_settime (CLOCK_MONOTONIC, &now));
}
static int
p_adjtimex_read (void)
{
  struct timex t = { .modes = 0 };
  return ret (adjtimex (&t));
}
static int
p_adjtimex_set (void)
{
  struct timex t = { .modes = 0 };
  if (adjtimex (&t) < 0)
    return errno;
  t.modes = ADJ_TICK; /* the current tick: a no-op even if it were allowed */
  return ret (adjtimex (&t));
}

/* Allowed since 2024 (Linux 6.5, 6.6): with a bad fd, EBADF. */
static int p_fchmodat2 (void) { return ret (syscall (NR_FCHMODAT2, -1, "x", 0644, 0)); }
static int p_cachestat (void) { return ret (syscall (NR_CACHESTAT, -1, NULL, NULL, 0)); }
/* Newer than the runtime's libseccomp can name (Linux 6.8, 6.10), and a number no
 * kernel has: a runtime should answer ENOSYS for them, as runc does, so that libc
 * falls back to an older call; never EPERM. */
static int p_statmount (void) { return ret (syscall (NR_STATMOUNT, NULL, NULL, 0, 0)); }
static int p_mseal (void) { return ret (syscall (NR_MSEAL, 0, 0, 0)); }
static int p_not_a_syscall (void) { return ret (syscall (NR_NOT_A_SYSCALL, 0, 0, 0)); }

static const struct
{
  const char *name;
  int (*fn) (void);
} probes[] = {
  { "fork", p_fork }, { "clone_plain", p_clone_plain }, { "thread", p_thread },
  { "clone_newns", p_clone_newns }, { "clone_newuser", p_clone_newuser },
  { "clone3", p_clone3 }, { "clone3_newuser", p_clone3_newuser },
  { "unshare_user", p_unshare_user }, { "unshare_net", p_unshare_net }, { "setns", p_setns },
  { "mount", p_mount }, { "chroot", p_chroot },
  { "keyctl", p_keyctl }, { "add_key", p_add_key }, { "request_key", p_request_key },
  { "ptrace_traceme", p_ptrace_traceme }, { "ptrace_attach", p_ptrace_attach },
  { "process_vm_readv", p_process_vm_readv }, { "kcmp", p_kcmp },
  { "bpf", p_bpf }, { "perf_event_open", p_perf_event_open }, { "userfaultfd", p_userfaultfd },
  { "io_uring_setup", p_io_uring_setup }, { "open_by_handle_at", p_open_by_handle_at },
  { "name_to_handle_at", p_name_to_handle_at }, { "syslog", p_syslog },
  { "personality_query", p_personality_query }, { "personality_linux32", p_personality_linux32 },
  { "personality_norandom", p_personality_norandom },
  { "socket_inet", p_socket_inet }, { "socket_unix", p_socket_unix }, { "socket_vsock", p_socket_vsock },
  { "clock_settime", p_clock_settime }, { "adjtimex_read", p_adjtimex_read }, { "adjtimex_set", p_adjtimex_set },
  { "fchmodat2", p_fchmodat2 }, { "cachestat", p_cachestat },
  { "statmount", p_statmount }, { "mseal", p_mseal }, { "not_a_syscall", p_not_a_syscall },
};

static void
run (int i)
{
  int status = 0, e;
  pid_t pid;
  fflush (stdout);
  pid = fork ();
  if (pid < 0)
    {
      printf ("%s=fork-failed-%s\n", probes[i].name, strerrorname_np (errno));
      return;
    }
  if (pid == 0)
    _exit (probes[i].fn () & 0xff);
  waitpid (pid, &status, 0);
  if (!WIFEXITED (status))
    {
      printf ("%s=signal-%d\n", probes[i].name, WIFSIGNALED (status) ? WTERMSIG (status) : -1);
      return;
    }
  e = WEXITSTATUS (status);
  printf ("%s=%s\n", probes[i].name, e == 0 ? "ok" : strerrorname_np (e) ? strerrorname_np (e) : "unknown");
}

int
main (int argc, char **argv)
{
  int n = (int) (sizeof probes / sizeof probes[0]);
  for (int i = 0; i < n; i++)
    {
      int wanted = argc < 2;
      for (int a = 1; a < argc && !wanted; a++)
        wanted = strcmp (argv[a], probes[i].name) == 0;
      if (wanted)
        run (i);
    }
  return 0;
}
