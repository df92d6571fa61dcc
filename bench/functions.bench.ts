// Functions on the real all-in-one (test/harness/allinone.ts), against Docker
// and against the container called directly:
//   cold_start_static_ms, cold_start_node_ms: a function scaled to zero (its
//     image cached on the node), from the request to the answer's first byte;
//     the reference is `docker run -d -p` of the same image on the bench's own
//     dockerd (bench/docker.ts), from the command to the first byte.
//   warm_overhead_p50_ms, warm_overhead_p99_ms: the latency the gateway adds,
//     measured at a fixed offered rate below saturation: 100 concurrent
//     keep-alive clients, each sending WARM_RATE / 100 requests per second
//     (WARM_RATE, 2,000/s, in total) from a random phase of its own, for
//     LOADGEN_SECONDS after LOADGEN_WARMUP_SECONDS at the same rate that are not
//     counted, by bench/loadgen (C, epoll; each latency counts from when its
//     request was due, so a slow answer cannot hide the wait of the ones behind
//     it, as in wrk2, whose calibration period the warm-up is), on the static function (one instance,
//     concurrency 1,000) through the gateway's function URL; the reference is
//     the same container called directly on its bridge IP at the same rate. A
//     closed loop at saturation would measure queueing (latency = clients /
//     throughput), not what the gateway adds. The overhead is berth minus
//     reference; each is the median of WARM_RUNS runs, alternated.
//   warm_overhead_lockstep_p50_ms, _p99_ms: the same rate from Debian's hey,
//     whose paced workers in one process tick together: HEY_GROUPS processes
//     started evenly over one client's period send 10 requests at once every
//     5 ms. Bursts, not independent clients: queueing inside the gateway shows.
//   warm_rps: throughput at saturation, 100 keep-alive clients (Debian's wrk,
//     -c100, WRK_SECONDS), through the gateway and direct; the median of WARM_RUNS runs.
// The load generators run as their own processes.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../common/daemons.ts';
import { startAllInOne, type AllInOne } from '../test/harness/allinone.ts';
import { startDockerd, type Dockerd } from './docker.ts';
import { alternate, median, percentile, type Benchmark } from './lib.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const RUNS = 7;
const WARM_RUNS = 5;
const CLIENTS = 100;
const WRK_SECONDS = 5;
const HEY_SECONDS = 5;
const LOADGEN_SECONDS = 5;
/** Seconds each latency run first sends at its rate without counting: it follows a saturating wrk run. */
const LOADGEN_WARMUP_SECONDS = 1;
/** Requests per second offered in the latency runs, in total over the CLIENTS. */
const WARM_RATE = 2000;
/** hey processes the CLIENTS are spread over, started evenly over one client's period. */
const HEY_GROUPS = 10;

/** Milliseconds until the first byte of a GET's answer (status 200). */
function firstByte(url: string, headers: Record<string, string> = {}): Promise<number> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false }, (res) => {
      res.once('data', () => {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        res.resume();
        if (res.statusCode === 200) resolve(ms);
        else reject(new Error(`${url}: ${res.statusCode}`));
      });
    });
    req.once('error', reject);
  });
}

/** Polls until the URL answers, for Docker (nothing waits for the container's port there). */
async function firstByteOnceUp(url: string, since: bigint, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await firstByte(url);
      return Number(process.hrtime.bigint() - since) / 1e6;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 2));
    }
  }
}

interface WrkResult {
  p50: number;
  p99: number;
  rps: number;
}

function toMs(value: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(value.trim());
  if (!m) throw new Error(`wrk: cannot read the latency "${value}"`);
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n;
}

function wrk(url: string, headers: string[] = []): WrkResult {
  const args = ['-t2', `-c${CLIENTS}`, `-d${WRK_SECONDS}s`, '--latency', ...headers.flatMap((h) => ['-H', h]), url];
  const r = spawnSync('wrk', args, { encoding: 'utf8', timeout: (WRK_SECONDS + 30) * 1000 });
  if (r.status !== 0) throw new Error(`wrk: ${r.stderr || r.stdout}`);
  const out = r.stdout;
  const p50 = /^\s+50%\s+(\S+)/m.exec(out)?.[1];
  const p99 = /^\s+99%\s+(\S+)/m.exec(out)?.[1];
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out)?.[1];
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1];
  if (!p50 || !p99 || !rps) throw new Error(`wrk: unexpected output\n${out}`);
  if (non2xx && Number(non2xx) > 0) throw new Error(`wrk: ${non2xx} answers were not 2xx\n${out}`);
  return { p50: toMs(p50), p99: toMs(p99), rps: Number(rps) };
}

