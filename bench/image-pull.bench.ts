// image_pull_s: a cold pull (download, verify, unpack) of a ≈40 MB compressed /
// ≈100 MB unpacked image from a loopback docker-registry, Berth's image service
// against `docker pull` (Debian's docker.io; the bench starts its own dockerd
// with a private data root, no iptables, no bridge, and stops it after).
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { buildImage, pushImage, type LayerSpec } from '../images/index.ts';
import { createImageService } from '../node-agent/src/image/index.ts';
import { startRegistry, type TestRegistry } from '../test/harness/registry.ts';
import { startDockerd, unmountUnder, type Dockerd } from './docker.ts';
import { alternate, median, timeMs, type Benchmark } from './lib.ts';

const MiB = 1024 * 1024;

/** Deterministic incompressible bytes (sha512 in counter mode). */
function noise(seed: string, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  for (let off = 0, i = 0; off < size; i++) {
    const block = createHash('sha512').update(`${seed}:${i}`).digest();
    off += block.copy(out, off);
  }
  return out;
}

/** Compressible bytes: log-like lines with a little variation. */
function text(seed: string, size: number): Buffer {
  const lines: string[] = [];
  let n = 0;
  let len = 0;
  while (len < size) {
    const line = `${seed} ${String(n).padStart(8, '0')} INFO request handled path=/api/v1/items/${n % 977} status=200 bytes=${(n * 7919) % 65536}\n`;
    lines.push(line);
    len += line.length;
    n++;
  }
  return Buffer.from(lines.join('')).subarray(0, size);
}

/** 4 layers × 25 MiB: 8 MiB of noise and 17 MiB of text each (≈40 MB gzipped). */
function benchLayers(): LayerSpec[] {
  return Array.from({ length: 4 }, (_, l) => {
    const files: Record<string, Buffer> = {};
    for (let f = 0; f < 25; f++) files[`data/l${l}/f${String(f).padStart(2, '0')}`] = f < 8 ? noise(`l${l}f${f}`, MiB) : text(`l${l}f${f}`, MiB);
    return { files, compression: 'gzip' as const };
  });
}

const bench: Benchmark = async () => {
  let registry: TestRegistry | undefined;
  let dockerd: Dockerd | null = null;
  const top = await mkdtemp(path.join(os.tmpdir(), 'berth-bench-pull-'));
  try {
    registry = await startRegistry();
    const image = await buildImage({ layers: benchLayers() });
    await pushImage(registry.host, 'bench/pull', 'v1', image);
    const compressed = image.layers.reduce((n, l) => n + l.size, 0);
    process.stdout.write(`image_pull: image ${(compressed / 1e6).toFixed(1)} MB compressed, ${(100 * MiB / 1e6).toFixed(0)} MB unpacked, ${image.layers.length} layers\n`);
    const reference = `${registry.host}/bench/pull:v1`;
    const logger = pino({ level: 'silent' });
    let run = 0;
    const berth = async () => {
      const root = path.join(top, `store-${run++}`);
      const service = createImageService({ root, logger });
      const ms = await timeMs(() => service.pull(reference));
      await rm(root, { recursive: true, force: true });
      return ms / 1000;
    };
    dockerd = await startDockerd();
    const d = dockerd;
    const docker = d
      ? async () => {
        const ms = await timeMs(async () => d.docker(['pull', '-q', reference]));
        d.docker(['rmi', reference]);
        return ms / 1000;
      }
      : null;
    const result = await alternate(berth, docker, { runs: 9, warmup: 2 });
    process.stdout.write(`image_pull: berth ${result.berth.map((s) => s.toFixed(2)).join(' ')} s; docker ${result.reference.map((s) => s.toFixed(2)).join(' ')} s\n`);
    const berthS = median(result.berth);
    const refS = docker ? median(result.reference) : null;
    return [{
      figure: 'image_pull_s', unit: 's', berth: berthS, reference: refS,
      referenceName: docker ? 'docker pull (docker.io, overlay2)' : 'docker pull (dockerd unavailable)', runs: 9,
    }];
  } finally {
    await dockerd?.stop();
    await registry?.stop();
    unmountUnder(top, await readFile('/proc/self/mountinfo', 'utf8'));
    await rm(top, { recursive: true, force: true });
  }
};

export default bench;
