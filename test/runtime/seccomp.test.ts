// Berth's default seccomp profile (node-agent/src/bundle/seccomp.ts): the profile
// itself, then what a container sees under it, run under berth-runtime and runc
// alike. Syscalls are probed directly by a small static C program
// (seccomp-probe.c, built here with gcc -static) that prints one errno per call.
import { execFileSync } from 'node:child_process';
import { constants } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sharedLibraries } from '../../images/index.ts';
import { CLONE_NAMESPACE_FLAGS, DENIED, defaultSeccompProfile } from '../../node-agent/src/bundle/seccomp.ts';
import { buildSpec } from '../../node-agent/src/bundle/spec.ts';
import type { BundleOptions } from '../harness/bundle.ts';
import { makeBusyboxRootfs } from '../harness/bundle.ts';
import { berthRuntime, bundleFor, freshRoot, keyValues, leftovers, removeRoot, runBundle, runcRuntime, type Result, type Runtime } from './fixture.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const NODE = '/usr/bin/node';

let work: string;
/** The static probe, copied into each bundle as /bin/seccomp-probe. */
let probe: string;
/** busybox plus the host's node and its shared libraries; read-only to the containers. */
let nodeRootfs: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'berth-seccomp-'));
  probe = path.join(work, 'seccomp-probe');
  execFileSync('gcc', ['-static', '-O1', '-pthread', '-o', probe, path.join(here, 'seccomp-probe.c')]);
  nodeRootfs = path.join(work, 'node-rootfs');
  await makeBusyboxRootfs(nodeRootfs);
  for (const file of [NODE, ...sharedLibraries(NODE)]) {
    await mkdir(path.join(nodeRootfs, path.dirname(file)), { recursive: true });
    await copyFile(file, path.join(nodeRootfs, file), constants.COPYFILE_FICLONE);
  }
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the default profile', () => {
  const profile = defaultSeccompProfile('x64');
  const allowed = profile.syscalls!.filter((r) => r.action === 'SCMP_ACT_ALLOW');
  const unconditional = new Set(allowed.filter((r) => !r.args).flatMap((r) => r.names));

  it('is an allow list: everything else fails with EPERM', () => {
    expect(profile.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(profile.defaultErrnoRet).toBe(1);
    expect(profile.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    expect(unconditional.size).toBeGreaterThan(300);
    for (const name of ['read', 'write', 'openat', 'execve', 'futex', 'epoll_pwait', 'statx', 'rseq', 'arch_prctl', 'chroot']) {
      expect(unconditional, name).toContain(name);
    }
  });

  it('allows none of the refused syscalls, under any condition', () => {
    const everyAllowed = new Set(allowed.flatMap((r) => r.names));
    expect(Object.keys(DENIED).length).toBeGreaterThanOrEqual(44);
    expect(Object.keys(DENIED).filter((n) => everyAllowed.has(n))).toEqual([]);
  });

  it('allows clone only without namespace flags, and makes clone3 ENOSYS', () => {
    expect(CLONE_NAMESPACE_FLAGS).toBe(0x7e020000);
    expect(allowed.filter((r) => r.names.includes('clone'))).toEqual([
      { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] },
    ]);
    expect(profile.syscalls!.filter((r) => r.names.includes('clone3'))).toEqual([
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 },
    ]);
  });

  it('allows personality and socket only with Docker\'s arguments', () => {
    const personality = allowed.filter((r) => r.names.includes('personality')).map((r) => r.args);
    expect(personality).toEqual([0, 8, 0x20000, 0x20008, 0xffffffff].map((value) => [{ index: 0, value, op: 'SCMP_CMP_EQ' }]));
    expect(allowed.filter((r) => r.names.includes('socket')).map((r) => r.args)).toEqual([[{ index: 0, value: 40, op: 'SCMP_CMP_NE' }]]);
  });

  it('covers arm64 with its own syscalls, and refuses to guess for other architectures', () => {
    const arm = defaultSeccompProfile('arm64');
    expect(arm.architectures).toEqual(['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
    expect(arm.syscalls![0]!.names).toContain('set_tls');
    expect(arm.syscalls![0]!.names).not.toContain('arch_prctl');
    expect(() => defaultSeccompProfile('s390x')).toThrow(/s390x/);
  });

  it('is what buildSpec writes unless the caller passes a profile or "unconfined"', () => {
    expect(buildSpec({ args: ['true'], cgroupsPath: '/x' }).linux.seccomp).toEqual(defaultSeccompProfile());
    expect(buildSpec({ args: ['true'], cgroupsPath: '/x', seccomp: 'unconfined' }).linux.seccomp).toBeUndefined();
    const own = { defaultAction: 'SCMP_ACT_ALLOW' };
    expect(buildSpec({ args: ['true'], cgroupsPath: '/x', seccomp: own }).linux.seccomp).toBe(own);
  });
});

/**
 * What seccomp-probe prints under the default profile (the calls that do not depend
 * on the host). `thread` is glibc's pthread_create: clone3 first, clone after ENOSYS.
 */
