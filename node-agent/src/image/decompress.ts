// Turns a layer blob's bytes into tar bytes: gzip with zlib, zstd through
// Debian's `zstd -dc` (Node 20's zlib has none), or plain tar as it is.
// The kind is sniffed from the first bytes, so a wrong media type does no harm.
import { spawn } from 'node:child_process';
import { Readable, pipeline } from 'node:stream';
import zlib from 'node:zlib';

export type Compression = 'gzip' | 'zstd' | 'none';

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

export function sniffCompression(head: Buffer): Compression {
  if (GZIP_MAGIC.every((b, i) => head[i] === b)) return 'gzip';
  if (ZSTD_MAGIC.every((b, i) => head[i] === b)) return 'zstd';
  return 'none';
}

/** Puts back bytes already read in front of the rest of an iterator. */
async function* prepend(first: Buffer[], rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  for (const b of first) yield b;
  while (true) {
    const next = await rest.next();
    if (next.done) return;
    yield next.value;
  }
}

/** Decompressed bytes of `source`, whatever its compression. */
export async function* decompress(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const it = source[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let headLen = 0;
  while (headLen < 4) {
    const next = await it.next();
    if (next.done) break;
    head.push(next.value);
    headLen += next.value.length;
  }
  const kind = sniffCompression(Buffer.concat(head));
  const input = prepend(head, it);
  if (kind === 'none') {
    yield* input;
  } else if (kind === 'gzip') {
    const gunzip = zlib.createGunzip({ chunkSize: 256 * 1024 });
    // pipeline() destroys gunzip with the source's error, so the loop below throws it.
    yield* pipeline(Readable.from(input), gunzip, () => undefined) as AsyncIterable<Buffer>;
  } else {
    yield* zstdDecompress(input);
  }
}

async function* zstdDecompress(input: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const child = spawn('zstd', ['-dc', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-2000); });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT'
      ? new Error('zstd layers need the `zstd` program (apt-get install zstd)')
      : err));
    child.once('close', (code) => resolve(code));
  });
  exited.catch(() => undefined);
  let feedError: unknown;
  const feeding = (async () => {
    try {
      for await (const chunk of input) {
        if (child.exitCode !== null || child.signalCode !== null || child.stdin.destroyed) break;
        if (!child.stdin.write(chunk)) {
          await new Promise<void>((r) => {
            child.stdin.once('drain', () => r());
            child.stdin.once('close', () => r());
          });
        }
      }
    } catch (err) {
      feedError = err;
    } finally {
      child.stdin.end();
    }
  })();
  child.stdin.on('error', () => undefined);
  try {
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) yield chunk;
    await feeding;
    if (feedError) throw feedError;
    const code = await exited;
    if (code !== 0) throw new Error(`zstd: ${stderr.trim() || `exit ${code}`}`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}
