import { readFileSync } from 'node:fs';
// Builds config.json for a container with Docker's defaults (or stricter):
// 14 capabilities, an empty inheritable set, masked and read-only /proc and /sys
// paths, a device allow list, noNewPrivileges, the default seccomp profile, and
// the limits of the task.
import type { OciMount, OciNamespace, OciSpec, OciSeccomp } from './oci-spec.ts';
import { defaultSeccompProfile } from './seccomp.ts';

export const DEFAULT_CAPABILITIES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

export const MASKED_PATHS = [
  '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats',
  '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi',
  '/sys/firmware', '/sys/devices/virtual/powercap',
];

export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** The default CFS period; quota is a share of it. */
export const CPU_PERIOD_US = 100_000;

export type NetworkNamespace = { kind: 'new' } | { kind: 'join'; path: string } | { kind: 'host' };

export interface ContainerSpecOptions {
  args: string[];
  env?: string[];
  cwd?: string;
  user?: { uid: number; gid: number; additionalGids?: number[] };
  hostname?: string;
  /** Relative to the bundle, or absolute. */
  rootPath?: string;
  readonlyRootfs?: boolean;
  cgroupsPath: string;
  /** Hard memory limit; swap is set equal so nothing swaps beyond it. */
  memoryBytes?: number;
  /** ECS CPU units, 1024 = one vCPU: becomes shares and a CFS quota. */
  cpuUnits?: number;
  pidsLimit?: number;
  network?: NetworkNamespace;
  rlimits?: { type: string; hard: number; soft: number }[];
  extraMounts?: OciMount[];
  /** Berth's default profile (seccomp.ts) when unset; 'unconfined' for none. */
  seccomp?: OciSeccomp | 'unconfined';
  annotations?: Record<string, string>;
}

/**
 * Lambda's 1,024 open files soft, and up to 65,536 hard where the agent itself
 * may go that high: raising a hard limit needs CAP_SYS_RESOURCE, which the
 * agent may lack.
 */
function defaultNofile(): { type: string; hard: number; soft: number } {
  let hostHard = 65_536;
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const hard = line?.trim().split(/\s+/)[4];
    if (hard && hard !== 'unlimited') hostHard = Number(hard);
  } catch {
    // Not Linux procfs: keep the default.
  }
  const hard = Math.min(65_536, hostHard);
  return { type: 'RLIMIT_NOFILE', hard, soft: Math.min(1024, hard) };
}

export function cpuUnitsToShares(units: number): number {
  return Math.max(2, Math.round(units));
}

export function cpuUnitsToQuota(units: number): number {
  return Math.max(1000, Math.round((units / 1024) * CPU_PERIOD_US));
}

export function buildSpec(o: ContainerSpecOptions): OciSpec {
  const network = o.network ?? { kind: 'new' };
  const namespaces: OciNamespace[] = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'cgroup' }];
  if (network.kind === 'new') namespaces.push({ type: 'network' });
  if (network.kind === 'join') namespaces.push({ type: 'network', path: network.path });

  const caps = [...DEFAULT_CAPABILITIES];
  const spec: OciSpec = {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: o.user ?? { uid: 0, gid: 0 },
      args: o.args,
      env: o.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      cwd: o.cwd ?? '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
      rlimits: o.rlimits ?? [defaultNofile()],
      noNewPrivileges: true,
      oomScoreAdj: 0,
    },
    root: { path: o.rootPath ?? 'rootfs', readonly: o.readonlyRootfs ?? false },
    hostname: network.kind === 'host' ? undefined : (o.hostname ?? 'berth'),
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
      ...(o.extraMounts ?? []),
    ],
    linux: {
      namespaces,
      cgroupsPath: o.cgroupsPath,
      resources: {
        devices: [
          { allow: false, access: 'rwm' },
          { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }, // null
          { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' }, // zero
          { allow: true, type: 'c', major: 1, minor: 7, access: 'rwm' }, // full
          { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' }, // random
          { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' }, // urandom
          { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' }, // tty
          { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' }, // ptmx
          { allow: true, type: 'c', major: 136, access: 'rwm' }, // pts
          { allow: false, type: 'c', major: 10, minor: 229, access: 'rwm' }, // fuse
        ],
      },
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
    },
  };
  const resources = spec.linux.resources!;
  if (o.memoryBytes !== undefined) resources.memory = { limit: o.memoryBytes, swap: o.memoryBytes };
  if (o.cpuUnits !== undefined) {
    resources.cpu = { shares: cpuUnitsToShares(o.cpuUnits), quota: cpuUnitsToQuota(o.cpuUnits), period: CPU_PERIOD_US };
  }
  if (o.pidsLimit !== undefined) resources.pids = { limit: o.pidsLimit };
  if (o.seccomp !== 'unconfined') spec.linux.seccomp = o.seccomp ?? defaultSeccompProfile();
  if (o.annotations) spec.annotations = o.annotations;
  return spec;
}
