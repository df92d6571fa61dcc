// Starting containers through berth-shim and talking to a shim over its control
// socket (the protocol is in native/shim/README.md). The agent is never the
// parent of a container: the shim detaches, so containers outlive the agent.
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { commands, type RunResult } from './spawner.ts';

export interface ExitRecord {
  exitCode: number;
  signal: number | null;
  oomKilled: boolean;
  startedAt?: string;
  exitedAt: string;
}

export interface ShimLaunch {
  shim: string;
  runtime: string;
  runtimeRoot: string;
  containerId: string;
  bundle: string;
  stateDir: string;
  logPath: string;
  logMaxBytes?: number;
}

export class ContainerStartError extends Error {}

/** Starts the container; resolves with the container's host pid once it runs. */
export async function launchShim(o: ShimLaunch): Promise<{ shimPid: number; pid: number }> {
  const args = [
    '--id', o.containerId, '--bundle', o.bundle, '--runtime', o.runtime, '--runtime-root', o.runtimeRoot,
    '--state-dir', o.stateDir, '--log-path', o.logPath,
    ...(o.logMaxBytes ? ['--log-max-bytes', String(o.logMaxBytes)] : []),
  ];
  let r: RunResult;
  try {
    r = await commands().run(o.shim, args, { timeoutMs: 60_000 });
  } catch (err) {
    throw new ContainerStartError((err as Error).message);
  }
  const stdout = r.stdout.toString('utf8');
  if (r.exitCode !== 0) {
    const why = r.timedOut ? 'berth-shim timed out' : r.signal ? `berth-shim was killed by ${r.signal}` : `berth-shim exited with ${r.exitCode}`;
    throw new ContainerStartError(r.stderr.toString('utf8').trim().split('\n').pop() || why);
  }
  try {
    return JSON.parse(stdout.trim()) as { shimPid: number; pid: number };
  } catch {
    throw new ContainerStartError(`berth-shim printed no start record: ${stdout.slice(0, 200)}`);
  }
}

export function socketPath(stateDir: string): string {
  return path.join(stateDir, 'shim.sock');
}

/** One request on the shim's socket; rejects when no shim answers. */
export function shimRequest<T>(stateDir: string, request: Record<string, unknown>, timeoutMs?: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath(stateDir));
    let buffer = '';
    let timer: NodeJS.Timeout | undefined;
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => { socket.destroy(); reject(new Error('shim did not answer in time')); }, timeoutMs);
    }
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write(JSON.stringify(request) + '\n'));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const newline = buffer.indexOf('\n');
      if (newline < 0) return;
      clearTimeout(timer);
      socket.end();
      try {
        resolve(JSON.parse(buffer.slice(0, newline)) as T);
      } catch (err) {
        reject(err as Error);
      }
    });
    socket.once('error', (err) => { clearTimeout(timer); reject(err); });
    socket.once('close', () => { clearTimeout(timer); if (!buffer.includes('\n')) reject(new Error('shim closed the connection')); });
  });
}

export async function readExitRecord(stateDir: string): Promise<ExitRecord | null> {
  try {
    return JSON.parse(await readFile(path.join(stateDir, 'exit.json'), 'utf8')) as ExitRecord;
  } catch {
    return null;
  }
}

/**
 * Waits for the container to exit: through the shim while one runs, from the
 * exit record it left otherwise. Null when neither exists (the shim died).
 */
export async function waitForExit(stateDir: string): Promise<ExitRecord | null> {
  try {
    const answer = await shimRequest<ExitRecord & { ok?: boolean }>(stateDir, { op: 'wait' });
    if (answer.ok !== false && typeof answer.exitCode === 'number') return answer;
  } catch {
    // No shim on the socket: it has exited, so its exit record is final.
  }
  return readExitRecord(stateDir);
}

export async function signalContainer(stateDir: string, signal: number): Promise<boolean> {
  try {
    const answer = await shimRequest<{ ok: boolean }>(stateDir, { op: 'kill', signal }, 5_000);
    return answer.ok;
  } catch {
    return false;
  }
}

/** `runtime delete --force`: removes the container's runtime state and cgroups. */
export async function deleteContainer(runtime: string, runtimeRoot: string, containerId: string): Promise<void> {
  await commands().run(runtime, ['--root', runtimeRoot, 'delete', '--force', containerId], { timeoutMs: 30_000 }).catch(() => undefined);
}
