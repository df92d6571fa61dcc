// Layers from parts on this machine: a host directory, a map of paths to
// contents, or raw tar entries in the order given. Deterministic: entries
// sorted, mtimes fixed, owners 0 unless given, so the same inputs give the
// same digests.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { writeTar, type TarWriteEntry } from './tar-writer.ts';

export type Compression = 'gzip' | 'zstd' | 'none';

interface Common {
  mode?: number;
  uid?: number;
  gid?: number;
  /** Seconds since the epoch; the layer's mtime when absent. */
  mtime?: number;
  xattrs?: Record<string, string | Buffer>;
}

/** What one path of a `files` layer holds. A string or Buffer is a regular file, mode 0644. */
export type FileSpec =
  | string
  | Buffer
  | (Common & { type?: 'file'; content?: string | Buffer; /** copy this host file's bytes */ source?: string })
  | (Common & { type: 'dir' })
  | (Common & { type: 'symlink'; target: string })
  | { type: 'link'; target: string }
  /** An OCI whiteout: the path is deleted from the layers below. */
  | { type: 'whiteout' }
  /** The directory at this path hides everything below it in lower layers. */
  | (Common & { type: 'opaque' })
  | (Common & { type: 'char' | 'block' | 'fifo'; major?: number; minor?: number });

export type LayerSource =
  /** A directory on this machine, its contents at `prefix` (default the root). */
  | { dir: string; prefix?: string; /** keep the files' owners @defaultValue false */ keepOwners?: boolean }
  /** Paths (relative to the root, no leading slash needed) to what they hold; parents are implied. */
  | { files: Record<string, FileSpec> }
  /** Raw tar entries written exactly as given: no sorting, no cleaning (for tests of hostile layers). */
  | { entries: TarWriteEntry[] };

export type LayerSpec = LayerSource & {
  /** @defaultValue the image's compression, else 'gzip' */
  compression?: Compression;
  /** Seconds since the epoch for every entry. @defaultValue 0 */
  mtime?: number;
};

