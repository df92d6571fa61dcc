// Checks across the layers of one image: a layer must not put entries under a
// path that a lower layer made a symlink (write, chmod or white out through
// it) unless it first replaces that symlink with a directory of its own.
// overlayfs would not follow such a symlink, but a runtime or a tool that
// flattens the layers would, so such an image is refused.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { LayerIndex } from './unpack.ts';

export class UnsafeImageError extends Error {
  constructor(readonly layer: string, readonly entry: string, why: string) {
    super(`refusing layer ${layer}: entry "${entry}": ${why}`);
    this.name = 'UnsafeImageError';
  }
}

export interface ChainLayer {
  /** The layer's name in messages (its digest). */
  name: string;
  dir: string;
  index: LayerIndex;
}

function under(p: string, dir: string): boolean {
  return p === dir || dir === '' || p.startsWith(`${dir}/`);
}

/** Throws UnsafeImageError for the first entry that goes through a lower layer's symlink. */
export async function checkLayerChain(layers: ChainLayer[]): Promise<void> {
  let symlinks = new Set<string>();
  for (const layer of layers) {
    const explicitDirs = new Set(layer.index.dirs);
    if (symlinks.size > 0) {
      for (const [parent, entry] of Object.entries(layer.index.parents)) {
        if (symlinks.has(parent) && !explicitDirs.has(parent)) {
          throw new UnsafeImageError(layer.name, entry, `parent "${parent}" is a symlink from a lower layer`);
        }
      }
      // What this layer removes or replaces stops being a symlink of the merged view.
      const whiteouts = layer.index.whiteouts;
      const opaques = layer.index.opaques;
      const next = new Set<string>();
      for (const s of symlinks) {
        if (whiteouts.some((w) => under(s, w))) continue;
        if (opaques.some((o) => o !== s && under(s, o))) continue;
        if (explicitDirs.has(s)) continue;
        const here = await fs.lstat(path.join(layer.dir, s)).catch(() => null);
        if (here && !here.isSymbolicLink()) continue;
        next.add(s);
      }
      symlinks = next;
    }
    for (const s of layer.index.symlinks) symlinks.add(s);
  }
}
