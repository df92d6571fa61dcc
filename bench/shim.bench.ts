// The per-container monitor, berth-shim vs conmon (Debian's), each running the
// same bundle under runc, alternating runs:
// - shim_rss_kib: idle RSS while watching a `sleep` container;
// - shim_start_ms: from launch to a running container (berth-shim: until it
//   exits with the pid; conmon: conmon, its `runc create`, then `runc start`,
//   as podman drives it; pid files polled every 2 ms);
// - shim_log_1m_lines_ms: from launch to the exit record of a container writing
//   1,000,000 lines to stdout as fast as the monitor takes them (the log pipe's
//   backpressure makes the monitor the bottleneck).
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeBundle, type TestBundle } from '../test/harness/bundle.ts';
import { alternate, median, type Benchmark } from './lib.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SHIM = path.join(repo, 'native/build/berth-shim');
const RUNC = '/usr/sbin/runc';
const CONMON = '/usr/bin/conmon';
const SETTLE_MS = 500;
const RUNS = 7;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]);
}

async function waitFor<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = 10_000, pollMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(pollMs);
  }
}

const readIfExists = (file: string) => readFile(file, 'utf8').catch(() => undefined);

function killQuietly(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

/** Stops the container and removes everything one run made. */
async function teardown(b: TestBundle, root: string, pids: (number | undefined)[]): Promise<void> {
  spawnSync(RUNC, ['--root', root, 'kill', b.id, 'KILL'], { stdio: 'ignore' });
  await sleep(100);
  spawnSync(RUNC, ['--root', root, 'delete', '--force', b.id], { stdio: 'ignore' });
  for (const pid of pids) killQuietly(pid);
  await b.remove();
}

function shimRequest(stateDir: string, body: unknown): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(path.join(stateDir, 'shim.sock'));
    let answer = '';
    socket.on('connect', () => socket.end(JSON.stringify(body) + '\n'));
    socket.on('data', (c: Buffer) => { answer += c.toString(); });
    socket.on('error', reject);
    socket.on('close', () => resolve(answer));
  });
}

/** A container writing LOG_LINES lines of 52 bytes as fast as it can. */
const LOG_LINES = 1_000_000;
const LOGGER = ['sh', '-c', `yes "hello world, this is a log line of moderate length" | head -n ${LOG_LINES}`];

/** berth-shim: wall time from launching the shim to exit.json of a container flooding stdout. */
async function berthShimLogMs(): Promise<number> {
  const b = await makeBundle({ args: LOGGER });
  const root = path.join(b.scratch, 'root');
  const stateDir = path.join(b.scratch, 'state');
  let started: { shimPid: number; pid: number } | undefined;
  try {
    const t0 = process.hrtime.bigint();
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(SHIM, [
        '--id', b.id, '--bundle', b.bundle, '--runtime', RUNC, '--runtime-root', root,
        '--state-dir', stateDir, '--log-path', path.join(b.scratch, 'container.log'), '--log-max-bytes', '0',
      ], (err, out, errOut) => (err ? reject(new Error(`berth-shim: ${errOut}`)) : resolve(out)));
    });
    started = JSON.parse(stdout) as { shimPid: number; pid: number };
    await waitFor(() => readIfExists(path.join(stateDir, 'exit.json')), 'berth-shim exit.json', 120_000);
    return Number(process.hrtime.bigint() - t0) / 1e6;
  } finally {
    await teardown(b, root, [started?.shimPid, started?.pid]);
  }
}

/**
 * conmon running `runc create` for a bundle with these args (detached by
 * default), then `runc start`, as podman does. `pollMs` paces the waits.
 */
async function underConmon<T>(
  args: string[],
  measure: (c: { b: TestBundle; root: string; exitDir: string; conmonPid: number; startedNs: bigint }) => Promise<T>,
  pollMs?: number,
): Promise<T> {
  const b = await makeBundle({ args });
  const root = path.join(b.scratch, 'root');
  const exitDir = path.join(b.scratch, 'exit');
  const conmonPidFile = path.join(b.scratch, 'conmon.pid');
  const containerPidFile = path.join(b.scratch, 'container.pid');
  await mkdir(exitDir, { recursive: true });
  await mkdir(path.join(b.scratch, 'sockets'), { recursive: true });
  let conmonPid: number | undefined;
  try {
    const startedNs = process.hrtime.bigint();
    execFileSync(CONMON, conmonArgs(b, root, exitDir, conmonPidFile, containerPidFile), { stdio: 'pipe' });
    conmonPid = Number(await waitFor(() => readIfExists(conmonPidFile).then((t) => (t?.trim() ? t : undefined)), 'conmon pid file', 10_000, pollMs));
    await waitFor(() => readIfExists(containerPidFile), 'container pid file', 10_000, pollMs);
    execFileSync(RUNC, ['--root', root, 'start', b.id], { stdio: 'pipe' });
    return await measure({ b, root, exitDir, conmonPid, startedNs });
  } finally {
    await teardown(b, root, [conmonPid]);
  }
}