export interface BuiltLayer {
  /** Compressed (or not) blob bytes. */
  data: Buffer;
  digest: string;
  size: number;
  /** sha256 of the uncompressed tar. */
  diffID: string;
  compression: Compression;
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function clean(p: string): string {
  return p.split('/').filter((c) => c !== '' && c !== '.').join('/');
}

async function hostDirEntries(dir: string, prefix: string, keepOwners: boolean, mtime: number): Promise<TarWriteEntry[]> {
  const out: TarWriteEntry[] = [];
  const seen = new Map<string, string>(); // dev:ino → first name, for hard links
  async function walk(abs: string, rel: string): Promise<void> {
    const names = (await fs.readdir(abs)).sort();
    for (const n of names) {
      const a = path.join(abs, n);
      const r = rel ? `${rel}/${n}` : n;
      const st = await fs.lstat(a);
      const common = { name: r, mode: st.mode & 0o7777, uid: keepOwners ? st.uid : 0, gid: keepOwners ? st.gid : 0, mtime };
      if (st.isDirectory()) {
        out.push({ ...common, type: 'dir' });
        await walk(a, r);
      } else if (st.isSymbolicLink()) {
        out.push({ ...common, type: 'symlink', linkname: await fs.readlink(a) });
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? seen.get(key) : undefined;
        if (first) out.push({ ...common, type: 'link', linkname: first });
        else {
          if (st.nlink > 1) seen.set(key, r);
          out.push({ ...common, type: 'file', data: await fs.readFile(a) });
        }
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        out.push({ ...common, type: st.isCharacterDevice() ? 'char' : 'block', devmajor: Math.floor(st.rdev / 256) & 0xfff, devminor: (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00) });
      } else if (st.isFIFO()) {
        out.push({ ...common, type: 'fifo' });
      }
    }
  }
  await walk(dir, '');
  const base = clean(prefix);
  if (!base) return out;
  const parents: TarWriteEntry[] = base.split('/').map((_, i, parts) => ({ name: parts.slice(0, i + 1).join('/'), type: 'dir', mode: 0o755, mtime }));
  return [...parents, ...out.map((e) => ({ ...e, name: `${base}/${e.name}`, linkname: e.type === 'link' ? `${base}/${e.linkname}` : e.linkname }))];
}

async function fileMapEntries(files: Record<string, FileSpec>, mtime: number): Promise<TarWriteEntry[]> {
  const entries = new Map<string, TarWriteEntry>();
  const implied = (name: string) => {
    const parts = name.split('/');
    for (let i = 1; i < parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      if (!entries.has(p)) entries.set(p, { name: p, type: 'dir', mode: 0o755, mtime });
    }
  };
  for (const [rawName, spec] of Object.entries(files)) {
    const name = clean(rawName);
    if (!name) throw new Error(`layer files: "${rawName}" names the root`);
    implied(name);
    if (typeof spec === 'string' || Buffer.isBuffer(spec)) {
      entries.set(name, { name, type: 'file', mode: 0o644, mtime, data: Buffer.from(spec) });
      continue;
    }
    const c = spec as Common;
    const common = { uid: c.uid ?? 0, gid: c.gid ?? 0, mtime: c.mtime ?? mtime, xattrs: c.xattrs };
    switch (spec.type) {
      case undefined:
      case 'file': {
        const data = spec.source !== undefined ? await fs.readFile(spec.source) : Buffer.from(spec.content ?? '');
        const mode = spec.mode ?? (spec.source !== undefined ? (await fs.stat(spec.source)).mode & 0o7777 : 0o644);
        entries.set(name, { ...common, name, type: 'file', mode, data });
        break;
      }
      case 'dir':
        entries.set(name, { ...common, name, type: 'dir', mode: spec.mode ?? 0o755 });
        break;
      case 'symlink':
        entries.set(name, { ...common, name, type: 'symlink', mode: 0o777, linkname: spec.target });
        break;
      case 'link':
        entries.set(name, { name, type: 'link', mtime, linkname: clean(spec.target) });
        break;
      case 'whiteout': {
        const dir = path.posix.dirname(name);
        const wh = `${dir === '.' ? '' : `${dir}/`}.wh.${path.posix.basename(name)}`;
        entries.set(wh, { name: wh, type: 'file', mode: 0o644, mtime, data: Buffer.alloc(0) });
        break;
      }
      case 'opaque': {
        if (!entries.has(name) || entries.get(name)!.type !== 'dir' || c.mode !== undefined) {
          entries.set(name, { ...common, name, type: 'dir', mode: c.mode ?? 0o755 });
        }
        const opq = `${name}/.wh..wh..opq`;
        entries.set(opq, { name: opq, type: 'file', mode: 0o644, mtime, data: Buffer.alloc(0) });
        break;
      }
      case 'char':
      case 'block':
      case 'fifo':
        entries.set(name, { ...common, name, type: spec.type, mode: spec.mode ?? 0o666, devmajor: spec.major ?? 0, devminor: spec.minor ?? 0 });
        break;
    }
  }
  // Sorted by path; a parent sorts before its children. Hard links after their targets.
  const sorted = [...entries.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const links = sorted.filter((e) => e.type === 'link');
  return [...sorted.filter((e) => e.type !== 'link'), ...links];
}

export async function layerTar(spec: LayerSpec): Promise<Buffer> {
  const mtime = spec.mtime ?? 0;
  let entries: TarWriteEntry[];
  if ('entries' in spec) entries = spec.entries;
  else if ('files' in spec) entries = await fileMapEntries(spec.files, mtime);
  else entries = await hostDirEntries(spec.dir, spec.prefix ?? '', spec.keepOwners ?? false, mtime);
  return writeTar(entries);
}

function zstdCompress(data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('zstd', ['-q', '-c', '-3', '-T1'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT' ? new Error('zstd layers need the `zstd` program (apt-get install zstd)') : e));
    child.once('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`zstd: ${err.trim() || `exit ${code}`}`))));
    child.stdin.on('error', () => undefined);
    child.stdin.end(data);
  });
}

const gzip = promisify(zlib.gzip);

export async function compress(tar: Buffer, compression: Compression): Promise<Buffer> {
  if (compression === 'none') return tar;
  if (compression === 'zstd') return zstdCompress(tar);
  // zlib writes mtime 0 and no name in the gzip header: deterministic.
  return gzip(tar, { level: 6 });
}

export async function buildLayer(spec: LayerSpec, defaultCompression: Compression = 'gzip'): Promise<BuiltLayer> {
  const tar = await layerTar(spec);
  const compression = spec.compression ?? defaultCompression;
  const data = await compress(tar, compression);
  return { data, digest: sha256(data), size: data.length, diffID: sha256(tar), compression };
}
