// A dockerd of the bench's own (Debian's docker.io, installed when missing),
// with its data, exec root and socket in a temp dir, stopped by its pid after.
// Its bridge runs without iptables rules so the host's firewall is left as found.
import { spawnSync } from 'node:child_process';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startDaemon, type Daemon } from '../common/daemons.ts';

export interface Dockerd {
  /** Runs the docker client against this daemon; throws with its stderr on failure. */
  docker(args: string[]): string;
  stop(): Promise<void>;
}

const DOCKERD = '/usr/sbin/dockerd';
const CLIENT = '/usr/bin/docker';

async function present(file: string): Promise<boolean> {
  return access(file).then(() => true, () => false);
}

/** Unmounts everything mounted below `dir`, deepest first. */
export function unmountUnder(dir: string, mountinfo: string): void {
  const points = mountinfo.split('\n').map((l) => l.split(' ')[4]).filter((p): p is string => !!p && p.startsWith(`${dir}/`));
  for (const p of points.sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', p]);
}

/** Installs docker.io if needed and starts a private dockerd; null when that is impossible here. */
export async function startDockerd(options: { bridge?: boolean } = {}): Promise<Dockerd | null> {
  if (!(await present(DOCKERD))) {
    const r = spawnSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', 'docker.io'], {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, encoding: 'utf8',
    });
    if (r.status !== 0 || !(await present(DOCKERD))) return null;
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'berth-bench-dockerd-'));
  const sock = path.join(dir, 'docker.sock');
  const bridgeName = `bbd${process.pid % 100000}`;
  if (options.bridge) spawnSync('ip', ['link', 'add', bridgeName, 'type', 'bridge']);
  if (options.bridge) spawnSync('ip', ['addr', 'add', '172.31.250.1/24', 'dev', bridgeName]);
  if (options.bridge) spawnSync('ip', ['link', 'set', bridgeName, 'up']);
  const daemon: Daemon = startDaemon(DOCKERD, [
    '--data-root', path.join(dir, 'data'), '--exec-root', path.join(dir, 'exec'), '--pidfile', path.join(dir, 'docker.pid'),
    '-H', `unix://${sock}`, '--iptables=false', '--ip6tables=false', '--ip-masq=false',
    `--bridge=${options.bridge ? bridgeName : 'none'}`, '--storage-driver=overlay2', '--log-level=error',
  ]);
  const stop = async () => {
    await daemon.stop();
    unmountUnder(dir, await readFile('/proc/self/mountinfo', 'utf8'));
    await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    if (options.bridge) spawnSync('ip', ['link', 'del', bridgeName]);
  };
  const docker = (args: string[]) => {
    const r = spawnSync(CLIENT, ['-H', `unix://${sock}`, ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr || r.stdout}`);
    return r.stdout;
  };
  const deadline = Date.now() + 30_000;
  while (true) {
    const r = spawnSync(CLIENT, ['-H', `unix://${sock}`, 'version'], { encoding: 'utf8' });
    if (r.status === 0) break;
    if (daemon.child.exitCode !== null || Date.now() > deadline) {
      const out = daemon.output();
      await stop();
      throw new Error(`dockerd did not start: ${out.slice(-2000)}`);
    }
    await new Promise((res) => setTimeout(res, 200));
  }
  return { docker, stop };
}
