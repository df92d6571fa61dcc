// A streaming tar reader (ustar, pax, GNU long names) that keeps pax values as
// bytes, so binary xattrs (SCHILY.xattr.security.capability) survive.

export type TarEntryType = 'file' | 'link' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo' | 'other';

export interface TarHeader {
  /** The name exactly as the archive gives it (pax path / GNU long name applied). */
  name: string;
  type: TarEntryType;
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch, possibly fractional (pax mtime). */
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** From pax SCHILY.xattr.<name> records. */
  xattrs: Map<string, Buffer>;
}

/** Reads exact byte counts from an async stream of chunks. */
class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private done = false;
  private readonly it: AsyncIterator<Buffer>;
  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(n: number): Promise<boolean> {
    while (this.buffered < n && !this.done) {
      const next = await this.it.next();
      if (next.done) { this.done = true; break; }
      const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value as Uint8Array);
      if (chunk.length === 0) continue;
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    return this.buffered >= n;
  }

  /** Exactly n bytes, or null at a clean end of stream (nothing buffered). */
  async read(n: number): Promise<Buffer | null> {
    if (!(await this.fill(n))) {
      if (this.buffered === 0) return null;
      throw new Error('tar: unexpected end of archive');
    }
    return this.take(n);
  }

  private take(n: number): Buffer {
    if (this.chunks[0]!.length >= n) {
      const head = this.chunks[0]!;
      const out = head.subarray(0, n);
      if (head.length === n) this.chunks.shift();
      else this.chunks[0] = head.subarray(n);
      this.buffered -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const head = this.chunks[0]!;
      const want = Math.min(n - off, head.length);
      head.copy(out, off, 0, want);
      off += want;
      if (want === head.length) this.chunks.shift();
      else this.chunks[0] = head.subarray(want);
    }
    this.buffered -= n;
    return out;
  }

  /** Up to n bytes in pieces as they arrive. */
  async *stream(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.fill(1))) throw new Error('tar: unexpected end of archive');
      const head = this.chunks[0]!;
      const want = Math.min(left, head.length);
      yield this.take(want);
      left -= want;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.stream(n)) { /* discard */ }
  }

  /** Reads and drops everything left. */
  async drain(): Promise<void> {
    this.chunks = [];
    this.buffered = 0;
    while (!this.done) {
      const next = await this.it.next();
      if (next.done) this.done = true;
    }
  }
}

function parseNumber(buf: Buffer, field: string): number {
  if (buf.length === 0) return 0;
  if (buf[0]! & 0x80) {
    // base-256, big endian; negative values are refused
    if (buf[0]! & 0x40) throw new Error(`tar: negative ${field}`);
    let value = buf[0]! & 0x3f;
    for (let i = 1; i < buf.length; i++) {
      value = value * 256 + buf[i]!;
      if (!Number.isSafeInteger(value)) throw new Error(`tar: ${field} too large`);
    }
    return value;
  }
  const text = buf.toString('latin1').replace(/\0.*$/s, '').trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new Error(`tar: bad ${field} "${text}"`);
  return parseInt(text, 8);
}

function cstring(buf: Buffer): string {
  const end = buf.indexOf(0);
  return buf.subarray(0, end === -1 ? buf.length : end).toString('utf8');
}

function parsePax(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let off = 0;
  while (off < buf.length) {
    const space = buf.indexOf(0x20, off);
    if (space === -1) break;
    const len = parseInt(buf.subarray(off, space).toString('latin1'), 10);
    if (!Number.isFinite(len) || len <= 0 || off + len > buf.length) throw new Error('tar: bad pax record');
    const record = buf.subarray(space + 1, off + len - 1); // drop the trailing newline
    const eq = record.indexOf(0x3d);
    if (eq === -1) throw new Error('tar: bad pax record');
    out.set(record.subarray(0, eq).toString('utf8'), Buffer.from(record.subarray(eq + 1)));
    off += len;
  }
  return out;
}

const TYPES: Record<string, TarEntryType> = {
  '0': 'file', '\0': 'file', '7': 'file', '1': 'link', '2': 'symlink', '3': 'char', '4': 'block', '5': 'dir', '6': 'fifo',
};

