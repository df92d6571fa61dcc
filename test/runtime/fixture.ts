// Helpers for the runtime tests: the runtimes under test, running their CLI, and
// looking for anything a container left behind (cgroups, mounts, processes, state).
import { spawn, type StdioOptions } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, mkdtemp, rm, rmdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeBundle, type BundleOptions, type TestBundle } from '../harness/bundle.ts';
import { afterAll, afterEach, beforeAll } from 'vitest';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BERTH_RUNTIME = path.join(repo, 'native/build/berth-runtime');

/** An OCI runtime binary with its own state root (one per test file and runtime). */
export interface Runtime {
  name: 'berth-runtime' | 'runc';
  bin: string;
  root: string;
}

export function berthRuntime(root: string): Runtime {
  return { name: 'berth-runtime', bin: BERTH_RUNTIME, root };
}

export function runcRuntime(root: string): Runtime {
  return { name: 'runc', bin: 'runc', root };
}

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /**
   * The command leaves a process behind that keeps its stdio (create, run --detach):
   * collect the output through files and return when the command itself exits.
   */
  detached?: boolean;
  /** Extra fds handed to the runtime at index 3, 4, ... (inherited, not close-on-exec). */
  extraFds?: (number | 'ignore')[];
  timeoutMs?: number;
}

/** Runs a command to completion; never throws on a non-zero exit. */
export function exec(bin: string, args: string[], options: ExecOptions = {}): Promise<Result> {
  if (options.detached) return execDetached(bin, args, options);
  const stdio: StdioOptions = ['ignore', 'pipe', 'pipe', ...(options.extraFds ?? [])];
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? 128 + (signal ? osSignal(signal) : 0), stdout, stderr });
    });
  });
}

async function execDetached(bin: string, args: string[], options: ExecOptions): Promise<Result> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'berth-exec-'));
  const out = openSync(path.join(dir, 'out'), 'w');
  const err = openSync(path.join(dir, 'err'), 'w');
  try {
    const code = await new Promise<number>((resolve, reject) => {
      const child = spawn(bin, args, { stdio: ['ignore', out, err, ...(options.extraFds ?? [])] });
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
      child.on('error', reject);
      child.on('exit', (c, signal) => {
        clearTimeout(timer);
        resolve(c ?? 128 + (signal ? osSignal(signal) : 0));
      });
    });
    return { code, stdout: readFileSync(path.join(dir, 'out'), 'utf8'), stderr: readFileSync(path.join(dir, 'err'), 'utf8') };
  } finally {
    closeSync(out);
    closeSync(err);
    await rm(dir, { recursive: true, force: true });
  }
}

function osSignal(name: NodeJS.Signals): number {
  return ({ SIGKILL: 9, SIGTERM: 15, SIGINT: 2 } as Record<string, number>)[name] ?? 0;
}

/** `<runtime> --root R <args...>` */
export function cli(rt: Runtime, args: string[], options: ExecOptions = {}): Promise<Result> {
  return exec(rt.bin, ['--root', rt.root, ...args], options);
}

/** create + start + wait + delete in one (`run`), returning the container's exit code and output. */
export function runBundle(rt: Runtime, b: TestBundle, options: ExecOptions = {}): Promise<Result> {
  return cli(rt, ['run', '--bundle', b.bundle, b.id], options);
}

/** Best-effort removal, for afterEach/finally: never throws. */
export async function forceDelete(rt: Runtime, id: string): Promise<void> {
  await cli(rt, ['delete', '--force', id]).catch(() => undefined);
}

export interface ContainerState {
  ociVersion: string;
  id: string;
  status: 'created' | 'running' | 'stopped';
  pid: number;
  bundle: string;
  annotations?: Record<string, string>;
}

export async function state(rt: Runtime, id: string): Promise<ContainerState> {
  const r = await cli(rt, ['state', id]);
  if (r.code !== 0) throw new Error(`${rt.name} state ${id}: ${r.stderr}`);
  return JSON.parse(r.stdout) as ContainerState;
}

