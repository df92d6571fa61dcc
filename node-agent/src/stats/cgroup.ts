// Reads a task's counters from its cgroup, on cgroup v1, v2 and hybrid hosts.
// Each controller Berth reads (cpu, cpuacct, memory, pids) is looked up in
// /proc/self/mountinfo: a v1 hierarchy that carries it wins, else the cgroup2
// mount when its root lists the controller (plain cgroup2 files such as
// cpu.stat exist there without any controller enabled).
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

export type CgroupVersion = 'v1' | 'v2' | 'hybrid';

export interface CgroupLayout {
  version: CgroupVersion;
  /** v1 mount point per controller. */
  v1: Map<string, string>;
  /** cgroup2 mount point, when there is one. */
  v2?: string;
  /** Controllers the cgroup2 root offers. */
  v2Controllers: Set<string>;
}

/** Raw counters, before any rate is computed. */
export interface CgroupCounters {
  cpuUsageNs: number;
  /** process.hrtime when cpuUsageNs was read, for rates. */
  cpuReadAt: bigint;
  throttledPeriods: number;
  /** Usage without inactive file cache, as `docker stats` shows it. */
  memoryBytes: number;
  memoryPeakBytes: number;
  /** undefined when the cgroup has no limit. */
  memoryLimitBytes?: number;
  oomKills: number;
  pids: number;
}

export function parseMountinfo(text: string): CgroupLayout {
  const v1 = new Map<string, string>();
  let v2: string | undefined;
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const [fstype, , superOptions = ''] = line.slice(sep + 3).split(' ');
    const mountPoint = unescapeMount(left[4] ?? '');
    if (fstype === 'cgroup2') v2 ??= mountPoint;
    if (fstype === 'cgroup') {
      for (const opt of superOptions.split(',')) {
        if (['cpu', 'cpuacct', 'memory', 'pids'].includes(opt) && !v1.has(opt)) v1.set(opt, mountPoint);
      }
    }
  }
  let v2Controllers = new Set<string>();
  if (v2) {
    try {
      v2Controllers = new Set(readFileSync(path.join(v2, 'cgroup.controllers'), 'utf8').trim().split(/\s+/).filter(Boolean));
    } catch {
      // no controllers file: nothing offered
    }
  }
  const version: CgroupVersion = v1.size === 0 ? 'v2' : v2 ? 'hybrid' : 'v1';
  return { version, v1, v2, v2Controllers };
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function detectCgroups(): CgroupLayout {
  return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
}

/** Limits at or above this are "no limit" (v1 writes 2^63 rounded down to a page). */
const UNLIMITED = 2 ** 60;

function keyed(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined) out.set(k, Number(v));
  }
  return out;
}

function isGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENODEV' || code === 'ESRCH' || code === 'EINVAL';
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if (isGone(err)) return undefined;
    throw err;
  }
}

/** A CPU counter and the moment it was read. Synchronous (a few microseconds on a
 *  cgroup file) so that no wait on the thread pool or event loop comes between them. */
function readCpuCounter(file: string): { text?: string; at: bigint } {
  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (!isGone(err)) throw err;
  }
  return { text, at: process.hrtime.bigint() };
}

function num(text: string | undefined): number {
  if (text === undefined) return 0;
  const n = Number(text.trim());
  return Number.isFinite(n) ? n : 0;
}

export class CgroupReader {
  constructor(readonly layout: CgroupLayout = detectCgroups()) {}

  /** The directory of `cgroupsPath` for a controller, or undefined when the host lacks it. */
  dir(controller: 'cpu' | 'cpuacct' | 'memory' | 'pids', cgroupsPath: string): { dir: string; v2: boolean } | undefined {
    const rel = cgroupsPath.startsWith('/') ? cgroupsPath : `/${cgroupsPath}`;
    const v1 = this.layout.v1.get(controller);
    if (v1) return { dir: path.join(v1, rel), v2: false };
    if (this.layout.v2 && (controller === 'cpu' || controller === 'cpuacct' || this.layout.v2Controllers.has(controller))) {
      return { dir: path.join(this.layout.v2, rel), v2: true };
    }
    return undefined;
  }

