// Berth's default seccomp profile: an allow list, everything else fails with EPERM.
//
// Where it comes from: the semantics of Docker's and containerd's default profiles
// (moby profiles/seccomp/default.json, containerd contrib/seccomp/seccomp_default.go,
// as of 2024: syscalls up to Linux 6.7, io_uring removed), resolved for a container
// with Docker's 14 default capabilities (DEFAULT_CAPABILITIES in spec.ts). Docker
// adds a block of syscalls for each extra capability (CAP_SYS_ADMIN brings mount and
// unshare, CAP_SYS_PTRACE brings ptrace, ...); Berth grants none of those
// capabilities, so none of those blocks is here. The one default capability with a
// block, CAP_SYS_CHROOT, brings `chroot`.
//
// Where Berth is stricter than Docker, on purpose:
// - ptrace, process_vm_readv and process_vm_writev: Docker allows them on kernels
//   >= 4.8 (ptrace can no longer bypass seccomp there). Berth keeps them behind
//   CAP_SYS_PTRACE as Docker did before: tasks are other tenants' neighbours, and a
//   service has no need to debug or read the memory of its own processes.
// - name_to_handle_at: Docker allows it since 2023 (the handle is useless without
//   open_by_handle_at, which needs CAP_DAC_READ_SEARCH). Berth keeps it out: nothing
//   a task runs needs it, and it leaks file-system identifiers of the host.
//
// The exceptions, allowed only with arguments that make them harmless:
// - clone: only without a namespace flag (new namespaces are the way into most
//   kernel bugs reachable without privileges, user namespaces above all).
// - clone3: its flags sit in a struct that seccomp cannot read, so it cannot be
//   checked like clone: it returns ENOSYS, and glibc and musl fall back to clone.
// - personality: only the values Docker allows (query, Linux, Linux32, UNAME26).
// - socket: any family but AF_VSOCK (talks to the hypervisor, not namespaced).
//
// Syscalls the runtime's libseccomp does not know (newer than it) are skipped by the
// runtime; runc then answers ENOSYS for them, so programs fall back to older calls.
import type { OciSeccomp } from './oci-spec.ts';

type SyscallRule = NonNullable<OciSeccomp['syscalls']>[number];

/** CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET */
export const CLONE_NAMESPACE_FLAGS = 0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000;

const EPERM = 1;
const ENOSYS = 38;
const AF_VSOCK = 40;

