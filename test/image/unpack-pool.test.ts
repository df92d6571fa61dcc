// The unpack workers (node-agent/src/image/unpack-pool.ts): a layer refused
// halfway through its bytes leaves the worker ready for the next layer, whose
// bytes nothing of the refused one reads; a feed that fails is the caller's error.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTar } from '../../images/index.ts';
import { unpackPool } from '../../node-agent/src/image/unpack-pool.ts';
import { UnsafeLayerError } from '../../node-agent/src/image/unpack.ts';

let top: string;
beforeAll(async () => { top = await mkdtemp(path.join(os.tmpdir(), 'berth-unpack-pool-')); });
afterAll(async () => { await rm(top, { recursive: true, force: true }); });

/** The bytes in small chunks, as a download delivers them. */
async function* chunks(bytes: Buffer, size = 4096, failAfter?: number): AsyncGenerator<Buffer> {
  for (let off = 0; off < bytes.length; off += size) {
    if (failAfter !== undefined && off >= failAfter) throw new Error('connection reset');
    yield bytes.subarray(off, off + size);
    await new Promise((r) => setImmediate(r));
  }
}

const files = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => ({ name: `${prefix}/f${i}`, type: 'file' as const, data: Buffer.alloc(20_000, i) }));

describe('unpack workers', () => {
  it('refuse a layer halfway, then unpack the next one on the same worker intact', async () => {
    const bad = writeTar([{ name: 'esc', type: 'symlink', linkname: '/etc' }, { name: 'esc/pwned', type: 'file', data: Buffer.from('x') }, ...files(200, 'after')]);
    // gzip: its decompressor reads ahead, so the refused layer's feed may still be pulled from.
    const refused = await unpackPool.unpack(chunks(gzipSync(bad), 512), await mkdtemp(path.join(top, 'bad-')), 'sha256').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(UnsafeLayerError);
    expect((refused as Error).message).toBe('refusing layer: entry "esc/pwned": parent "esc" is a symlink planted by an earlier entry');

    const good = writeTar(files(50, 'data'));
    const dest = await mkdtemp(path.join(top, 'good-'));
    const { diffID, result } = await unpackPool.unpack(chunks(gzipSync(good), 512), dest, 'sha256');
    expect(diffID).toBe(`sha256:${createHash('sha256').update(good).digest('hex')}`);
    expect(result.entries).toBe(50);
    expect((await readdir(path.join(dest, 'data'))).length).toBe(50);
    expect(await readFile(path.join(dest, 'data/f7'))).toEqual(Buffer.alloc(20_000, 7));
  });

  it('reject with the feed\'s own error when the download fails, and go on working', async () => {
    const tar = writeTar(files(50, 'data'));
    await expect(unpackPool.unpack(chunks(tar, 4096, 100_000), await mkdtemp(path.join(top, 'cut-')), 'sha256')).rejects.toThrow('connection reset');
    const { diffID } = await unpackPool.unpack(chunks(tar), await mkdtemp(path.join(top, 'again-')), 'sha256');
    expect(diffID).toBe(`sha256:${createHash('sha256').update(tar).digest('hex')}`);
  });
});
