// The known runtime escapes, one test each: every one would fail on a runtime
// that has the bug.
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BERTH_RUNTIME, cli, keyValues, leftovers, runBundle, state, berthRuntimeForFile,
} from './fixture.ts';

const runtime = berthRuntimeForFile('escapes');
const bundle = runtime.bundle;

/** One line on stderr, naming the problem; nothing left on the host. */
function expectRefused(r: { code: number; stderr: string }, message: RegExp): void {
  expect(r.code).not.toBe(0);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).toMatch(message);
}

describe('CVE-2019-19921 class: a rootfs whose /proc is a symlink', () => {
  it('is refused, and nothing is mounted through the symlink', async () => {
    const b = await bundle({ args: ['true'] });
    rmSync(path.join(b.rootfs, 'proc'), { recursive: true });
    mkdirSync(path.join(b.rootfs, 'host-dir'));
    symlinkSync('/host-dir', path.join(b.rootfs, 'proc'));
    const r = await runBundle(runtime.rt, b);
    expectRefused(r, /\/proc.* is a symlink .*refused/);
    expect(leftovers(b, runtime.rt)).toEqual([]);
  });
});

describe('CVE-2025-31133 class: /dev/null replaced by a symlink', () => {
  it('is refused before anything is masked with it', async () => {
    const b = await bundle({
      args: ['true'],
      // No tmpfs on /dev: the rootfs's own /dev is used, where the container put a symlink.
      transform: (s) => {
        s.mounts = s.mounts.filter((m) => !m.destination.startsWith('/dev'));
      },
    });
    writeFileSync(path.join(b.rootfs, 'etc/target'), 'untouched\n');
    symlinkSync('/etc/target', path.join(b.rootfs, 'dev/null'));
    const r = await runBundle(runtime.rt, b);
    expectRefused(r, /\/dev\/null.*symlink.*refused/);
    expect(readFileSync(path.join(b.rootfs, 'etc/target'), 'utf8')).toBe('untouched\n');
    expect(leftovers(b, runtime.rt)).toEqual([]);
  });
});

describe('CVE-2024-21626 class: leaked fds and a cwd through /proc/self/fd', () => {
  it('refuses cwd /proc/self/fd/7 while the caller leaks a host directory as fd 7', async () => {
    const b = await bundle({ args: ['true'], cwd: '/proc/self/fd/7' });
    const hostDir = openSync('/tmp', 'r');
    try {
      const r = await runBundle(runtime.rt, b, { extraFds: ['ignore', 'ignore', 'ignore', 'ignore', hostDir] });
      expectRefused(r, /process\.cwd .*\/proc\/self\/fd\/7.*refused/);
    } finally {
      closeSync(hostDir);
    }
    expect(leftovers(b, runtime.rt)).toEqual([]);
  });

  it('refuses a cwd that reaches /proc/self/fd/7 through a symlink in the rootfs', async () => {
    const b = await bundle({ args: ['true'], cwd: '/work' });
    symlinkSync('/proc/self/fd/7', path.join(b.rootfs, 'work'));
    const hostDir = openSync('/tmp', 'r');
    try {
      const r = await runBundle(runtime.rt, b, { extraFds: ['ignore', 'ignore', 'ignore', 'ignore', hostDir] });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/process\.cwd/);
    } finally {
      closeSync(hostDir);
    }
    expect(leftovers(b, runtime.rt)).toEqual([]);
  });

  it('closes every fd the caller leaked (not close-on-exec) before the process runs', async () => {
    const b = await bundle({ args: ['sh', '-c', 'echo "fds=$(ls /proc/self/fd | sort -n | tr "\\n" ,)"'] });
    const leaked = [openSync('/tmp', 'r'), openSync('/etc/hostname', 'r')];
    try {
      const r = await runBundle(runtime.rt, b, { extraFds: ['ignore', ...leaked, 'ignore', leaked[0]!] });
      expect(r.code).toBe(0);
      expect(keyValues(r.stdout).fds).toBe('0,1,2,3,'); // 3: ls reading the directory
    } finally {
      leaked.forEach((fd) => closeSync(fd));
    }
  });

  it('passes exactly the fds asked for with --preserve-fds', async () => {
    const b = await bundle({ args: ['sh', '-c', 'echo "fds=$(ls /proc/self/fd | sort -n | tr "\\n" ,)"'] });
    const passed = openSync('/etc/hostname', 'r');
    try {
      const r = await cli(runtime.rt, ['run', '--preserve-fds', '1', '--bundle', b.bundle, b.id], { extraFds: [passed, passed] });
      expect(r.code).toBe(0);
      expect(keyValues(r.stdout).fds).toBe('0,1,2,3,4,'); // 3 passed, 4 ls's directory
    } finally {
      closeSync(passed);
    }
  });
});

