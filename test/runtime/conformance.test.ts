// One suite run against each runtime (containerd's testsuite style): the same
// bundles under berth-runtime and runc, with the observable results asserted for
// each and then compared between them.
import { chmodSync, closeSync, openSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CAPABILITIES } from '../../node-agent/src/bundle/spec.ts';
import type { OciSpec } from '../../node-agent/src/bundle/oci-spec.ts';
import {
  berthRuntime, bundleFor, cgroupDir, cli, freshRoot, removeRoot, hostIsCgroupV1, keyValues, leftovers,
  runBundle, runcRuntime, state, waitForStatus, type Runtime,
} from './fixture.ts';

const MEMORY = 64 * 1024 * 1024;
const CPU_UNITS = 512; // half a vCPU: quota 50000 of 100000
const PIDS = 64;

/** Prints what the process sees, one key=value per line. */
const PROBE = String.raw`
echo "pid=$$"
echo "uid=$(id -u)"; echo "gid=$(id -g)"; echo "groups=$(id -G)"
echo "hostname=$(hostname)"
for k in CapInh CapPrm CapEff CapBnd CapAmb NoNewPrivs Seccomp; do echo "$k=$(grep "^$k:" /proc/self/status | cut -f2)"; done
echo "nofile=$(ulimit -n)"; echo "nofile_hard=$(ulimit -Hn)"
for n in net ipc uts mnt pid cgroup user; do echo "ns_$n=$(readlink /proc/self/ns/$n)"; done
echo "netdevs=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ',')"
echo "kcore_bytes=$(cat /proc/kcore 2>/dev/null | wc -c)"
echo "keys_bytes=$(cat /proc/keys 2>/dev/null | wc -c)"
echo "timer_list_bytes=$(cat /proc/timer_list 2>/dev/null | wc -c)"
echo "acpi_entries=$(ls /proc/acpi 2>/dev/null | wc -l)"
echo "firmware_entries=$(ls /sys/firmware 2>/dev/null | wc -l)"
echo "sysrq_write=$( (echo h > /proc/sysrq-trigger) 2>/dev/null && echo ok || echo denied)"
echo "procsys_write=$( (echo berth > /proc/sys/kernel/domainname) 2>/dev/null && echo ok || echo denied)"
echo "procsys_opts=$(grep ' /proc/sys ' /proc/self/mountinfo | cut -d' ' -f6)"
for d in null zero full random urandom tty; do echo "dev_$d=$(stat -c '%F %t:%T %a' /dev/$d)"; done
echo "dev_ptmx=$(readlink /dev/ptmx)"; echo "dev_fd=$(readlink /dev/fd)"; echo "dev_stdin=$(readlink /dev/stdin)"
echo "dev_shm=$(stat -c %F /dev/shm)"
echo "dev_pts=$(grep -c ' /dev/pts ' /proc/self/mountinfo)"
echo "cg_mem_limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"
echo "cg_memsw_limit=$(cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes 2>/dev/null)"
echo "cg_cpu_quota=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)"
echo "cg_cpu_period=$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"
echo "cg_cpu_shares=$(cat /sys/fs/cgroup/cpu/cpu.shares)"
echo "cg_pids_max=$(cat /sys/fs/cgroup/pids/pids.max)"
echo "cg_mem_soft=$(cat /sys/fs/cgroup/memory/memory.soft_limit_in_bytes)"
echo "cg_cpuset=$(cat /sys/fs/cgroup/cpuset/cpuset.cpus)/$(cat /sys/fs/cgroup/cpuset/cpuset.mems)"
echo "cpus_allowed=$(grep Cpus_allowed_list /proc/self/status | cut -f2)"
echo "cg_devices=$(cat /sys/fs/cgroup/devices/devices.list | sort | tr '\n' ';')"
echo "cgroup_self=$(grep -v '^0::' /proc/self/cgroup | cut -d: -f3 | sort -u | tr '\n' ',')"
echo "cgroupfs_ro=$( (mkdir /sys/fs/cgroup/pids/x) 2>/dev/null && echo rw || echo ro)"
echo "root_write=$( (touch /probe-file) 2>/dev/null && echo rw || echo ro)"
echo "sys_opts=$(grep ' /sys ' /proc/self/mountinfo | cut -d' ' -f6)"
echo "fds=$(ls /proc/self/fd | sort -n | tr '\n' ',')"
echo "home=$HOME"
echo "cwd=$(pwd)"
echo "oom_score_adj=$(cat /proc/self/oom_score_adj)"
echo "sysctl_ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
echo "sysctl_shmmax=$(cat /proc/sys/kernel/shmmax)"
echo "umask=$(umask)"
`;

