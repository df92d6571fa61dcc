// Garbage collection: what a mounted rootfs uses stays, the rest goes until
// the store fits the budget; a later pull fetches again what went.
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage, pushImage } from '../../images/index.ts';
import { startRegistry, type TestRegistry } from '../harness/registry.ts';
import { makeStore, type TestStore } from './helpers.ts';

let registry: TestRegistry;
let store: TestStore;

beforeAll(async () => {
  registry = await startRegistry();
  store = await makeStore({ gcGraceMs: 0 });
});

afterAll(async () => {
  try {
    await store?.cleanup();
  } finally {
    await registry?.stop();
  }
});

const exists = (p: string) => lstat(p).then(() => true, () => false);

describe('garbage collection', () => {
  it('keeps what mounted rootfs use and removes the rest down to the budget', async () => {
    const a = await buildImage({ layers: [{ files: { a: Buffer.alloc(100_000, 'a') } }] });
    const b = await buildImage({ layers: [{ files: { b: Buffer.alloc(100_000, 'b') } }, { files: { b2: 'b2' } }] });
    await pushImage(registry.host, 'gc/a', 'v1', a);
    await pushImage(registry.host, 'gc/b', 'v1', b);
    const pa = await store.service.pull(`${registry.host}/gc/a:v1`);
    const pb = await store.service.pull(`${registry.host}/gc/b:v1`);
    await store.service.mountRootfs('gc-a', pa);

    // A budget the store already fits removes nothing.
    expect(await store.service.garbageCollect(1e12)).toEqual({ removedBytes: 0 });

    const { removedBytes } = await store.service.garbageCollect(0);
    expect(removedBytes).toBeGreaterThan(100_000);
    for (const l of pb.layers) expect(await exists(l)).toBe(false);
    for (const l of pa.layers) expect(await exists(l)).toBe(true);
    const blobs = await readdir(path.join(store.root, 'blobs/sha256'));
    expect(blobs).toContain(a.layers[0]!.digest.slice(7));
    expect(blobs).not.toContain(b.layers[0]!.digest.slice(7));

    // b comes back on the next pull; a is free once its rootfs is gone.
    const again = await store.service.pull(`${registry.host}/gc/b:v1`);
    for (const l of again.layers) expect(await exists(l)).toBe(true);
    await store.service.removeRootfs('gc-a');
    await store.service.garbageCollect(0);
    for (const l of [...pa.layers, ...again.layers]) expect(await exists(l)).toBe(false);
    expect(await readdir(path.join(store.root, 'blobs/sha256'))).toEqual([]);
  });

  it('keeps recently pulled images within the grace period', async () => {
    const graceful = await makeStore({ gcGraceMs: 60_000 });
    try {
      const a = await buildImage({ layers: [{ files: { keep: 'me' } }] });
      await pushImage(registry.host, 'gc/recent', 'v1', a);
      const pulled = await graceful.service.pull(`${registry.host}/gc/recent:v1`);
      expect(await graceful.service.garbageCollect(0)).toEqual({ removedBytes: 0 });
      expect(await exists(pulled.layers[0]!)).toBe(true);
    } finally {
      await graceful.cleanup();
    }
  });
});