describe('CVE-2019-5736 class: the runtime binary reachable through /proc/PID/exe', () => {
  it('the container init is a sealed in-memory copy, not the binary on disk', async () => {
    const b = await bundle({ args: ['sleep', '30'] });
    const c = await cli(runtime.rt, ['create', '--bundle', b.bundle, b.id], { detached: true });
    expect(c.code).toBe(0);
    const { pid } = await state(runtime.rt, b.id);
    const exe = `/proc/${pid}/exe`;
    expect(readlinkSync(exe)).not.toBe(realpathSync(BERTH_RUNTIME));
    expect(readlinkSync(exe)).toMatch(/^\/memfd:/);
    const onDisk = statSync(BERTH_RUNTIME);
    const seen = statSync(exe);
    expect([seen.dev, seen.ino]).not.toEqual([onDisk.dev, onDisk.ino]);
    // Writing through it fails: the copy is sealed against writes.
    expect(() => closeSync(openSync(exe, 'r+'))).toThrow(/EPERM|ETXTBSY|EACCES/);
    expect((await cli(runtime.rt, ['start', b.id])).code).toBe(0);
    // After exec the init is the user's program.
    await new Promise((r) => setTimeout(r, 50));
    expect(readlinkSync(exe)).toMatch(/busybox$/);
  });

  it('an entrypoint whose interpreter is /proc/self/exe reaches only the sealed copy', async () => {
    const b = await bundle({ args: ['/evil'] });
    writeFileSync(path.join(b.rootfs, 'evil'), '#!/proc/self/exe\n', { mode: 0o755 });
    const before = readFileSync(BERTH_RUNTIME);
    const r = await runBundle(runtime.rt, b);
    // The kernel ran the runtime (the memfd copy) as the interpreter; it finds no verb and exits.
    expect(r.code).not.toBe(0);
    expect(readFileSync(BERTH_RUNTIME).equals(before)).toBe(true);
  });
});

describe('CVE-2022-27650: inheritable capabilities', () => {
  it('are empty whatever the config says (and ambient with them)', async () => {
    const b = await bundle({
      args: ['sh', '-c', 'grep -E "^Cap(Inh|Amb|Eff):" /proc/self/status | tr -d "\\t" | tr : ='],
      transform: (s) => {
        s.process.capabilities!.inheritable = ['CAP_CHOWN', 'CAP_NET_RAW', 'CAP_SETUID'];
        s.process.capabilities!.ambient = ['CAP_CHOWN'];
      },
    });
    const r = await runBundle(runtime.rt, b);
    expect(r.code).toBe(0);
    const f = keyValues(r.stdout);
    expect([f.CapInh, f.CapAmb]).toEqual(['0000000000000000', '0000000000000000']);
    expect(f.CapEff).toBe('00000000a80425fb');
  });
});

describe('CVE-2021-30465 class: mount destinations that are symlinks', () => {
  it('a symlink to /../../../tmp/x resolves inside the rootfs', async () => {
    const name = `x-${randomBytes(4).toString('hex')}`;
    const b = await bundle({
      args: ['sh', '-c', `grep ${name} /proc/self/mountinfo | cut -d' ' -f5; touch /mnt/escape/inside`],
      extraMounts: [{ destination: '/mnt/escape', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev'] }],
    });
    mkdirSync(path.join(b.rootfs, 'mnt'), { recursive: true });
    symlinkSync(`/../../../tmp/${name}`, path.join(b.rootfs, 'mnt/escape'));
    try {
      const r = await runBundle(runtime.rt, b);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe(`/tmp/${name}`);
      expect(existsSync(`/tmp/${name}`)).toBe(false);
      expect(existsSync(path.join(b.rootfs, 'tmp', name))).toBe(true);
    } finally {
      rmSync(`/tmp/${name}`, { recursive: true, force: true });
    }
  });

  it('a relative symlink climbing out of a bind mount target stays inside too', async () => {
    const name = `y-${randomBytes(4).toString('hex')}`;
    const b = await bundle({
      args: ['sh', '-c', `cat /data/marker`],
      extraMounts: [{ destination: '/data', type: 'bind', source: '/dev/null', options: ['rbind', 'ro'] }],
    });
    const src = path.join(b.scratch, 'src');
    mkdirSync(src);
    writeFileSync(path.join(src, 'marker'), 'from-bind\n');
    b.spec.mounts.find((m) => m.destination === '/data')!.source = src;
    await b.writeSpec();
    symlinkSync(`../../../../../../../tmp/${name}`, path.join(b.rootfs, 'data'));
    try {
      const r = await runBundle(runtime.rt, b);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe('from-bind\n');
      expect(existsSync(`/tmp/${name}`)).toBe(false);
    } finally {
      rmSync(`/tmp/${name}`, { recursive: true, force: true });
    }
  });
});

describe('writes meant for procfs', () => {
  it('are refused when the target is not on procfs (sysctl into a fake /proc/sys)', async () => {
    const b = await bundle({
      args: ['true'],
      transform: (s) => {
        s.mounts = s.mounts.filter((m) => m.destination !== '/proc');
        s.linux.maskedPaths = [];
        s.linux.readonlyPaths = [];
        s.linux.sysctl = { 'net.ipv4.ip_forward': '1' };
      },
    });
    const fake = path.join(b.rootfs, 'proc/sys/net/ipv4');
    mkdirSync(fake, { recursive: true });
    writeFileSync(path.join(fake, 'ip_forward'), '0\n');
    const r = await runBundle(runtime.rt, b);
    expectRefused(r, /sysctl .*not on procfs: refused/);
    expect(readFileSync(path.join(fake, 'ip_forward'), 'utf8')).toBe('0\n');
    expect(leftovers(b, runtime.rt)).toEqual([]);
  });
});

describe('state directories', () => {
  it('are 0700', async () => {
    const b = await bundle({ args: ['sleep', '30'] });
    expect((await cli(runtime.rt, ['create', '--bundle', b.bundle, b.id], { detached: true })).code).toBe(0);
    expect(statSync(runtime.rt.root).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(runtime.rt.root, b.id)).mode & 0o777).toBe(0o700);
  });
});
