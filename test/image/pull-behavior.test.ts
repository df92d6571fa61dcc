// When a start asks the registry about an image the store already has
// (node-agent/src/image/pull-behavior.ts), counted through a proxy in front of
// a real docker-registry; and reading an image's files from its layers alone.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage, pushImage, type BuiltImage } from '../../images/index.ts';
import { parsePullBehavior } from '../../node-agent/src/image/index.ts';
import { startRegistry, type TestRegistry } from '../harness/registry.ts';
import { makeStore, type TestStore } from './helpers.ts';
import { startProxy, type TestProxy } from './proxy.ts';

let registry: TestRegistry;
let first: BuiltImage;
let second: BuiltImage;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  registry = await startRegistry();
  first = await buildImage({ layers: [{ files: { 'etc/passwd': 'root:x:0:0::/root:/bin/sh\n', 'v': '1\n' } }] });
  second = await buildImage({ layers: [{ files: { 'v': '2\n' } }] });
  await pushImage(registry.host, 'behave/img', 'v1', first);
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await registry?.stop();
});

async function setup(options: Parameters<typeof makeStore>[0] = {}): Promise<{ proxy: TestProxy; store: TestStore }> {
  const proxy = await startProxy(registry.host);
  cleanups.push(() => proxy.stop());
  const store = await makeStore(options);
  cleanups.push(() => store.cleanup());
  return { proxy, store };
}

const manifestGets = (proxy: TestProxy) => proxy.requests.filter((r) => r.url.includes('/manifests/')).length;

describe('image pull behaviour', () => {
  it('default: a reference resolved with the same credentials moments ago is not asked about again; other credentials are', async () => {
    const { proxy, store } = await setup();
    const ref = `${proxy.host}/behave/img:v1`;
    const a = await store.service.pull(ref);
    const asked = manifestGets(proxy);
    expect(asked).toBeGreaterThan(0);
    const b = await store.service.pull(ref);
    expect(b).toEqual(a);
    expect(manifestGets(proxy)).toBe(asked);
    // Different credentials are asked about: the registry decides whether they may read it.
    await store.service.pull(ref, { credentials: { username: 'someone', password: 'else' } });
    expect(manifestGets(proxy)).toBeGreaterThan(asked);
    // By digest too.
    const byDigest = `${proxy.host}/behave/img@${first.digest}`;
    await store.service.pull(byDigest);
    const afterDigest = manifestGets(proxy);
    await store.service.pull(byDigest);
    expect(manifestGets(proxy)).toBe(afterDigest);
  });

  it('default: once the cache time is over, a pushed tag is seen', async () => {
    const { proxy, store } = await setup({ tagCacheMs: 50 });
    await pushImage(registry.host, 'behave/moving', 'v1', first);
    const ref = `${proxy.host}/behave/moving:v1`;
    expect((await store.service.pull(ref)).digest).toBe(first.digest);
    await pushImage(registry.host, 'behave/moving', 'v1', second);
    await new Promise((r) => setTimeout(r, 80));
    expect((await store.service.pull(ref)).digest).toBe(second.digest);
  });

  it('always asks on every start; prefer-cached asks only for what the store lacks', async () => {
    const { proxy, store } = await setup({ pullBehavior: 'always' });
    const ref = `${proxy.host}/behave/img:v1`;
    await store.service.pull(ref);
    const asked = manifestGets(proxy);
    await store.service.pull(ref);
    expect(manifestGets(proxy)).toBe(2 * asked);
    const cached = await store.service.pull(ref, { behavior: 'prefer-cached' });
    expect(cached.digest).toBe(first.digest);
    expect(manifestGets(proxy)).toBe(2 * asked);
    await expect(store.service.pull(`${proxy.host}/behave/missing:v1`, { behavior: 'prefer-cached' })).rejects.toThrow(/manifest unknown|not found/i);
  });

  it('refuses an unknown behaviour by name', () => {
    expect(parsePullBehavior(undefined)).toBe('default');
    expect(parsePullBehavior('once')).toBe('once');
    expect(() => parsePullBehavior('sometimes')).toThrow('unknown image pull behaviour "sometimes" (expected one of default, always, once, prefer-cached)');
  });
});

describe('image files from the layers', () => {
  it('shows what the mounted rootfs shows: whiteouts, opaque directories, no symlinks followed', async () => {
    const layered = await buildImage({
      layers: [
        { files: { 'etc/passwd': 'low:x:1:1::/:/bin/sh\n', 'etc/group': 'g:x:5:\n', 'a/keep': 'low\n', 'b/gone': 'x\n', 'c/hidden': 'x\n' } },
        { files: { 'etc/passwd': 'app:x:1000:1000::/:/bin/sh\n', 'etc/group': { type: 'whiteout' }, 'c': { type: 'opaque' }, 'c/new': 'y\n', 'link': { type: 'symlink', target: '/etc' } } },
      ],
    });
    await pushImage(registry.host, 'behave/layered', 'v1', layered);
    const { proxy, store } = await setup();
    const pulled = await store.service.pull(`${proxy.host}/behave/layered:v1`);
    const rootfs = await store.service.mountRootfs('files-1', pulled);
    try {
      for (const file of ['etc/passwd', 'etc/group', 'a/keep', 'c/hidden', 'c/new', 'link/passwd', 'nothing/here']) {
        const mounted = await readFile(path.join(rootfs, file), 'utf8').catch(() => null);
        const expected = file === 'link/passwd' ? null : mounted; // a symlink on the way is not followed
        expect(await store.service.readImageFile(pulled, file), file).toBe(expected);
      }
      expect(await store.service.readImageFile(pulled, 'etc/passwd')).toBe('app:x:1000:1000::/:/bin/sh\n');
    } finally {
      await store.service.removeRootfs('files-1');
    }
  });
});
