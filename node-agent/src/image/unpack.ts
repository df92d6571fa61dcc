// Unpacks one layer's tar into a directory of its own, the way overlayfs wants
// it (OCI whiteouts become 0/0 character devices, opaque directories get the
// trusted.overlay.opaque xattr), keeping owners, modes, xattrs, hard links,
// device nodes and mtimes.
//
// Nothing is ever written outside `dest`, whatever the archive says: names with
// `..` or a leading `/` are refused, every parent of an entry must be a real
// directory this layer made (never a symlink), files are opened with
// O_NOFOLLOW|O_EXCL, hard links must point at files of this layer, and an entry
// that would write, chmod or white out through a symlink an earlier entry
// planted is refused (the CVE-2021-32760 class). The refusal names the entry.
import { spawn } from 'node:child_process';
import { constants as C } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { readTar, type TarHeader } from './tar-reader.ts';

export class UnsafeLayerError extends Error {
  constructor(readonly entry: string, readonly why: string) {
    super(`refusing layer: entry "${entry}": ${why}`);
    this.name = 'UnsafeLayerError';
  }
}

/** What a layer holds that the checks across layers need (see checkLayerChain). */
export interface LayerIndex {
  /** Paths of symlinks in this layer. */
  symlinks: string[];
  /** Directories the archive names explicitly. */
  dirs: string[];
  /** Every directory some entry sits under, with the first such entry. */
  parents: Record<string, string>;
  /** Paths whited out (the victims, not the .wh. names). */
  whiteouts: string[];
  /** Directories made opaque. */
  opaques: string[];
}

export interface UnpackResult {
  index: LayerIndex;
  /** Bytes of file data plus a block per entry: a cheap estimate of disk use. */
  size: number;
  entries: number;
}

type Kind = 'dir' | 'symlink' | 'file' | 'node';

interface Pending {
  kind: 'whiteout' | 'char' | 'block' | 'fifo';
  major: number;
  minor: number;
  header?: TarHeader;
}

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';

/** The archive's name as a clean relative path, '' for the root; refuses escapes. */
export function cleanName(name: string, entry: string): string {
  if (name.startsWith('/')) throw new UnsafeLayerError(entry, 'absolute path');
  if (name.includes('\0')) throw new UnsafeLayerError(entry, 'NUL in name');
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new UnsafeLayerError(entry, 'path climbs out with ".."');
  return parts.join('/');
}

