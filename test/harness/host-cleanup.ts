// Removes what an agent (or the all-in-one) left on the host under a state dir:
// containers (through whichever runtime made them), their cgroups, mounts,
// network namespaces and the task bridge. For tests' clean-up after a failure.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function quiet(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 30_000 });
  } catch {
    return '';
  }
}

export function cleanAgentHost(stateDir: string, bridge: string): void {
  for (const runtimeRoot of [path.join(stateDir, 'runtime'), path.join(stateDir, 'agent/runtime')]) {
    if (!existsSync(runtimeRoot)) continue;
    for (const id of readdirSync(runtimeRoot)) {
      quiet('runc', ['--root', runtimeRoot, 'delete', '--force', id]);
      quiet(path.join(repo, 'native/build/berth-runtime'), ['--root', runtimeRoot, 'delete', '--force', id]);
    }
  }
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(stateDir))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) quiet('umount', ['-l', m]);
  quiet('ip', ['link', 'del', bridge]);
}

/** Task cgroups still present for these task ids, on any hierarchy. */
export function leftoverCgroups(taskIds: string[]): string[] {
  const roots = readdirSync('/sys/fs/cgroup').map((c) => path.join('/sys/fs/cgroup', c));
  roots.push('/sys/fs/cgroup');
  const left: string[] = [];
  for (const root of roots) {
    for (const id of taskIds) {
      const dir = path.join(root, 'berth', id);
      if (existsSync(dir)) left.push(dir);
    }
  }
  return left;
}

/** rmdir of empty task cgroups a crashed test may have left (never of a populated one). */
export function removeEmptyCgroups(taskIds: string[]): void {
  for (const dir of leftoverCgroups(taskIds)) {
    try { rmdirSync(dir); } catch { /* populated or gone */ }
  }
}