const UNDER_PROFILE: Record<string, string> = {
  fork: 'ok', clone_plain: 'ok', thread: 'ok', chroot: 'ok',
  clone_newns: 'EPERM', clone_newuser: 'EPERM', clone3: 'ENOSYS', clone3_newuser: 'ENOSYS',
  unshare_user: 'EPERM', unshare_net: 'EPERM', setns: 'EPERM', mount: 'EPERM',
  keyctl: 'EPERM', add_key: 'EPERM', request_key: 'EPERM',
  ptrace_traceme: 'EPERM', ptrace_attach: 'EPERM', process_vm_readv: 'EPERM', kcmp: 'EPERM',
  bpf: 'EPERM', perf_event_open: 'EPERM', userfaultfd: 'EPERM', io_uring_setup: 'EPERM',
  open_by_handle_at: 'EPERM', name_to_handle_at: 'EPERM', syslog: 'EPERM',
  personality_query: 'ok', personality_linux32: 'ok', personality_norandom: 'EPERM',
  socket_inet: 'ok', socket_unix: 'ok', socket_vsock: 'EPERM',
  clock_settime: 'EPERM', adjtimex_read: 'ok', adjtimex_set: 'EPERM',
};

/** A busybox session: the everyday things a shell script does. */
const SHELL = String.raw`
echo "echo=hello"
echo "ls=$(ls / | grep -c '^bin$')"
echo "cat=$(cat /etc/passwd | head -n 1 | cut -d: -f1)"
sleep 0.2 && echo "sleep=ok"
echo "id=$(id -u):$(id -g):$(id -un)"
echo "date=$(date -u +%Y)"
echo "pipeline=$(seq 1 100 | awk '{ s += $1 } END { print s }' | sort | uniq)"
dd if=/dev/urandom of=/tmp/blob bs=4k count=16 2>/dev/null; echo "dd=$(wc -c < /tmp/blob | tr -d ' ')"
mkdir -p /tmp/d/e && ln -s /tmp/d /tmp/l && mv /tmp/d/e /tmp/d/f && touch /tmp/d/f/x && chmod 700 /tmp/d && chown 65534:65534 /tmp/d/f/x && rm -r /tmp/d /tmp/l && echo "files=ok"
tar -cf /tmp/etc.tar /etc 2>/dev/null && echo "tar=$(tar -tf /tmp/etc.tar | grep -c passwd)"
( sleep 5 & pid=$!; kill "$pid"; wait "$pid"; echo "killed=$?" ) 2>/dev/null
echo "subshell=$( (echo inner) )"
renice -n 5 -p $$ >/dev/null && echo "renice=ok"
echo "chroot=$(chroot / echo ok)"
linux32 true; echo "linux32=$?"
echo "hostname=$(hostname)"
echo "ps=$(ps -o pid,comm | grep -c sh)"
wget -q -O /dev/null http://127.0.0.1:1/ 2>/tmp/wget.err; echo "wget=$?"; echo "wget_err=$(cat /tmp/wget.err)"
`;

const NODE_HTTP = `require('http').createServer().listen(0, () => process.exit(0))`;

const NODE_THREADS_SPAWN = `
const { Worker } = require('node:worker_threads');
const { spawn } = require('node:child_process');
const status = require('node:fs').readFileSync('/proc/self/status', 'utf8');
console.log('seccomp=' + /Seccomp:\\s*(\\d)/.exec(status)[1]);
const w = new Worker('require("node:worker_threads").parentPort.postMessage(6 * 7)', { eval: true });
w.once('message', (m) => {
  console.log('worker=' + m);
  const c = spawn('/bin/sh', ['-c', 'echo "child=$((20 + 1))"'], { stdio: ['ignore', 'inherit', 'inherit'] });
  c.on('exit', (code) => { console.log('spawn_exit=' + code); process.exit(0); });
});
`;

