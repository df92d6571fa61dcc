// The content store on disk:
//   blobs/<algo>/<hex>      verified blobs (indexes, manifests, configs, layer blobs)
//   l/<short hex>           unpacked layers (short names keep overlay mount options small)
//   meta/layers/<hex>.json  what we know of each unpacked layer, keyed by its diffID
//   images/<hex>.json       one record per pulled image manifest
//   containers/<id>/        a container's upper, work and rootfs dirs
//   tmp/                    downloads and unpacks in progress (never used before renamed)
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { constants as C } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { LayerIndex } from './unpack.ts';

const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

export class DigestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DigestError';
  }
}

export function checkDigest(digest: string): { algo: 'sha256' | 'sha512'; hex: string } {
  if (!DIGEST.test(digest)) throw new DigestError(`unsupported or malformed digest "${digest}"`);
  const [algo, hex] = digest.split(':') as ['sha256' | 'sha512', string];
  return { algo, hex };
}

export function digestOf(data: Buffer, algo: 'sha256' | 'sha512' = 'sha256'): string {
  return `${algo}:${createHash(algo).update(data).digest('hex')}`;
}

export interface LayerRecord {
  diffID: string;
  /** The compressed blob it came from. */
  blob: string;
  /** Directory name under l/. */
  dir: string;
  size: number;
  index: LayerIndex;
  created: number;
}

export interface ImageRecord {
  digest: string;
  references: string[];
  /** Every blob the image needs: index, manifest, config, layer blobs. */
  blobs: string[];
  /** Layer diffIDs, lowest first. */
  layers: string[];
  lastUsed: number;
}

/** Writes data to a temp file, verifying size and digest, and renames it into place. */
/** Bytes a blob writer lets wait for the disk before write() waits too. */
const WRITE_BEHIND_BYTES = 8 * 1024 * 1024;

export class BlobWriter {
  private readonly hash: Hash;
  private size = 0;
  private writes: Promise<void> = Promise.resolve();
  private queuedBytes = 0;
  private writeError: unknown;
  private constructor(
    private readonly store: Store,
    private readonly digest: string,
    private readonly expectedSize: number | undefined,
    private readonly tmp: string,
    private readonly fh: fs.FileHandle,
  ) {
    this.hash = createHash(checkDigest(digest).algo);
  }

  static async open(store: Store, digest: string, expectedSize?: number): Promise<BlobWriter> {
    checkDigest(digest);
    const tmp = store.tmpPath('blob');
    const fh = await fs.open(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o644);
    return new BlobWriter(store, digest, expectedSize, tmp, fh);
  }

  get written(): number {
    return this.size;
  }

  /**
   * Hashes the chunk now and writes it behind: the caller goes on (unpacking the
   * same bytes) while the file write runs, up to WRITE_BEHIND_BYTES queued. The
   * chunk must not be changed afterwards. commit() waits for every write.
   */
  async write(chunk: Buffer): Promise<void> {
    if (this.writeError) throw this.writeError;
    this.size += chunk.length;
    if (this.expectedSize !== undefined && this.size > this.expectedSize) {
      throw new DigestError(`blob ${this.digest} is larger than its descriptor's ${this.expectedSize} bytes`);
    }
    this.hash.update(chunk);
    this.queuedBytes += chunk.length;
    this.writes = this.writes.then(async () => {
      if (this.writeError) return;
      try {
        let off = 0;
        while (off < chunk.length) off += (await this.fh.write(chunk, off, chunk.length - off)).bytesWritten;
      } catch (err) {
        this.writeError = err;
      } finally {
        this.queuedBytes -= chunk.length;
      }
    });
    if (this.queuedBytes > WRITE_BEHIND_BYTES) await this.flush();
  }

  private async flush(): Promise<void> {
    await this.writes;
    if (this.writeError) throw this.writeError;
  }

  /** Verifies and renames into blobs/; throws DigestError on a mismatch. */
  async commit(): Promise<string> {
    try {
      await this.flush();
    } catch (err) {
      await this.abort();
      throw err;
    }
    await this.fh.close();
    const { algo } = checkDigest(this.digest);
    const actual = `${algo}:${this.hash.digest('hex')}`;
    if (this.expectedSize !== undefined && this.size !== this.expectedSize) {
      await this.abort();
      throw new DigestError(`blob ${this.digest}: got ${this.size} bytes, the descriptor says ${this.expectedSize}`);
    }
    if (actual !== this.digest) {
      await this.abort();
      throw new DigestError(`blob ${this.digest}: digest mismatch (content hashes to ${actual})`);
    }
    const final = this.store.blobPath(this.digest);
    await fs.mkdir(path.dirname(final), { recursive: true });
    await fs.rename(this.tmp, final);
    return final;
  }

  async abort(): Promise<void> {
    await this.writes;
    await this.fh.close().catch(() => undefined);
    await fs.rm(this.tmp, { force: true });
  }
}

