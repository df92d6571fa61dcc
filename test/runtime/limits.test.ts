// Limits enforced, measured: memory (OOM kill at the limit), pids (a fork bomb
// stops at pids.max, the host stays responsive), CPU (a busy loop under a
// half-vCPU quota uses about half a CPU).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  cgroupDir, cli, exec, hostIsCgroupV1, leftovers, runBundle, waitForStatus, berthRuntimeForFile,
} from './fixture.ts';

const runtime = berthRuntimeForFile('limits');
const bundle = runtime.bundle;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.runIf(hostIsCgroupV1())('limits (cgroup v1 / hybrid host)', () => {
  it('a memory hog is OOM-killed at the limit: exit 137', async () => {
    const limit = 32 * 1024 * 1024;
    // dd as pid 1 allocates a 64 MiB buffer and fills it: twice the limit.
    const b = await bundle({ args: ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1'], memoryBytes: limit });
    const r = await runBundle(runtime.rt, b);
    expect(r.code).toBe(137);
    expect(leftovers(b, runtime.rt)).toEqual([]);
  });

  it('a process under the memory limit is not touched', async () => {
    const b = await bundle({ args: ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=8M', 'count=4'], memoryBytes: 32 * 1024 * 1024 });
    expect((await runBundle(runtime.rt, b)).code).toBe(0);
  });

  it('a fork bomb stops at pids.max and the host stays responsive', async () => {
    const limit = 24;
    const b = await bundle({
      args: ['sh', '-c', 'bomb() { bomb | bomb & }; bomb; sleep 30'],
      pidsLimit: limit,
    });
    expect((await cli(runtime.rt, ['run', '--detach', '--bundle', b.bundle, b.id], { detached: true })).code).toBe(0);
    const dir = cgroupDir(b.cgroupsPath, 'pids');
    let peak = 0;
    let slowest = 0;
    const end = Date.now() + 2000;
    while (Date.now() < end) {
      peak = Math.max(peak, Number(readFileSync(`${dir}/pids.current`, 'utf8')));
      const t0 = Date.now();
      expect((await exec('/bin/true', [])).code).toBe(0);
      slowest = Math.max(slowest, Date.now() - t0);
      await sleep(100);
    }
    const events = readFileSync(`${dir}/pids.events`, 'utf8');
    expect(peak).toBeLessThanOrEqual(limit);
    expect(peak).toBeGreaterThan(limit / 2);
    expect(Number(/max (\d+)/.exec(events)?.[1])).toBeGreaterThan(0); // forks were refused
    expect(slowest).toBeLessThan(1000);
    expect((await cli(runtime.rt, ['delete', '--force', b.id])).code).toBe(0);
    expect(leftovers(b, runtime.rt)).toEqual([]);
  });

  it('a busy loop under a 0.5 vCPU quota uses at most ~0.55 of a CPU', async () => {
    const b = await bundle({ args: ['sh', '-c', 'while :; do :; done'], cpuUnits: 512 });
    expect((await cli(runtime.rt, ['run', '--detach', '--bundle', b.bundle, b.id], { detached: true })).code).toBe(0);
    await waitForStatus(runtime.rt, b.id, 'running');
    const usage = () => Number(readFileSync(`${cgroupDir(b.cgroupsPath, 'cpuacct')}/cpuacct.usage`, 'utf8'));
    await sleep(300);
    const u0 = usage();
    const t0 = process.hrtime.bigint();
    await sleep(3000);
    const used = usage() - u0;
    const wall = Number(process.hrtime.bigint() - t0);
    const share = used / wall;
    const throttled = /nr_throttled (\d+)/.exec(readFileSync(`${cgroupDir(b.cgroupsPath, 'cpu')}/cpu.stat`, 'utf8'))?.[1];
    expect(share).toBeLessThanOrEqual(0.55);
    expect(used).toBeGreaterThan(0); // it did run
    // On a busy host the loop may never reach its quota; when it does, the kernel throttled it.
    if (share >= 0.45) expect(Number(throttled)).toBeGreaterThan(0);
    expect((await cli(runtime.rt, ['delete', '--force', b.id])).code).toBe(0);
  });
});