function capMask(names: string[]): string {
  const bits: Record<string, number> = {
    CAP_CHOWN: 0, CAP_DAC_OVERRIDE: 1, CAP_FOWNER: 3, CAP_FSETID: 4, CAP_KILL: 5, CAP_SETGID: 6, CAP_SETUID: 7,
    CAP_SETPCAP: 8, CAP_NET_BIND_SERVICE: 10, CAP_NET_RAW: 13, CAP_SYS_CHROOT: 18, CAP_MKNOD: 27,
    CAP_AUDIT_WRITE: 29, CAP_SETFCAP: 31,
  };
  let mask = 0n;
  for (const n of names) mask |= 1n << BigInt(bits[n]!);
  return mask.toString(16).padStart(16, '0');
}

type Facts = Record<string, string>;
let probeSeccomp = false;
const results: Record<string, { probe: Facts; user: Facts; seccomp: Facts; seccompOut: string; seccompArgs: Facts; exec: Facts }> = {};

/** What a process exec'd into a running container sees, next to what its init sees. */
const EXEC_PROBE = String.raw`
echo "pid_is_1=$([ $$ = 1 ] && echo yes || echo no)"
echo "uid=$(id -u)"; echo "groups=$(id -G)"
for k in CapPrm CapEff CapBnd NoNewPrivs Seccomp; do echo "$k=$(grep "^$k:" /proc/self/status | cut -f2)"; echo "init_$k=$(grep "^$k:" /proc/1/status | cut -f2)"; done
for n in net ipc uts mnt pid cgroup; do echo "same_ns_$n=$([ "$(readlink /proc/self/ns/$n)" = "$(readlink /proc/1/ns/$n)" ] && echo yes || echo no)"; done
echo "cgroup_self=$(grep -v '^0::' /proc/self/cgroup | cut -d: -f3 | sort -u | tr '
' ',')"
echo "cg_pids_current=$(cat /sys/fs/cgroup/pids/pids.current)"
echo "nofile=$(ulimit -n)"
echo "env_added=$ADDED"; echo "env_kept=$KEPT"; echo "env_replaced=$REPLACED"
echo "cwd=$(pwd)"; echo "hostname=$(hostname)"
echo "fds=$(ls /proc/self/fd | sort -n | tr '
' ',')"
exit 7
`;
const hostNs = Object.fromEntries(
  ['net', 'ipc', 'uts', 'mnt', 'pid', 'cgroup', 'user'].map((n) => [n, readlinkSync(`/proc/self/ns/${n}`)]),
);

/** A new user namespace with root mapped to host uid/gid 200000 (65536 ids). */
function inUserNamespace(spec: OciSpec): void {
  spec.linux.namespaces.push({ type: 'user' });
  spec.linux.uidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
  spec.linux.gidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
}

