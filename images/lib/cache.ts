// A build cache on disk, so the stock images (the node one takes seconds to
// gzip) are built once per machine, not once per test or start. The key is the
// build options with host files stood for by path, size, mtime and inode, and
// everything loaded back is checked against its digest.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildImage, sha256, toLayerSpec, type BuildImageOptions, type BuiltImage } from './image.ts';

const CACHE_VERSION = 1;

export function defaultCacheDir(): string {
  return process.env.BERTH_IMAGE_CACHE ?? path.join(os.tmpdir(), 'berth-image-cache');
}

/** A stable description of the inputs: contents hashed, host files by their stat. */
async function describe(value: unknown): Promise<unknown> {
  if (Buffer.isBuffer(value)) return { sha256: sha256(value) };
  if (Array.isArray(value)) return Promise.all(value.map(describe));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if ((key === 'source' || key === 'dir') && typeof v === 'string') {
        const st = await fs.stat(v);
        out[key] = { path: v, size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
        if (key === 'dir') out.tree = await treeStat(v);
      } else {
        out[key] = await describe(v);
      }
    }
    return out;
  }
  return value;
}

async function treeStat(dir: string): Promise<string> {
  const h = createHash('sha256');
  async function walk(d: string): Promise<void> {
    for (const n of (await fs.readdir(d)).sort()) {
      const p = path.join(d, n);
      const st = await fs.lstat(p);
      h.update(`${p}\0${st.mode}\0${st.size}\0${st.mtimeMs}\0${st.uid}\0${st.gid}\n`);
      if (st.isDirectory()) await walk(p);
    }
  }
  await walk(dir);
  return h.digest('hex');
}

export async function cacheKey(options: BuildImageOptions): Promise<string> {
  return createHash('sha256').update(JSON.stringify({ v: CACHE_VERSION, options: await describe(options) })).digest('hex');
}

interface Stored {
  mediaType: string;
  digest: string;
  configDigest: string;
  platform: BuiltImage['platform'];
  layers: Omit<BuiltImage['layers'][number], 'data'>[];
}

async function load(dir: string): Promise<BuiltImage | null> {
  try {
    const stored = JSON.parse(await fs.readFile(path.join(dir, 'image.json'), 'utf8')) as Stored;
    const manifest = await fs.readFile(path.join(dir, 'manifest'));
    const config = await fs.readFile(path.join(dir, 'config'));
    if (sha256(manifest) !== stored.digest || sha256(config) !== stored.configDigest) return null;
    const layers: BuiltImage['layers'] = [];
    for (const l of stored.layers) {
      const data = await fs.readFile(path.join(dir, l.digest.replace(':', '-')));
      if (sha256(data) !== l.digest) return null;
      layers.push({ ...l, data });
    }
    return { kind: 'image', mediaType: stored.mediaType, manifest, digest: stored.digest, config, configDigest: stored.configDigest, layers, platform: stored.platform };
  } catch {
    return null;
  }
}

async function save(dir: string, image: BuiltImage): Promise<void> {
  const tmp = `${dir}.tmp-${randomBytes(6).toString('hex')}`;
  await fs.mkdir(tmp, { recursive: true });
  try {
    const stored: Stored = {
      mediaType: image.mediaType, digest: image.digest, configDigest: image.configDigest, platform: image.platform,
      layers: image.layers.map(({ data: _data, ...rest }) => rest),
    };
    await fs.writeFile(path.join(tmp, 'manifest'), image.manifest);
    await fs.writeFile(path.join(tmp, 'config'), image.config);
    for (const l of image.layers) await fs.writeFile(path.join(tmp, l.digest.replace(':', '-')), l.data);
    await fs.writeFile(path.join(tmp, 'image.json'), JSON.stringify(stored));
    await fs.rm(dir, { recursive: true, force: true });
    await fs.rename(tmp, dir);
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** buildImage, or the same image from the cache when the inputs have not changed. */
export async function buildImageCached(input: BuildImageOptions, cacheDir = defaultCacheDir()): Promise<BuiltImage> {
  const options = { ...input, layers: input.layers.map(toLayerSpec) };
  const dir = path.join(cacheDir, await cacheKey(options));
  const hit = await load(dir);
  if (hit) return hit;
  const image = await buildImage(options);
  await fs.mkdir(cacheDir, { recursive: true });
  await save(dir, image).catch(() => undefined); // a cache that cannot be written is only slower
  return image;
}