/** Lock files this process holds, whichever Store took them. */
const ownLocks = new Set<string>();

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class Store {
  /** Layer records read or written by this process, by diffID. */
  private readonly layers = new Map<string, LayerRecord>();
  private readonly tmpDir: string;
  constructor(readonly root: string) {
    this.tmpDir = path.join(root, 'tmp', `${process.pid}-${randomBytes(4).toString('hex')}`);
  }

  async init(): Promise<void> {
    for (const d of ['blobs/sha256', 'l', 'meta/layers', 'images', 'containers', 'locks']) {
      await fs.mkdir(path.join(this.root, d), { recursive: true });
    }
    // Each service keeps its work in progress in tmp/<pid>-<random>/. What a process
    // that is gone left half-done is never used: removed here.
    const tmp = path.join(this.root, 'tmp');
    await fs.mkdir(tmp, { recursive: true });
    for (const name of await fs.readdir(tmp)) {
      const pid = Number(/^(\d+)-/.exec(name)?.[1]);
      if (pid && pid !== process.pid && processAlive(pid)) continue;
      if (pid === process.pid) continue; // another service in this process: its own
      await fs.rm(path.join(tmp, name), { recursive: true, force: true });
    }
    await fs.mkdir(this.tmpDir, { recursive: true });
  }

  tmpPath(prefix: string): string {
    return path.join(this.tmpDir, `${prefix}-${randomBytes(8).toString('hex')}`);
  }

  blobPath(digest: string): string {
    const { algo, hex } = checkDigest(digest);
    return path.join(this.root, 'blobs', algo, hex);
  }

  async hasBlob(digest: string): Promise<boolean> {
    return fs.access(this.blobPath(digest)).then(() => true, () => false);
  }

  async putBlob(digest: string, data: Buffer): Promise<void> {
    if (await this.hasBlob(digest)) return;
    const w = await BlobWriter.open(this, digest, data.length);
    try {
      await w.write(data);
    } catch (err) {
      await w.abort();
      throw err;
    }
    await w.commit();
  }

  async readBlob(digest: string): Promise<Buffer> {
    return fs.readFile(this.blobPath(digest));
  }

  layerDir(dir: string): string {
    return path.join(this.root, 'l', dir);
  }

  private layerMetaPath(diffID: string): string {
    return path.join(this.root, 'meta/layers', `${checkDigest(diffID).hex}.json`);
  }

  async readLayer(diffID: string): Promise<LayerRecord | undefined> {
    try {
      const record = this.layers.get(diffID) ?? (JSON.parse(await fs.readFile(this.layerMetaPath(diffID), 'utf8')) as LayerRecord);
      await fs.access(this.layerDir(record.dir));
      this.layers.set(diffID, record);
      return record;
    } catch {
      this.layers.delete(diffID);
      return undefined;
    }
  }

  async writeLayer(record: LayerRecord): Promise<void> {
    await writeJsonAtomic(this, this.layerMetaPath(record.diffID), record);
    this.layers.set(record.diffID, record);
  }

  async deleteLayerMeta(diffID: string): Promise<void> {
    this.layers.delete(diffID);
    await fs.rm(this.layerMetaPath(diffID), { force: true });
  }

  async listLayerRecords(): Promise<LayerRecord[]> {
    const names = await fs.readdir(path.join(this.root, 'meta/layers'));
    const out: LayerRecord[] = [];
    for (const n of names) {
      try {
        out.push(JSON.parse(await fs.readFile(path.join(this.root, 'meta/layers', n), 'utf8')) as LayerRecord);
      } catch { /* half-written: ignored, removed by gc */ }
    }
    return out;
  }

  imagePath(digest: string): string {
    return path.join(this.root, 'images', `${checkDigest(digest).hex}.json`);
  }

  async writeImage(record: ImageRecord): Promise<void> {
    await writeJsonAtomic(this, this.imagePath(record.digest), record);
  }

  async readImage(digest: string): Promise<ImageRecord | undefined> {
    try {
      return JSON.parse(await fs.readFile(this.imagePath(digest), 'utf8')) as ImageRecord;
    } catch {
      return undefined;
    }
  }

  async listImages(): Promise<ImageRecord[]> {
    const out: ImageRecord[] = [];
    for (const n of await fs.readdir(path.join(this.root, 'images'))) {
      try {
        out.push(JSON.parse(await fs.readFile(path.join(this.root, 'images', n), 'utf8')) as ImageRecord);
      } catch { /* ignored */ }
    }
    return out;
  }

  /**
   * Runs fn holding locks/<name>.lock, a file naming our pid: two agents on one
   * host never download or unpack the same thing at once. A lock whose process
   * is gone is taken over.
   */
  async withFileLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const file = path.join(this.root, 'locks', `${name}.lock`);
    const token = `${process.pid} ${randomBytes(6).toString('hex')}`;
    for (let waited = 0; ; waited++) {
      try {
        await fs.writeFile(file, token, { flag: 'wx', mode: 0o644 });
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = await fs.readFile(file, 'utf8').catch(() => '');
      const pid = Number(holder.split(' ')[0]);
      const stale = pid > 0 ? !processAlive(pid) || (pid === process.pid && !ownLocks.has(holder)) : waited > 50;
      if (stale) {
        await fs.rm(file, { force: true });
        continue;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    ownLocks.add(token);
    try {
      return await fn();
    } finally {
      ownLocks.delete(token);
      const now = await fs.readFile(file, 'utf8').catch(() => '');
      if (now === token) await fs.rm(file, { force: true });
    }
  }

  /** Moves a path into tmp/ (atomic, so nothing half-removed is seen) and deletes it. */
  async remove(p: string): Promise<void> {
    const doomed = this.tmpPath('rm');
    try {
      await fs.rename(p, doomed);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    await fs.rm(doomed, { recursive: true, force: true });
  }
}

export async function writeJsonAtomic(store: Store, file: string, value: unknown): Promise<void> {
  const tmp = store.tmpPath('json');
  await fs.writeFile(tmp, JSON.stringify(value));
  await fs.rename(tmp, file);
}