export async function unpackLayer(tar: AsyncIterable<Buffer>, dest: string): Promise<UnpackResult> {
  const known = new Map<string, Kind>([['', 'dir']]);
  const dirMeta = new Map<string, TarHeader>();
  const pending = new Map<string, Pending>();
  const xattrs: { rel: string; name: string; value: Buffer }[] = [];
  const index: LayerIndex = { symlinks: [], dirs: [], parents: {}, whiteouts: [], opaques: [] };
  let size = 0;
  let entries = 0;
  const abs = (rel: string) => (rel === '' ? dest : path.join(dest, rel));

  // Small files are written several at once (each is a handful of syscalls on
  // libuv's pool). Every check above still runs in archive order; anything that
  // touches an existing path waits for the writes in flight first.
  const inFlight = new Set<Promise<void>>();
  let inFlightBytes = 0;
  let writeError: unknown;
  async function drain(): Promise<void> {
    while (inFlight.size > 0) await Promise.race(inFlight);
    if (writeError) throw writeError;
  }
  async function launch(bytes: number, write: () => Promise<void>): Promise<void> {
    while (inFlight.size >= MAX_IN_FLIGHT || (inFlightBytes + bytes > MAX_IN_FLIGHT_BYTES && inFlight.size > 0)) await Promise.race(inFlight);
    if (writeError) throw writeError;
    inFlightBytes += bytes;
    const p: Promise<void> = write()
      .catch((err: unknown) => { writeError ??= err; })
      .finally(() => { inFlight.delete(p); inFlightBytes -= bytes; });
    inFlight.add(p);
  }

  async function ensureParents(rel: string, entry: string): Promise<void> {
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      index.parents[p] ??= entry;
      const kind = known.get(p);
      if (kind === 'dir') continue;
      if (kind === 'symlink') throw new UnsafeLayerError(entry, `parent "${p}" is a symlink planted by an earlier entry`);
      if (kind !== undefined) throw new UnsafeLayerError(entry, `parent "${p}" is not a directory`);
      // Not made by this layer: it cannot exist, but look rather than assume.
      const st = await fs.lstat(abs(p)).catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return null; throw err; });
      if (st && !st.isDirectory()) throw new UnsafeLayerError(entry, `parent "${p}" is not a real directory`);
      if (!st) await fs.mkdir(abs(p), { mode: 0o755 });
      known.set(p, 'dir');
    }
  }

  /** Makes room for a new entry at rel; refuses to replace a symlink this layer planted. */
  async function clear(rel: string, entry: string, nextIsDir: boolean): Promise<void> {
    const kind = known.get(rel);
    if (kind === undefined) return;
    await drain();
    if (kind === 'symlink') throw new UnsafeLayerError(entry, `"${rel}" is a symlink planted by an earlier entry; refusing to write or chmod through it`);
    if (kind === 'dir') {
      if (nextIsDir) return;
      if (rel === '') throw new UnsafeLayerError(entry, 'cannot replace the root directory');
      await fs.rm(abs(rel), { recursive: true, force: true });
      for (const k of [...known.keys()]) if (k === rel || k.startsWith(`${rel}/`)) known.delete(k);
      for (const k of [...dirMeta.keys()]) if (k === rel || k.startsWith(`${rel}/`)) dirMeta.delete(k);
      for (const k of [...pending.keys()]) if (k.startsWith(`${rel}/`)) pending.delete(k);
      return;
    }
    if (pending.delete(rel)) { known.delete(rel); return; }
    await fs.unlink(abs(rel));
    known.delete(rel);
  }

  // New files are root's when we are root, unless dest passes on a group (setgid).
  const destStat = await fs.stat(dest);
  const newFilesRootOwned = ROOT && destStat.gid === 0 && (destStat.mode & 0o2000) === 0 /* setgid */;

  try {
    for await (const { header, body } of readTar(tar)) {
      entries++;
      const entry = header.name;
      const rel = cleanName(header.name, entry);
      const base = path.posix.basename(rel);
      const parent = rel.includes('/') ? path.posix.dirname(rel) : '';

      if (base.startsWith(WHITEOUT)) {
        await ensureParents(rel, entry);
        if (base === OPAQUE) {
          index.opaques.push(parent);
          xattrs.push({ rel: parent, name: 'trusted.overlay.opaque', value: Buffer.from('y') });
        } else if (!base.startsWith(`${WHITEOUT}${WHITEOUT}`)) {
          const victimName = base.slice(WHITEOUT.length);
          if (victimName === '' || victimName === '.' || victimName === '..') throw new UnsafeLayerError(entry, 'bad whiteout name');
          const victim = parent ? `${parent}/${victimName}` : victimName;
          const kind = known.get(victim);
          if (kind !== undefined) {
            await drain();
            if (kind === 'dir') await fs.rm(abs(victim), { recursive: true, force: true });
            else if (!pending.delete(victim)) await fs.unlink(abs(victim));
            for (const k of [...known.keys()]) if (k === victim || k.startsWith(`${victim}/`)) known.delete(k);
            for (const k of [...dirMeta.keys()]) if (k === victim || k.startsWith(`${victim}/`)) dirMeta.delete(k);
          }
          pending.set(victim, { kind: 'whiteout', major: 0, minor: 0 });
          known.set(victim, 'node');
          index.whiteouts.push(victim);
        }
        // other .wh..wh. names are aufs bookkeeping: nothing to do
        continue;
      }

      if (rel === '') {
        if (header.type !== 'dir') throw new UnsafeLayerError(entry, 'the root must be a directory');
        dirMeta.set('', header);
        continue;
      }
      await ensureParents(rel, entry);
      for (const [name, value] of header.xattrs) {
        // overlay's own attributes are ours to set, never an image's
        if (name.startsWith('trusted.overlay.')) continue;
        xattrs.push({ rel, name, value });
      }

      switch (header.type) {
        case 'dir': {
          await clear(rel, entry, true);
          if (!known.has(rel)) {
            await fs.mkdir(abs(rel), { mode: 0o700 });
            known.set(rel, 'dir');
          }
          index.dirs.push(rel);
          dirMeta.set(rel, header);
          break;
        }
        case 'file': {
          await clear(rel, entry, false);
          known.set(rel, 'file');
          size += header.size;
          if (header.size <= SMALL_FILE) {
            const chunks: Buffer[] = [];
            for await (const chunk of body) chunks.push(chunk);
            await launch(header.size, () => writeFile(abs(rel), header, chunks, newFilesRootOwned));
          } else {
            await writeFile(abs(rel), header, body, newFilesRootOwned);
          }
          break;
        }
        case 'symlink': {
          await clear(rel, entry, false);
          if (header.linkname === '') throw new UnsafeLayerError(entry, 'symlink with an empty target');
          await fs.symlink(header.linkname, abs(rel));
          known.set(rel, 'symlink');
          index.symlinks.push(rel);
          await fs.lchown(abs(rel), header.uid, header.gid);
          await fs.lutimes(abs(rel), header.mtime, header.mtime);
          break;
        }
        case 'link': {
          await drain();
          const target = cleanName(header.linkname, entry);
          if (target === '') throw new UnsafeLayerError(entry, 'hard link to the root directory');
          const targetKind = known.get(target);
          if (targetKind === undefined) throw new UnsafeLayerError(entry, `hard link to "${header.linkname}", which is not in this layer`);
          if (targetKind === 'dir') throw new UnsafeLayerError(entry, `hard link to the directory "${header.linkname}"`);
          if (targetKind === 'node' && pending.has(target)) throw new UnsafeLayerError(entry, `hard link to the device or whiteout "${header.linkname}"`);
          // Every directory on the way to the target must be one this layer made.
          const tparts = target.split('/');
          for (let i = 1; i < tparts.length; i++) {
            const p = tparts.slice(0, i).join('/');
            if (known.get(p) !== 'dir') throw new UnsafeLayerError(entry, `hard link target's parent "${p}" is not a directory of this layer`);
          }
          if (target === rel) break;
          await clear(rel, entry, false);
          await fs.link(abs(target), abs(rel));
          known.set(rel, targetKind);
          if (targetKind === 'symlink') index.symlinks.push(rel);
          break;
        }
        case 'char':
        case 'block':
        case 'fifo': {
          await clear(rel, entry, false);
          pending.set(rel, { kind: header.type, major: header.devmajor, minor: header.devminor, header });
          known.set(rel, 'node');
          break;
        }
        default:
          throw new UnsafeLayerError(entry, `unsupported tar entry type "${header.typeflag}"`);
      }
    }
  } catch (err) {
    // Nothing may still be writing when the caller removes dest.
    await Promise.allSettled([...inFlight]);
    throw err;
  }
  await drain();
  // Device nodes and whiteouts, made in one go by mknod(1) (Node has no mknod).
  await makeNodes(dest, pending);
  for (const [rel, p] of pending) {
    if (!p.header) continue;
    await fs.lchown(abs(rel), p.header.uid, p.header.gid);
    if (p.kind !== 'whiteout') await fs.chmod(abs(rel), p.header.mode);
    await fs.lutimes(abs(rel), p.header.mtime, p.header.mtime);
  }
  await setXattrs(dest, xattrs.filter((x) => known.get(x.rel) !== undefined));
  // Directories last, deepest first, so writing their children does not touch their mtimes.
  const dirs = [...dirMeta.entries()].sort((a, b) => b[0].split('/').length - a[0].split('/').length);
  for (const [rel, h] of dirs) {
    if (known.get(rel) !== 'dir') continue;
    await fs.lchown(abs(rel), h.uid, h.gid);
    await fs.chmod(abs(rel), h.mode);
    await fs.lutimes(abs(rel), h.mtime, h.mtime);
  }
  return { index, size: size + entries * 512, entries };
}

