// The image builder on its own: layer forms, config spellings, determinism,
// the build cache.
import { chmod, link, mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage, buildImageCached } from '../../images/index.ts';
import { readTar, type TarHeader } from '../../node-agent/src/image/tar-reader.ts';

let top: string;
let app: string;

beforeAll(async () => {
  top = await mkdtemp(path.join(os.tmpdir(), 'berth-build-'));
  app = path.join(top, 'app');
  await mkdir(path.join(app, 'lib'), { recursive: true });
  await writeFile(path.join(app, 'main.js'), 'console.log(1)\n');
  await chmod(path.join(app, 'main.js'), 0o755);
  await writeFile(path.join(app, 'lib', 'a.js'), 'a\n');
  await link(path.join(app, 'lib', 'a.js'), path.join(app, 'lib', 'b.js'));
});

afterAll(async () => {
  await rm(top, { recursive: true, force: true });
});

async function entries(tar: Buffer): Promise<TarHeader[]> {
  const out: TarHeader[] = [];
  for await (const { header, body } of readTar((async function* () { yield tar; })())) {
    for await (const _ of body) { /* skip data */ }
    out.push(header);
  }
  return out;
}

describe('buildImage', () => {
  it('takes a directory path and a bare file map as layers, and the agent\'s config spelling', async () => {
    const image = await buildImage({
      layers: [app, { 'etc/app.conf': 'x=1\n' }, { dir: app, prefix: 'opt/app' }],
      config: { entrypoint: ['node'], cmd: ['/main.js'], workingDir: '/', exposedPorts: ['8080/tcp'] },
    });
    const config = JSON.parse(image.config.toString()) as { config: Record<string, unknown>; rootfs: { diff_ids: string[] } };
    expect(config.config).toMatchObject({ Entrypoint: ['node'], Cmd: ['/main.js'], WorkingDir: '/', ExposedPorts: { '8080/tcp': {} } });
    expect(config.rootfs.diff_ids).toEqual(image.layers.map((l) => l.diffID));
    const first = await entries(gunzipSync(image.layers[0]!.data));
    expect(first.map((e) => `${e.type} ${e.name}${e.linkname ? ` -> ${e.linkname}` : ''}`)).toEqual([
      'dir lib/', 'file lib/a.js', 'link lib/b.js -> lib/a.js', 'file main.js',
    ]);
    expect(first.find((e) => e.name === 'main.js')!.mode).toBe(0o755);
    expect(first.every((e) => e.mtime === 0 && e.uid === 0 && e.gid === 0)).toBe(true);
    const second = await entries(gunzipSync(image.layers[1]!.data));
    expect(second.map((e) => e.name)).toEqual(['etc/', 'etc/app.conf']);
    const third = await entries(gunzipSync(image.layers[2]!.data));
    expect(third.map((e) => e.name)).toContain('opt/app/lib/b.js');
    expect(third.find((e) => e.name === 'opt/app/lib/b.js')!.linkname).toBe('opt/app/lib/a.js');
  });

  it('gives the same digests for the same inputs whatever the files\' mtimes', async () => {
    const a = await buildImage({ layers: [app] });
    await utimes(path.join(app, 'main.js'), 1_000_000, 1_000_000);
    const b = await buildImage({ layers: [app] });
    expect(b.digest).toBe(a.digest);
  });

  it('refuses zstd in a Docker schema-2 image', async () => {
    await expect(buildImage({ format: 'docker', compression: 'zstd', layers: [{ x: 'y' }] })).rejects.toThrow(/no zstd/);
  });

  it('caches builds and notices changed inputs', async () => {
    const cache = path.join(top, 'cache');
    const options = { layers: [app] };
    const first = await buildImageCached(options, cache);
    const again = await buildImageCached(options, cache);
    expect(again.digest).toBe(first.digest);
    expect(again.layers[0]!.data.equals(first.layers[0]!.data)).toBe(true);
    await writeFile(path.join(app, 'main.js'), 'console.log(2)\n');
    const changed = await buildImageCached(options, cache);
    expect(changed.digest).not.toBe(first.digest);
    expect(changed.digest).toBe((await buildImage(options)).digest);
  });
});