/** personality(2) values allowed: PER_LINUX, PER_LINUX32, UNAME26, PER_LINUX32|UNAME26, and 0xffffffff (query). */
export const ALLOWED_PERSONALITIES = [0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

/** Allowed with any arguments, on every architecture (names a kernel lacks are skipped by the runtime). */
const ALLOWED: Record<string, string[]> = {
  files: [
    'access', 'faccessat', 'faccessat2', 'open', 'openat', 'openat2', 'creat', 'close', 'close_range',
    'read', 'readv', 'pread64', 'preadv', 'preadv2', 'write', 'writev', 'pwrite64', 'pwritev', 'pwritev2',
    'lseek', '_llseek', 'dup', 'dup2', 'dup3', 'fcntl', 'fcntl64', 'flock', 'ioctl',
    'stat', 'stat64', 'lstat', 'lstat64', 'fstat', 'fstat64', 'fstatat64', 'newfstatat', 'statx',
    'statfs', 'statfs64', 'fstatfs', 'fstatfs64', 'getdents', 'getdents64', 'getcwd', 'chdir', 'fchdir',
    'mkdir', 'mkdirat', 'mknod', 'mknodat', 'rmdir', 'unlink', 'unlinkat', 'rename', 'renameat', 'renameat2',
    'link', 'linkat', 'symlink', 'symlinkat', 'readlink', 'readlinkat', 'umask',
    'chmod', 'fchmod', 'fchmodat', 'fchmodat2', 'chown', 'chown32', 'fchown', 'fchown32', 'fchownat', 'lchown', 'lchown32',
    'truncate', 'truncate64', 'ftruncate', 'ftruncate64', 'fallocate', 'fadvise64', 'fadvise64_64', 'readahead',
    'fsync', 'fdatasync', 'sync', 'syncfs', 'sync_file_range', 'utime', 'utimes', 'utimensat', 'utimensat_time64', 'futimesat',
    'sendfile', 'sendfile64', 'splice', 'tee', 'vmsplice', 'copy_file_range', 'cachestat', 'pipe', 'pipe2',
    'getxattr', 'lgetxattr', 'fgetxattr', 'setxattr', 'lsetxattr', 'fsetxattr',
    'listxattr', 'llistxattr', 'flistxattr', 'removexattr', 'lremovexattr', 'fremovexattr',
    'io_setup', 'io_destroy', 'io_submit', 'io_cancel', 'io_getevents', 'io_pgetevents', 'io_pgetevents_time64',
    'ioprio_get', 'ioprio_set',
  ],
  events: [
    'select', '_newselect', 'pselect6', 'pselect6_time64', 'poll', 'ppoll', 'ppoll_time64',
    'epoll_create', 'epoll_create1', 'epoll_ctl', 'epoll_ctl_old', 'epoll_wait', 'epoll_wait_old', 'epoll_pwait', 'epoll_pwait2',
    'eventfd', 'eventfd2', 'signalfd', 'signalfd4',
    'timerfd_create', 'timerfd_gettime', 'timerfd_gettime64', 'timerfd_settime', 'timerfd_settime64',
    'inotify_init', 'inotify_init1', 'inotify_add_watch', 'inotify_rm_watch', 'fanotify_mark',
  ],
  memory: [
    'brk', 'mmap', 'mmap2', 'munmap', 'mremap', 'mprotect', 'madvise', 'mincore', 'msync', 'remap_file_pages',
    'mlock', 'mlock2', 'mlockall', 'munlock', 'munlockall', 'membarrier', 'memfd_create', 'memfd_secret',
    'pkey_alloc', 'pkey_free', 'pkey_mprotect', 'map_shadow_stack', 'process_mrelease',
  ],
  processes: [
    'execve', 'execveat', 'fork', 'vfork', 'exit', 'exit_group', 'wait4', 'waitid', 'waitpid',
    'getpid', 'getppid', 'gettid', 'getpgid', 'getpgrp', 'setpgid', 'getsid', 'setsid',
    'set_tid_address', 'set_robust_list', 'get_robust_list', 'set_thread_area', 'get_thread_area', 'rseq',
    'futex', 'futex_time64', 'futex_waitv', 'futex_wait', 'futex_wake', 'futex_requeue',
    'prctl', 'seccomp', 'capget', 'capset', 'landlock_create_ruleset', 'landlock_add_rule', 'landlock_restrict_self',
    'getpriority', 'setpriority', 'getcpu', 'sched_yield', 'sched_getaffinity', 'sched_setaffinity',
    'sched_getattr', 'sched_setattr', 'sched_getparam', 'sched_setparam', 'sched_getscheduler', 'sched_setscheduler',
    'sched_get_priority_max', 'sched_get_priority_min', 'sched_rr_get_interval', 'sched_rr_get_interval_time64',
    'getrlimit', 'ugetrlimit', 'setrlimit', 'prlimit64', 'getrusage', 'times', 'sysinfo', 'uname', 'getrandom',
    'pidfd_open', 'pidfd_send_signal', 'restart_syscall', 'chroot',
  ],
  credentials: [
    'getuid', 'getuid32', 'geteuid', 'geteuid32', 'getgid', 'getgid32', 'getegid', 'getegid32',
    'getresuid', 'getresuid32', 'getresgid', 'getresgid32', 'getgroups', 'getgroups32',
    'setuid', 'setuid32', 'setgid', 'setgid32', 'setreuid', 'setreuid32', 'setregid', 'setregid32',
    'setresuid', 'setresuid32', 'setresgid', 'setresgid32', 'setfsuid', 'setfsuid32', 'setfsgid', 'setfsgid32',
    'setgroups', 'setgroups32',
  ],
  signals: [
    'kill', 'tkill', 'tgkill', 'rt_sigaction', 'rt_sigprocmask', 'rt_sigreturn', 'rt_sigpending', 'rt_sigsuspend',
    'rt_sigtimedwait', 'rt_sigtimedwait_time64', 'rt_sigqueueinfo', 'rt_tgsigqueueinfo',
    'sigaltstack', 'sigprocmask', 'sigreturn', 'pause', 'alarm', 'getitimer', 'setitimer',
  ],
  // Reading clocks and sleeping; adjtimex and clock_adjtime can only read without
  // CAP_SYS_TIME (the kernel refuses a change with EPERM).
  time: [
    'time', 'gettimeofday', 'clock_gettime', 'clock_gettime64', 'clock_getres', 'clock_getres_time64',
    'nanosleep', 'clock_nanosleep', 'clock_nanosleep_time64', 'adjtimex', 'clock_adjtime', 'clock_adjtime64',
    'timer_create', 'timer_delete', 'timer_getoverrun', 'timer_gettime', 'timer_gettime64', 'timer_settime', 'timer_settime64',
  ],
  // `socket` itself is below: allowed for every family but AF_VSOCK.
  sockets: [
    'socketpair', 'socketcall', 'bind', 'listen', 'accept', 'accept4', 'connect', 'shutdown',
    'getsockname', 'getpeername', 'getsockopt', 'setsockopt',
    'send', 'sendto', 'sendmsg', 'sendmmsg', 'recv', 'recvfrom', 'recvmsg', 'recvmmsg', 'recvmmsg_time64',
  ],
  ipc: [
    'ipc', 'msgget', 'msgctl', 'msgsnd', 'msgrcv', 'semget', 'semctl', 'semop', 'semtimedop', 'semtimedop_time64',
    'shmget', 'shmctl', 'shmat', 'shmdt', 'mq_open', 'mq_unlink', 'mq_notify', 'mq_getsetattr',
    'mq_timedsend', 'mq_timedsend_time64', 'mq_timedreceive', 'mq_timedreceive_time64',
  ],
};

/** Per architecture: the seccomp architectures (native first) and the syscalls only it has. */
const ARCHES: Record<string, { architectures: string[]; syscalls: string[] }> = {
  x64: { architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'], syscalls: ['arch_prctl', 'modify_ldt'] },
  arm64: {
    architectures: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
    syscalls: ['arm_fadvise64_64', 'arm_sync_file_range', 'sync_file_range2', 'breakpoint', 'cacheflush', 'set_tls'],
  },
};

/**
 * Refused by the profile (it never allows them, whatever the arguments), with the
 * reason: the documentation of the allow list's gaps, and checked by the tests.
 */
export const DENIED: Record<string, string> = {
  mount: 'mounts (CAP_SYS_ADMIN)', umount: 'mounts', umount2: 'mounts', pivot_root: 'mounts',
  fsopen: 'new mount API', fsconfig: 'new mount API', fsmount: 'new mount API', fspick: 'new mount API',
  move_mount: 'new mount API', open_tree: 'new mount API', mount_setattr: 'new mount API',
  unshare: 'new namespaces (user namespaces open kernel attack surface)', setns: 'joining namespaces',
  keyctl: 'kernel keyring, not namespaced', add_key: 'kernel keyring', request_key: 'kernel keyring',
  ptrace: 'tracing (CAP_SYS_PTRACE; bypassed seccomp before 4.8)', process_vm_readv: 'another process\'s memory',
  process_vm_writev: 'another process\'s memory', kcmp: 'kernel pointer comparisons (CAP_SYS_PTRACE)',
  pidfd_getfd: 'another process\'s fds (CAP_SYS_PTRACE)', process_madvise: 'another process\'s memory (CAP_SYS_PTRACE)',
  bpf: 'eBPF programs (CAP_BPF / CAP_SYS_ADMIN)', perf_event_open: 'performance counters leak kernel state (CAP_PERFMON)',
  kexec_load: 'loads a new kernel (CAP_SYS_BOOT)', kexec_file_load: 'loads a new kernel', reboot: 'reboots the host (CAP_SYS_BOOT)',
  init_module: 'kernel modules (CAP_SYS_MODULE)', finit_module: 'kernel modules', delete_module: 'kernel modules',
  create_module: 'kernel modules (obsolete)', query_module: 'kernel modules (obsolete)', get_kernel_syms: 'kernel symbols (obsolete)',
  swapon: 'host swap (CAP_SYS_ADMIN)', swapoff: 'host swap',
  open_by_handle_at: 'opens host files by handle: the "shocker" escape (CAP_DAC_READ_SEARCH)',
  name_to_handle_at: 'the other half of open_by_handle_at (Docker allows it; Berth does not)',
  userfaultfd: 'stalls the kernel on a chosen page fault, a staple of kernel exploits',
  clock_settime: 'the host clock is not namespaced (CAP_SYS_TIME)', clock_settime64: 'the host clock',
  settimeofday: 'the host clock', stime: 'the host clock',
  acct: 'process accounting (CAP_SYS_PACCT)', lookup_dcookie: 'kernel profiling (CAP_SYS_ADMIN)',
  quotactl: 'disk quotas (CAP_SYS_ADMIN)', quotactl_fd: 'disk quotas',
  iopl: 'I/O port access (CAP_SYS_RAWIO)', ioperm: 'I/O port access (CAP_SYS_RAWIO)',
  syslog: 'the kernel log (CAP_SYSLOG)', vhangup: 'terminals (CAP_SYS_TTY_CONFIG)',
  sethostname: 'set by the runtime before the filter (CAP_SYS_ADMIN)', setdomainname: 'likewise',
  fanotify_init: 'file-system-wide notifications (CAP_SYS_ADMIN)',
  io_uring_setup: 'io_uring: its operations bypass seccomp, and a source of escapes (removed by Docker 25)',
  io_uring_enter: 'io_uring', io_uring_register: 'io_uring',
  mbind: 'NUMA placement of host memory (CAP_SYS_NICE)', set_mempolicy: 'NUMA (CAP_SYS_NICE)',
  get_mempolicy: 'NUMA (CAP_SYS_NICE)', move_pages: 'NUMA (CAP_SYS_NICE)', migrate_pages: 'NUMA (CAP_SYS_NICE)',
  set_mempolicy_home_node: 'NUMA (CAP_SYS_NICE)',
  nfsservctl: 'obsolete', uselib: 'obsolete', ustat: 'obsolete', sysfs: 'obsolete', _sysctl: 'obsolete',
  vm86: 'obsolete (x86 virtual 8086 mode)', vm86old: 'obsolete',
};

function allow(names: string[], args?: SyscallRule['args']): SyscallRule {
  return args ? { names, action: 'SCMP_ACT_ALLOW', args } : { names, action: 'SCMP_ACT_ALLOW' };
}

/**
 * The default profile for `arch` (Node's names: 'x64', 'arm64'). Other
 * architectures throw: run those tasks with `seccomp: 'unconfined'` or a profile.
 */
export function defaultSeccompProfile(arch: string = process.arch): OciSeccomp {
  const a = ARCHES[arch];
  if (!a) throw new Error(`no default seccomp profile for architecture ${arch}`);
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: EPERM,
    architectures: [...a.architectures],
    syscalls: [
      allow([...Object.values(ALLOWED).flat(), ...a.syscalls]),
      allow(['socket'], [{ index: 0, value: AF_VSOCK, op: 'SCMP_CMP_NE' }]),
      ...ALLOWED_PERSONALITIES.map((p) => allow(['personality'], [{ index: 0, value: p, op: 'SCMP_CMP_EQ' }])),
      // (flags & namespace flags) == 0: OCI's value is the mask, valueTwo the expected result.
      allow(['clone'], [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }]),
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
    ],
  };
}
