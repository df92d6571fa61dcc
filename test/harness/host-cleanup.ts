// Removes what an agent (or the all-in-one) left on the host under a state dir:
// containers (through whichever runtime made them), their cgroups, mounts,
// network namespaces and the task bridge. For tests' clean-up after a failure.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../../common/log.ts';
import { createNetworkManager } from '../../node-agent/src/network/index.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function quiet(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 30_000 });
  } catch {
    return '';
  }
}

/**
 * `stateDir` is an agent's state dir, or one holding it as `agent/` (the
 * all-in-one's, or an agent daemon's BERTH_STATE_DIR).
 */
export async function cleanAgentHost(stateDir: string, bridge: string): Promise<void> {
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
  // Every task network and pooled namespace the agent recorded, released through
  // the CNI plugins (DEL), so no namespace, address or iptables rule outlives the test.
  const logger = createLogger('test-cleanup');
  logger.level = 'silent';
  for (const networkDir of [path.join(stateDir, 'network'), path.join(stateDir, 'agent/network')]) {
    if (!existsSync(networkDir)) continue;
    const network = createNetworkManager({ stateDir: networkDir, bridge, logger, poolSize: 0 });
    await network.recover(new Set()).catch(() => undefined);
    await network.close();
  }
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