const exited = (exitDir: string) => async () => ((await readdir(exitDir)).length > 0 ? true : undefined);

/** conmon: the same container and measure (its log is the CRI text format, unrotated). */
function conmonLogMs(): Promise<number> {
  return underConmon(LOGGER, async ({ exitDir, startedNs }) => {
    await waitFor(exited(exitDir), 'conmon exit file', 120_000);
    return Number(process.hrtime.bigint() - startedNs) / 1e6;
  });
}

function conmonArgs(b: TestBundle, root: string, exitDir: string, conmonPidFile: string, containerPidFile: string): string[] {
  return [
    '--cid', b.id, '--cuuid', b.id, '--name', 'n', '--runtime', RUNC, '--bundle', b.bundle,
    '--exit-dir', exitDir, '--log-path', path.join(b.scratch, 'container.log'),
    '--container-pidfile', containerPidFile, '--conmon-pidfile', conmonPidFile,
    '--socket-dir-path', path.join(b.scratch, 'sockets'), `--runtime-arg=--root=${root}`,
  ];
}

/** Launch-to-running times seen by the RSS runs (warmup included, dropped later). */
const startMs = { berth: [] as number[], reference: [] as number[] };

/** berth-shim: start a sleep container, let it settle, read the monitor's RSS. */
async function berthShimRss(): Promise<number> {
  const b = await makeBundle({ args: ['sleep', '1000'] });
  const root = path.join(b.scratch, 'root');
  const stateDir = path.join(b.scratch, 'state');
  let started: { shimPid: number; pid: number } | undefined;
  try {
    const t0 = process.hrtime.bigint();
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(SHIM, [
        '--id', b.id, '--bundle', b.bundle, '--runtime', RUNC, '--runtime-root', root,
        '--state-dir', stateDir, '--log-path', path.join(b.scratch, 'container.log'),
      ], (err, out, errOut) => (err ? reject(new Error(`berth-shim: ${errOut}`)) : resolve(out)));
    });
    startMs.berth.push(Number(process.hrtime.bigint() - t0) / 1e6);
    started = JSON.parse(stdout) as { shimPid: number; pid: number };
    await sleep(SETTLE_MS);
    const rss = await rssKiB(started.shimPid);
    await shimRequest(stateDir, { op: 'kill', signal: 9 });
    await waitFor(() => readIfExists(path.join(stateDir, 'exit.json')), 'berth-shim exit.json');
    return rss;
  } finally {
    await teardown(b, root, [started?.shimPid, started?.pid]);
  }
}

/** conmon's idle RSS while it monitors a `sleep`. */
function conmonRss(): Promise<number> {
  return underConmon(['sleep', '1000'], async ({ b, root, exitDir, conmonPid, startedNs }) => {
    startMs.reference.push(Number(process.hrtime.bigint() - startedNs) / 1e6);
    await sleep(SETTLE_MS);
    const rss = await rssKiB(conmonPid);
    spawnSync(RUNC, ['--root', root, 'kill', b.id, 'KILL'], { stdio: 'ignore' });
    await waitFor(exited(exitDir), 'conmon exit file');
    return rss;
  }, 2);
}

const bench: Benchmark = async () => {
  execFileSync('make', ['-s', '-C', path.join(repo, 'native'), 'shim'], { stdio: 'pipe' });
  const haveConmon = existsSync(CONMON);
  const rss = await alternate(berthShimRss, haveConmon ? conmonRss : null, { runs: RUNS, warmup: 1 });
  const starts = { berth: startMs.berth.slice(1), reference: startMs.reference.slice(1) };
  const logs = await alternate(berthShimLogMs, haveConmon ? conmonLogMs : null, { runs: 5, warmup: 1 });
  return [
    {
      figure: 'shim_rss_kib',
      unit: 'KiB',
      berth: median(rss.berth),
      reference: haveConmon ? median(rss.reference) : null,
      referenceName: 'conmon',
      runs: RUNS,
    },
    {
      figure: 'shim_start_ms',
      unit: 'ms',
      berth: median(starts.berth),
      reference: haveConmon ? median(starts.reference) : null,
      referenceName: 'conmon',
      runs: RUNS,
    },
    {
      figure: 'shim_log_1m_lines_ms',
      unit: 'ms',
      berth: median(logs.berth),
      reference: haveConmon ? median(logs.reference) : null,
      referenceName: 'conmon',
      runs: 5,
    },
  ];
};

export default bench;
