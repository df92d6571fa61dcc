// Garbage collection: removes layers and blobs that no mounted rootfs, pull in
// progress or recent pull uses, least recently used first, until the store
// fits in the budget.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { LayerRecord, Store } from './store.ts';

export interface ContainerRecord {
  image: string;
  /** Layer directory names under l/. */
  layerDirs: string[];
  diffIDs: string[];
  blobs: string[];
}

export interface GcInput {
  store: Store;
  logger: Logger;
  budgetBytes: number;
  /** Digests and diffIDs a pull in progress holds. */
  active: Set<string>;
  /** Images used since then are kept. */
  keepSince: number;
}

interface Item {
  kind: 'layer' | 'blob' | 'orphan-dir';
  key: string;
  path: string;
  size: number;
  lastUsed: number;
  record?: LayerRecord;
}

async function dirSize(p: string): Promise<number> {
  let total = 0;
  const entries = await fs.readdir(p, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const full = path.join(p, e.name);
    if (e.isDirectory()) total += await dirSize(full);
    else total += (await fs.lstat(full).catch(() => ({ size: 0 }))).size;
    total += 512;
  }
  return total;
}

export async function listContainers(store: Store): Promise<ContainerRecord[]> {
  const out: ContainerRecord[] = [];
  const dir = path.join(store.root, 'containers');
  for (const id of await fs.readdir(dir).catch(() => [] as string[])) {
    try {
      out.push(JSON.parse(await fs.readFile(path.join(dir, id, 'image.json'), 'utf8')) as ContainerRecord);
    } catch {
      // a container being set up or torn down: its layers are still listed by its image record
    }
  }
  return out;
}

export async function collectGarbage(input: GcInput): Promise<{ removedBytes: number }> {
  const { store, logger, budgetBytes, active, keepSince } = input;
  const images = await store.listImages();
  const containers = await listContainers(store);
  const layers = await store.listLayerRecords();

  // `hard`: never removed (pulls in progress, anything made within the grace period).
  // `keep`: what mounted rootfs and recent pulls use. Of that, a compressed layer blob
  // whose layer is unpacked is only needed to unpack it again: it goes, last, when
  // the budget cannot be met otherwise.
  const hard = new Set<string>(active);
  const keep = new Set<string>();
  const lastUsed = new Map<string, number>();
  for (const c of containers) {
    for (const k of [...c.diffIDs, ...c.blobs, c.image]) keep.add(k);
  }
  for (const img of images) {
    const recent = img.lastUsed >= keepSince;
    for (const k of [...img.layers, ...img.blobs]) {
      if (recent) keep.add(k);
      lastUsed.set(k, Math.max(lastUsed.get(k) ?? 0, img.lastUsed));
    }
  }
  // Whatever was made within the grace period may belong to a pull in progress,
  // ours or another agent's on this root.
  for (const l of layers) if (l.created >= keepSince) hard.add(l.diffID);
  const unpackedFrom = new Map(layers.map((l) => [l.blob, l.diffID]));

  const items: Item[] = [];
  const dirsWithRecords = new Set<string>();
  for (const l of layers) {
    dirsWithRecords.add(l.dir);
    items.push({ kind: 'layer', key: l.diffID, path: store.layerDir(l.dir), size: l.size, lastUsed: lastUsed.get(l.diffID) ?? 0, record: l });
  }
  for (const name of await fs.readdir(path.join(store.root, 'l'))) {
    if (dirsWithRecords.has(name) || name === 'empty') continue;
    if (containers.some((c) => c.layerDirs.includes(name))) continue;
    items.push({ kind: 'orphan-dir', key: name, path: store.layerDir(name), size: await dirSize(store.layerDir(name)), lastUsed: 0 });
  }
  for (const algo of await fs.readdir(path.join(store.root, 'blobs'))) {
    for (const hex of await fs.readdir(path.join(store.root, 'blobs', algo))) {
      const p = path.join(store.root, 'blobs', algo, hex);
      const st = await fs.stat(p).catch(() => null);
      if (!st) continue;
      const key = `${algo}:${hex}`;
      if (st.mtimeMs >= keepSince) hard.add(key);
      items.push({ kind: 'blob', key, path: p, size: st.size, lastUsed: lastUsed.get(key) ?? 0 });
    }
  }

  let total = items.reduce((n, i) => n + i.size, 0);
  let removedBytes = 0;
  const removed = new Set<string>();
  const byAge = (a: Item, b: Item) => a.lastUsed - b.lastUsed || b.size - a.size;
  const spare = (i: Item) => i.kind === 'blob' && unpackedFrom.has(i.key);
  const candidates = [
    ...items.filter((i) => !hard.has(i.key) && !keep.has(i.key)).sort(byAge),
    ...items.filter((i) => !hard.has(i.key) && keep.has(i.key) && spare(i)).sort(byAge),
  ];
  for (const item of candidates) {
    if (total <= budgetBytes) break;
    if (item.kind === 'layer') {
      // The record goes first: a layer without a record is never used.
      await store.deleteLayerMeta(item.key);
    }
    await store.remove(item.path);
    total -= item.size;
    removedBytes += item.size;
    removed.add(item.key);
  }
  // An image missing a part it needs is forgotten; the next pull fetches what is gone.
  // (A layer blob whose layer is still unpacked is not needed.)
  const needed = (k: string) => !unpackedFrom.has(k) || removed.has(unpackedFrom.get(k)!);
  for (const img of images) {
    if ([...img.layers, ...img.blobs].some((k) => removed.has(k) && needed(k))) await fs.rm(store.imagePath(img.digest), { force: true });
  }
  if (removedBytes > 0) logger.info({ removedBytes, removed: removed.size, budgetBytes, remaining: total }, 'image garbage collected');
  return { removedBytes };
}
