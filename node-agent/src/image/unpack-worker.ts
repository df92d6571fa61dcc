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

let queue: Buffer[] = [];
let ended = false;
let aborted: string | undefined;
let wake: (() => void) | undefined;

port.on('message', (message: ToUnpacker) => {
  if (message.type === 'chunk') queue.push(Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength));
  else if (message.type === 'end') ended = true;
  else if (message.type === 'abort') aborted = message.reason;
  else if (message.type === 'start') void run(message.dest, message.algo);
  wake?.();
});

async function* fed(): AsyncGenerator<Buffer> {
  while (true) {
    if (aborted !== undefined) throw new Error(aborted);
    const chunk = queue.shift();
    if (chunk) {
      send({ type: 'ack', bytes: chunk.length });
      yield chunk;
      continue;
    }
    if (ended) return;
    await new Promise<void>((resolve) => { wake = resolve; });
    wake = undefined;
  }
}

async function run(dest: string, algo: 'sha256' | 'sha512'): Promise<void> {
  queue = [];
  ended = false;
  aborted = undefined;
  const hash = createHash(algo);
  const tar = (async function* () {
    for await (const chunk of decompress(fed())) {
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
