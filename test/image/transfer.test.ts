// Downloads seen from a counting proxy: one download per blob however many
// pulls ask at once, blobs checked against their digests, progress reported.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildImage, pushImage, type BuiltImage } from '../../images/index.ts';
import { createImageService, ImagePullError, type PullProgress } from '../../node-agent/src/image/index.ts';
import { startRegistry, type TestRegistry } from '../harness/registry.ts';
import { makeStore, quietLogger, tmpLeftovers, type TestStore } from './helpers.ts';
import { startProxy, type TestProxy } from './proxy.ts';

let registry: TestRegistry;
let image: BuiltImage;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  registry = await startRegistry();
  image = await buildImage({
    layers: [
      { files: { 'one/data': Buffer.alloc(300_000, 1) } },
      { files: { 'two/data': Buffer.alloc(200_000, 2) }, compression: 'zstd' },
      { files: { 'three/data': Buffer.alloc(100_000, 3) }, compression: 'none' },
    ],
  });
  await pushImage(registry.host, 'test/shared', 'v1', image);
});

afterEach(async () => {
  const errors: unknown[] = [];
  while (cleanups.length) await cleanups.pop()!().catch((e: unknown) => errors.push(e));
  if (errors.length) throw errors[0];
});

afterAll(async () => {
  await registry?.stop();
});

async function setup(proxyOptions: Parameters<typeof startProxy>[1] = {}): Promise<{ proxy: TestProxy; store: TestStore }> {
  const proxy = await startProxy(registry.host, proxyOptions);
  cleanups.push(() => proxy.stop());
  const store = await makeStore();
  cleanups.push(() => store.cleanup());
  return { proxy, store };
}

describe('transfers', () => {
  it('downloads each blob once when many tasks pull one image at once', async () => {
    const { proxy, store } = await setup({ blobDelayMs: 100 });
    const pulls = await Promise.all(Array.from({ length: 8 }, () => store.service.pull(`${proxy.host}/test/shared:v1`)));
    expect(new Set(pulls.map((p) => p.digest))).toEqual(new Set([image.digest]));
    const gets = proxy.blobGets();
    const blobs = [image.configDigest, ...image.layers.map((l) => l.digest)];
    expect([...gets.keys()].sort()).toEqual([...blobs].sort());
    for (const b of blobs) expect(gets.get(b)).toBe(1);
    // and a later pull downloads nothing again
    await store.service.pull(`${proxy.host}/test/shared:v1`);
    expect([...proxy.blobGets().values()].every((n) => n === 1)).toBe(true);
  });

  it('two services (two agents) on one root download each blob once', async () => {
    const { proxy, store } = await setup({ blobDelayMs: 100 });
    const second = createImageService({ root: store.root, logger: quietLogger });
    const pulls = await Promise.all([store.service, second, store.service, second].map((s) => s.pull(`${proxy.host}/test/shared:v1`)));
    expect(new Set(pulls.map((p) => p.layers.join()))).toHaveProperty('size', 1);
    for (const n of proxy.blobGets().values()) expect(n).toBe(1);
    expect(await readdir(path.join(store.root, 'locks'))).toEqual([]);
  });

  for (const [i, kind] of [[0, 'gzip'], [1, 'zstd'], [2, 'uncompressed']] as const) {
    it(`refuses a ${kind} layer whose bytes do not match its digest, and keeps nothing of it`, async () => {
      const victim = image.layers[i]!.digest;
      const { proxy, store } = await setup({
        transformBlob: (digest, body) => {
          if (digest !== victim) return body;
          const copy = Buffer.from(body);
          const at = Math.floor(copy.length / 2);
          copy[at] = copy[at]! ^ 0xff;
          return copy;
        },
      });
      const err = await store.service.pull(`${proxy.host}/test/shared:v1`).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ImagePullError);
      expect((err as Error).message).toMatch(new RegExp(`^pull ${proxy.host}/test/shared:v1: blob ${victim}: digest mismatch`));
      const hex = victim.slice('sha256:'.length);
      expect(await readdir(path.join(store.root, 'blobs/sha256'))).not.toContain(hex);
      expect(await readdir(path.join(store.root, 'l'))).not.toContain(image.layers[i]!.diffID.slice(7, 19));
      expect(await tmpLeftovers(store.root)).toEqual([]);
    });
  }

  it('refuses a config whose bytes do not match its digest', async () => {
    const { proxy, store } = await setup({
      transformBlob: (digest, body) => (digest === image.configDigest ? Buffer.from(body.toString().replace('amd64', 'arm64')) : body),
    });
    await expect(store.service.pull(`${proxy.host}/test/shared:v1`)).rejects.toThrow(/digest mismatch/);
  });

  it('reports progress in bytes and layers', async () => {
    const { proxy, store } = await setup();
    const seen: PullProgress[] = [];
    await store.service.pull(`${proxy.host}/test/shared:v1`, { onProgress: (p) => seen.push(p) });
    const total = image.layers.reduce((n, l) => n + l.size, 0);
    expect(seen[0]).toEqual({ layersTotal: 3, layersDone: 0, bytesTotal: total, bytesDone: 0 });
    expect(seen.at(-1)).toEqual({ layersTotal: 3, layersDone: 3, bytesTotal: total, bytesDone: total });
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.bytesDone).toBeGreaterThanOrEqual(seen[i - 1]!.bytesDone);
  });
});