  /** The counters of one cgroup, or undefined when it is gone (the task ended). */
  async read(cgroupsPath: string): Promise<CgroupCounters | undefined> {
    const mem = this.dir('memory', cgroupsPath);
    const cpu = this.dir('cpu', cgroupsPath);
    const acct = this.dir('cpuacct', cgroupsPath);
    const pids = this.dir('pids', cgroupsPath);
    const c: CgroupCounters = { cpuUsageNs: 0, cpuReadAt: process.hrtime.bigint(), throttledPeriods: 0, memoryBytes: 0, memoryPeakBytes: 0, oomKills: 0, pids: 0 };

    if (acct && !acct.v2) {
      const usage = readCpuCounter(path.join(acct.dir, 'cpuacct.usage'));
      if (usage.text === undefined && !mem) return undefined;
      c.cpuUsageNs = num(usage.text);
      c.cpuReadAt = usage.at;
    }
    if (cpu) {
      const stat = readCpuCounter(path.join(cpu.dir, 'cpu.stat'));
      if (stat.text === undefined && !mem && !acct) return undefined;
      const s = keyed(stat.text ?? '');
      c.throttledPeriods = s.get('nr_throttled') ?? 0;
      if (cpu.v2) {
        c.cpuUsageNs = (s.get('usage_usec') ?? 0) * 1000;
        c.cpuReadAt = stat.at;
      }
    }

    if (mem && !mem.v2) {
      const [usage, max, limit, oom, stat] = await Promise.all(
        ['memory.usage_in_bytes', 'memory.max_usage_in_bytes', 'memory.limit_in_bytes', 'memory.oom_control', 'memory.stat'].map((f) => readOptional(path.join(mem.dir, f))),
      );
      if (usage === undefined) return undefined;
      const inactiveFile = stat ? (keyed(stat).get('total_inactive_file') ?? 0) : 0;
      c.memoryBytes = Math.max(0, num(usage) - inactiveFile);
      c.memoryPeakBytes = num(max);
      const l = num(limit);
      c.memoryLimitBytes = l > 0 && l < UNLIMITED ? l : undefined;
      c.oomKills = oom ? (keyed(oom).get('oom_kill') ?? 0) : 0;
    } else if (mem) {
      const [current, peak, max, events, stat] = await Promise.all(
        ['memory.current', 'memory.peak', 'memory.max', 'memory.events', 'memory.stat'].map((f) => readOptional(path.join(mem.dir, f))),
      );
      if (current === undefined) return undefined;
      const inactiveFile = stat ? (keyed(stat).get('inactive_file') ?? 0) : 0;
      c.memoryBytes = Math.max(0, num(current) - inactiveFile);
      c.memoryPeakBytes = peak === undefined ? 0 : num(peak);
      c.memoryLimitBytes = max === undefined || max.trim() === 'max' ? undefined : num(max) || undefined;
      c.oomKills = events ? (keyed(events).get('oom_kill') ?? 0) : 0;
    }

    if (pids) c.pids = num(await readOptional(path.join(pids.dir, 'pids.current')));
    return c;
  }

  /** One process in the cgroup (the first listed), for /proc/<pid>/net/dev. */
  async firstPid(cgroupsPath: string): Promise<number | undefined> {
    const where = this.dir('memory', cgroupsPath) ?? this.dir('pids', cgroupsPath) ?? this.dir('cpu', cgroupsPath);
    if (!where) return undefined;
    const procs = await readOptional(path.join(where.dir, 'cgroup.procs'));
    const first = procs?.split('\n').find(Boolean);
    return first ? Number(first) : undefined;
  }
}