function runtimeSuite(make: (root: string) => Runtime): void {
  const name = make('').name;
  describe(name, () => {
    let rt: Runtime;
    beforeAll(async () => {
      rt = make(await freshRoot(`seccomp-${name}`));
    });
    afterAll(async () => {
      await removeRoot(rt.root);
    });

    /** Runs a fresh busybox bundle with the probe in /bin; everything is removed afterwards. */
    async function run(options: BundleOptions): Promise<Result> {
      const b = await bundleFor(options);
      let r: Result;
      try {
        await copyFile(probe, path.join(b.rootfs, 'bin/seccomp-probe'));
        r = await runBundle(rt, b);
      } finally {
        await b.dispose([rt]);
      }
      expect(leftovers(b, rt)).toEqual([]);
      return r;
    }

    it('loads the profile in filter mode', async () => {
      const r = await run({ args: ['sh', '-c', 'grep -E "^(NoNewPrivs|Seccomp):" /proc/self/status | tr -d "\\t" | tr : ='] });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(keyValues(r.stdout)).toEqual({ NoNewPrivs: '1', Seccomp: '2' });
    });

    it('runs an ordinary busybox shell session', async () => {
      const r = await run({ args: ['sh', '-c', SHELL] });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const f = keyValues(r.stdout);
      expect(f).toMatchObject({
        echo: 'hello', ls: '1', cat: 'root', sleep: 'ok', id: '0:0:root', date: String(new Date().getUTCFullYear()),
        pipeline: '5050', dd: '65536', files: 'ok', tar: '1', killed: '143', subshell: 'inner', renice: 'ok',
        chroot: 'ok', linux32: '0', hostname: 'berth', ps: expect.stringMatching(/^[1-9]/),
      });
      // No network in the container's namespace: wget fails as networking does, not as a refused syscall.
      expect(f.wget).not.toBe('0');
      expect(f.wget_err).toMatch(/refused|unreachable/i);
      expect(f.wget_err).not.toMatch(/not permitted|bad system call/i);
    });

    it('refuses `unshare -n` with Operation not permitted', async () => {
      const r = await run({ args: ['unshare', '-n', 'true'] });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/unshare.*Operation not permitted/);
    });

    it('refuses a tmpfs mount with EPERM', async () => {
      // busybox words EPERM as "permission denied (are you root?)"; the probe below names the errno.
      const r = await run({ args: ['sh', '-c', 'mkdir -p /mnt && mount -t tmpfs t /mnt; echo "busybox=$?"; /bin/seccomp-probe mount'] });
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(/mount: permission denied/);
      expect(keyValues(r.stdout)).toEqual({ busybox: '1', mount: 'EPERM' });
    });

    it('refuses keyrings, namespaces, tracing and kernel interfaces; clone3 is ENOSYS; fork, clone and threads work', async () => {
      const r = await run({ args: ['/bin/seccomp-probe', ...Object.keys(UNDER_PROFILE), 'fchmodat2', 'cachestat'] });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const f = keyValues(r.stdout);
      const { fchmodat2, cachestat, ...rest } = f;
      expect(rest).toEqual(UNDER_PROFILE);
      // Allowed since Linux 6.5/6.6: EBADF for the bad fd, or ENOSYS on an older kernel or libseccomp.
      expect(['EBADF', 'ENOSYS']).toContain(fchmodat2);
      expect(['EBADF', 'ENOSYS']).toContain(cachestat);
    });

    it('the refusals are the profile\'s: unconfined, the same calls work', async () => {
      const calls = ['keyctl', 'add_key', 'unshare_user', 'clone_newuser', 'clone3', 'ptrace_traceme', 'process_vm_readv', 'personality_norandom', 'socket_vsock'];
      const r = await run({ args: ['/bin/seccomp-probe', ...calls], seccomp: 'unconfined' });
      expect(r.code).toBe(0);
      const f = keyValues(r.stdout);
      expect(f.socket_vsock).not.toBe('EPERM'); // EAFNOSUPPORT without vsock support
      delete f.socket_vsock;
      expect(f).toEqual(Object.fromEntries(calls.filter((c) => c !== 'socket_vsock').map((c) => [c, 'ok'])));
    });

    // runc answers ENOSYS, not the default EPERM, for syscall numbers above the
    // highest its libseccomp knows: a syscall newer than the runtime (statmount and
    // mseal with libseccomp 2.5.4) then looks absent, and libc falls back to an older
    // one, as with clone3. Probed with a number no kernel has, so the answer does not
    // depend on the host's libseccomp.
    it('answers ENOSYS for a syscall newer than its filter, so libc can fall back (as runc does)', async () => {
      const r = await run({ args: ['/bin/seccomp-probe', 'not_a_syscall'] });
      expect(r.code).toBe(0);
      expect(keyValues(r.stdout)).toEqual({ not_a_syscall: 'ENOSYS' });
    });

    it('a rule\'s SCMP_ACT_ERRNO without errnoRet is EPERM; defaultErrnoRet answers only for the default action', async () => {
      const base = defaultSeccompProfile('x64');
      const seccomp = {
        ...base,
        defaultErrnoRet: 6, // ENXIO
        syscalls: [
          ...base.syscalls!.map((r) => ({ ...r, names: r.names.filter((n) => n !== 'mkdir' && n !== 'mkdirat') })).filter((r) => r.names.length > 0),
          { names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' },
        ],
      };
      const r = await run({ args: ['sh', '-c', 'mkdir /made; echo "mkdir=$?"; unshare -n true; echo "unshare=$?"'], seccomp });
      expect(r.code).toBe(0);
      expect(keyValues(r.stdout)).toEqual({ mkdir: '1', unshare: '1' });
      expect(r.stderr).toMatch(/mkdir.*Operation not permitted/);
      expect(r.stderr).toMatch(/unshare.*No such device or address/);
    });

    it('runs the host\'s node: an HTTP server on an ephemeral port', async () => {
      const r = await run({ args: [NODE, '-e', NODE_HTTP], rootPath: nodeRootfs, readonlyRootfs: true });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    });

    it('runs the host\'s node: worker threads and child_process.spawn of a busybox sh', async () => {
      const r = await run({ args: [NODE, '-e', NODE_THREADS_SPAWN], rootPath: nodeRootfs, readonlyRootfs: true });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(keyValues(r.stdout)).toEqual({ seccomp: '2', worker: '42', child: '21', spawn_exit: '0' });
    });
  });
}

runtimeSuite(berthRuntime);
runtimeSuite(runcRuntime);

