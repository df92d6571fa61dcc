// cgroups on the three kinds of host. This host is hybrid; v1-only and v2-only
// hosts are simulated in a private mount namespace (the unified mount removed, or
// a lone cgroup2 mount on /sys/fs/cgroup), which is all berth-runtime looks at.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { OciSpec } from '../../node-agent/src/bundle/oci-spec.ts';
import {
  BERTH_RUNTIME, berthRuntime, removeRoot, bundleFor, cgroupDir, cgroupMounts, cli, exec, freshRoot, keyValues, leftovers,
  state, type Runtime,
} from './fixture.ts';

let rt: Runtime;
const disposers: (() => Promise<void>)[] = [];
const hybrid = cgroupMounts().some((h) => h.v2) && cgroupMounts().some((h) => !h.v2);

beforeAll(async () => {
  rt = berthRuntime(await freshRoot('cgroup-modes'));
});

afterEach(async () => {
  for (const d of disposers.splice(0)) await d();
});

afterAll(async () => {
  await removeRoot(rt.root);
});

/** /dev/kmsg is made (linux.devices) but not in the allow list: it must not open. */
const withKmsg = (spec: OciSpec) => {
  (spec.linux as OciSpec['linux'] & { devices?: unknown[] }).devices = [{ path: '/dev/kmsg', type: 'c', major: 1, minor: 11, fileMode: 0o644 }];
};

const PROBE = String.raw`
echo "cgroup=$(cut -d: -f1,3 /proc/self/cgroup | sort | tr '\n' ';')"
echo "fs=$(grep ' /sys/fs/cgroup' /proc/self/mountinfo | sed 's/.* - \([a-z0-9]*\) .*/\1/' | sort -u | tr '\n' ',')"
echo "mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null)"
echo "pids=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null)"
echo "null=$( (echo x > /dev/null) 2>/dev/null && echo ok || echo denied)"
echo "kmsg=$( (head -c 0 /dev/kmsg) 2>/dev/null && echo ok || echo denied)"
echo "mknod=$( (mknod /tmp/mem c 1 1) 2>/dev/null && echo ok || echo denied)"
`;

/** Runs `berth-runtime run` inside a private mount namespace prepared by `setup`. */
function runIn(setup: string, bundle: string, id: string) {
  const script = `set -e; ${setup}; exec ${BERTH_RUNTIME} --root ${rt.root} run --bundle ${bundle} ${id}`;
  return exec('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script]);
}

describe.runIf(hybrid)('cgroup hosts', () => {
  it('hybrid (this host): v1 controllers plus membership of the unified hierarchy', async () => {
    const b = await bundleFor({ args: ['sleep', '30'], memoryBytes: 48 << 20, pidsLimit: 40 });
    disposers.push(() => b.dispose([rt]));
    expect((await cli(rt, ['create', '--bundle', b.bundle, b.id], { detached: true })).code).toBe(0);
    const { pid } = await state(rt, b.id);
    const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
    // every hierarchy, the unified one ("0::") included, puts it at cgroupsPath
    for (const line of lines) expect(line.split(':')[2], line).toBe(b.cgroupsPath);
    expect(lines.some((l) => l.startsWith('0::'))).toBe(true);
    expect(readFileSync(`${cgroupDir(b.cgroupsPath, 'memory')}/memory.limit_in_bytes`, 'utf8').trim()).toBe(String(48 << 20));
    expect(readFileSync(`${cgroupDir(b.cgroupsPath, 'unified')}/cgroup.procs`, 'utf8').trim()).toBe(String(pid));
    expect((await cli(rt, ['delete', '--force', b.id])).code).toBe(0);
    expect(leftovers(b, rt)).toEqual([]);
  });

  it('without cgroupsPath the container goes to /berth/<id> in every hierarchy, removed on delete', async () => {
    const b = await bundleFor({ args: ['sleep', '30'], pidsLimit: 40, transform: (spec) => delete spec.linux.cgroupsPath });
    disposers.push(() => b.dispose([rt]));
    expect((await cli(rt, ['create', '--bundle', b.bundle, b.id], { detached: true })).code).toBe(0);
    const { pid } = await state(rt, b.id);
    for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n')) {
      expect(line.split(':')[2], line).toBe(`/berth/${b.id}`);
    }
    expect(readFileSync(`${cgroupDir(`/berth/${b.id}`, 'pids')}/pids.max`, 'utf8').trim()).toBe('40');
    expect((await cli(rt, ['delete', '--force', b.id])).code).toBe(0);
    for (const h of cgroupMounts()) expect(existsSync(path.join(h.mountpoint, 'berth', b.id))).toBe(false);
  });

  it('v1 only: limits applied, no cgroup2 membership', async () => {
    const b = await bundleFor({ args: ['sh', '-c', PROBE], memoryBytes: 48 << 20, pidsLimit: 40, transform: withKmsg });
    disposers.push(() => b.dispose([rt]));
    const unified = cgroupMounts().find((h) => h.v2)!.mountpoint;
    const r = await runIn(`umount -l ${unified}`, b.bundle, b.id);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const f = keyValues(r.stdout);
    expect(f.mem).toBe(String(48 << 20));
    expect(f.pids).toBe('40');
    expect(f.fs).toBe('cgroup,tmpfs,');
    expect([f.null, f.kmsg, f.mknod]).toEqual(['ok', 'denied', 'denied']); // devices controller
    expect(existsSync(path.join(unified, b.cgroupsPath))).toBe(false);
    expect(leftovers(b, rt)).toEqual([]);
  });

  it('v2 only: cloned into its cgroup, a cgroup namespace and cgroup2 inside', async () => {
    const b = await bundleFor({ args: ['sh', '-c', PROBE], transform: withKmsg });
    disposers.push(() => b.dispose([rt]));
    // The v1 controllers stay bound to their hierarchies: no memory/CPU/pids limits
    // can be tested here; placement, the namespace, device rules and clean-up can.
    const r = await runIn('umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup', b.bundle, b.id);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const f = keyValues(r.stdout);
    expect(f.fs).toBe('cgroup2,');
    expect(f.cgroup).toContain('0:/;');
    expect([f.null, f.kmsg, f.mknod]).toEqual(['ok', 'denied', 'denied']); // the eBPF device filter
    expect(leftovers(b, rt)).toEqual([]);
  });
});
