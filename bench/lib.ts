import os from 'node:os';

/** One line of bench/results/latest.json. `ratio` is berth / reference. */
export interface Figure {
  figure: string;
  unit: string;
  berth: number;
  reference: number | null;
  referenceName: string;
  ratio: number | null;
  runs: number;
  machine: string;
  date: string;
}

/** What a benchmark file (`bench/*.bench.ts`) default-exports. */
export type Benchmark = () => Promise<Omit<Figure, 'ratio' | 'machine' | 'date'>[]>;

export function median(values: number[]): number {
  if (values.length === 0) throw new Error('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) throw new Error('percentile of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)]!;
}

export interface AlternatingResult {
  berth: number[];
  reference: number[];
}

/**
 * Runs `warmup` untimed rounds of both, then `runs` timed rounds, alternating
 * Berth and the reference so drift on the machine hits both alike.
 * Each function returns the figure it measured for one run (ms, bytes, ...).
 */
export async function alternate(
  berth: () => Promise<number>,
  reference: (() => Promise<number>) | null,
  { runs = 7, warmup = 1 }: { runs?: number; warmup?: number } = {},
): Promise<AlternatingResult> {
  if (runs < 5) throw new Error('benchmarks take the median of at least 5 runs');
  for (let i = 0; i < warmup; i++) {
    await berth();
    if (reference) await reference();
  }
  const result: AlternatingResult = { berth: [], reference: [] };
  for (let i = 0; i < runs; i++) {
    result.berth.push(await berth());
    if (reference) result.reference.push(await reference());
  }
  return result;
}

/** Wall time of one async call, in milliseconds. */
export async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

export function machineDescription(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  return `${os.cpus().length}x ${cpu.trim()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}`;
}
