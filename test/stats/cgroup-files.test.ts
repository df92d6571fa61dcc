// The readers on files laid out as each cgroup version lays them out, so v2 is
// covered on this hybrid host too; and the parsers on real kernel text.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CgroupReader, detectCgroups, parseMountinfo } from '../../node-agent/src/stats/cgroup.ts';
import { parseNetDev } from '../../node-agent/src/stats/netdev.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tree(files: Record<string, string>): Promise<string> {
  const top = await mkdtemp(path.join(os.tmpdir(), 'berth-cg-'));
  dirs.push(top);
  for (const [rel, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(top, rel)), { recursive: true });
    await writeFile(path.join(top, rel), text);
  }
  return top;
}

describe('mountinfo', () => {
  it('finds v1 controllers, co-mounted ones and the cgroup2 mount (hybrid)', () => {
    const text = [
      '25 30 0:22 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755',
      '26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw',
      '27 25 0:24 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct',
      '28 25 0:25 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory',
      '29 25 0:26 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids',
      '30 25 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd',
    ].join('\n');
    const layout = parseMountinfo(text);
    expect(layout.version).toBe('hybrid');
    expect(layout.v2).toBe('/sys/fs/cgroup/unified');
    expect(Object.fromEntries(layout.v1)).toEqual({
      cpu: '/sys/fs/cgroup/cpu,cpuacct', cpuacct: '/sys/fs/cgroup/cpu,cpuacct', memory: '/sys/fs/cgroup/memory', pids: '/sys/fs/cgroup/pids',
    });
  });

  it('sees a pure cgroup2 host as v2', () => {
    expect(parseMountinfo('26 25 0:23 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate').version).toBe('v2');
  });

  it('detects this host', () => {
    const layout = detectCgroups();
    expect(['v1', 'v2', 'hybrid']).toContain(layout.version);
  });
});

describe('reading counters', () => {
  it('cgroup v2: cpu.stat, memory.current/peak/max/events/stat, pids.current', async () => {
    const top = await tree({
      'cgroup.controllers': 'cpuset cpu io memory pids\n',
      'berth/t1/cpu.stat': 'usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 40\nnr_throttled 7\nthrottled_usec 1000\n',
      'berth/t1/memory.current': '50331648\n',
      'berth/t1/memory.peak': '60000000\n',
      'berth/t1/memory.max': '67108864\n',
      'berth/t1/memory.events': 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n',
      'berth/t1/memory.stat': 'anon 40000000\nfile 10000000\ninactive_file 1048576\nactive_file 0\n',
      'berth/t1/pids.current': '3\n',
      'berth/t1/cgroup.procs': '4242\n4243\n',
      'berth/t2/memory.current': '1000\n',
      'berth/t2/memory.max': 'max\n',
      'berth/t2/cpu.stat': 'usage_usec 1\n',
    });
    const reader = new CgroupReader({ version: 'v2', v1: new Map(), v2: top, v2Controllers: new Set(['cpu', 'memory', 'pids']) });
    expect(await reader.read('/berth/t1')).toEqual({
      cpuUsageNs: 2_500_000_000, cpuReadAt: expect.any(BigInt), throttledPeriods: 7, memoryBytes: 50331648 - 1048576, memoryPeakBytes: 60000000,
      memoryLimitBytes: 67108864, oomKills: 1, pids: 3,
    });
    expect(await reader.firstPid('/berth/t1')).toBe(4242);
    // No limit, no peak file (kernels before 5.19), no pids file.
    expect(await reader.read('/berth/t2')).toMatchObject({ memoryBytes: 1000, memoryPeakBytes: 0, memoryLimitBytes: undefined, pids: 0 });
    // A cgroup that is gone: the task ended.
    expect(await reader.read('/berth/t3')).toBeUndefined();
  });

  it('cgroup v1: cpuacct.usage, cpu.stat, memory.*, pids.current', async () => {
    const top = await tree({
      'cpu/berth/t1/cpu.stat': 'nr_periods 10\nnr_throttled 4\nthrottled_time 123\n',
      'cpuacct/berth/t1/cpuacct.usage': '987654321\n',
      'memory/berth/t1/memory.usage_in_bytes': '33554432\n',
      'memory/berth/t1/memory.max_usage_in_bytes': '40000000\n',
      'memory/berth/t1/memory.limit_in_bytes': '67108864\n',
      'memory/berth/t1/memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n',
      'memory/berth/t1/memory.stat': 'cache 1000\nrss 2000\ntotal_inactive_file 4096\n',
      'pids/berth/t1/pids.current': '5\n',
      'memory/berth/t2/memory.usage_in_bytes': '100\n',
      'memory/berth/t2/memory.limit_in_bytes': '9223372036854771712\n',
    });
    const reader = new CgroupReader({
      version: 'v1', v2Controllers: new Set(),
      v1: new Map([['cpu', path.join(top, 'cpu')], ['cpuacct', path.join(top, 'cpuacct')], ['memory', path.join(top, 'memory')], ['pids', path.join(top, 'pids')]]),
    });
    expect(await reader.read('/berth/t1')).toEqual({
      cpuUsageNs: 987654321, cpuReadAt: expect.any(BigInt), throttledPeriods: 4, memoryBytes: 33554432 - 4096, memoryPeakBytes: 40000000,
      memoryLimitBytes: 67108864, oomKills: 2, pids: 5,
    });
    expect((await reader.read('/berth/t2'))?.memoryLimitBytes).toBeUndefined();
    expect(await reader.read('/berth/gone')).toBeUndefined();
  });
});

describe('/proc/<pid>/net/dev', () => {
  it('sums every interface but lo', () => {
    const text = [
      'Inter-|   Receive                                                |  Transmit',
      ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed',
      '    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0',
      '  eth0: 5000000    4000    0    0    0     0          0         0   250000    3000    0    0    0     0       0          0',
      '  eth1:     100       1    0    0    0     0          0         0       50       1    0    0    0     0       0          0',
    ].join('\n');
    expect(parseNetDev(text)).toEqual({ rxBytes: 5000100, txBytes: 250050 });
  });
});
