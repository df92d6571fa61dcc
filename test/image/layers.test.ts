// What the layers become: whiteouts and opaque directories seen through the
// overlay rootfs, gzip + zstd + uncompressed layers in one image, owners,
// modes, xattrs, hard links, device nodes, mtimes; manifest lists; many layers.
import { execFileSync } from 'node:child_process';
import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage, buildIndex, pushImage } from '../../images/index.ts';
import { startRegistry, type TestRegistry } from '../harness/registry.ts';
import { makeStore, type TestStore } from './helpers.ts';

let registry: TestRegistry;
let store: TestStore;
const T = 1_700_000_000;

beforeAll(async () => {
  registry = await startRegistry();
  store = await makeStore();
});

afterAll(async () => {
  try {
    await store?.cleanup();
  } finally {
    await registry?.stop();
  }
});

const exists = (p: string) => lstat(p).then(() => true, () => false);

describe('layers', () => {
  it('applies whiteouts and opaque dirs across gzip, zstd and uncompressed layers', async () => {
    const image = await buildImage({
      layers: [
        {
          compression: 'gzip',
          mtime: T,
          files: {
            'a.txt': 'a\n',
            'dir/keep.txt': 'keep\n',
            'dir/gone.txt': 'gone\n',
            'opq/old1': 'old\n',
            'opq/sub/old2': 'old\n',
            'link': { type: 'symlink', target: 'a.txt' },
            'owned': { content: 'x', uid: 1234, gid: 5678, mode: 0o4755 },
          },
        },
        {
          compression: 'zstd',
          mtime: T,
          files: {
            'dir/gone.txt': { type: 'whiteout' },
            'a.txt': { type: 'whiteout' },
            'opq': { type: 'opaque' },
            'opq/new.txt': 'new\n',
            'b.txt': 'b\n',
          },
        },
        {
          compression: 'none',
          mtime: T,
          files: {
            'c.txt': { content: 'c\n', xattrs: { 'user.berth': 'yes', 'security.capability': Buffer.from([1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) } },
            'c-hard': { type: 'link', target: 'c.txt' },
            'dev/null': { type: 'char', major: 1, minor: 3, mode: 0o666 },
            'dev/fifo': { type: 'fifo', mode: 0o600 },
          },
        },
      ],
      config: { Cmd: ['sh'] },
    });
    expect(image.layers.map((l) => l.mediaType)).toEqual([
      'application/vnd.oci.image.layer.v1.tar+gzip',
      'application/vnd.oci.image.layer.v1.tar+zstd',
      'application/vnd.oci.image.layer.v1.tar',
    ]);
    await pushImage(registry.host, 'test/layers', 'v1', image);
    const pulled = await store.service.pull(`${registry.host}/test/layers:v1`);
    expect(pulled.layers).toHaveLength(3);

    // In the layer itself: a 0/0 character device and the opaque xattr.
    const wh = await lstat(path.join(pulled.layers[1]!, 'a.txt'));
    expect(wh.isCharacterDevice()).toBe(true);
    expect(wh.rdev).toBe(0);
    expect(execFileSync('getfattr', ['--absolute-names', '--only-values', '-n', 'trusted.overlay.opaque', path.join(pulled.layers[1]!, 'opq')], { encoding: 'utf8' })).toBe('y');

    const rootfs = await store.service.mountRootfs('layers-1', pulled);
    try {
      expect((await readdir(rootfs)).sort()).toEqual(['b.txt', 'c-hard', 'c.txt', 'dev', 'dir', 'link', 'opq', 'owned']);
      expect(await readdir(path.join(rootfs, 'dir'))).toEqual(['keep.txt']);
      expect(await readdir(path.join(rootfs, 'opq'))).toEqual(['new.txt']);
      expect(await exists(path.join(rootfs, 'a.txt'))).toBe(false);
      expect((await lstat(path.join(rootfs, 'link'))).isSymbolicLink()).toBe(true);
      const owned = await stat(path.join(rootfs, 'owned'));
      expect([owned.uid, owned.gid, owned.mode & 0o7777]).toEqual([1234, 5678, 0o4755]);
      expect(owned.mtimeMs).toBe(T * 1000);
      expect((await stat(path.join(rootfs, 'dir'))).mtimeMs).toBe(T * 1000);
      const c = await stat(path.join(rootfs, 'c.txt'));
      expect((await stat(path.join(rootfs, 'c-hard'))).ino).toBe(c.ino);
      expect(c.nlink).toBe(2);
      expect(execFileSync('getfattr', ['--absolute-names', '--only-values', '-n', 'user.berth', path.join(rootfs, 'c.txt')], { encoding: 'utf8' })).toBe('yes');
      expect(execFileSync('getfattr', ['--absolute-names', '-e', 'hex', '-n', 'security.capability', path.join(rootfs, 'c.txt')], { encoding: 'utf8' })).toContain('0x0100000200200000');
      const dev = await lstat(path.join(rootfs, 'dev/null'));
      expect(dev.isCharacterDevice()).toBe(true);
      expect(dev.rdev).toBe(259); // makedev(1, 3)
      expect((await lstat(path.join(rootfs, 'dev/fifo'))).isFIFO()).toBe(true);
      expect(await readFile(path.join(rootfs, 'opq/new.txt'), 'utf8')).toBe('new\n');
    } finally {
      await store.service.removeRootfs('layers-1');
    }
  });

  it('selects linux/amd64 from an OCI index and from a Docker manifest list', async () => {
    for (const format of ['oci', 'docker'] as const) {
      const amd = await buildImage({ format, platform: { os: 'linux', architecture: 'amd64' }, layers: [{ files: { arch: 'amd64\n' } }] });
      const arm = await buildImage({ format, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, layers: [{ files: { arch: 'arm64\n' } }] });
      const index = buildIndex([arm, amd], { format });
      await pushImage(registry.host, `test/multi-${format}`, 'v1', index);
      const pulled = await store.service.pull(`${registry.host}/test/multi-${format}:v1`);
      expect(pulled.digest).toBe(amd.digest);
      expect(await readFile(path.join(pulled.layers[0]!, 'arch'), 'utf8')).toBe('amd64\n');
      // by the index's digest too
      const byDigest = await store.service.pull(`${registry.host}/test/multi-${format}@${index.digest}`);
      expect(byDigest.digest).toBe(amd.digest);
    }
  });

  it('says which platforms an index has when the host has none', async () => {
    const arm = await buildImage({ platform: { os: 'linux', architecture: 'arm64' }, layers: [{ files: { arch: 'arm64\n' } }] });
    await pushImage(registry.host, 'test/armonly', 'v1', buildIndex([arm]));
    await expect(store.service.pull(`${registry.host}/test/armonly:v1`)).rejects.toThrow(/no manifest for linux\/amd64 .*it has: linux\/arm64/);
  });

  it('refuses an image for another OS', async () => {
    const win = await buildImage({ platform: { os: 'windows', architecture: 'amd64' }, layers: [{ files: { x: 'x' } }] });
    await pushImage(registry.host, 'test/windows', 'v1', win);
    await expect(store.service.pull(`${registry.host}/test/windows:v1`)).rejects.toThrow(/the image is for windows\/amd64; this host runs linux containers/);
  });

  it('mounts an image of 100 layers (the mount options stay short)', async () => {
    const layers = Array.from({ length: 100 }, (_, i) => ({ compression: 'none' as const, files: { [`f/${String(i).padStart(3, '0')}`]: `${i}\n` } }));
    const image = await buildImage({ layers });
    await pushImage(registry.host, 'test/many', 'v1', image);
    const pulled = await store.service.pull(`${registry.host}/test/many:v1`);
    const rootfs = await store.service.mountRootfs('many-1', pulled);
    try {
      expect(await readdir(path.join(rootfs, 'f'))).toHaveLength(100);
    } finally {
      await store.service.removeRootfs('many-1');
    }
  });

  it('mounts an image that lists the same layer twice', async () => {
    const same = { files: { 'same.txt': 'same\n' } };
    const image = await buildImage({ layers: [same, { files: { 'same.txt': { type: 'whiteout' as const }, 'mid.txt': 'mid\n' } }, same] });
    expect(image.layers[0]!.digest).toBe(image.layers[2]!.digest);
    await pushImage(registry.host, 'test/twice', 'v1', image);
    const pulled = await store.service.pull(`${registry.host}/test/twice:v1`);
    const rootfs = await store.service.mountRootfs('twice-1', pulled);
    try {
      expect((await readdir(rootfs)).sort()).toEqual(['mid.txt', 'same.txt']);
    } finally {
      await store.service.removeRootfs('twice-1');
    }
  });

  it('refuses image volumes that climb out of the root', async () => {
    const image = await buildImage({ layers: [{ files: { x: 'x' } }], config: { Volumes: ['/../../etc'] } });
    await pushImage(registry.host, 'test/volume', 'v1', image);
    await expect(store.service.pull(`${registry.host}/test/volume:v1`)).rejects.toThrow(/volume "\/..\/..\/etc" climbs out of the root/);
  });
});
