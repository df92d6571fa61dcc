// Runs every bench/*.bench.ts (or those named on the command line) and writes
// bench/results/latest.json and bench/results/latest.md. When only some are
// named, their figures replace the same figures of the previous results and
// the others are kept, so one benchmark can be rerun on its own.
import { readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { machineDescription, type Benchmark, type Figure } from './lib.ts';

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const resultsDir = path.join(benchDir, 'results');

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const files = (await readdir(benchDir))
    .filter((f) => f.endsWith('.bench.ts'))
    .filter((f) => wanted.length === 0 || wanted.some((w) => f.startsWith(w)))
    .sort();
  const machine = machineDescription();
  const date = new Date().toISOString();
  const figures: Figure[] = [];
  let failed = false;
  for (const file of files) {
    process.stdout.write(`bench: ${file}\n`);
    try {
      const mod = (await import(pathToFileURL(path.join(benchDir, file)).href)) as { default: Benchmark };
      for (const f of await mod.default()) {
        const ratio = f.reference ? round(f.berth / f.reference) : null;
        figures.push({ ...f, berth: round(f.berth), reference: f.reference === null ? null : round(f.reference), ratio, machine, date });
      }
    } catch (err) {
      failed = true;
      process.stderr.write(`bench: ${file} failed: ${(err as Error).stack ?? String(err)}\n`);
    }
  }
  await mkdir(resultsDir, { recursive: true });
  const all = wanted.length === 0 ? figures : mergeFigures(await previousFigures(), figures);
  await writeFile(path.join(resultsDir, 'latest.json'), JSON.stringify(all, null, 2) + '\n');
  const table = toMarkdown(all, machine, date);
  await writeFile(path.join(resultsDir, 'latest.md'), table);
  process.stdout.write(table);
  if (failed) process.exitCode = 1;
}

async function previousFigures(): Promise<Figure[]> {
  try {
    return JSON.parse(await readFile(path.join(resultsDir, 'latest.json'), 'utf8')) as Figure[];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** The previous figures in their order, each replaced by its fresh measurement; new ones at the end. */
function mergeFigures(previous: Figure[], fresh: Figure[]): Figure[] {
  const byName = new Map(fresh.map((f) => [f.figure, f]));
  const merged = previous.map((f) => byName.get(f.figure) ?? f);
  const known = new Set(previous.map((f) => f.figure));
  return [...merged, ...fresh.filter((f) => !known.has(f.figure))];
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}

function toMarkdown(figures: Figure[], machine: string, date: string): string {
  const lines = [
    `Machine: ${machine}  `,
    `Date: ${date}`,
    '',
    '| figure | unit | berth | reference | reference tool | ratio | runs |',
    '|---|---|---|---|---|---|---|',
    ...figures.map((f) => `| ${f.figure} | ${f.unit} | ${f.berth} | ${f.reference ?? '–'} | ${f.referenceName} | ${f.ratio ?? '–'} | ${f.runs} |`),
  ];
  return lines.join('\n') + '\n';
}

await main();
