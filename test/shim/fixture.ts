// Shared by the berth-shim suites: builds the shim, lists the runtimes to run
// every suite against (runc, and berth-runtime once it works), starts shims on
// test bundles, talks to their control socket, and cleans up what a test started.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { readFile, readdir, mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeBundle, type BundleOptions, type TestBundle } from '../harness/bundle.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SHIM = path.join(repo, 'native/build/berth-shim');
const BERTH_RUNTIME = path.join(repo, 'native/build/berth-runtime');
const RUNC = '/usr/sbin/runc';

/** Builds the shim (incremental: a no-op when it is up to date). */
export function buildShim(): void {
  execFileSync('make', ['-s', '-C', path.join(repo, 'native'), 'shim'], { stdio: 'pipe' });
}

export interface Runtime {
  name: string;
  path: string;
}

/** Shared by the test files of this run, and removed after it (test/harness/global-setup.ts). */
function runDir(): string {
  return process.env.BERTH_TEST_RUN_DIR ?? os.tmpdir();
}

/**
 * A runtime counts as working when it starts a few `sleep` containers in a row
 * through create/start/delete (a runtime still being written is left out, with
 * a note, rather than failing every shim test).
 */
async function runtimeWorks(runtimePath: string, tries = 10): Promise<boolean> {
  if (!existsSync(runtimePath)) return false;
  // one probe per build of the runtime, shared by the test files
  const { mtimeMs, size } = statSync(runtimePath);
  const cache = path.join(runDir(), `berth-shim-probe-${path.basename(runtimePath)}-${Math.round(mtimeMs)}-${size}`);
  if (existsSync(cache)) return readFileSync(cache, 'utf8') === 'ok';
  const works = await probeRuntime(runtimePath, tries);
  writeFileSync(cache, works ? 'ok' : 'failed');
  return works;
}

/**
 * A private copy of a binary that someone may be rebuilding while the tests run
 * (the checkout is shared): the tests use the build they probed. Null when the
 * binary is missing or half-written.
 */
function snapshot(binary: string): string | null {
  try {
    const { mtimeMs, size } = statSync(binary);
    const dir = path.join(runDir(), `berth-shim-tests-${path.basename(binary)}-${Math.round(mtimeMs)}-${size}`);
    const copy = path.join(dir, path.basename(binary));
    if (!existsSync(copy)) {
      mkdirSync(dir, { recursive: true });
      copyFileSync(binary, `${copy}.tmp`);
      chmodSync(`${copy}.tmp`, 0o755);
      renameSync(`${copy}.tmp`, copy);
    }
    return copy;
  } catch {
    return null;
  }
}

async function probeRuntime(runtimePath: string, tries: number): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    const b = await makeBundle({ args: ['sleep', '10'] });
    const root = path.join(b.scratch, 'root');
    const run = (...args: string[]) =>
      spawnSync(runtimePath, ['--root', root, ...args], { stdio: 'ignore', timeout: 10_000 }).status === 0;
    try {
      if (!(run('create', '--bundle', b.bundle, b.id) && run('start', b.id))) return false;
    } finally {
      run('delete', '--force', b.id);
      await b.remove();
    }
  }
  return true;
}

/**
 * runc always; berth-runtime when it is built and runs containers.
 * BERTH_SHIM_TEST_RUNTIMES=runc,berth-runtime forces the list.
 */
export async function runtimes(): Promise<Runtime[]> {
  const berthRuntime = snapshot(BERTH_RUNTIME);
  const all: Runtime[] = [{ name: 'runc', path: RUNC }, { name: 'berth-runtime', path: berthRuntime ?? BERTH_RUNTIME }];
  const forced = process.env.BERTH_SHIM_TEST_RUNTIMES;
  if (forced) return all.filter((r) => forced.split(',').includes(r.name));
  const list = [all[0]!];
  if (berthRuntime && (await runtimeWorks(berthRuntime))) list.push(all[1]!);
  else if (existsSync(BERTH_RUNTIME)) {
    process.stderr.write(`shim tests: ${BERTH_RUNTIME} did not start 10 containers in a row; testing with runc only\n`);
  }
  return list;
}

export interface ShimRun {
  bundle: TestBundle;
  runtime: Runtime;
  stateDir: string;
  logPath: string;
  runtimeRoot: string;
  /** Arguments for berth-shim. */
  args: string[];
}

export interface ShimStarted {
  shimPid: number;
  pid: number;
}

export interface ExitRecord {
  exitCode: number;
  signal: number | null;
  oomKilled: boolean;
  startedAt: string;
  exitedAt: string;
}

export interface LogRecord {
  time: string;
  stream: 'stdout' | 'stderr';
  log: string;
  partial?: boolean;
}

/** Tracks what tests started so afterEach removes it, failing or not. */
export class ShimTestContext {
  private runs: ShimRun[] = [];
  private pids: number[] = [];

  constructor(private readonly runtime: Runtime) {}