/** Polls `state` until the status is reached (a container not yet created counts as absent). */
export async function waitForStatus(rt: Runtime, id: string, status: ContainerState['status'], timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = await cli(rt, ['state', id]);
    const s = r.code === 0 ? (JSON.parse(r.stdout) as ContainerState).status : 'absent';
    if (s === status) return;
    if (Date.now() > end) throw new Error(`${id} is ${s}, not ${status}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The mountpoints of every cgroup hierarchy on this host (v1 controllers and cgroup2). */
export function cgroupMounts(): { mountpoint: string; options: string; v2: boolean }[] {
  const seen = new Set<string>();
  const out: { mountpoint: string; options: string; v2: boolean }[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const [fstype, , superopts] = post.split(' ');
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    const key = `${fstype}:${superopts}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ mountpoint: pre.split(' ')[4]!, options: superopts ?? '', v2: fstype === 'cgroup2' });
  }
  return out;
}

/** The host directory of a container's cgroup for a v1 controller, or the cgroup2 one. */
export function cgroupDir(cgroupsPath: string, controller: string | 'unified'): string {
  const m = cgroupMounts().find((h) =>
    controller === 'unified' ? h.v2 : !h.v2 && h.options.split(',').includes(controller),
  );
  if (!m) throw new Error(`no cgroup hierarchy for ${controller}`);
  return path.join(m.mountpoint, cgroupsPath);
}

export function hostIsCgroupV1(): boolean {
  return cgroupMounts().some((h) => !h.v2);
}

/** Every trace a container could leave on the host; empty when it is all gone. */
export function leftovers(b: TestBundle, rt: Runtime): string[] {
  const found: string[] = [];
  for (const h of cgroupMounts()) {
    const dir = path.join(h.mountpoint, b.cgroupsPath);
    if (existsSync(dir)) found.push(`cgroup ${dir}`);
  }
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (line.includes(b.bundle)) found.push(`mount ${line}`);
  }
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const root = readlinkSync(`/proc/${pid}/root`);
      const cwd = readlinkSync(`/proc/${pid}/cwd`);
      if (root.startsWith(b.rootfs) || cwd.startsWith(b.rootfs)) found.push(`process ${pid}`);
    } catch {
      // gone, or not ours to read
    }
  }
  if (existsSync(path.join(rt.root, b.id))) found.push(`state ${path.join(rt.root, b.id)}`);
  return found;
}

/** A bundle plus the cleanup every test needs; call `dispose` in afterEach/finally. */
export async function bundleFor(options: BundleOptions = {}): Promise<TestBundle & { dispose(rts: Runtime[]): Promise<void> }> {
  const b = await makeBundle(options);
  return {
    ...b,
    async dispose(rts: Runtime[]) {
      for (const rt of rts) await forceDelete(rt, b.id);
      for (const h of cgroupMounts()) {
        await rmdir(path.join(h.mountpoint, b.cgroupsPath)).catch(() => undefined);
      }
      await b.remove();
    },
  };
}

/** Removes a state root made by freshRoot (containers in it are deleted by their tests). */
export async function removeRoot(root: string): Promise<void> {
  await rm(root, { recursive: true, force: true });
}

export async function freshRoot(name: string): Promise<string> {
  const dir = `/run/berth-runtime-test/${name}-${process.pid}`;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** Parses `key=value` lines printed by a probe script. */
export function keyValues(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

/**
 * berth-runtime with a fresh state root for one test file; `bundle()` makes a
 * bundle that is deleted (and its container with it) after each test.
 */
export function berthRuntimeForFile(name: string): { rt: Runtime; bundle: typeof bundleFor } {
  const disposers: (() => Promise<void>)[] = [];
  const file = {
    rt: undefined as unknown as Runtime,
    async bundle(options: Parameters<typeof bundleFor>[0]) {
      const b = await bundleFor(options);
      disposers.push(() => b.dispose([file.rt]));
      return b;
    },
  };
  beforeAll(async () => {
    file.rt = berthRuntime(await freshRoot(name));
  });
  afterEach(async () => {
    for (const d of disposers.splice(0)) await d();
  });
  afterAll(async () => {
    if (file.rt) await removeRoot(file.rt.root);
  });
  return file;
}
