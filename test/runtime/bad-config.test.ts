// A bad config.json fails with one clear line on stderr (and as a JSON line in
// --log), and leaves nothing behind: no cgroup, no mount, no process, no state.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { OciSpec } from '../../node-agent/src/bundle/oci-spec.ts';
import { berthRuntime, removeRoot, bundleFor, cli, freshRoot, hostIsCgroupV1, leftovers, type Runtime } from './fixture.ts';

let rt: Runtime;
const disposers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  rt = berthRuntime(await freshRoot('bad-config'));
});

afterEach(async () => {
  for (const d of disposers.splice(0)) await d();
});

afterAll(async () => {
  await removeRoot(rt.root);
});

interface Case {
  name: string;
  transform?: (s: OciSpec) => void;
  /** Edits the bundle on disk after the spec is written. */
  edit?: (bundle: string, rootfs: string) => void;
  message: RegExp;
}

const cases: Case[] = [
  {
    name: 'unknown namespace',
    transform: (s) => s.linux.namespaces.push({ type: 'time' as never }),
    message: /linux\.namespaces: unknown namespace type `time`/,
  },
  {
    name: 'relative mount destination',
    transform: (s) => s.mounts.push({ destination: 'data', type: 'tmpfs', source: 'tmpfs' }),
    message: /mount destination `data` must be an absolute path/,
  },
  {
    name: 'bad namespace path',
    transform: (s) => s.linux.namespaces.push({ type: 'user', path: '/proc/424242/ns/user' }),
    message: /user namespace path `\/proc\/424242\/ns\/user`: No such file or directory/,
  },
  {
    name: 'missing rootfs',
    transform: (s) => {
      s.root.path = 'no-such-rootfs';
    },
    message: /rootfs `.*\/no-such-rootfs`: No such file or directory/,
  },
  {
    name: 'memory limit below what the kernel accepts',
    transform: (s) => {
      s.linux.resources!.memory = { limit: 4096, swap: 4096 };
    },
    message: /memory limit 4096 bytes is below what it needs/,
  },
  {
    name: 'cpuset cpu the host does not have',
    transform: (s) => {
      s.linux.resources!.cpu = { cpus: '63' };
    },
    message: /cpuset cpus `63` \(the host has cpus [0-9,-]+\)/,
  },
  {
    name: 'unknown capability',
    transform: (s) => s.process.capabilities!.bounding.push('CAP_TELEPORT'),
    message: /unknown capability `CAP_TELEPORT`/,
  },
  {
    name: 'executable not found',
    transform: (s) => {
      s.process.args = ['no-such-program'];
    },
    message: /exec `no-such-program`: executable file not found in \$PATH/,
  },
  {
    name: 'sysctl that is not namespaced',
    transform: (s) => {
      s.linux.sysctl = { 'kernel.panic': '1' };
    },
    message: /sysctl `kernel\.panic` is not namespaced: refused/,
  },
  ...(!hostIsCgroupV1() ? [] : [<Case>{
    name: 'cgroup v2 files (linux.resources.unified) on a v1 or hybrid host',
    transform: (s: OciSpec) => {
      (s.linux.resources as Record<string, unknown>).unified = { 'memory.high': '50000000' };
    },
    message: /linux\.resources\.unified needs a cgroup v2 host \(this one is (v1|hybrid)\)/,
  }]),
  {
    name: 'overlay rootfs annotation without its base',
    transform: (s) => {
      s.annotations = { 'berth.rootfs.overlay': 'lowerdir=a,upperdir=b,workdir=c' };
    },
    message: /annotations: berth\.rootfs\.overlay needs berth\.rootfs\.overlay-base, an absolute path/,
  },
  {
    name: 'overlay rootfs annotation with an option other than the three dirs',
    transform: (s) => {
      s.annotations = { 'berth.rootfs.overlay': 'lowerdir=a,upperdir=b,workdir=c,index=on', 'berth.rootfs.overlay-base': '/' };
    },
    message: /berth\.rootfs\.overlay: `index=on` is not lowerdir=, upperdir= or workdir=/,
  },
  {
    name: 'overlay rootfs whose layer does not exist',
    transform: (s) => {
      s.annotations = { 'berth.rootfs.overlay': 'lowerdir=no/such/layer,upperdir=no/upper,workdir=no/work', 'berth.rootfs.overlay-base': '/' };
    },
    message: /mount the overlay rootfs on `.*`: No such file or directory/,
  },
  {
    name: 'malformed JSON',
    edit: (bundle) => writeFileSync(path.join(bundle, 'config.json'), '{"ociVersion": "1.0.2",'),
    message: /config\.json: invalid JSON at offset \d+/,
  },
];

describe('bad config.json', () => {
  it.each(cases)('$name', async ({ transform, edit, message }) => {
    const b = await bundleFor({ args: ['true'], memoryBytes: 64 << 20, pidsLimit: 32, cpuUnits: 256, transform });
    disposers.push(() => b.dispose([rt]));
    edit?.(b.bundle, b.rootfs);
    const log = path.join(b.scratch, 'log.json');
    const r = await cli(rt, ['--log', log, '--log-format', 'json', 'create', '--bundle', b.bundle, b.id], { detached: true });
    expect(r.code).not.toBe(0);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^berth-runtime: create `berth-test-[0-9a-f]+`: /);
    expect(lines[0]).toMatch(message);
    const logged = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
    expect(logged.at(-1)).toMatchObject({ level: 'error', msg: lines[0]!.replace(/^berth-runtime: /, '') });
    expect(Date.parse(logged.at(-1)!.time!)).not.toBeNaN();
    expect(leftovers(b, rt)).toEqual([]);
  });

  it('a container id already in use fails and leaves the first container alone', async () => {
    const b = await bundleFor({ args: ['sleep', '30'] });
    disposers.push(() => b.dispose([rt]));
    expect((await cli(rt, ['create', '--bundle', b.bundle, b.id], { detached: true })).code).toBe(0);
    const again = await cli(rt, ['create', '--bundle', b.bundle, b.id], { detached: true });
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/container `berth-test-[0-9a-f]+` already exists/);
    const st = await cli(rt, ['state', b.id]);
    expect(JSON.parse(st.stdout)).toMatchObject({ status: 'created' });
  });

  it('a cgroupsPath in use by another container is refused, and that container is left alone', async () => {
    const first = await bundleFor({ args: ['sleep', '30'] });
    disposers.push(() => first.dispose([rt]));
    const second = await bundleFor({ args: ['true'], cgroupsPath: first.cgroupsPath });
    disposers.push(() => second.remove());
    expect((await cli(rt, ['run', '--detach', '--bundle', first.bundle, first.id], { detached: true })).code).toBe(0);
    const r = await cli(rt, ['create', '--bundle', second.bundle, second.id], { detached: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/cgroup `.*` is in use by other processes/);
    expect(JSON.parse((await cli(rt, ['state', first.id])).stdout)).toMatchObject({ status: 'running' });
    expect(existsSync(path.join(rt.root, second.id))).toBe(false);
  });

  it('verbs on a container that does not exist say so', async () => {
    for (const verb of [['start'], ['state'], ['kill'], ['delete']]) {
      const r = await cli(rt, [...verb, 'no-such-container']);
      expect(r.code).not.toBe(0);
      expect(r.stderr.trim()).toBe('berth-runtime: container `no-such-container` does not exist');
    }
  });

  it('kill refuses an unknown signal name', async () => {
    const r = await cli(rt, ['kill', 'whatever', 'SIGNOPE']);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim()).toBe('berth-runtime: kill: unknown signal `SIGNOPE`');
  });
});