/** The conformance suite, run once per runtime. */
function runtimeSuite(make: (root: string) => Runtime): void {
  let rt: Runtime;
  const name = make('').name;
  describe(name, () => {
    beforeAll(async () => {
      rt = make(await freshRoot(`conformance-${name}`));
      results[name] = { probe: {}, user: {}, seccomp: {}, seccompOut: '', seccompArgs: {}, exec: {} };
    });
    afterAll(async () => {
      await removeRoot(rt.root);
    });

    it('runs a probe with Docker defaults and limits, exit code passed through', async () => {
      const b = await bundleFor({
        args: ['sh', '-c', `${PROBE}\nexit 3`],
        memoryBytes: MEMORY, cpuUnits: CPU_UNITS, pidsLimit: PIDS, hostname: 'probe-host',
        rlimits: [{ type: 'RLIMIT_NOFILE', soft: 1000, hard: 2000 }],
        transform: (s) => {
          s.process.oomScoreAdj = 100;
          s.linux.sysctl = { 'net.ipv4.ip_forward': '1', 'kernel.shmmax': '1234567' };
          s.linux.resources!.memory!.reservation = 32 * 1024 * 1024;
          Object.assign(s.linux.resources!.cpu!, { cpus: '0', mems: '0' });
        },
      });
      // A host fd left open (not close-on-exec) by the caller must not reach the container.
      probeSeccomp = b.spec.linux.seccomp !== undefined;
      const leaked = openSync('/tmp', 'r');
      try {
        const r = await runBundle(rt, b, { extraFds: ['ignore', 'ignore', leaked] });
        expect(r.stderr).toBe('');
        expect(r.code).toBe(3);
        results[name]!.probe = keyValues(r.stdout);
      } finally {
        closeSync(leaked);
        await b.dispose([rt]);
      }
      const f = results[name]!.probe;
      expect(f.pid).toBe('1');
      expect([f.uid, f.gid, f.hostname]).toEqual(['0', '0', 'probe-host']);
      const caps = capMask(DEFAULT_CAPABILITIES);
      expect([f.CapPrm, f.CapEff, f.CapBnd]).toEqual([caps, caps, caps]);
      expect([f.CapInh, f.CapAmb]).toEqual(['0000000000000000', '0000000000000000']);
      // the spec builder may add a default seccomp profile (filter mode 2)
      expect([f.NoNewPrivs, f.Seccomp]).toEqual(['1', probeSeccomp ? '2' : '0']);
      expect([f.nofile, f.nofile_hard]).toEqual(['1000', '2000']);
      for (const ns of ['net', 'ipc', 'uts', 'mnt', 'pid', 'cgroup']) expect(f[`ns_${ns}`], ns).not.toBe(hostNs[ns]);
      expect(f.ns_user).toBe(hostNs.user);
      expect(f.netdevs).toBe('lo,');
      expect([f.kcore_bytes, f.keys_bytes, f.timer_list_bytes, f.acpi_entries, f.firmware_entries]).toEqual(['0', '0', '0', '0', '0']);
      expect([f.sysrq_write, f.procsys_write]).toEqual(['denied', 'denied']);
      expect(f.procsys_opts?.split(',')).toContain('ro');
      expect(f.dev_null).toBe('character special file 1:3 666');
      expect(f.dev_zero).toBe('character special file 1:5 666');
      expect(f.dev_full).toBe('character special file 1:7 666');
      expect(f.dev_random).toBe('character special file 1:8 666');
      expect(f.dev_urandom).toBe('character special file 1:9 666');
      expect(f.dev_tty).toBe('character special file 5:0 666');
      expect([f.dev_ptmx, f.dev_fd, f.dev_stdin]).toEqual(['pts/ptmx', '/proc/self/fd', '/proc/self/fd/0']);
      expect([f.dev_shm, f.dev_pts]).toEqual(['directory', '1']);
      if (hostIsCgroupV1()) {
        expect([f.cg_mem_limit, f.cg_memsw_limit]).toEqual([String(MEMORY), String(MEMORY)]);
        expect([f.cg_cpu_quota, f.cg_cpu_period, f.cg_cpu_shares]).toEqual(['50000', '100000', '512']);
        expect(f.cg_pids_max).toBe(String(PIDS));
        expect(f.cg_mem_soft).toBe(String(32 * 1024 * 1024));
        expect([f.cg_cpuset, f.cpus_allowed]).toEqual(['0/0', '0']);
        expect(f.cg_devices).toContain('c 1:3 rwm');
        expect(f.cg_devices).not.toContain('a *:* rwm');
        expect(f.cgroup_self).toBe('/,'); // a cgroup namespace rooted at the container's cgroup
      }
      expect([f.cgroupfs_ro, f.root_write]).toEqual(['ro', 'rw']);
      expect(f.sys_opts?.split(',')).toContain('ro');
      expect(f.fds).toBe('0,1,2,3,'); // 3 is ls's own directory
      expect([f.home, f.cwd, f.oom_score_adj]).toEqual(['/root', '/', '100']);
      expect([f.sysctl_ip_forward, f.sysctl_shmmax]).toEqual(['1', '1234567']);
    });

    it('runs as the configured user and groups with a read-only root', async () => {
      const b = await bundleFor({
        args: ['sh', '-c', PROBE],
        user: { uid: 1000, gid: 1000, additionalGids: [10, 20] },
        transform: (spec) => {
          (spec.process.user as Record<string, unknown>).umask = 0o027;
        },
        readonlyRootfs: true,
        cwd: '/home/work',
      });
      try {
        const r = await runBundle(rt, b);
        expect(r.code).toBe(0);
        results[name]!.user = keyValues(r.stdout);
      } finally {
        await b.dispose([rt]);
      }
      const f = results[name]!.user;
      expect([f.uid, f.gid, f.groups]).toEqual(['1000', '1000', '1000 10 20']);
      expect(f.umask).toBe('0027');
      expect(f.root_write).toBe('ro');
      expect(f.cwd).toBe('/home/work');
      expect(f.CapInh).toBe('0000000000000000');
    });

    it('applies a seccomp profile (filter mode, errno for the listed syscalls)', async () => {
      const b = await bundleFor({
        args: ['sh', '-c', `grep Seccomp: /proc/self/status | tr -d '\\t'; mkdir /tmp/blocked 2>&1; echo "mkdir=$?"`],
        seccomp: {
          defaultAction: 'SCMP_ACT_ALLOW',
          architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
          syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }],
        },
      });
      try {
        const r = await runBundle(rt, b);
        expect(r.code).toBe(0);
        results[name]!.seccompOut = r.stdout;
        results[name]!.seccomp = keyValues(r.stdout.replace('Seccomp:', 'Seccomp='));
      } finally {
        await b.dispose([rt]);
      }
      expect(results[name]!.seccomp.Seccomp).toBe('2');
      expect(results[name]!.seccompOut).toMatch(/Operation not permitted/);
      expect(results[name]!.seccomp.mkdir).toBe('1');
    });

    it('applies seccomp rules with argument conditions (EQ, MASKED_EQ)', async () => {
      const b = await bundleFor({
        args: ['sh', '-c', [
          'touch /tmp/f',
          'chmod 4755 /tmp/f 2>/dev/null; echo "setuid=$?"',
          'chmod 755 /tmp/f; echo "plain=$?"',
          'kill -0 1 2>/dev/null; echo "kill0=$?"',
          'kill -CONT 1; echo "kill_cont=$?"',
        ].join('; ')],
        seccomp: {
          defaultAction: 'SCMP_ACT_ALLOW',
          architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
          syscalls: [
            // no setuid bit through chmod (mode is arg 1) or fchmodat (arg 2): value is the mask
            { names: ['chmod'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, args: [{ index: 1, value: 0o4000, valueTwo: 0o4000, op: 'SCMP_CMP_MASKED_EQ' }] },
            { names: ['fchmodat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, args: [{ index: 2, value: 0o4000, valueTwo: 0o4000, op: 'SCMP_CMP_MASKED_EQ' }] },
            { names: ['kill'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, args: [{ index: 1, value: 0, op: 'SCMP_CMP_EQ' }] },
          ],
        },
      });
      try {
        const r = await runBundle(rt, b);
        expect(r.code).toBe(0);
        results[name]!.seccompArgs = keyValues(r.stdout);
      } finally {
        await b.dispose([rt]);
      }
      expect(results[name]!.seccompArgs).toEqual({ setuid: '1', plain: '0', kill0: '1', kill_cont: '0' });
    });

    it('create / start / state / kill / delete, with the limits visible from the host', async () => {
      const b = await bundleFor({ args: ['sleep', '30'], memoryBytes: MEMORY, cpuUnits: CPU_UNITS, pidsLimit: PIDS, annotations: { 'berth.task': 't1' } });
      try {
        const c = await cli(rt, ['create', '--bundle', b.bundle, '--pid-file', `${b.scratch}/pid`, b.id], { detached: true });
        expect(c.stderr).toBe('');
        expect(c.code).toBe(0);
        const created = await state(rt, b.id);
        expect(created).toMatchObject({ ociVersion: expect.any(String), id: b.id, status: 'created', bundle: b.bundle });
        expect(created.pid).toBeGreaterThan(1);
        expect(created.annotations).toEqual({ 'berth.task': 't1' });
        if (hostIsCgroupV1()) {
          const read = (ctl: string, file: string) => readFileSync(`${cgroupDir(b.cgroupsPath, ctl)}/${file}`, 'utf8').trim();
          expect(read('memory', 'memory.limit_in_bytes')).toBe(String(MEMORY));
          expect(read('cpu', 'cpu.cfs_quota_us')).toBe('50000');
          expect(read('pids', 'pids.max')).toBe(String(PIDS));
          expect(read('pids', 'cgroup.procs')).toBe(String(created.pid));
        }
        expect((await cli(rt, ['start', b.id])).code).toBe(0);
        await waitForStatus(rt, b.id, 'running');
        // sleep as pid 1 has no handler for TERM: only KILL stops it.
        expect((await cli(rt, ['kill', b.id, 'KILL'])).code).toBe(0);
        await waitForStatus(rt, b.id, 'stopped');
        expect((await cli(rt, ['delete', b.id])).code).toBe(0);
        expect((await cli(rt, ['state', b.id])).code).not.toBe(0);
        expect(leftovers(b, rt)).toEqual([]);
      } finally {
        await b.dispose([rt]);
      }
    });

    it('delete --force kills a running container and removes its cgroups', async () => {
      const b = await bundleFor({ args: ['sleep', '30'], pidsLimit: PIDS });
      try {
        expect((await cli(rt, ['run', '--detach', '--bundle', b.bundle, b.id], { detached: true })).code).toBe(0);
        await waitForStatus(rt, b.id, 'running');
        const refused = await cli(rt, ['delete', b.id]);
        expect(refused.code).not.toBe(0);
        expect((await cli(rt, ['delete', '--force', b.id])).code).toBe(0);
        expect(leftovers(b, rt)).toEqual([]);
      } finally {
        await b.dispose([rt]);
      }
    });

    it('joins the namespaces of another container by path', async () => {
      const a = await bundleFor({ args: ['sleep', '30'], hostname: 'first' });
      const b = await bundleFor({
        args: ['sh', '-c', 'echo "net=$(readlink /proc/self/ns/net)"; echo "uts=$(readlink /proc/self/ns/uts)"; echo "host=$(hostname)"; echo "pid1=$(cat /proc/1/comm)"'],
        transform: (spec) => {
          delete spec.hostname;
        },
      });
      try {
        expect((await cli(rt, ['run', '--detach', '--bundle', a.bundle, a.id], { detached: true })).code).toBe(0);
        const { pid } = await state(rt, a.id);
        for (const ns of b.spec.linux.namespaces) {
          if (ns.type === 'network' || ns.type === 'uts' || ns.type === 'pid' || ns.type === 'ipc') {
            ns.path = `/proc/${pid}/ns/${ns.type === 'network' ? 'net' : ns.type}`;
          }
        }
        await b.writeSpec();
        const r = await runBundle(rt, b);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        const f = keyValues(r.stdout);
        expect(f.net).toBe(readlinkSync(`/proc/${pid}/ns/net`));
        expect(f.uts).toBe(readlinkSync(`/proc/${pid}/ns/uts`));
        expect([f.host, f.pid1]).toEqual(['first', 'sleep']);
      } finally {
        await b.dispose([rt]);
        await a.dispose([rt]);
      }
    });

    it('maps users in a new user namespace', async () => {
      const b = await bundleFor({
        args: ['sh', '-c', 'echo "uid=$(id -u)"; echo "map=$(cat /proc/self/uid_map | tr -s " ")"; echo "owner=$(stat -c %u /bin/busybox)"'],
        transform: inUserNamespace,
      });
      try {
        // the mapped root must be able to reach the rootfs: mkdtemp made its parent 0700
        chmodSync(path.dirname(b.bundle), 0o755);
        const r = await runBundle(rt, b);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        const f = keyValues(r.stdout);
        expect(f.uid).toBe('0');
        expect(f.map).toBe('0 200000 65536');
        expect(f.owner).toBe('65534'); // host root is unmapped: nobody
        expect(leftovers(b, rt)).toEqual([]);
      } finally {
        await b.dispose([rt]);
      }
    });

    it('exec runs a process as the init was made: namespaces, cgroup, user, capabilities, seccomp', async () => {
      const b = await bundleFor({
        args: ['sleep', '30'], pidsLimit: PIDS, hostname: 'exec-host',
        env: ['PATH=/bin', 'KEPT=from-config', 'REPLACED=old'],
        user: { uid: 1000, gid: 1000, additionalGids: [10] },
        rlimits: [{ type: 'RLIMIT_NOFILE', soft: 1000, hard: 2000 }],
      });
      try {
        expect((await cli(rt, ['run', '--detach', '--bundle', b.bundle, b.id], { detached: true })).code).toBe(0);
        await waitForStatus(rt, b.id, 'running');
        const r = await cli(rt, ['exec', '--env', 'ADDED=yes', '--env', 'REPLACED=new', '--cwd', '/tmp', b.id, 'sh', '-c', EXEC_PROBE]);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(7);
        const f = keyValues(r.stdout);
        results[name]!.exec = f;
        expect([f.pid_is_1, f.uid, f.groups, f.hostname, f.cwd, f.nofile]).toEqual(['no', '1000', '1000 10', 'exec-host', '/tmp', '1000']);
        for (const k of ['CapPrm', 'CapEff', 'CapBnd', 'NoNewPrivs', 'Seccomp']) expect(f[k], k).toBe(f[`init_${k}`]);
        for (const ns of ['net', 'ipc', 'uts', 'mnt', 'pid', 'cgroup']) expect(f[`same_ns_${ns}`], ns).toBe('yes');
        if (hostIsCgroupV1()) {
          expect(f.cgroup_self).toBe('/,');
          expect(Number(f.cg_pids_current)).toBeGreaterThanOrEqual(3); // sleep, sh and the subshell counting
        }
        expect([f.env_added, f.env_kept, f.env_replaced]).toEqual(['yes', 'from-config', 'new']);
        expect(f.fds).toBe('0,1,2,3,');
        // Nothing of the exec stays in the container's cgroup.
        if (hostIsCgroupV1()) expect(readFileSync(`${cgroupDir(b.cgroupsPath, 'pids')}/cgroup.procs`, 'utf8').trim().split('\n')).toHaveLength(1);

        const missing = await cli(rt, ['exec', b.id, 'no-such-program']);
        expect(missing.code).not.toBe(0);
        expect(missing.stderr).toMatch(/no-such-program/);
        expect((await cli(rt, ['exec', 'no-such-container', 'true'])).code).not.toBe(0);
        expect((await cli(rt, ['kill', b.id, 'KILL'])).code).toBe(0);
        await waitForStatus(rt, b.id, 'stopped');
        const stopped = await cli(rt, ['exec', b.id, 'true']);
        expect(stopped.code).not.toBe(0);
        expect(stopped.stderr).toMatch(/stopped|not running/);
        expect((await cli(rt, ['delete', b.id])).code).toBe(0);
        expect(leftovers(b, rt)).toEqual([]);
      } finally {
        await b.dispose([rt]);
      }
    });

    it('exec joins a container with its own user namespace', async () => {
      const b = await bundleFor({
        args: ['sleep', '30'],
        transform: inUserNamespace,
      });
      try {
        chmodSync(path.dirname(b.bundle), 0o755);
        expect((await cli(rt, ['run', '--detach', '--bundle', b.bundle, b.id], { detached: true })).code).toBe(0);
        await waitForStatus(rt, b.id, 'running');
        const r = await cli(rt, ['exec', b.id, 'sh', '-c', 'echo "uid=$(id -u)"; echo "map=$(cat /proc/self/uid_map | tr -s " ")"; echo "same_user_ns=$([ "$(readlink /proc/self/ns/user)" = "$(readlink /proc/1/ns/user)" ] && echo yes)"']);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(keyValues(r.stdout)).toEqual({ uid: '0', map: '0 200000 65536', same_user_ns: 'yes' });
        expect((await cli(rt, ['delete', '--force', b.id])).code).toBe(0);
        expect(leftovers(b, rt)).toEqual([]);
      } finally {
        await b.dispose([rt]);
      }
    });

    it('run returns 128+signal when the container is killed', async () => {
      const b = await bundleFor({ args: ['sleep', '30'] });
      try {
        const running = runBundle(rt, b);
        await waitForStatus(rt, b.id, 'running');
        expect((await cli(rt, ['kill', b.id, '9'])).code).toBe(0);
        expect((await running).code).toBe(137);
        expect(leftovers(b, rt)).toEqual([]);
      } finally {
        await b.dispose([rt]);
      }
    });
  });
}

runtimeSuite(berthRuntime);
runtimeSuite(runcRuntime);

describe('berth-runtime and runc see the same container', () => {
  const same = [
    'pid', 'uid', 'gid', 'hostname', 'CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs', 'Seccomp',
    'nofile', 'nofile_hard', 'netdevs', 'kcore_bytes', 'keys_bytes', 'timer_list_bytes', 'acpi_entries',
    'firmware_entries', 'sysrq_write', 'procsys_write', 'dev_null', 'dev_zero', 'dev_full', 'dev_random',
    'dev_urandom', 'dev_tty', 'dev_ptmx', 'dev_fd', 'dev_shm', 'dev_pts', 'cg_mem_limit', 'cg_memsw_limit',
    'cg_cpu_quota', 'cg_cpu_period', 'cg_cpu_shares', 'cg_pids_max', 'cg_mem_soft', 'cg_cpuset', 'cpus_allowed',
    'cgroup_self', 'cgroupfs_ro',
    'root_write', 'fds', 'home', 'cwd', 'oom_score_adj', 'sysctl_ip_forward', 'sysctl_shmmax',
  ];
  it.each(same)('%s', (key) => {
    const berth = results['berth-runtime']?.probe;
    const runc = results.runc?.probe;
    if (!berth?.pid || !runc?.pid) throw new Error('a probe did not run');
    expect(berth[key], key).toBe(runc[key]);
  });
  it('device cgroup: the config allow list (runc adds mknod for all and /dev/net/tun on top)', () => {
    const berth = results['berth-runtime']!.probe.cg_devices!.split(';').filter(Boolean);
    const runc = results.runc!.probe.cg_devices!.split(';').filter(Boolean);
    for (const rule of berth) expect(runc).toContain(rule);
    expect(runc.filter((r) => !berth.includes(r)).sort()).toEqual(['b *:* m', 'c *:* m', 'c 10:200 rwm']);
  });
  it('user, groups and read-only root', () => {
    for (const key of ['uid', 'gid', 'groups', 'root_write', 'cwd', 'CapEff', 'CapInh', 'home', 'umask']) {
      expect(results['berth-runtime']!.user[key], key).toBe(results.runc!.user[key]);
    }
  });
  it('exec', () => {
    if (!results['berth-runtime']!.exec.uid || !results.runc!.exec.uid) throw new Error('an exec probe did not run');
    expect(results['berth-runtime']!.exec).toEqual(results.runc!.exec);
  });
  it('seccomp', () => {
    expect(results['berth-runtime']!.seccomp).toEqual(results.runc!.seccomp);
    expect(results['berth-runtime']!.seccompArgs).toEqual(results.runc!.seccompArgs);
  });
});