const SMALL_FILE = 256 * 1024;
const MAX_IN_FLIGHT = 32;
const MAX_IN_FLIGHT_BYTES = 32 * 1024 * 1024;
const ROOT = process.getuid?.() === 0 && process.getgid?.() === 0;

/** Creates a regular file that must not exist (O_EXCL), never through a symlink (O_NOFOLLOW). */
async function writeFile(file: string, header: TarHeader, data: AsyncIterable<Buffer> | Buffer[], rootOwned: boolean): Promise<void> {
  const fh = await fs.open(file, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
  try {
    for await (const chunk of data) {
      let off = 0;
      while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
    }
    // A new file of ours is already root's: skip the chown when that is what the archive says.
    if (!rootOwned || header.uid !== 0 || header.gid !== 0) await fh.chown(header.uid, header.gid);
    await fh.chmod(header.mode);
    await fh.utimes(header.mtime, header.mtime);
  } finally {
    await fh.close();
  }
}

function run(command: string, args: string[], cwd: string, input?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-2000); });
    child.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? new Error(`unpacking layers needs ${command} (apt-get install ${command === 'setfattr' ? 'attr' : 'coreutils'})`) : err));
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${command}: ${stderr.trim() || `exit ${code}`}`))));
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** Quotes a path the way getfattr dumps it, for setfattr --restore. */
function quotePath(rel: string): string {
  let out = '';
  for (const byte of Buffer.from(rel, 'utf8')) {
    const ch = String.fromCharCode(byte);
    out += /[A-Za-z0-9._+@%,:/-]/.test(ch) ? ch : `\\${byte.toString(8).padStart(3, '0')}`;
  }
  return out;
}

async function setXattrs(dest: string, list: { rel: string; name: string; value: Buffer }[]): Promise<void> {
  if (list.length === 0) return;
  let dump = '';
  for (const { rel, name, value } of list) {
    if (!/^[\x21-\x7e]+$/.test(name) || name.includes('=')) throw new UnsafeLayerError(rel, `bad xattr name "${name}"`);
    dump += `# file: ${quotePath(rel === '' ? '.' : `./${rel}`)}\n${name}=0s${value.toString('base64')}\n\n`;
  }
  // -h: set on the entry itself, never on what a symlink points at.
  await run('setfattr', ['-h', '--restore=-'], dest, dump);
}

async function makeNodes(dest: string, pending: Map<string, Pending>): Promise<void> {
  const list = [...pending.entries()];
  for (let i = 0; i < list.length; i += 500) {
    const args: string[] = [];
    for (const [rel, p] of list.slice(i, i + 500)) {
      const type = p.kind === 'fifo' ? 'p' : p.kind === 'block' ? 'b' : 'c';
      args.push(`./${rel}`, type, String(p.major), String(p.minor));
    }
    // mknod(2) never follows a symlink in its last component; parents were checked above.
    const script = 'while [ $# -gt 0 ]; do if [ "$2" = p ]; then mknod -m 0600 -- "$1" p || exit 1; else mknod -m 0600 -- "$1" "$2" "$3" "$4" || exit 1; fi; shift 4; done';
    await run('sh', ['-c', script, 'sh', ...args], dest);
  }
}
