// Layers are decompressed, hashed and unpacked in worker threads, one layer per
// worker at a time. The agent's thread reads the network, writes and hashes the
// blob, and feeds the same bytes to a worker; the worker's answer is the
// unpacked directory's index and the tar's digest. Workers are made when first
// needed and kept a while (idle ones do not hold the process open).
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { UnsafeLayerError, type UnpackResult } from './unpack.ts';

export type ToUnpacker =
  | { type: 'start'; dest: string; algo: 'sha256' | 'sha512' }
  | { type: 'chunk'; data: Uint8Array }
  | { type: 'end' }
  | { type: 'abort'; reason: string };

export type FromUnpacker =
  | { type: 'ack'; bytes: number }
  | { type: 'done'; result: UnpackResult; diffID: string }
  | { type: 'error'; message: string; unsafe?: { entry: string; why: string } };

export interface Unpacked {
  result: UnpackResult;
  /** Digest of the uncompressed tar, to compare with the image config's diffID. */
  diffID: string;
}

/** Bytes fed to a worker and not yet taken by it. */
const MAX_UNACKED = 8 * 1024 * 1024;

// The worker loads TypeScript through tsx's require hook, whatever flags started the agent
// (Node 20 gives workers neither the --import loaders nor the hooks of the main thread).
const bootstrap = `require(${JSON.stringify(createRequire(import.meta.url).resolve('tsx/cjs/api'))}).register();
require(${JSON.stringify(fileURLToPath(new URL('./unpack-worker.ts', import.meta.url)))});`;

type Outcome = Exclude<FromUnpacker, { type: 'ack' }> | { type: 'crash'; error: Error };

class Unpacker {
  private readonly worker = new Worker(bootstrap, { eval: true });
  private onMessage: ((message: FromUnpacker) => void) | undefined;
  private onCrash: ((error: Error) => void) | undefined;
  broken = false;

  constructor() {
    this.worker.on('message', (message: FromUnpacker) => this.onMessage?.(message));
    const crashed = (error: Error) => {
      this.broken = true;
      this.onCrash?.(error);
    };
    this.worker.on('error', crashed);
    this.worker.on('exit', (code) => crashed(new Error(`the unpack worker exited with code ${code}`)));
    // Idle, it does not hold the process open (after the listeners: adding one refs the worker again).
    this.worker.unref();
  }

  async unpack(source: AsyncIterable<Buffer>, dest: string, algo: 'sha256' | 'sha512'): Promise<Unpacked> {
    // Its answer is awaited: the process must stay up for it.
    this.worker.ref();
    try {
      return await this.run(source, dest, algo);
    } finally {
      this.worker.unref();
    }
  }

  private async run(source: AsyncIterable<Buffer>, dest: string, algo: 'sha256' | 'sha512'): Promise<Unpacked> {
    let unacked = 0;
    let outcome: Outcome | undefined;
    let wakeFeeder: (() => void) | undefined;
    let settle!: (o: Outcome) => void;
    const finished = new Promise<Outcome>((resolve) => { settle = resolve; });
    const end = (o: Outcome) => {
      outcome ??= o;
      settle(outcome);
      wakeFeeder?.();
    };
    this.onMessage = (message) => {
      if (message.type !== 'ack') return end(message);
      unacked -= message.bytes;
      if (unacked <= MAX_UNACKED) wakeFeeder?.();
    };
    this.onCrash = (error) => end({ type: 'crash', error });
    this.post({ type: 'start', dest, algo });
    let sourceError: unknown;
    try {
      for await (const chunk of source) {
        if (outcome) break;
        // A view into a larger buffer would be cloned whole: send only its bytes.
        const data = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength ? chunk : new Uint8Array(chunk);
        this.post({ type: 'chunk', data });
        unacked += chunk.length;
        while (unacked > MAX_UNACKED && !outcome) await new Promise<void>((resolve) => { wakeFeeder = resolve; });
        wakeFeeder = undefined;
      }
      if (!outcome) this.post({ type: 'end' });
    } catch (err) {
      sourceError = err;
      if (!outcome) this.post({ type: 'abort', reason: err instanceof Error ? err.message : String(err) });
    }
    // The worker has stopped writing into dest once it answers, whatever happened.
    const result = await finished;
    this.onMessage = undefined;
    this.onCrash = undefined;
    if (sourceError !== undefined) throw sourceError;
    if (result.type === 'crash') throw result.error;
    if (result.type === 'error') throw result.unsafe ? new UnsafeLayerError(result.unsafe.entry, result.unsafe.why) : new Error(result.message);
    return { result: result.result, diffID: result.diffID };
  }

  private post(message: ToUnpacker): void {
    if (!this.broken) this.worker.postMessage(message);
  }

  terminate(): Promise<number> {
    this.broken = true;
    return this.worker.terminate();
  }
}

/** Workers kept after use, and how long an idle one lives. */
const MAX_IDLE = 4;
const IDLE_MS = 60_000;

class UnpackPool {
  private readonly idle: { unpacker: Unpacker; timer: NodeJS.Timeout }[] = [];

  /** Callers bound how many run at once (the puller's layer semaphore). */
  async unpack(source: AsyncIterable<Buffer>, dest: string, algo: 'sha256' | 'sha512'): Promise<Unpacked> {
    const kept = this.idle.pop();
    if (kept) clearTimeout(kept.timer);
    const unpacker = kept?.unpacker ?? new Unpacker();
    try {
      return await unpacker.unpack(source, dest, algo);
    } finally {
      if (!unpacker.broken && this.idle.length < MAX_IDLE) {
        const entry = { unpacker, timer: setTimeout(() => {
          this.idle.splice(this.idle.indexOf(entry), 1);
          void unpacker.terminate();
        }, IDLE_MS).unref() };
        this.idle.push(entry);
      } else if (!unpacker.broken) {
        void unpacker.terminate();
      }
    }
  }
}

/** One pool per process, shared by every image service in it. */
export const unpackPool = new UnpackPool();
