// Reading one file of an image straight from its unpacked layers, as overlayfs
// would show it: the topmost layer that has the path wins, a whiteout (a 0/0
// character device) hides it, and an opaque directory hides what lower layers
// hold under it. No symlink is followed, on the way or at the end: an image may
// point /etc or /etc/passwd anywhere, the host's files included.
import { constants } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import path from 'node:path';

export interface LayerView {
  /** The unpacked layer directory. */
  dir: string;
  /** Directories this layer made opaque, relative, without a leading slash. */
  opaques: ReadonlySet<string>;
}

/** `layers` topmost first; `file` relative to the root, e.g. `etc/passwd`. Null when absent or not a plain file. */
export async function readLayeredFile(layers: LayerView[], file: string): Promise<string | null> {
  const parts = file.split('/').filter(Boolean);
  if (parts.length === 0 || parts.some((p) => p === '.' || p === '..')) return null;
  for (const layer of layers) {
    for (let i = 0; i < parts.length; i++) {
      const rel = parts.slice(0, i + 1).join('/');
      const st = await lstat(path.join(layer.dir, rel)).catch(() => null);
      if (!st) break; // not in this layer: unless a directory above is opaque, lower layers decide
      if (st.isCharacterDevice() && st.rdev === 0) return null; // whited out
      if (i < parts.length - 1) {
        if (!st.isDirectory()) return null; // a file or a symlink where a directory should be
        continue;
      }
      if (!st.isFile()) return null;
      const handle = await open(path.join(layer.dir, rel), constants.O_RDONLY | constants.O_NOFOLLOW).catch(() => null);
      if (!handle) return null;
      try {
        return await handle.readFile('utf8');
      } finally {
        await handle.close();
      }
    }
    for (let i = 1; i < parts.length; i++) if (layer.opaques.has(parts.slice(0, i).join('/'))) return null;
  }
  return null;
}
