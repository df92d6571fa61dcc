// berth image pull REF: pulls an image into this node's image store, with a
// progress bar per layer.
//
// The API has no image route, so the pull runs here, in the CLI, with the
// agent's own image service (node-agent/src/image) on the store the local agent
// uses (<BERTH_STATE_DIR>/agent/images; the store's file locks let the agent
// and the CLI share it): it warms this node, so a task started on it next does
// not wait for the download. Per-layer byte counts come from the blob downloads
// themselves (a counting wrapper around fetch for this process).
import path from 'node:path';
import { destination, pino } from 'pino';
import type { Command, Context } from './command.ts';
import { CliError } from './errors.ts';
import { bytes } from './output.ts';

interface Bar {
  digest: string;
  total: number;
  done: number;
  finished: boolean;
  config: boolean;
}

class Bars {
  private bars = new Map<string, Bar>();
  private drawn = 0;
  private lastDraw = 0;
  /** Blobs that start before the first layer progress are the image config: not shown. */
  layersStarted = false;

  constructor(private ctx: Context, private live: boolean) {}

  start(digest: string, total: number): void {
    this.bars.set(digest, { digest, total, done: 0, finished: false, config: !this.layersStarted });
    this.draw(true);
  }

  add(digest: string, n: number): void {
    const bar = this.bars.get(digest);
    if (bar) bar.done += n;
    this.draw(false);
  }

  finish(digest: string): void {
    const bar = this.bars.get(digest);
    if (!bar || bar.finished) return;
    bar.finished = true;
    if (!this.live && !bar.config && this.ctx.format === 'table') this.ctx.err(`${short(digest)}  done  ${bytes(bar.done)}\n`);
    this.draw(true);
  }

  layers(): Bar[] {
    return [...this.bars.values()].filter((b) => !b.config);
  }

  draw(force: boolean): void {
    if (!this.live) return;
    const now = Date.now();
    if (!force && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    const lines = this.layers().map((b) => {
      const width = 30;
      const frac = b.total > 0 ? Math.min(1, b.done / b.total) : b.finished ? 1 : 0;
      const fill = Math.round(frac * width);
      const state = b.finished ? 'done       ' : 'downloading';
      return `${short(b.digest)}  ${state} [${'='.repeat(fill)}${' '.repeat(width - fill)}] ${bytes(b.done)}/${bytes(b.total) ?? '?'}`;
    });
    // Move up over what was drawn last time and draw again.
    let text = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    for (const line of lines) text += `\x1b[2K${line}\n`;
    this.drawn = lines.length;
    this.ctx.err(text);
  }
}

const short = (digest: string) => digest.replace(/^sha256:/, '').slice(0, 12);

/** Counts the bytes of every blob download of this process for `bars`. */
function countBlobDownloads(bars: Bars): () => void {
  const original = globalThis.fetch;
  globalThis.fetch = async (input, init) => {
    const res = await original(input, init);
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const m = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(new URL(url).pathname);
    if (!m || !res.ok || !res.body) return res;
    const digest = m[1]!;
    bars.start(digest, Number(res.headers.get('content-length')) || 0);
    const counted = res.body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        bars.add(digest, chunk.byteLength);
        controller.enqueue(chunk);
      },
      flush() {
        bars.finish(digest);
      },
    }));
    return new Response(counted, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
  return () => { globalThis.fetch = original; };
}

export const imageCommands: Command[] = [
  {
    name: 'image pull',
    summary: 'Pull an image into this node\'s image store (so tasks started here next do not wait for it).',
    args: 'REF',
    positionals: [1, 1],
    options: {
      root: { type: 'string', value: 'DIR', description: 'the image store (default <BERTH_STATE_DIR>/agent/images, the local agent\'s)' },
      registry: { type: 'string', value: 'HOST:PORT', description: 'for references without a registry (env BERTH_REGISTRY; else the all-in-one\'s, BERTH_LOCAL_REGISTRY_ADDR or 127.0.0.1:5000)' },
    },
    details: 'Runs on the machine it is typed on, against the registry directly (the API has no pull route);\n' +
      'plain HTTP is used for loopback registries and those in BERTH_INSECURE_REGISTRIES.\n' +
      'With --output json: { reference, digest, layers, bytes }.',
    async run(ctx, values, [reference]) {
      const { createImageService } = await import('../node-agent/src/image/index.ts');
      const env = process.env;
      const root = path.resolve((values.root as string | undefined) ?? path.join(env.BERTH_STATE_DIR || '.berth', 'agent', 'images'));
      const registry = (values.registry as string | undefined) || env.BERTH_REGISTRY || env.BERTH_LOCAL_REGISTRY_ADDR || '127.0.0.1:5000';
      const logger = pino({ level: env.LOG_LEVEL ?? 'warn', base: { part: 'cli' } }, destination(2));
      const service = createImageService({
        root, defaultRegistry: registry, logger,
        insecureRegistries: (env.BERTH_INSECURE_REGISTRIES ?? '').split(',').map((s) => s.trim()).filter(Boolean),
      });
      const bars = new Bars(ctx, Boolean((ctx.io.stderr as { isTTY?: boolean }).isTTY) && ctx.format === 'table');
      const restore = countBlobDownloads(bars);
      let layersTotal = 0;
      let bytesTotal = 0;
      let pulled;
      try {
        pulled = await service.pull(reference!, {
          onProgress: (p) => {
            bars.layersStarted = true;
            layersTotal = p.layersTotal;
            bytesTotal = p.bytesTotal;
          },
        });
      } catch (err) {
        throw new CliError(`pull ${reference}: ${(err as Error).message}`);
      } finally {
        restore();
      }
      const downloaded = bars.layers().length;
      const result = { reference: pulled.reference, digest: pulled.digest, layers: layersTotal, downloaded, bytes: bytesTotal, root };
      ctx.emit(result, () =>
        `${pulled.reference}: ${layersTotal} layer${layersTotal === 1 ? '' : 's'}, ${bytes(bytesTotal)} ` +
        `(${downloaded} downloaded, ${layersTotal - downloaded} already here)\ndigest: ${pulled.digest}\n`);
    },
  },
];
