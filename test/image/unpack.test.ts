// The unpacker on archives made by GNU tar (gnu and pax formats): long names
// and link names, big ids, hard links, xattrs, fifos, sparse-free big files.
import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { chown, link, lstat, mkdir, mkdtemp, readFile, readlink, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTar, type TarWriteEntry } from '../../images/index.ts';
import { unpackLayer } from '../../node-agent/src/image/unpack.ts';

let top: string;
let src: string;
const long = 'd'.repeat(120);
const T = 1_600_000_000;

beforeAll(async () => {
  top = await mkdtemp(path.join(os.tmpdir(), 'berth-unpack-'));
  src = path.join(top, 'src');
  await mkdir(path.join(src, long, 'sub'), { recursive: true });
  await writeFile(path.join(src, long, 'sub', 'file-with-a-long-path.txt'), 'long\n');
  await writeFile(path.join(src, 'big-ids'), 'ids\n');
  await chown(path.join(src, 'big-ids'), 3_000_000, 4_000_000);
  await writeFile(path.join(src, 'hard1'), 'hard\n');
  await link(path.join(src, 'hard1'), path.join(src, 'hard2'));
  await symlink(`../${'t'.repeat(150)}/target`, path.join(src, 'longlink'));
  await writeFile(path.join(src, 'xattr'), 'x\n');
  execFileSync('setfattr', ['-n', 'user.berth', '-v', 'hello', path.join(src, 'xattr')]);
  execFileSync('mkfifo', [path.join(src, 'fifo')]);
  await writeFile(path.join(src, 'blob'), Buffer.alloc(3 * 1024 * 1024 + 7, 0xab));
  for (const p of ['big-ids', 'hard1', 'xattr', 'blob', long]) await utimes(path.join(src, p), T, T);
});

afterAll(async () => {
  await rm(top, { recursive: true, force: true });
});

describe('unpacking GNU tar archives', () => {
  for (const format of ['gnu', 'posix']) {
    it(`reads the ${format} format`, async () => {
      const archive = path.join(top, `${format}.tar`);
      execFileSync('tar', [`--format=${format}`, '--xattrs', '--xattrs-include=user.*', '-cf', archive, '-C', src, '.']);
      const dest = path.join(top, `out-${format}`);
      await mkdir(dest);
      const result = await unpackLayer(createReadStream(archive), dest);
      expect(result.entries).toBeGreaterThan(8);
      expect(await readFile(path.join(dest, long, 'sub', 'file-with-a-long-path.txt'), 'utf8')).toBe('long\n');
      const ids = await stat(path.join(dest, 'big-ids'));
      expect([ids.uid, ids.gid]).toEqual([3_000_000, 4_000_000]);
      expect(ids.mtimeMs).toBe(T * 1000);
      expect((await stat(path.join(dest, 'hard1'))).ino).toBe((await stat(path.join(dest, 'hard2'))).ino);
      expect(await readlink(path.join(dest, 'longlink'))).toBe(`../${'t'.repeat(150)}/target`);
      if (format === 'posix') {
        expect(execFileSync('getfattr', ['--only-values', '-n', 'user.berth', path.join(dest, 'xattr')], { encoding: 'utf8' })).toBe('hello');
      }
      expect((await lstat(path.join(dest, 'fifo'))).isFIFO()).toBe(true);
      expect((await stat(path.join(dest, 'blob'))).size).toBe(3 * 1024 * 1024 + 7);
      expect((await stat(path.join(dest, long))).mtimeMs).toBe(T * 1000);
    });
  }
});

describe('later entries win, in archive order', () => {
  it('replaces, links and whites out files written just before', async () => {
    const f = (name: string, content: string): TarWriteEntry => ({ name, type: 'file', data: Buffer.from(content), mode: 0o644 });
    const entries: TarWriteEntry[] = [];
    for (let i = 0; i < 200; i++) entries.push(f(`many/${i}`, `first ${i}`));
    entries.push(f('many/7', 'second 7'));
    entries.push({ name: 'many/7-link', type: 'link', linkname: 'many/7' });
    entries.push(f('many/.wh.8', ''));
    entries.push({ name: 'many/9', type: 'dir', mode: 0o755 });
    entries.push(f('many/9/inside', 'inside'));
    entries.push(f('big', 'x'.repeat(600_000)));
    entries.push(f('big', 'small now'));
    const dest = path.join(top, 'order');
    await mkdir(dest);
    await unpackLayer((async function* () { yield writeTar(entries); })(), dest);
    expect(await readFile(path.join(dest, 'many/6'), 'utf8')).toBe('first 6');
    expect(await readFile(path.join(dest, 'many/7'), 'utf8')).toBe('second 7');
    expect((await stat(path.join(dest, 'many/7-link'))).ino).toBe((await stat(path.join(dest, 'many/7'))).ino);
    expect((await lstat(path.join(dest, 'many/8'))).isCharacterDevice()).toBe(true);
    expect(await readFile(path.join(dest, 'many/9/inside'), 'utf8')).toBe('inside');
    expect(await readFile(path.join(dest, 'big'), 'utf8')).toBe('small now');
    expect(await readFile(path.join(dest, 'many/199'), 'utf8')).toBe('first 199');
  });
});
