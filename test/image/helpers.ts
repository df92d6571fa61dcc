// Shared set-up for the image tests: a temp store, a quiet logger, cleanup that
// unmounts whatever a test mounted even when it failed.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { createImageService, type ImageService, type ImageServiceOptions } from '../../node-agent/src/image/index.ts';

export const quietLogger = pino({ level: process.env.LOG_LEVEL ?? 'silent' });

export interface TestStore {
  root: string;
  service: ImageService;
  /** Unmounts everything under root and removes it. */
  cleanup(): Promise<void>;
}

export async function unmountUnder(dir: string): Promise<void> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const points = info.split('\n').map((l) => l.split(' ')[4]).filter((p): p is string => !!p && (p === dir || p.startsWith(`${dir}/`)));
  for (const p of points.sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', p]);
}

export async function makeStore(options: Partial<ImageServiceOptions> = {}): Promise<TestStore> {
  const top = await mkdtemp(path.join(os.tmpdir(), 'berth-images-'));
  const root = path.join(top, 'images');
  const service = createImageService({ root, logger: quietLogger, ...options });
  return {
    root,
    service,
    cleanup: async () => {
      await unmountUnder(top);
      await rm(top, { recursive: true, force: true });
    },
  };
}

/** Whatever is left in the store's temp dirs (downloads and unpacks in progress). */
export async function tmpLeftovers(root: string): Promise<string[]> {
  const { readdir } = await import('node:fs/promises');
  const out: string[] = [];
  for (const dir of await readdir(path.join(root, 'tmp'))) {
    for (const name of await readdir(path.join(root, 'tmp', dir))) out.push(`${dir}/${name}`);
  }
  return out;
}
