// Pulling one image: manifest (through an index if need be), config, then the
// layers, several at once, each downloaded once however many pulls want it.
// A layer is decompressed and unpacked while it downloads; the blob goes to a
// temp file at the same time. Nothing is used before both the blob's digest
// and size and the layer's diffID check out: the blob is renamed into blobs/
// and the unpacked directory into l/ only then.
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import type { Logger } from 'pino';
import { checkLayerChain } from './chain.ts';
import { documentMediaType, hostPlatform, parseConfig, parseIndex, parseManifest, selectPlatform, type ImageConfig } from './manifest.ts';
import { isIndex, MANIFEST_ACCEPT, type Descriptor } from './media-types.ts';
import type { ImageReference } from './reference.ts';
import { RegistryClient, registryErrorFrom } from './registry-client.ts';
import { BlobWriter, checkDigest, DigestError, digestOf, type LayerRecord, type Store } from './store.ts';
import { UnsafeLayerError } from './unpack.ts';
import { unpackPool } from './unpack-pool.ts';

export interface PullProgress {
  layersTotal: number;
  layersDone: number;
  bytesTotal: number;
  bytesDone: number;
}

export interface PullResult {
  digest: string;
  config: ImageConfig;
  layers: LayerRecord[];
  blobs: string[];
}

const MAX_MANIFEST = 4 * 1024 * 1024;
const MAX_CONFIG = 16 * 1024 * 1024;

/** Runs at most `limit` tasks at once. */
export class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly limit: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/** One promise per key while it runs: the in-process single flight. */
export class SingleFlight<T> {
  private readonly running = new Map<string, Promise<T>>();
  do(key: string, fn: () => Promise<T>): Promise<T> {
    let p = this.running.get(key);
    if (!p) {
      p = fn().finally(() => this.running.delete(key));
      this.running.set(key, p);
    }
    return p;
  }
  has(key: string): boolean {
    return this.running.has(key);
  }
}