interface PacedResult {
  p50: number;
  p99: number;
  /** hey's only: its workers wait for each answer, so when answers are slow fewer requests are sent. */
  answers?: number;
}

/** One hey process: `clients` keep-alive workers, each paced to `perClient` requests per second; every answer's latency (ms). */
function heyGroup(url: string, headers: string[], clients: number, perClient: number): Promise<number[]> {
  const args = ['-c', String(clients), '-q', String(perClient), '-z', `${HEY_SECONDS}s`, '-o', 'csv', ...headers.flatMap((h) => ['-H', h]), url];
  return new Promise((resolve, reject) => {
    execFile('hey', args, { encoding: 'utf8', maxBuffer: 256 * 2 ** 20, timeout: (HEY_SECONDS + 30) * 1000 }, (err, stdout) => {
      if (err) {
        reject(new Error(`hey: ${err.message}`));
        return;
      }
      const latencies: number[] = [];
      for (const line of stdout.split('\n').slice(1)) {
        if (line === '') continue;
        const cols = line.split(',');
        if (cols[6] !== '200') {
          reject(new Error(`hey: an answer was not 200: ${line}`));
          return;
        }
        latencies.push(Number(cols[0]) * 1000);
      }
      resolve(latencies);
    });
  });
}

/**
 * CLIENTS keep-alive clients offering WARM_RATE requests per second in total,
 * as HEY_GROUPS hey processes started evenly over one client's period: hey's
 * paced workers tick together, so one process of 100 would send bursts of 100.
 */
async function paced(url: string, headers: string[] = []): Promise<PacedResult> {
  const perClient = WARM_RATE / CLIENTS;
  const periodMs = 1000 / perClient;
  const groups: Promise<number[]>[] = [];
  for (let g = 0; g < HEY_GROUPS; g++) {
    groups.push(heyGroup(url, headers, CLIENTS / HEY_GROUPS, perClient));
    await new Promise((r) => setTimeout(r, periodMs / HEY_GROUPS));
  }
  const latencies = (await Promise.all(groups)).flat();
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), answers: latencies.length };
}

/** Builds bench/loadgen/loadgen.c into a temporary directory; its path. */
function buildLoadgen(dir: string): string {
  const out = path.join(dir, 'loadgen');
  execFileSync('cc', ['-O2', '-Wall', '-o', out, path.join(repo, 'bench/loadgen/loadgen.c')], { stdio: 'pipe' });
  return out;
}

/** CLIENTS independent keep-alive clients at WARM_RATE in total (bench/loadgen); the latencies' p50 and p99 (ms). */
function independent(loadgen: string, url: string, headers: string[] = []): Promise<PacedResult> {
  const u = new URL(url);
  const args = ['-w', String(LOADGEN_WARMUP_SECONDS), u.hostname, u.port || '80', u.pathname, String(CLIENTS), String(WARM_RATE / CLIENTS), String(LOADGEN_SECONDS), ...headers];
  return new Promise((resolve, reject) => {
    execFile(loadgen, args, { encoding: 'utf8', maxBuffer: 64 * 2 ** 20, timeout: (LOADGEN_WARMUP_SECONDS + LOADGEN_SECONDS + 30) * 1000 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`loadgen: ${stderr || err.message}`));
        return;
      }
      const latencies: number[] = [];
      for (const line of stdout.split('\n')) {
        if (line === '') continue;
        const [micros, status] = line.split(' ');
        if (status !== '200') {
          reject(new Error(`loadgen: an answer was ${status}, not 200`));
          return;
        }
        latencies.push(Number(micros) / 1000);
      }
      if (latencies.length < WARM_RATE * LOADGEN_SECONDS * 0.99) {
        reject(new Error(`loadgen: only ${latencies.length} answers at ${WARM_RATE}/s over ${LOADGEN_SECONDS} s`));
        return;
      }
      resolve({ p50: percentile(latencies, 50), p99: percentile(latencies, 99) });
    });
  });
}

