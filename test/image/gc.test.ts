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
    expect(blobs).not.toContain(b.layers[0]!.digest.slice(7));
    // a's manifest and config stay; its compressed layer went last, its layer being unpacked.
    expect(blobs).toEqual(expect.arrayContaining([a.digest.slice(7), a.configDigest.slice(7)]));
    expect(blobs).not.toContain(a.layers[0]!.digest.slice(7));
    // and a pulls again without downloading anything
    expect((await store.service.pull(`${registry.host}/gc/a:v1`)).layers).toEqual(pa.layers);

    // b comes back on the next pull; a is free once its rootfs is gone.
    const again = await store.service.pull(`${registry.host}/gc/b:v1`);
    for (const l of again.layers) expect(await exists(l)).toBe(true);
    await store.service.removeRootfs('gc-a');
    await store.service.removeRootfs('gc-a');
    await store.service.garbageCollect(0);
    for (const l of [...pa.layers, ...again.layers]) expect(await exists(l)).toBe(false);
    expect(await readdir(path.join(store.root, 'blobs/sha256'))).toEqual([]);
  });

  it('fetches again an image taken from the store before garbage collection removed it', async () => {
    const d = await buildImage({ layers: [{ files: { d: Buffer.alloc(50_000, 'd') } }] });
    await pushImage(registry.host, 'gc/d', 'v1', d);
    const first = await store.service.pull(`${registry.host}/gc/d:v1`);
    // Within the tag cache: found in the store without asking the registry.
    expect((await store.service.pull(`${registry.host}/gc/d:v1`)).layers).toEqual(first.layers);
    await store.service.garbageCollect(0);
    for (const l of first.layers) expect(await exists(l)).toBe(false);
    const again = await store.service.pull(`${registry.host}/gc/d:v1`);
    for (const l of again.layers) expect(await exists(l)).toBe(true);
    await store.service.mountRootfs('gc-d', again);
    await store.service.removeRootfs('gc-d');
    await store.service.garbageCollect(0); // the store empty again, for the next test's budget
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

  it('drops compressed layer blobs of images in use before anything in use, and only to meet the budget', async () => {
    const c = await buildImage({ layers: [{ files: { c: Buffer.alloc(200_000, 'c') } }] });
    await pushImage(registry.host, 'gc/c', 'v1', c);
    const pc = await store.service.pull(`${registry.host}/gc/c:v1`);
    await store.service.mountRootfs('gc-c', pc);
    try {
      expect(await store.service.garbageCollect(1e12)).toEqual({ removedBytes: 0 });
      const { removedBytes } = await store.service.garbageCollect(0);
      expect(removedBytes).toBe(c.layers[0]!.size);
      expect(await exists(pc.layers[0]!)).toBe(true);
      const again = await store.service.pull(`${registry.host}/gc/c:v1`);
      expect(again.layers).toEqual(pc.layers);
    } finally {
      await store.service.removeRootfs('gc-c');
    }
  });
});