  /** A bundle plus the shim arguments to run it. */
  async prepare(options: BundleOptions & { logMaxBytes?: number; logMaxFiles?: number } = {}): Promise<ShimRun> {
    const { logMaxBytes, logMaxFiles, ...bundleOptions } = options;
    const bundle = await makeBundle(bundleOptions);
    const stateDir = path.join(bundle.scratch, 'state');
    const logPath = path.join(bundle.scratch, 'logs', 'container.log');
    const runtimeRoot = path.join(bundle.scratch, 'runtime-root');
    await mkdir(path.dirname(logPath), { recursive: true });
    const args = [
      '--id', bundle.id, '--bundle', bundle.bundle, '--runtime', this.runtime.path,
      '--runtime-root', runtimeRoot, '--state-dir', stateDir, '--log-path', logPath,
      ...(logMaxBytes !== undefined ? ['--log-max-bytes', String(logMaxBytes)] : []),
      ...(logMaxFiles !== undefined ? ['--log-max-files', String(logMaxFiles)] : []),
    ];
    const run = { bundle, runtime: this.runtime, stateDir, logPath, runtimeRoot, args };
    this.runs.push(run);
    return run;
  }

  /** Runs berth-shim as the agent does (execFile, waits for it to exit). */
  exec(run: ShimRun): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(SHIM, run.args, { timeout: 30_000 }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** Starts the container and expects success. */
  async start(run: ShimRun): Promise<ShimStarted> {
    const r = await this.exec(run);
    if (r.code !== 0) throw new Error(`berth-shim exited ${r.code}: ${r.stderr}`);
    const started = JSON.parse(r.stdout) as ShimStarted;
    this.pids.push(started.pid, started.shimPid);
    return started;
  }

  /** Remembers a pid the test started, to kill it in cleanup. */
  track(pid: number): void {
    this.pids.push(pid);
  }

  /** Kills the container and shim pids this test started, deletes containers, removes dirs. */
  async cleanup(): Promise<void> {
    for (const pid of this.pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    this.pids = [];
    for (const run of this.runs) {
      spawnSync(run.runtime.path, ['--root', run.runtimeRoot, 'delete', '--force', run.bundle.id], { stdio: 'ignore', timeout: 10_000 });
      await run.bundle.remove();
    }
    this.runs = [];
  }
}

/** Polls until `check` returns a value other than undefined. */
export async function until<T>(check: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** exit.json once it exists. */
export async function waitExitFile(stateDir: string, timeoutMs = 15_000): Promise<ExitRecord> {
  const text = await until(async () => {
    try {
      return await readFile(path.join(stateDir, 'exit.json'), 'utf8');
    } catch {
      return undefined;
    }
  }, 'exit.json', timeoutMs);
  return JSON.parse(text) as ExitRecord;
}

/** True while a process with this pid exists (zombies included). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits until the shim process is gone (it exits after exit.json). */
export async function waitGone(pid: number, timeoutMs = 10_000): Promise<void> {
  await until(() => (alive(pid) && !isZombie(pid) ? undefined : true), `pid ${pid} to exit`, timeoutMs);
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** The log file's records, in order. */
export async function readLog(file: string): Promise<LogRecord[]> {
  const text = await readFile(file, 'utf8');
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as LogRecord);
}

/** Sends raw bytes on the control socket and returns everything it answers until it closes. */
export function rawRequest(stateDir: string, payload: string | Buffer, { end = false, timeoutMs = 15_000 } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(path.join(stateDir, 'shim.sock'));
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to ${String(payload).slice(0, 80)}`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      socket.write(payload);
      if (end) socket.end();
    });
    socket.on('data', (chunk: string) => { answer += chunk; });
    socket.on('error', (err) => { clearTimeout(timer); reject(err); });
    socket.on('close', () => { clearTimeout(timer); resolve(answer); });
  });
}

/** One JSON request, one parsed JSON response. */
export async function request<T = Record<string, unknown>>(stateDir: string, body: unknown): Promise<T> {
  const answer = await rawRequest(stateDir, JSON.stringify(body) + '\n');
  const lines = answer.split('\n').filter(Boolean);
  if (lines.length !== 1) throw new Error(`expected one response line, got ${JSON.stringify(answer)}`);
  return JSON.parse(lines[0]!) as T;
}

/** Names of the files in a directory (empty if it does not exist). */
export async function listDir(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch {
    return [];
  }
}

/** The memory cgroup directory runc/berth-runtime made for a bundle (cgroup v1 layout, or v2). */
export function memoryCgroupDirs(cgroupsPath: string): string[] {
  return [path.join('/sys/fs/cgroup/memory', cgroupsPath), path.join('/sys/fs/cgroup', cgroupsPath)];
}

/** Pids whose command line contains `needle`. */
export async function pidsMatching(needle: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).replaceAll('\0', ' ');
      if (cmdline.includes(needle)) found.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

/** VmRSS of a process in KiB. */
export async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]);
}
