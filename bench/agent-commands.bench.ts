// agent_command_ms: one short command (`/bin/true`) run by a process the size of
// the all-in-one's (AGENT_RSS_MIB resident), through berth-spawner
// (node-agent/src/spawner.ts) against Node's child_process, which forks the
// process and so copies its page tables. Every container start runs berth-shim
// this way, and every network setup several CNI plugins.
import { DirectRunner, SpawnerRunner, spawnerBinary } from '../node-agent/src/spawner.ts';
import { alternate, median, timeMs, type Benchmark } from './lib.ts';

/** The all-in-one's resident memory with a function deployed and called (measured: ~260 MiB). */
const AGENT_RSS_MIB = 256;

const bench: Benchmark = async () => {
  const binary = spawnerBinary();
  if (!binary) throw new Error('berth-spawner is not built: run `make -C native`');
  const ballast = Array.from({ length: AGENT_RSS_MIB - Math.round(process.memoryUsage().rss / 2 ** 20) }, () => Buffer.alloc(2 ** 20, 1));
  const spawner = new SpawnerRunner(binary);
  const direct = new DirectRunner();
  try {
    const result = await alternate(
      () => timeMs(() => spawner.run('/bin/true', [])),
      () => timeMs(() => direct.run('/bin/true', [])),
      { runs: 31, warmup: 3 },
    );
    const berth = median(result.berth);
    const reference = median(result.reference);
    process.stdout.write(
      `agent_command_ms (/bin/true from a ${AGENT_RSS_MIB} MiB process, ${ballast.length} MiB of it ballast)\n` +
        `  berth-spawner  median ${berth.toFixed(2)} ms\n` +
        `  child_process  median ${reference.toFixed(2)} ms\n`,
    );
    return [{ figure: 'agent_command_ms', unit: 'ms', berth, reference, referenceName: `Node's child_process (fork+exec) from a ${AGENT_RSS_MIB} MiB process`, runs: result.berth.length }];
  } finally {
    spawner.close();
  }
};

export default bench;