async function readLimited(res: Response, limit: number, what: string): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > limit) throw new Error(`${what} is too large (${declared} bytes)`);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.length;
    if (total > limit) throw new Error(`${what} is too large`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

export interface PullerDeps {
  store: Store;
  logger: Logger;
  layerConcurrency: number;
}

export class Puller {
  private readonly layerFlights = new SingleFlight<LayerRecord>();
  private readonly blobFlights = new SingleFlight<void>();
  private readonly downloads: Semaphore;
  constructor(private readonly deps: PullerDeps) {
    this.downloads = new Semaphore(deps.layerConcurrency);
  }

  async pull(ref: ImageReference, client: RegistryClient, onProgress: ((p: PullProgress) => void) | undefined, protect: (key: string) => void): Promise<PullResult> {
    const scope = `repository:${ref.repository}:pull`;
    const blobs: string[] = [];
    let top = await this.fetchManifest(client, ref, ref.digest ?? ref.tag!, scope);
    blobs.push(top.digest);
    protect(top.digest);
    let manifestDigest = top.digest;
    if (isIndex(top.mediaType)) {
      const chosen = selectPlatform(parseIndex(top.json));
      top = await this.fetchManifest(client, ref, chosen.digest, scope);
      if (isIndex(top.mediaType)) throw new Error('nested indexes are not supported');
      manifestDigest = top.digest;
      blobs.push(top.digest);
      protect(top.digest);
    }
    const manifest = parseManifest(top.json);
    protect(manifest.config.digest);
    if (manifest.config.size > MAX_CONFIG) throw new Error('image config is too large');
    await this.fetchBlob(client, ref, manifest.config, scope);
    blobs.push(manifest.config.digest);
    const parsed = parseConfig(await this.deps.store.readBlob(manifest.config.digest));
    if (parsed.diffIDs.length !== manifest.layers.length) {
      throw new Error(`image config lists ${parsed.diffIDs.length} layers, the manifest ${manifest.layers.length}`);
    }
    parsed.diffIDs.forEach((d) => checkDigest(d));
    if (parsed.os && parsed.os !== 'linux') throw new Error(`the image is for ${parsed.os}/${parsed.architecture ?? 'unknown'}; this host runs linux containers`);
    const host = hostPlatform();
    if (parsed.architecture && parsed.architecture !== host.architecture) {
      this.deps.logger.warn({ reference: ref.text, architecture: parsed.architecture, host: host.architecture }, 'image is for another architecture; it may not run');
    }

    const progress: PullProgress = {
      layersTotal: manifest.layers.length,
      layersDone: 0,
      bytesTotal: manifest.layers.reduce((n, l) => n + l.size, 0),
      bytesDone: 0,
    };
    let lastReport = 0;
    const report = (force: boolean) => {
      if (!onProgress) return;
      const now = Date.now();
      if (!force && now - lastReport < 100) return;
      lastReport = now;
      try { onProgress({ ...progress }); } catch { /* a listener's failure is not the pull's */ }
    };
    report(true);
    const settled = await Promise.allSettled(manifest.layers.map(async (desc, i) => {
      const diffID = parsed.diffIDs[i]!;
      protect(diffID);
      protect(desc.digest);
      blobs.push(desc.digest);
      let counted = 0;
      const record = await this.ensureLayer(client, ref, desc, diffID, scope, (n) => {
        counted += n;
        progress.bytesDone += n;
        report(false);
      });
      progress.bytesDone += Math.max(0, desc.size - counted);
      progress.layersDone++;
      report(true);
      return record;
    }));
    // Every layer settles before the pull answers, so none is still being written when it does.
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const layers = settled.map((r) => (r as PromiseFulfilledResult<LayerRecord>).value);
    await checkLayerChain(layers.map((l) => ({ name: l.diffID, dir: this.deps.store.layerDir(l.dir), index: l.index })));
    return { digest: manifestDigest, config: parsed.config, layers, blobs };
  }

  /**
   * The image `digest` (a manifest, or an index resolved for this host) from the
   * store alone, without the registry: only an image a pull completed (its record
   * is written after every check passed) whose layers are all still unpacked.
   * Undefined when anything is missing, so the caller pulls.
   */
  async resolveLocal(digest: string, protect: (key: string) => void): Promise<PullResult | undefined> {
    const { store } = this.deps;
    const readDocument = async (d: string) => {
      if (!(await store.hasBlob(d))) return undefined;
      return documentMediaType(await store.readBlob(d), null);
    };
    let top = await readDocument(digest);
    if (!top) return undefined;
    const blobs = [digest];
    let manifestDigest = digest;
    if (isIndex(top.mediaType)) {
      manifestDigest = selectPlatform(parseIndex(top.json)).digest;
      top = await readDocument(manifestDigest);
      if (!top || isIndex(top.mediaType)) return undefined;
      blobs.push(manifestDigest);
    }
    if (!(await store.readImage(manifestDigest))) return undefined;
    const manifest = parseManifest(top.json);
    if (!(await store.hasBlob(manifest.config.digest))) return undefined;
    const parsed = parseConfig(await store.readBlob(manifest.config.digest));
    if (parsed.diffIDs.length !== manifest.layers.length) return undefined;
    const layers: LayerRecord[] = [];
    for (const diffID of parsed.diffIDs) {
      const layer = await store.readLayer(diffID);
      if (!layer) return undefined;
      layers.push(layer);
    }
    for (const key of [...blobs, manifest.config.digest, ...parsed.diffIDs, ...manifest.layers.map((l) => l.digest)]) protect(key);
    return { digest: manifestDigest, config: parsed.config, layers, blobs: [...blobs, manifest.config.digest, ...manifest.layers.map((l) => l.digest)] };
  }

  private async fetchManifest(client: RegistryClient, ref: ImageReference, tagOrDigest: string, scope: string) {
    const res = await client.request(`/v2/${ref.repository}/manifests/${tagOrDigest}`, {
      scope, headers: { accept: MANIFEST_ACCEPT.join(', ') },
    });
    if (!res.ok) throw await registryErrorFrom(res, 'manifest');
    const body = await readLimited(res, MAX_MANIFEST, 'manifest');
    let digest: string;
    if (tagOrDigest.includes(':')) {
      const { algo } = checkDigest(tagOrDigest);
      digest = digestOf(body, algo);
      if (digest !== tagOrDigest) throw new DigestError(`manifest ${tagOrDigest}: digest mismatch (content hashes to ${digest})`);
    } else {
      digest = digestOf(body);
      const claimed = res.headers.get('docker-content-digest');
      if (claimed && claimed.startsWith('sha256:') && claimed !== digest) {
        throw new DigestError(`manifest ${ref.text}: the registry says ${claimed}, the content hashes to ${digest}`);
      }
    }
    await this.deps.store.putBlob(digest, body);
    const { mediaType, json } = documentMediaType(body, res.headers.get('content-type'));
    return { digest, mediaType, json };
  }

  /** Downloads a blob into the store (verified) unless it is there. */
  private fetchBlob(client: RegistryClient, ref: ImageReference, desc: Descriptor, scope: string): Promise<void> {
    return this.blobFlights.do(desc.digest, async () => {
      if (await this.deps.store.hasBlob(desc.digest)) return;
      await this.deps.store.withFileLock(`blob-${checkDigest(desc.digest).hex}`, () => this.downloadBlob(client, ref, desc, scope));
    });
  }

  private async downloadBlob(client: RegistryClient, ref: ImageReference, desc: Descriptor, scope: string): Promise<void> {
    if (await this.deps.store.hasBlob(desc.digest)) return;
    const res = await this.openBlob(client, ref, desc, scope);
    const writer = await BlobWriter.open(this.deps.store, desc.digest, desc.size);
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) await writer.write(Buffer.from(chunk));
    } catch (err) {
      await writer.abort();
      throw err;
    }
    await writer.commit();
  }

  private async openBlob(client: RegistryClient, ref: ImageReference, desc: Descriptor, scope: string): Promise<Response> {
    checkDigest(desc.digest);
    const res = await client.request(`/v2/${ref.repository}/blobs/${desc.digest}`, { scope });
    if (!res.ok) throw await registryErrorFrom(res, `blob ${desc.digest}`);
    if (!res.body) throw new Error(`blob ${desc.digest}: empty answer`);
    return res;
  }

  private ensureLayer(client: RegistryClient, ref: ImageReference, desc: Descriptor, diffID: string, scope: string, onBytes: (n: number) => void): Promise<LayerRecord> {
    return this.layerFlights.do(diffID, async () => {
      const existing = await this.deps.store.readLayer(diffID);
      if (existing) return existing;
      return this.downloads.run(() => this.deps.store.withFileLock(`layer-${checkDigest(diffID).hex}`, async () => {
        // Another agent on this root may have done it while we waited for the lock.
        return (await this.deps.store.readLayer(diffID)) ?? this.unpackLayer(client, ref, desc, diffID, scope, onBytes);
      }));
    });
  }

  private async unpackLayer(client: RegistryClient, ref: ImageReference, desc: Descriptor, diffID: string, scope: string, onBytes: (n: number) => void): Promise<LayerRecord> {
    const { store, logger } = this.deps;
    const started = Date.now();
    const tmpDir = store.tmpPath('layer');
    await fs.mkdir(tmpDir, { mode: 0o755 });
    let writer: BlobWriter | undefined;
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    let source: AsyncIterable<Buffer>;
    const haveBlob = await store.hasBlob(desc.digest);
    if (haveBlob) {
      source = createReadStream(store.blobPath(desc.digest), { highWaterMark: 256 * 1024 });
    } else {
      const res = await this.openBlob(client, ref, desc, scope);
      writer = await BlobWriter.open(store, desc.digest, desc.size);
      reader = res.body!.getReader();
      const w = writer;
      const r = reader;
      source = (async function* () {
        while (true) {
          const { done, value } = await r.read();
          if (done) return;
          const chunk = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
          await w.write(chunk);
          onBytes(chunk.length);
          yield chunk;
        }
      })();
    }
    const { algo } = checkDigest(diffID);
    try {
      let unpacked;
      try {
        unpacked = await unpackPool.unpack(source, tmpDir, algo);
      } catch (err) {
        // A corrupt blob shows first as bad gzip or tar: say what is really wrong.
        if (writer && reader && !(err instanceof UnsafeLayerError)) {
          try {
            while (true) {
              const { done, value } = await reader.read();
              if (done) break;
              await writer.write(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
            }
            const w = writer;
            writer = undefined;
            await w.commit();
          } catch (inner) {
            if (inner instanceof DigestError) throw inner;
          }
        }
        throw err;
      }
      const { result, diffID: actualDiff } = unpacked;
      if (writer && reader) {
        // Bytes after the end of the compressed stream still count for the blob's digest.
        while (true) {
          const { done, value } = await reader.read();
          if (done) break;
          await writer.write(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
          onBytes(value.byteLength);
        }
      }
      if (writer) {
        const w = writer;
        writer = undefined;
        await w.commit();
      }
      if (actualDiff !== diffID) throw new DigestError(`layer ${desc.digest}: uncompressed content hashes to ${actualDiff}, the image config says ${diffID}`);
      const dir = await this.placeLayer(tmpDir, diffID);
      const record: LayerRecord = { diffID, blob: desc.digest, dir, size: result.size, index: result.index, created: Date.now() };
      await store.writeLayer(record);
      logger.info({ layer: desc.digest, diffID, entries: result.entries, ms: Date.now() - started, reused: haveBlob }, 'layer unpacked');
      return record;
    } finally {
      if (writer) await writer.abort();
      if (reader) await reader.cancel().catch(() => undefined);
      await fs.rm(tmpDir, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  /** Renames the unpacked directory to l/<short name>, longer if the short one is taken. */
  private async placeLayer(tmpDir: string, diffID: string): Promise<string> {
    const { hex } = checkDigest(diffID);
    for (const len of [12, 16, 24, hex.length]) {
      const name = hex.slice(0, len);
      const target = this.deps.store.layerDir(name);
      const taken = await fs.lstat(target).then(() => true, () => false);
      if (taken) {
        // A directory with no record is left from a crash: it is ours to replace.
        const owners = (await this.deps.store.listLayerRecords()).filter((r) => r.dir === name);
        if (owners.length > 0) continue;
        await this.deps.store.remove(target);
      }
      await fs.rename(tmpDir, target);
      return name;
    }
    throw new Error(`no free directory name for layer ${diffID}`);
  }
}