export interface TarEntry {
  header: TarHeader;
  /** The entry's data; read it fully (or not at all) before asking for the next entry. */
  body: AsyncGenerator<Buffer>;
}

/** Yields the archive's entries in order. Metadata entries (pax, long names) are folded in. */
export async function* readTar(source: AsyncIterable<Buffer>): AsyncGenerator<TarEntry> {
  const reader = new ByteReader(source);
  let globalPax = new Map<string, Buffer>();
  let pax: Map<string, Buffer> | null = null;
  let longName: string | null = null;
  let longLink: string | null = null;
  while (true) {
    const block = await reader.read(512);
    if (block === null) return;
    if (block.every((b) => b === 0)) {
      // End of archive (two zero blocks); the rest is padding.
      await reader.drain();
      return;
    }
    const stored = parseNumber(block.subarray(148, 156), 'checksum');
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
    if (sum !== stored) throw new Error('tar: header checksum mismatch (not a tar archive, or corrupt)');
    const typeflag = String.fromCharCode(block[156]!);
    let size = parseNumber(block.subarray(124, 136), 'size');
    const padded = Math.ceil(size / 512) * 512;
    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      if (size > 16 * 1024 * 1024) throw new Error('tar: metadata entry too large');
      const data = size === 0 ? Buffer.alloc(0) : (await reader.read(padded))!.subarray(0, size);
      if (typeflag === 'x') pax = parsePax(data);
      else if (typeflag === 'g') globalPax = new Map([...globalPax, ...parsePax(data)]);
      else if (typeflag === 'L') longName = cstring(data);
      else longLink = cstring(data);
      continue;
    }
    const magic = block.subarray(257, 263).toString('latin1');
    let name = cstring(block.subarray(0, 100));
    if (magic === 'ustar\0') {
      const prefix = cstring(block.subarray(345, 500));
      if (prefix) name = `${prefix}/${name}`;
    }
    const records = new Map([...globalPax, ...(pax ?? [])]);
    const header: TarHeader = {
      name,
      type: TYPES[typeflag] ?? 'other',
      typeflag,
      mode: parseNumber(block.subarray(100, 108), 'mode') & 0o7777,
      uid: parseNumber(block.subarray(108, 116), 'uid'),
      gid: parseNumber(block.subarray(116, 124), 'gid'),
      size,
      mtime: parseNumber(block.subarray(136, 148), 'mtime'),
      linkname: cstring(block.subarray(157, 257)),
      devmajor: parseNumber(block.subarray(329, 337), 'devmajor'),
      devminor: parseNumber(block.subarray(337, 345), 'devminor'),
      xattrs: new Map(),
    };
    if (longName !== null) header.name = longName;
    if (longLink !== null) header.linkname = longLink;
    for (const [key, value] of records) {
      if (key === 'path') header.name = value.toString('utf8');
      else if (key === 'linkpath') header.linkname = value.toString('utf8');
      else if (key === 'size') size = header.size = Number(value.toString('latin1'));
      else if (key === 'uid') header.uid = Number(value.toString('latin1'));
      else if (key === 'gid') header.gid = Number(value.toString('latin1'));
      else if (key === 'mtime') header.mtime = Number(value.toString('latin1'));
      else if (key.startsWith('SCHILY.xattr.')) header.xattrs.set(key.slice('SCHILY.xattr.'.length), value);
    }
    if (!Number.isSafeInteger(header.size) || header.size < 0) throw new Error(`tar: bad size for ${header.name}`);
    pax = null;
    longName = null;
    longLink = null;
    if (header.type === 'dir' && header.typeflag === '0') header.type = 'dir';
    if (header.type === 'file' && header.name.endsWith('/') && (typeflag === '\0' || typeflag === '0')) header.type = 'dir';
    // Links, devices and directories carry no data whatever their size field says.
    const dataSize = header.type === 'file' || header.type === 'other' ? header.size : 0;
    const dataPadded = Math.ceil(dataSize / 512) * 512;
    let consumed = false;
    const body = (async function* () {
      consumed = true;
      yield* reader.stream(dataSize);
      await reader.skip(dataPadded - dataSize);
    })();
    yield { header, body };
    if (!consumed) await reader.skip(dataPadded);
  }
}
