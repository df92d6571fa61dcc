// A real redis-server per test file, on a free loopback port, data in a temp dir.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, startDaemon, waitForPort, type Daemon } from './processes.ts';

export interface TestRedis {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'berth-redis-'));
  const daemon: Daemon = startDaemon('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
    '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction',
  ]);
  try {
    await waitForPort(port, 10_000, daemon.child);
  } catch (err) {
    await daemon.stop();
    await rm(dir, { recursive: true, force: true });
    throw new Error(`redis-server did not start: ${(err as Error).message}\n${daemon.output()}`);
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: async () => {
      await daemon.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
