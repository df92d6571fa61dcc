// A small, deterministic tar writer (ustar, with pax records for long names,
// big numbers and xattrs). Names are written exactly as given, so tests can
// make hostile archives too.

export type TarWriteType = 'file' | 'dir' | 'symlink' | 'link' | 'char' | 'block' | 'fifo';

export interface TarWriteEntry {
  name: string;
  type: TarWriteType;
  mode?: number;
  uid?: number;
  gid?: number;
  /** Seconds since the epoch. @defaultValue 0 */
  mtime?: number;
  data?: Buffer;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, string | Buffer>;
}

const TYPEFLAG: Record<TarWriteType, string> = { file: '0', link: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' };

function octal(value: number, width: number): string | null {
  const s = value.toString(8);
  if (s.length > width - 1) return null;
  return s.padStart(width - 1, '0') + '\0';
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function header(fields: {
  name: string; mode: number; uid: number; gid: number; size: number; mtime: number;
  typeflag: string; linkname: string; devmajor: number; devminor: number;
}): Buffer {
  const b = Buffer.alloc(512);
  b.write(fields.name, 0, 100, 'utf8');
  b.write(octal(fields.mode, 8)!, 100, 'latin1');
  b.write(octal(fields.uid, 8) ?? octal(0, 8)!, 108, 'latin1');
  b.write(octal(fields.gid, 8) ?? octal(0, 8)!, 116, 'latin1');
  b.write(octal(fields.size, 12) ?? octal(0, 12)!, 124, 'latin1');
  b.write(octal(fields.mtime, 12) ?? octal(0, 12)!, 136, 'latin1');
  b.write(fields.typeflag, 156, 'latin1');
  b.write(fields.linkname, 157, 100, 'utf8');
  b.write('ustar\0', 257, 'latin1');
  b.write('00', 263, 'latin1');
  b.write(octal(fields.devmajor, 8)!, 329, 'latin1');
  b.write(octal(fields.devminor, 8)!, 337, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[i]!;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return b;
}

function pad(size: number): Buffer {
  const rest = size % 512;
  return Buffer.alloc(rest === 0 ? 0 : 512 - rest);
}

/** One entry's bytes: an optional pax header, the ustar header, the data padded to 512. */
export function encodeEntry(entry: TarWriteEntry): Buffer[] {
  const data = entry.type === 'file' ? entry.data ?? Buffer.alloc(0) : Buffer.alloc(0);
  const name = entry.type === 'dir' && !entry.name.endsWith('/') ? `${entry.name}/` : entry.name;
  const linkname = entry.linkname ?? '';
  const uid = entry.uid ?? 0;
  const gid = entry.gid ?? 0;
  const mtime = Math.floor(entry.mtime ?? 0);
  const records: Buffer[] = [];
  const ascii = (s: string) => /^[\x20-\x7e]*$/.test(s);
  if (Buffer.byteLength(name) > 100 || !ascii(name)) records.push(paxRecord('path', Buffer.from(name)));
  if (Buffer.byteLength(linkname) > 100 || !ascii(linkname)) records.push(paxRecord('linkpath', Buffer.from(linkname)));
  if (octal(uid, 8) === null) records.push(paxRecord('uid', Buffer.from(String(uid))));
  if (octal(gid, 8) === null) records.push(paxRecord('gid', Buffer.from(String(gid))));
  if (octal(data.length, 12) === null) records.push(paxRecord('size', Buffer.from(String(data.length))));
  for (const key of Object.keys(entry.xattrs ?? {}).sort()) {
    const v = entry.xattrs![key]!;
    records.push(paxRecord(`SCHILY.xattr.${key}`, Buffer.isBuffer(v) ? v : Buffer.from(v)));
  }
  const out: Buffer[] = [];
  if (records.length > 0) {
    const pax = Buffer.concat(records);
    const paxName = `PaxHeaders.0/${name.replace(/\/$/, '').split('/').pop()!.slice(0, 80)}`;
    out.push(header({ name: paxName, mode: 0o644, uid: 0, gid: 0, size: pax.length, mtime, typeflag: 'x', linkname: '', devmajor: 0, devminor: 0 }));
    out.push(pax, pad(pax.length));
  }
  out.push(header({
    name, // cut at 100 bytes; the pax path has it whole
    mode: (entry.mode ?? (entry.type === 'dir' ? 0o755 : entry.type === 'symlink' ? 0o777 : 0o644)) & 0o7777,
    uid, gid, size: data.length, mtime,
    typeflag: TYPEFLAG[entry.type],
    linkname,
    devmajor: entry.devmajor ?? 0,
    devminor: entry.devminor ?? 0,
  }));
  if (data.length > 0) out.push(data, pad(data.length));
  return out;
}

/** The whole archive, entries in the order given, with the two zero blocks at the end. */
export function writeTar(entries: TarWriteEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) parts.push(...encodeEntry(e));
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}
