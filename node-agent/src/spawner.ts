// Runs the agent's short-lived commands (berth-shim, the runtime's delete, CNI
// plugins, ip) through berth-spawner, a small process kept beside the agent.
// Node forks the agent to start a child, and a fork copies the page tables of
// the agent's few hundred MiB: 10-15 ms per command on a VM, the largest part
// of a container's start. berth-spawner starts children with posix_spawn from a
// process of a few hundred KiB. Without its binary, commands run as before.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { NATIVE_BUILD } from './binaries.ts';

export interface RunOptions {
  /** The whole environment of the command (the agent's by default). */
  env?: NodeJS.ProcessEnv;
  /** Written to the command's stdin, which is then closed (/dev/null without it). */
  input?: string | Buffer;
  cwd?: string;
  /** The command is killed (SIGKILL) after this long. */
  timeoutMs?: number;
}

export interface RunResult {
  /** The exit status; null when a signal ended it. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** True when it was killed for running past timeoutMs. */
  timedOut: boolean;
  stdout: Buffer;
  stderr: Buffer;
}

/** The command could not be started at all (no such file, not executable, ...). */
export class CommandStartError extends Error {
  constructor(readonly file: string, readonly code: string, message: string) {
    super(`${file}: ${message}`);
  }
}

export interface CommandRunner {
  run(file: string, args: string[], options?: RunOptions): Promise<RunResult>;
  close(): void;
}

const REQ_SPAWN = 1;
const REQ_KILL = 2;
const HOW_EXITED = 0;
const HOW_KILLED = 1;

interface Pending {
  file: string;
  resolve(result: RunResult): void;
  reject(err: Error): void;
  timer?: NodeJS.Timeout;
  timedOut: boolean;
}

const signalNames = new Map(Object.entries(osConstants.signals).map(([name, number]) => [number, name as NodeJS.Signals]));
const errnoNames = new Map(Object.entries(osConstants.errno).map(([name, number]) => [number, name]));

/** Commands through one berth-spawner process, started on first use and again after it dies. */
export class SpawnerRunner implements CommandRunner {
  private child: ChildProcess | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private received: Buffer = Buffer.alloc(0);

  constructor(private readonly binary: string) {}