function ensureTool(command: string, args: string[]): boolean {
  if (spawnSync(command, args).error === undefined) return true;
  spawnSync('apt-get', ['install', '-y', '-q', command], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  return spawnSync(command, args).error === undefined;
}

const benchmark: Benchmark = async () => {
  let aio: AllInOne | undefined;
  let dockerd: Dockerd | null = null;
  let dockerWhyNot = '';
  let tmp: string | undefined;
  try {
    const registryAddr = `127.0.0.1:${await freePort()}`;
    aio = await startAllInOne({ BERTH_RATE_LIMIT: '0', BERTH_FN_TICK_MS: '500', BERTH_LOCAL_REGISTRY_ADDR: registryAddr });
    const auth = { authorization: `Bearer ${aio.adminKey}` };

    try {
      dockerd = await startDockerd({ bridge: true });
      if (!dockerd) dockerWhyNot = 'dockerd is not installed and docker.io could not be installed';
      for (const image of ['berth/fn-static:latest', 'berth/fn-hello:latest']) dockerd?.docker(['pull', `${registryAddr}/${image}`]);
    } catch (err) {
      dockerWhyNot = `dockerd did not start: ${(err as Error).message.slice(0, 200)}`;
      await dockerd?.stop().catch(() => undefined);
      dockerd = null;
    }

    // Cold starts: a new function each run, so it is at zero; the image is cached after the warm-up run.
    let n = 0;
    const coldBerth = (image: string, memory: number) => async () => {
      const name = `cold-${n++}`;
      const res = await aio!.api('POST', '/v1/functions', { name, image, memory, cpu: 1024 });
      if (res.status !== 201) throw new Error(`deploy: ${JSON.stringify(res.body)}`);
      const ms = await firstByte(`${aio!.url}/fn/${name}/`, auth);
      await aio!.api('DELETE', `/v1/functions/${name}`);
      return ms;
    };
    const coldDocker = (image: string) => dockerd ? async () => {
      const port = await freePort();
      const name = `berth-bench-fn-${n++}`;
      const since = process.hrtime.bigint();
      dockerd!.docker(['run', '-d', '--name', name, '--cpus', '1', '-p', `127.0.0.1:${port}:8080`, `${registryAddr}/${image}`]);
      const ms = await firstByteOnceUp(`http://127.0.0.1:${port}/`, since);
      dockerd!.docker(['rm', '-f', name]);
      return ms;
    } : null;
    const coldStatic = await alternate(coldBerth('berth/fn-static:latest', 16), coldDocker('berth/fn-static:latest'), { runs: RUNS, warmup: 1 });
    const coldNode = await alternate(coldBerth('berth/fn-hello:latest', 128), coldDocker('berth/fn-hello:latest'), { runs: RUNS, warmup: 1 });

    // Warm path: one instance of the static function, 100 clients.
    const deployed = await aio.api('POST', '/v1/functions', {
      name: 'warm', image: 'berth/fn-static:latest', memory: 64, cpu: 1024, concurrency: 1000, minInstances: 1, maxInstances: 1, idleTimeout: 3600,
    });
    if (deployed.status !== 201) throw new Error(`deploy: ${JSON.stringify(deployed.body)}`);
    const warmUp = await fetch(`${aio.url}/fn/warm/`, { headers: auth });
    await warmUp.text();
    const instance = warmUp.headers.get('x-berth-instance-id');
    const ip = (await aio.api('GET', `/v1/tasks/${instance}`)).body.ipAddress as string;
    const figures: Awaited<ReturnType<Benchmark>> = [];
    const cold = (figure: string, r: { berth: number[]; reference: number[] }) => ({
      figure, unit: 'ms', berth: median(r.berth), reference: dockerd ? median(r.reference) : null,
      referenceName: dockerd ? 'docker run -d -p (same image, bridge, cached), to the first byte' : `docker run: none (${dockerWhyNot})`, runs: r.berth.length,
    });
    figures.push(cold('cold_start_static_ms', coldStatic), cold('cold_start_node_ms', coldNode));
    if (ensureTool('wrk', ['--version']) && ensureTool('hey', ['-n', '1', '-c', '1', 'http://127.0.0.1:1/'])) {
      const direct = `http://${ip}:8080/`;
      const gatewayUrl = `${aio.url}/fn/warm/`;
      const authHeader = [`Authorization: Bearer ${aio.adminKey}`];
      wrk(direct); // warm both paths' connections and the instance
      wrk(gatewayUrl, authHeader);
      const loadgen = buildLoadgen(tmp = await mkdtemp(path.join(os.tmpdir(), 'berth-bench-loadgen-')));
      const latency = { berth: [] as PacedResult[], reference: [] as PacedResult[] };
      const lockstep = { berth: [] as PacedResult[], reference: [] as PacedResult[] };
      const throughput = { berth: [] as number[], reference: [] as number[] };
      for (let i = 0; i < WARM_RUNS; i++) {
        latency.berth.push(await independent(loadgen, gatewayUrl, authHeader));
        latency.reference.push(await independent(loadgen, direct));
        lockstep.berth.push(await paced(gatewayUrl, authHeader));
        lockstep.reference.push(await paced(direct));
        throughput.berth.push(wrk(gatewayUrl, authHeader).rps);
        throughput.reference.push(wrk(direct).rps);
      }
      const pick = (runs: PacedResult[], p: 'p50' | 'p99') => median(runs.map((r) => r[p]));
      const independentName = `the container called directly at the same offered rate: ${WARM_RATE} requests/s from ${CLIENTS} independent keep-alive clients (bench/loadgen), ${LOADGEN_SECONDS} s after ${LOADGEN_WARMUP_SECONDS} s not counted`;
      // hey's workers send the next request only after the last answer: when they fall behind, the slowest
      // requests are never sent and the percentiles flatter. Said in the figure's name rather than dropped.
      const offered = WARM_RATE * HEY_SECONDS;
      const behind = lockstep.berth.filter((r) => r.answers! < offered * 0.9).map((r) => r.answers!);
      const lockstepName = `the container called directly at the same offered rate: ${WARM_RATE} requests/s from ${CLIENTS} keep-alive clients ticking 10 at a time (hey, ${HEY_GROUPS} staggered processes), ${HEY_SECONDS} s` +
        (behind.length > 0 ? `; through the gateway hey's workers fell behind in ${behind.length} of ${WARM_RUNS} runs (${behind.join(', ')} of ${offered} requests sent), so its percentiles understate` : '');
      const saturated = `the container called directly (wrk -c${CLIENTS}, ${WRK_SECONDS} s, at saturation)`;
      figures.push(
        { figure: 'warm_overhead_p50_ms', unit: 'ms', berth: pick(latency.berth, 'p50'), reference: pick(latency.reference, 'p50'), referenceName: independentName, runs: WARM_RUNS },
        { figure: 'warm_overhead_p99_ms', unit: 'ms', berth: pick(latency.berth, 'p99'), reference: pick(latency.reference, 'p99'), referenceName: independentName, runs: WARM_RUNS },
        { figure: 'warm_overhead_lockstep_p50_ms', unit: 'ms', berth: pick(lockstep.berth, 'p50'), reference: pick(lockstep.reference, 'p50'), referenceName: lockstepName, runs: WARM_RUNS },
        { figure: 'warm_overhead_lockstep_p99_ms', unit: 'ms', berth: pick(lockstep.berth, 'p99'), reference: pick(lockstep.reference, 'p99'), referenceName: lockstepName, runs: WARM_RUNS },
        { figure: 'warm_rps', unit: 'requests/s', berth: median(throughput.berth), reference: median(throughput.reference), referenceName: saturated, runs: WARM_RUNS },
      );
      const each = (runs: PacedResult[]) => runs.map((r) => `${r.p50.toFixed(2)}/${r.p99.toFixed(2)}`).join(', ');
      process.stderr.write(`functions: at ${WARM_RATE}/s p50/p99 per run ${each(latency.berth)} ms vs ${each(latency.reference)} direct; ` +
        `lockstep ${each(lockstep.berth)} vs ${each(lockstep.reference)}; rps ${median(throughput.berth)} vs ${median(throughput.reference)}\n`);
    }
    await aio.api('DELETE', '/v1/functions/warm');
    await new Promise((r) => setTimeout(r, 4000)); // the instance's SIGTERM, then SIGKILL after 3 s
    return figures;
  } finally {
    await dockerd?.stop().catch(() => undefined);
    await aio?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }
};

export default benchmark;
