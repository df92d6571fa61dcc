// The image service the agent uses: pull, mount a rootfs, remove it, collect garbage.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { collectGarbage, type ContainerRecord } from './gc.ts';
import type { ImageConfig } from './manifest.ts';
import { Puller, type PullProgress, type PullResult } from './pull.ts';
import { DEFAULT_TAG_CACHE_MS, digestToUseCached, Resolutions, type ImagePullBehavior } from './pull-behavior.ts';
import { DOCKER_HUB, InvalidReferenceError, parseReference, type ImageReference } from './reference.ts';
import { RegistryClient, type Credentials } from './registry-client.ts';
import { readLayeredFile } from './layered-file.ts';
import { checkContainerId, mountOverlay, planOverlay, removeOverlay, type OverlayPlan } from './rootfs.ts';
import { Store, writeJsonAtomic } from './store.ts';

export interface PulledImage {
  reference: string;
  /** The manifest's digest (of the platform's manifest when pulled through an index). */
  digest: string;
  config: ImageConfig;
  /** Unpacked layer directories, lowest first. */
  layers: string[];
  /** Layer diffIDs, lowest first, in the order of `layers`. */
  diffIDs?: string[];
}

export interface PullOptions {
  credentials?: Credentials;
  /** Overrides the service's behaviour for this pull. */
  behavior?: ImagePullBehavior;
  onProgress?: (p: PullProgress) => void;
}

export interface ImageService {
  pull(reference: string, options?: PullOptions): Promise<PulledImage>;
  /** overlayfs over the layers with a private upper/work dir; returns the mounted rootfs path */
  mountRootfs(containerId: string, image: PulledImage): Promise<string>;
  /**
   * As mountRootfs, but mounts nothing: the runtime mounts the overlay from the
   * plan inside the container's mount namespace (berth-runtime's
   * berth.rootfs.overlay annotations), so no mount is left on the host.
   */
  prepareRootfs(containerId: string, image: PulledImage): Promise<OverlayPlan>;
  /**
   * A file of the image as its rootfs shows it before the container runs
   * (whiteouts and opaque directories applied), read without following any
   * symlink; null when there is none.
   */
  readImageFile(image: PulledImage, file: string): Promise<string | null>;
  /** unmounts and removes the container's rootfs, upper and work dirs; idempotent */
  removeRootfs(containerId: string): Promise<void>;
  /** removes layers and blobs no mounted rootfs or recent pull uses until the store fits in budgetBytes */
  garbageCollect(budgetBytes: number): Promise<{ removedBytes: number }>;
}

export interface ImageServiceOptions {
  root: string;
  defaultRegistry?: string;
  insecureRegistries?: string[];
  credentials?: Record<string, Credentials>;
  logger: Logger;
  /** Layers downloaded and unpacked at once. @defaultValue 4 */
  layerConcurrency?: number;
  /** Images pulled within this many milliseconds are kept by garbage collection. @defaultValue 600000 */
  gcGraceMs?: number;
  /** When the registry is asked about an image already stored (pull-behavior.ts). @defaultValue 'default' */
  pullBehavior?: ImagePullBehavior;
  /** How long a reference resolved at the registry is trusted under the `default` behaviour, per credentials; 0 asks every time. @defaultValue 10000 */
  tagCacheMs?: number;
}

/** A pull that failed; the message is the registry's reason, e.g. `pull 127.0.0.1:5000/x:y: manifest unknown`. */
export class ImagePullError extends Error {
  readonly reference: string;
  constructor(reference: string, message: string) {
    super(message);
    this.name = 'ImagePullError';
    this.reference = reference;
  }
}

/** Pulls and mounts share; garbage collection runs alone. */
class SharedLock {
  private shared = 0;
  private exclusive: Promise<void> | null = null;
  private drained: (() => void) | null = null;

  async withShared<T>(fn: () => Promise<T>): Promise<T> {
    while (this.exclusive) await this.exclusive;
    this.shared++;
    try {
      return await fn();
    } finally {
      this.shared--;
      if (this.shared === 0) this.drained?.();
    }
  }