  run(file: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
    const strings = [file, ...args];
    const env = Object.entries(options.env ?? process.env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
    if ([...strings, ...env].some((s) => s.includes('\0'))) {
      return Promise.reject(new CommandStartError(file, 'EINVAL', 'an argument or environment variable holds a NUL byte'));
    }
    const id = this.nextId++;
    const input = options.input === undefined ? Buffer.alloc(0) : Buffer.from(options.input);
    const cwd = Buffer.from(options.cwd ?? '');
    const parts = [...strings, ...env].map((s) => Buffer.from(`${s}\0`));
    const head = Buffer.alloc(4 + 1 + 20);
    const length = 1 + 20 + parts.reduce((n, b) => n + b.length, 0) + cwd.length + input.length;
    head.writeUInt32LE(length, 0);
    head.writeUInt8(REQ_SPAWN, 4);
    head.writeUInt32LE(id, 5);
    head.writeUInt32LE(strings.length, 9);
    head.writeUInt32LE(env.length, 13);
    head.writeUInt32LE(cwd.length, 17);
    head.writeUInt32LE(input.length, 21);
    return new Promise((resolve, reject) => {
      const pending: Pending = { file, resolve, reject, timedOut: false };
      const child = this.ensureChild();
      this.pending.set(id, pending);
      if (this.pending.size === 1) this.setRef(true);
      if (options.timeoutMs !== undefined) {
        pending.timer = setTimeout(() => {
          pending.timedOut = true;
          const kill = Buffer.alloc(4 + 1 + 8);
          kill.writeUInt32LE(9, 0);
          kill.writeUInt8(REQ_KILL, 4);
          kill.writeUInt32LE(id, 5);
          kill.writeUInt32LE(osConstants.signals.SIGKILL, 9);
          child.stdin?.write(kill);
        }, options.timeoutMs);
      }
      child.stdin!.write(Buffer.concat([head, ...parts, cwd, input]));
    });
  }

  /** The spawner's process id while one runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  close(): void {
    this.child?.stdin?.end();
    this.child = undefined;
  }

  private ensureChild(): ChildProcess {
    if (this.child) return this.child;
    const child = spawn(this.binary, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.child = child;
    child.stdin!.on('error', () => undefined); // the exit below answers for it
    child.stdout!.on('data', (chunk: Buffer) => this.onData(chunk));
    const gone = (why: string) => {
      if (this.child === child) this.child = undefined;
      const err = new Error(`berth-spawner ${why}`);
      for (const [id, p] of this.pending) {
        clearTimeout(p.timer);
        this.pending.delete(id);
        p.reject(err);
      }
    };
    child.once('error', (err) => gone(`could not run: ${err.message}`));
    child.once('exit', (code, signal) => gone(signal ? `was killed by ${signal}` : `exited with ${code}`));
    this.setRef(this.pending.size > 0);
    return child;
  }

  /** An idle spawner does not keep the agent's process alive. */
  private setRef(on: boolean): void {
    const child = this.child;
    if (!child) return;
    for (const handle of [child, child.stdin, child.stdout] as ({ ref(): void; unref(): void } | null)[]) {
      if (on) handle?.ref();
      else handle?.unref();
    }
  }

  private onData(chunk: Buffer): void {
    this.received = this.received.length === 0 ? chunk : Buffer.concat([this.received, chunk]);
    while (this.received.length >= 4) {
      const length = this.received.readUInt32LE(0);
      if (this.received.length < 4 + length) return;
      const frame = this.received.subarray(4, 4 + length);
      this.received = this.received.subarray(4 + length);
      const id = frame.readUInt32LE(0);
      const how = frame.readUInt8(4);
      const value = frame.readInt32LE(5);
      const outLength = frame.readUInt32LE(9);
      const errLength = frame.readUInt32LE(13);
      const stdout = Buffer.from(frame.subarray(17, 17 + outLength));
      const stderr = Buffer.from(frame.subarray(17 + outLength, 17 + outLength + errLength));
      const p = this.pending.get(id);
      if (!p) continue;
      this.pending.delete(id);
      clearTimeout(p.timer);
      if (this.pending.size === 0) this.setRef(false);
      if (how === HOW_EXITED) p.resolve({ exitCode: value, signal: null, timedOut: p.timedOut, stdout, stderr });
      else if (how === HOW_KILLED) p.resolve({ exitCode: null, signal: signalNames.get(value) ?? (`SIG${value}` as NodeJS.Signals), timedOut: p.timedOut, stdout, stderr });
      else {
        const code = errnoNames.get(value) ?? `errno ${value}`;
        p.reject(new CommandStartError(p.file, code, code === 'ENOENT' ? 'no such file (or not on PATH)' : code));
      }
    }
  }
}

/** Commands through child_process, for when berth-spawner is not built. */
export class DirectRunner implements CommandRunner {
  run(file: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(file, args, { env: options.env, cwd: options.cwd, stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timedOut = false;
      child.stdout!.on('data', (c: Buffer) => out.push(c));
      child.stderr!.on('data', (c: Buffer) => err.push(c));
      if (options.input !== undefined) {
        child.stdin!.on('error', () => undefined); // a child that does not read its stdin
        child.stdin!.end(options.input);
      }
      const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, options.timeoutMs);
      child.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new CommandStartError(file, e.code ?? 'EIO', e.code === 'ENOENT' ? 'no such file (or not on PATH)' : e.message));
      });
      child.once('close', (exitCode, signal) => {
        clearTimeout(timer);
        resolve({ exitCode, signal, timedOut, stdout: Buffer.concat(out), stderr: Buffer.concat(err) });
      });
    });
  }

  close(): void {}
}

/** BERTH_SPAWNER, else the one `make -C native` built; null when there is none. */
export function spawnerBinary(env: NodeJS.ProcessEnv = process.env): string | null {
  const file = env.BERTH_SPAWNER || path.join(NATIVE_BUILD, 'berth-spawner');
  try {
    accessSync(file, constants.X_OK);
    return file;
  } catch {
    return null;
  }
}

let shared: CommandRunner | undefined;

/** The process-wide runner the agent's commands go through. */
export function commands(): CommandRunner {
  if (!shared) {
    const binary = spawnerBinary();
    shared = binary ? new SpawnerRunner(binary) : new DirectRunner();
  }
  return shared;
}

/** Runs a command; rejects with its stderr (or stdout) when it fails, as execFile does. */
export async function runChecked(file: string, args: string[], options: RunOptions = {}): Promise<string> {
  const r = await commands().run(file, args, options);
  if (r.exitCode === 0) return r.stdout.toString('utf8');
  const why = r.timedOut ? `timed out after ${options.timeoutMs} ms` : r.signal ? `killed by ${r.signal}` : `exited with ${r.exitCode}`;
  const said = (r.stderr.toString('utf8') || r.stdout.toString('utf8')).trim();
  throw new Error(`${file} ${args.join(' ')}: ${said || why}`);
}
