// Hostile layers: each is refused with an error naming the entry, and nothing
// is written, chmodded or removed outside the store (a canary dir proves it).
import { chmod, lstat, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildImage, pushImage, type LayerSpec, type TarWriteEntry } from '../../images/index.ts';
import { ImagePullError } from '../../node-agent/src/image/index.ts';
import { startRegistry, type TestRegistry } from '../harness/registry.ts';
import { makeStore, tmpLeftovers, type TestStore } from './helpers.ts';

let registry: TestRegistry;
let store: TestStore;
let canary: string;
let n = 0;

beforeAll(async () => {
  registry = await startRegistry();
});

afterAll(async () => {
  await registry?.stop();
});

beforeEach(async () => {
  store = await makeStore();
  canary = await mkdtemp(path.join(os.tmpdir(), 'berth-canary-'));
  await writeFile(path.join(canary, 'victim'), 'untouched\n');
  await chmod(path.join(canary, 'victim'), 0o600);
  await chmod(canary, 0o700);
});

afterEach(async () => {
  await store?.cleanup();
  await rm(canary, { recursive: true, force: true });
});

async function expectCanaryUntouched(): Promise<void> {
  expect(await readdir(canary)).toEqual(['victim']);
  expect(await readFile(path.join(canary, 'victim'), 'utf8')).toBe('untouched\n');
  expect((await stat(path.join(canary, 'victim'))).mode & 0o7777).toBe(0o600);
  expect((await stat(canary)).mode & 0o7777).toBe(0o700);
}

/** Builds, pushes and pulls an image of these layers; returns the pull's error. */
async function pullOf(...layers: TarWriteEntry[][]): Promise<Error> {
  const specs: LayerSpec[] = layers.map((entries) => ({ entries }));
  const image = await buildImage({ layers: specs });
  const repo = `evil/case${++n}`;
  await pushImage(registry.host, repo, 'v1', image);
  const err = await store.service.pull(`${registry.host}/${repo}:v1`).then(() => null, (e: unknown) => e as Error);
  expect(err).toBeInstanceOf(ImagePullError);
  // Nothing half-unpacked is left where it could be used.
  expect(await tmpLeftovers(store.root)).toEqual([]);
  return err!;
}

const file = (name: string, content = 'pwned\n'): TarWriteEntry => ({ name, type: 'file', data: Buffer.from(content), mode: 0o644 });
const dir = (name: string, mode = 0o755): TarWriteEntry => ({ name, type: 'dir', mode });
const symlink = (name: string, target: string): TarWriteEntry => ({ name, type: 'symlink', linkname: target });

describe('hostile layers are refused', () => {
  it('a path with ".."', async () => {
    const err = await pullOf([dir('a'), file(`a/../../../../../../../..${canary}/pwned`)]);
    expect(err.message).toMatch(/entry "a\/\.\.\/.*pwned": path climbs out with "\.\."/);
    await expectCanaryUntouched();
  });

  it('an absolute path', async () => {
    const err = await pullOf([file(`${canary}/pwned`)]);
    expect(err.message).toContain(`entry "${canary}/pwned": absolute path`);
    await expectCanaryUntouched();
  });

  it('a file under a symlinked parent', async () => {
    const err = await pullOf([symlink('esc', canary), file('esc/pwned')]);
    expect(err.message).toContain('entry "esc/pwned": parent "esc" is a symlink planted by an earlier entry');
    await expectCanaryUntouched();
  });

  it('a hard link to outside the layer', async () => {
    let err = await pullOf([{ name: 'hl', type: 'link', linkname: `../../../../../../..${canary}/victim` }]);
    expect(err.message).toMatch(/entry "hl": path climbs out/);
    err = await pullOf([{ name: 'hl', type: 'link', linkname: `${canary}/victim` }]);
    expect(err.message).toContain('entry "hl": absolute path');
    err = await pullOf([symlink('esc', canary), { name: 'hl', type: 'link', linkname: 'esc/victim' }]);
    expect(err.message).toContain('entry "hl": hard link to "esc/victim", which is not in this layer');
    await expectCanaryUntouched();
  });

  it('a symlink planted, then written through, in one layer', async () => {
    const err = await pullOf([symlink('x', `${canary}/victim`), file('x')]);
    expect(err.message).toContain('entry "x": "x" is a symlink planted by an earlier entry; refusing to write or chmod through it');
    await expectCanaryUntouched();
  });

  it('a symlink planted in one layer, written through in the next', async () => {
    const err = await pullOf([symlink('x', canary)], [file('x/pwned')]);
    expect(err.message).toMatch(/refusing layer sha256:[a-f0-9]{64}: entry "x\/pwned": parent "x" is a symlink from a lower layer/);
    await expectCanaryUntouched();
  });

  it('a chmod through a symlink (a directory entry over a symlink, CVE-2021-32760)', async () => {
    const err = await pullOf([symlink('s', canary), dir('s', 0o777)]);
    expect(err.message).toContain('entry "s/": "s" is a symlink planted by an earlier entry');
    const err2 = await pullOf([symlink('s', `${canary}/victim`), { ...file('s'), mode: 0o777 }]);
    expect(err2.message).toContain('entry "s": "s" is a symlink planted');
    await expectCanaryUntouched();
  });

  it('a chmod through a lower layer\'s symlink replaces the symlink instead', async () => {
    // A directory in an upper layer over a symlink below is a legitimate change of type:
    // overlayfs shows the directory, and nothing outside is touched.
    const image = await buildImage({ layers: [{ entries: [symlink('s', canary)] }, { entries: [dir('s', 0o777)] }] });
    await pushImage(registry.host, 'evil/replace', 'v1', image);
    const pulled = await store.service.pull(`${registry.host}/evil/replace:v1`);
    const rootfs = await store.service.mountRootfs('replace-1', pulled);
    try {
      expect((await lstat(path.join(rootfs, 's'))).isDirectory()).toBe(true);
    } finally {
      await store.service.removeRootfs('replace-1');
    }
    await expectCanaryUntouched();
  });

  it('a whiteout through a symlink, in one layer and across layers', async () => {
    let err = await pullOf([symlink('w', canary), file('w/.wh.victim', '')]);
    expect(err.message).toContain('entry "w/.wh.victim": parent "w" is a symlink planted by an earlier entry');
    err = await pullOf([symlink('w', canary)], [file('w/.wh.victim', '')]);
    expect(err.message).toContain('entry "w/.wh.victim": parent "w" is a symlink from a lower layer');
    err = await pullOf([symlink('w', canary), file('w/.wh..wh..opq', '')]);
    expect(err.message).toContain('entry "w/.wh..wh..opq": parent "w" is a symlink planted by an earlier entry');
    await expectCanaryUntouched();
  });

  it('a symlink chain in the middle of a path', async () => {
    const err = await pullOf([dir('a'), symlink('a/b', canary), file('a/b/c/pwned')]);
    expect(err.message).toContain('entry "a/b/c/pwned": parent "a/b" is a symlink planted by an earlier entry');
    await expectCanaryUntouched();
  });
});