  async withExclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.exclusive) await this.exclusive;
    let release!: () => void;
    this.exclusive = new Promise<void>((r) => { release = r; });
    try {
      while (this.shared > 0) await new Promise<void>((r) => { this.drained = r; });
      this.drained = null;
      return await fn();
    } finally {
      this.exclusive = null;
      release();
    }
  }
}

/** Per-registry credentials by host; Docker Hub's under any of its names. */
function credentialsFor(all: Record<string, Credentials> | undefined, registry: string): Credentials | undefined {
  if (!all) return undefined;
  const strip = (k: string) => k.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
  const byHost = new Map(Object.entries(all).map(([k, v]) => [strip(k), v]));
  if (byHost.has(registry)) return byHost.get(registry);
  if (registry === DOCKER_HUB) return byHost.get('docker.io') ?? byHost.get('index.docker.io');
  return undefined;
}

export function createImageService(options: ImageServiceOptions): ImageService {
  const root = path.resolve(options.root);
  const store = new Store(root);
  const logger = options.logger;
  const puller = new Puller({ store, logger, layerConcurrency: options.layerConcurrency ?? 4 });
  const lock = new SharedLock();
  const active = new Map<string, number>();
  const clients = new Map<string, RegistryClient>();
  const insecure = (options.insecureRegistries ?? []).map((r) => r.replace(/^https?:\/\//, '').replace(/\/.*$/, ''));
  let ready: Promise<void> | undefined;
  const init = () => (ready ??= store.init().catch((err: unknown) => { ready = undefined; throw err; }));

  const clientFor = (registry: string, credentials: Credentials | undefined) => {
    const key = `${registry}\0${credentials?.username ?? ''}\0${credentials?.password ?? ''}`;
    let c = clients.get(key);
    if (!c) {
      c = new RegistryClient({ registry, credentials, insecureRegistries: insecure });
      clients.set(key, c);
    }
    return c;
  };

  const containerDir = (id: string) => path.join(root, 'containers', id);
  const resolutions = new Resolutions();
  const credentialsKey = (c: Credentials | undefined) => (c ? `${c.username}\0${c.password}` : '');

  /** The newest stored image that was pulled under this reference. */
  const storedFor = async (ref: ImageReference): Promise<string | undefined> => {
    const images = (await store.listImages()).filter((i) => i.references.includes(ref.text));
    return images.sort((a, b) => b.lastUsed - a.lastUsed)[0]?.digest;
  };

  // Images found complete in the store, by digest: content-addressed, so an entry holds until garbage
  // collection removes something (it clears them). A cached start then reads no file to find its image.
  const resolvedLocally = new Map<string, PullResult>();
  const resolveStored = async (digest: string, protect: (key: string) => void): Promise<PullResult | undefined> => {
    const known = resolvedLocally.get(digest);
    if (known) {
      for (const key of [...known.blobs, ...known.layers.map((l) => l.diffID)]) protect(key);
      return known;
    }
    const found = await puller.resolveLocal(digest, protect);
    if (found) resolvedLocally.set(digest, found);
    return found;
  };

  const toPulledImage = (ref: ImageReference, result: PullResult): PulledImage => ({
    reference: ref.text,
    digest: result.digest,
    config: result.config,
    layers: result.layers.map((l) => store.layerDir(l.dir)),
    diffIDs: result.layers.map((l) => l.diffID),
  });

  /** Records the container's image in its dir (garbage collection keeps what it uses), then makes its rootfs. */
  const withContainerDir = async <T>(containerId: string, image: PulledImage, make: (dir: string) => Promise<T>): Promise<T> => {
    checkContainerId(containerId);
    await init();
    return lock.withShared(async () => {
      const dir = containerDir(containerId);
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      const record = await store.readImage(image.digest);
      const containerRecord: ContainerRecord = {
        image: image.digest,
        layerDirs: image.layers.map((l) => path.basename(l)),
        diffIDs: image.diffIDs ?? record?.layers ?? [],
        blobs: record?.blobs ?? [],
      };
      const layers = await Promise.all(image.layers.map((l) => fs.lstat(l).catch(() => null)));
      const missing = image.layers.find((_, i) => !layers[i]?.isDirectory());
      if (missing) throw new Error(`layer ${missing} of ${image.reference} is not in the store (removed by garbage collection?): pull again`);
      await writeJsonAtomic(store, path.join(dir, 'image.json'), containerRecord);
      try {
        const [made] = await Promise.all([make(dir), record ? store.writeImage({ ...record, lastUsed: Date.now() }) : undefined]);
        return made;
      } catch (err) {
        await removeOverlay(dir).catch(() => undefined);
        throw err;
      }
    });
  };

  return {
    async pull(reference, pullOptions = {}) {
      let ref;
      try {
        ref = parseReference(reference, options.defaultRegistry);
      } catch (err) {
        throw new ImagePullError(reference, `pull ${reference}: ${(err as InvalidReferenceError).message}`);
      }
      await init();
      const held: string[] = [];
      const protect = (key: string) => {
        held.push(key);
        active.set(key, (active.get(key) ?? 0) + 1);
      };
      const started = Date.now();
      try {
        return await lock.withShared(async () => {
          const credentials = pullOptions.credentials ?? credentialsFor(options.credentials, ref.registry);
          const behavior = pullOptions.behavior ?? options.pullBehavior ?? 'default';
          const cachedDigest = await digestToUseCached(
            behavior, ref, credentialsKey(credentials), resolutions, options.tagCacheMs ?? DEFAULT_TAG_CACHE_MS, storedFor,
          );
          const cached = cachedDigest ? await resolveStored(cachedDigest, protect) : undefined;
          if (cached) {
            logger.debug({ reference: ref.text, digest: cached.digest, behavior }, 'image taken from the store without asking the registry');
            return toPulledImage(ref, cached);
          }
          const result = await puller.pull(ref, clientFor(ref.registry, credentials), pullOptions.onProgress, protect);
          const previous = await store.readImage(result.digest);
          await store.writeImage({
            digest: result.digest,
            references: [...new Set([...(previous?.references ?? []), ref.text])],
            blobs: [...new Set(result.blobs)],
            layers: result.layers.map((l) => l.diffID),
            lastUsed: Date.now(),
          });
          resolutions.remember(ref, credentialsKey(credentials), result.digest);
          logger.info({ reference: ref.text, digest: result.digest, layers: result.layers.length, ms: Date.now() - started }, 'image pulled');
          return toPulledImage(ref, result);
        });
      } catch (err) {
        const reason = (err as Error).message ?? String(err);
        logger.warn({ reference: ref.text, err: reason }, 'image pull failed');
        throw new ImagePullError(ref.text, `pull ${ref.text}: ${reason}`);
      } finally {
        for (const k of held) {
          const n = (active.get(k) ?? 1) - 1;
          if (n <= 0) active.delete(k);
          else active.set(k, n);
        }
      }
    },

    mountRootfs(containerId, image) {
      return withContainerDir(containerId, image, (dir) => mountOverlay(root, dir, image.layers));
    },

    prepareRootfs(containerId, image) {
      return withContainerDir(containerId, image, (dir) => planOverlay(root, dir, image.layers));
    },

    async readImageFile(image, file) {
      const layers = [];
      for (let i = image.layers.length - 1; i >= 0; i--) {
        const diffID = image.diffIDs?.[i];
        const record = diffID ? await store.readLayer(diffID) : undefined;
        if (!record) throw new Error(`layer ${image.layers[i]} of ${image.reference} is not in the store (removed by garbage collection?): pull again`);
        layers.push({ dir: image.layers[i]!, opaques: new Set(record.index.opaques) });
      }
      return readLayeredFile(layers, file);
    },

    async removeRootfs(containerId) {
      checkContainerId(containerId);
      await removeOverlay(containerDir(containerId));
    },

    async garbageCollect(budgetBytes) {
      await init();
      return lock.withExclusive(() => {
        resolvedLocally.clear();
        return collectGarbage({
          store, logger, budgetBytes,
          active: new Set(active.keys()),
          keepSince: Date.now() - (options.gcGraceMs ?? 600_000),
        });
      });
    },
  };
}
