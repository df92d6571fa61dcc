// Starting and stopping helper daemons (redis-server, docker-registry), by the pids we started.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

/** Node's `--import` for running Berth's TypeScript (a daemon of ours started as a child: `node --import TS_LOADER x.ts`). */
export const TS_LOADER = fileURLToPath(new URL('../bin/ts-loader.mjs', import.meta.url));

/**
 * Node options of the all-in-one and its API workers, as `npm start` gives them:
 * V8's garbage collector on the main thread only. On a small host its helper
 * threads compete for the cores with the instances, the load and the other
 * processes: a young collection in a worker waited 2-6 ms for them. At 2,000
 * requests/s through the gateway, alternated runs gave p99 3.6-6.4 ms with it in
 * every process, 4.4-14 ms (one 96) in the workers only, 4.6-62 ms without it.
 */
export const ALLINONE_NODE_ARGS = ['--single-threaded-gc'];

/** A free TCP port on loopback (the kernel picks it; we release it at once). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
export async function waitForPort(port: number, timeoutMs = 10_000, child?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`process exited with ${child.exitCode} before listening on ${port}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`nothing listened on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

export interface Daemon {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** Daemons this process started and has not stopped: ended with it, whatever way it exits. */
const running = new Set<ChildProcess>();
let exitHook = false;

function endWithThisProcess(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const c of running) c.kill('SIGKILL');
  });
}

let setprivFound: boolean | undefined;

/**
 * How to start `command` so that the kernel sends it SIGTERM when this process
 * dies, even by SIGKILL, which no exit hook sees: util-linux's setpriv sets the
 * parent-death signal and then execs the command (same pid). Without setpriv,
 * the command as it is.
 */
function withParentDeathSignal(command: string, args: string[]): [string, string[]] {
  setprivFound ??= spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).error === undefined;
  return setprivFound ? ['setpriv', ['--pdeathsig', 'SIGTERM', '--', command, ...args]] : [command, args];
}

/**
 * Spawns a daemon, keeping its output for failure messages; stop() kills that
 * pid only. The daemon ends with this process however this process ends.
 */
export function startDaemon(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Daemon {
  const [file, argv] = withParentDeathSignal(command, args);
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env, cwd: options.cwd });
  endWithThisProcess(child);
  let output = '';
  const keep = (chunk: Buffer) => { output = (output + chunk.toString()).slice(-20_000); };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return {
    child,
    output: () => output,
    stop: () => stopChild(child),
  };
}

export async function stopChild(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export interface RedisServerOptions {
  /** Data directory (the append-only file when `persist`). */
  dir: string;
  port: number;
  persist: boolean;
}

/** A redis-server on loopback, configured as BullMQ wants it in production. */
export async function startRedisServer(o: RedisServerOptions): Promise<Daemon> {
  const daemon = startDaemon('redis-server', [
    '--port', String(o.port), '--bind', '127.0.0.1', '--dir', o.dir, '--save', '',
    '--appendonly', o.persist ? 'yes' : 'no', '--maxmemory-policy', 'noeviction',
  ]);
  try {
    await waitForPort(o.port, 10_000, daemon.child);
  } catch (err) {
    await daemon.stop();
    throw new Error(`redis-server did not start: ${(err as Error).message}\n${daemon.output()}`);
  }
  return daemon;
}

export interface RegistryServerOptions {
  /** Holds the registry's config and its storage. */
  dir: string;
  host: string;
  port: number;
  /** An htpasswd file (bcrypt) to require basic auth. */
  htpasswd?: string;
}

/** Debian's docker-registry (the CNCF distribution registry) on the given address. */
export async function startRegistryServer(o: RegistryServerOptions): Promise<Daemon> {
  const storage = `${o.dir}/storage`;
  await mkdir(storage, { recursive: true });
  const config = [
    'version: 0.1',
    'log:',
    '  level: warn',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(storage)}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${JSON.stringify(`${o.host}:${o.port}`)}`,
    ...(o.htpasswd ? ['auth:', '  htpasswd:', '    realm: berth', `    path: ${JSON.stringify(o.htpasswd)}`] : []),
    '',
  ].join('\n');
  const configFile = `${o.dir}/config.yml`;
  await writeFile(configFile, config);
  const daemon = startDaemon('docker-registry', ['serve', configFile]);
  try {
    await waitForPort(o.port, 15_000, daemon.child);
  } catch (err) {
    await daemon.stop();
    throw new Error(`docker-registry did not start: ${(err as Error).message}\n${daemon.output()}`);
  }
  return daemon;
}
