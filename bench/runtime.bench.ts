// runtime_run_ms: create + start + wait + delete (`<runtime> run`) of a bundle
// running `true`, with every namespace but user (a new network namespace) and
// memory, CPU and pids limits; berth-runtime against runc (Debian's), alternated
// in one invocation so machine drift hits both alike.
import { spawn } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeBundle } from '../test/harness/bundle.ts';
import { alternate, median, timeMs, type Benchmark } from './lib.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BERTH = path.join(repo, 'native/build/berth-runtime');

function run(bin: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${bin} ${args.join(' ')}: exit ${code}: ${stderr}`))));
  });
}

const bench: Benchmark = async () => {
  const bundle = await makeBundle({ args: ['true'], memoryBytes: 64 * 1024 * 1024, cpuUnits: 512, pidsLimit: 64 });
  const roots = { berth: path.join(bundle.scratch, 'berth-root'), runc: path.join(bundle.scratch, 'runc-root') };
  await mkdir(roots.berth, { recursive: true, mode: 0o700 });
  await mkdir(roots.runc, { recursive: true, mode: 0o700 });
  let n = 0;
  const once = (bin: string, root: string) => () => timeMs(() => run(bin, ['--root', root, 'run', '--bundle', bundle.bundle, `${bundle.id}-${n++}`]));
  try {
    const result = await alternate(once(BERTH, roots.berth), once('runc', roots.runc), { runs: 15, warmup: 2 });
    const berth = median(result.berth);
    const runc = median(result.reference);
    const fmt = (xs: number[]) => xs.map((x) => x.toFixed(1)).join(' ');
    process.stdout.write(
      `runtime_run_ms (create+start+wait+delete of \`true\`, all namespaces but user, memory/CPU/pids limits)\n` +
        `  berth-runtime median ${berth.toFixed(1)} ms  runs: ${fmt(result.berth)}\n` +
        `  runc          median ${runc.toFixed(1)} ms  runs: ${fmt(result.reference)}\n` +
        `  ratio ${(berth / runc).toFixed(2)}\n`,
    );
    return [{ figure: 'runtime_run_ms', unit: 'ms', berth, reference: runc, referenceName: 'runc', runs: result.berth.length }];
  } finally {
    await bundle.remove();
    await rm(roots.berth, { recursive: true, force: true });
  }
};

export default bench;
