// Named network namespaces, made and removed with iproute2 (`ip netns`): each
// is a bind mount under /run/netns that outlives the agent and can be joined by
// path (`linux.namespaces[].path` in config.json) or entered with `ip netns exec`.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { runChecked } from '../spawner.ts';
import { pluginPath } from './cni.ts';

export const NETNS_DIR = '/run/netns';

export function netnsPath(name: string): string {
  return path.join(NETNS_DIR, name);
}

export function run(command: string, args: string[], timeoutMs = 15_000): Promise<string> {
  return runChecked(command, args, { timeoutMs, env: { ...process.env, PATH: pluginPath() } });
}

/** Creates the namespace with only `lo`, brought up. */
export async function createNetns(name: string): Promise<string> {
  await run('ip', ['netns', 'add', name]);
  try {
    await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  } catch (err) {
    await deleteNetns(name).catch(() => undefined);
    throw err;
  }
  return netnsPath(name);
}

/** Removes the namespace; nothing to do when it is already gone. */
export async function deleteNetns(name: string): Promise<void> {
  if (!existsSync(netnsPath(name))) return;
  try {
    await run('ip', ['netns', 'delete', name]);
  } catch (err) {
    if (existsSync(netnsPath(name))) throw err;
  }
}

export function netnsExists(name: string): boolean {
  return existsSync(netnsPath(name));
}
