// The body of an unpack worker thread (see unpack-pool.ts): decompresses the
// layer bytes the agent feeds it, hashes the tar (the diffID) and unpacks it.
// The 100 MB a big layer inflates to never reach the agent's own heap, so they
// cost it no garbage collections, and the tar hashing runs beside the blob's.
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { decompress } from './decompress.ts';
import { unpackLayer, UnsafeLayerError } from './unpack.ts';
import type { FromUnpacker, ToUnpacker } from './unpack-pool.ts';

const port = parentPort!;
const send = (message: FromUnpacker) => port.postMessage(message);

/** One layer's feed. A new layer gets a new one, so nothing left of an earlier, failed layer reads its bytes. */
interface Feed {
  queue: Buffer[];
  ended: boolean;
  aborted?: string;
  wake?: () => void;
}

let current: Feed | undefined;

port.on('message', (message: ToUnpacker) => {
  if (message.type === 'start') {
    if (current) {
      current.aborted = 'superseded by the next layer';
      current.wake?.();
    }
    current = { queue: [], ended: false };
    void run(current, message.dest, message.algo);
    return;
  }
  const feed = current;
  if (!feed) return;
  if (message.type === 'chunk') feed.queue.push(Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength));
  else if (message.type === 'end') feed.ended = true;
  else feed.aborted = message.reason;
  feed.wake?.();
});

async function* bytesOf(feed: Feed): AsyncGenerator<Buffer> {
  while (true) {
    if (feed.aborted !== undefined) throw new Error(feed.aborted);
    const chunk = feed.queue.shift();
    if (chunk) {
      send({ type: 'ack', bytes: chunk.length });
      yield chunk;
      continue;
    }
    if (feed.ended) return;
    await new Promise<void>((resolve) => { feed.wake = resolve; });
    feed.wake = undefined;
  }
}

async function run(feed: Feed, dest: string, algo: 'sha256' | 'sha512'): Promise<void> {
  const hash = createHash(algo);
  const tar = (async function* () {
    for await (const chunk of decompress(bytesOf(feed))) {
      hash.update(chunk);
      yield chunk;
    }
  })();
  try {
    const result = await unpackLayer(tar, dest);
    send({ type: 'done', result, diffID: `${algo}:${hash.digest('hex')}` });
  } catch (err) {
    send(err instanceof UnsafeLayerError
      ? { type: 'error', message: err.message, unsafe: { entry: err.entry, why: err.why } }
      : { type: 'error', message: (err as Error).message });
  }
}
