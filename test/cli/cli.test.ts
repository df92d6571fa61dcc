// The berth CLI, run as a subprocess (bin/berth.ts, as a user runs it) against a
// real all-in-one: every command's help, the output of people and scripts, and
// the exit codes (0 ok, 1 API error, 2 usage, 3 not found, 4 auth, 5 no server,
// 6 a waited-on task failed).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../common/daemons.ts';
import { COMMANDS, main } from '../../cli/index.ts';
import { startAllInOne, type AllInOne } from '../harness/allinone.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(repo, 'bin/berth.ts');

let aio: AllInOne;
let registry: string;
let work: string;
const family = `cli-${randomBytes(3).toString('hex')}`;
/** Everything any run printed: the key must never be in it. */
const printed: string[] = [];

interface Run { code: number | null; stdout: string; stderr: string }

/** Runs `berth ARGS` from a scratch directory with the all-in-one in the environment. */
function berth(args: string[], o: { env?: Record<string, string | undefined>; cwd?: string; input?: string; timeoutMs?: number } = {}): Promise<Run> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('BERTH_')) delete env[k];
  Object.assign(env, { HOME: work, XDG_CONFIG_HOME: '', BERTH_API: aio.url, BERTH_API_KEY: aio.adminKey }, o.env);
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { cwd: o.cwd ?? work, env: env as NodeJS.ProcessEnv, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c; });
    child.stderr.on('data', (c: Buffer) => { stderr += c; });
    child.stdin.end(o.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      printed.push(stdout, stderr);
      resolve({ code, stdout, stderr });
    });
  });
}

const json = (r: Run) => {
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(`not JSON (exit ${r.code}): ${r.stdout}\nstderr: ${r.stderr}`);
  }
};

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'berth-cli-'));
  registry = `127.0.0.1:${await freePort()}`;
  aio = await startAllInOne({ BERTH_LOCAL_REGISTRY_ADDR: registry });
  await writeFile(path.join(work, 'def.json'), JSON.stringify({
    family, image: 'berth/busybox:latest', command: ['sh', '-c', 'echo out line; echo err line >&2; exit 3'], memory: 32, stopTimeout: 2,
  }));
}, 180_000);

afterAll(async () => {
  await aio?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('usage', () => {
  it('--help works on every command and exits 0', async () => {
    // In this process for every command (each one a subprocess would cost a tsx start)...
    for (const words of [[], ...COMMANDS.map((c) => c.name.split(' ')), ['task'], ['fn'], ['node']]) {
      const out: string[] = [];
      const sink = (into: string[]) => ({ write: (s: string) => { into.push(s); return true; } }) as unknown as NodeJS.WritableStream;
      const code = await main([...words, '--help'], { stdout: sink(out), stderr: sink(out), stdin: process.stdin });
      expect(code, words.join(' ')).toBe(0);
      expect(out.join('')).toMatch(/^Usage: berth /);
    }
    // ...and as a user runs it.
    const runs = await Promise.all([['--help'], ['task', 'run', '--help'], ['top', '-h']].map((args) => berth(args)));
    for (const r of runs) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^Usage: berth /);
    }
    expect(runs[0]!.stdout).toContain('Exit codes:');
    expect(runs[1]!.stdout).toContain('--wait');
  });

  it('bad usage exits 2 with a message on stderr', async () => {
    const cases = [[], ['nope'], ['task', 'nope'], ['task'], ['task', 'ls', '--bogus'], ['task', 'run'],
      ['task', 'run', family, '--count', 'x'], ['task', 'run', family, '--env', 'novalue'], ['task', 'ls', '-o', 'yaml'],
      ['task-def', 'register'], ['logs']];
    const runs = await Promise.all(cases.map((args) => berth(args)));
    runs.forEach((r, i) => {
      expect(r.code, `berth ${cases[i]!.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr.length).toBeGreaterThan(0);
      expect(r.stdout).toBe('');
    });
  });

  it('exits 5 when nothing listens, 4 with a bad key, 3 for an unknown task', async () => {
    const port = await freePort();
    const [none, badKey, unknown] = await Promise.all([
      berth(['task', 'ls'], { env: { BERTH_API: `http://127.0.0.1:${port}` } }),
      berth(['task', 'ls'], { env: { BERTH_API_KEY: 'berth_not_a_key' } }),
      berth(['task', 'describe', 'f'.repeat(32)]),
    ]);
    expect(none.code).toBe(5);
    expect(none.stderr).toMatch(/cannot connect to http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
    expect(badKey.code).toBe(4);
    expect(badKey.stderr).toMatch(/^berth: .+/);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toMatch(/^berth: .*task/i);
  });

  it('reports the API\'s own error message and exits 1 for a refused request', async () => {
    const r = await berth(['task', 'run', family, '--memory', '6', '--cpu', '99999']);
    expect(r.code).toBe(2); // --cpu out of range is caught before the call
    const bad = await berth(['task-def', 'register', '-f', '-'], { input: JSON.stringify({ family, image: 'x', memory: 1 }) });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('memory');
  });
});

describe('tasks', () => {
  let failedTask: string;

  it('registers a definition from a file (table and json)', async () => {
    const r = await berth(['task-def', 'register', '-f', 'def.json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^DEFINITION\s+STATUS\s+IMAGE\s+CPU\s+MEMORY/);
    expect(r.stdout).toContain(`${family}:1`);
    const j = json(await berth(['task-def', 'register', '-f', 'def.json', '-o', 'json']));
    expect(j).toMatchObject({ family, revision: 2, status: 'ACTIVE', memory: 32 });
  });

  it('run --wait: waits for the exit; exit 6 when the task did not exit 0, 0 when it did', async () => {
    const r = await berth(['task', 'run', `${family}:1`, '--wait', '-o', 'json']);
    expect(r.code, r.stderr).toBe(6);
    const { tasks } = json(r);
    expect(tasks).toHaveLength(1);
    expect(tasks[0]).toMatchObject({ lastStatus: 'STOPPED', exitCode: 3, taskDefinition: `${family}:1` });
    failedTask = tasks[0].taskId;

    const ok = await berth(['task', 'run', family, '--wait', '--env', 'GREETING=hi there', '--', 'sh', '-c', 'echo "$GREETING"']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/STOPPED/);
    const id = /\b([a-f0-9]{32})\b/.exec(ok.stdout)![1]!;
    const logs = await berth(['logs', id]);
    expect(logs.stdout).toBe('hi there\n');
  });

  it('logs: stdout to stdout, stderr to stderr; json events', async () => {
    const r = await berth(['logs', failedTask]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('out line\n');
    expect(r.stderr).toBe('err line\n');
    const events = (await berth(['logs', failedTask, '-o', 'json'])).stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.map((e) => [e.stream, e.message])).toEqual([['stdout', 'out line'], ['stderr', 'err line']]);
  });

  it('describe and ls show the stopped task', async () => {
    const d = await berth(['task', 'describe', failedTask]);
    expect(d.code).toBe(0);
    expect(d.stdout).toMatch(/^Task:\s+[a-f0-9]{32}$/m);
    expect(d.stdout).toMatch(/^Exit code:\s+3$/m);
    expect(d.stdout).toMatch(/^Stop code:\s+EssentialContainerExited$/m);
    expect(json(await berth(['task', 'describe', failedTask, '-o', 'json']))).toMatchObject({ taskId: failedTask, exitCode: 3 });

    const ls = await berth(['task', 'ls', '--family', family]);
    expect(ls.stdout.split('\n')[0]).toMatch(/^TASK ID\s+DEFINITION\s+STATUS\s+DESIRED\s+NODE/);
    expect(ls.stdout).toContain(failedTask);
    const lj = json(await berth(['task', 'ls', '--family', family, '-o', 'json']));
    expect(lj.tasks.map((t: any) => t.taskId)).toContain(failedTask);
    expect(lj.tasks.every((t: any) => t.family === family)).toBe(true);
  });

  it('a long task: top --once shows its CPU and memory, logs -f follows it until stop', async () => {
    const run = json(await berth(['task', 'run', family, '-o', 'json', '--', 'sh', '-c', 'trap "exit 0" TERM; echo started; while true; do sleep 0.2; done']));
    const id: string = run.tasks[0].taskId;
    await until('RUNNING', async () => {
      const t = json(await berth(['task', 'describe', id, '-o', 'json']));
      return t.lastStatus === 'RUNNING' ? t : undefined;
    });
    const row = await until('a stats sample', async () => {
      const top = json(await berth(['top', '--once', '-o', 'json']));
      return top.rows.find((r: any) => r.taskId === id && r.sample?.memoryBytes > 0);
    });
    expect(row).toMatchObject({ taskId: id, nodeId: aio.nodeId });
    expect(row.sample.memoryLimitBytes).toBe(32 * 2 ** 20);
    const top = await berth(['top', '--once']);
    expect(top.code).toBe(0);
    expect(top.stdout.split('\n')[0]).toMatch(/^TASK ID\s+DEFINITION\s+NODE\s+CPU %\s+OF LIMIT\s+MEM USAGE \/ LIMIT\s+MEM %\s+PIDS/);
    expect(top.stdout).toMatch(new RegExp(`${id}\\s+${family}:\\d+\\s+${aio.nodeId}\\s+\\d+\\.\\d%.*\\s/\\s32\\.0MiB`));

    const follow = berth(['logs', '-f', id]);
    await new Promise((r) => setTimeout(r, 1000));
    const stop = await berth(['task', 'stop', id, '--reason', 'enough', '--wait', '-o', 'json']);
    expect(stop.code, stop.stderr).toBe(0);
    expect(json(stop).tasks[0]).toMatchObject({ taskId: id, lastStatus: 'STOPPED', stopCode: 'UserInitiated', stoppedReason: 'enough' });
    const followed = await follow;
    expect(followed.code, followed.stderr).toBe(0);
    expect(followed.stdout).toBe('started\n');
  });

  it('stop of an unknown task exits 3', async () => {
    const r = await berth(['task', 'stop', 'a'.repeat(32)]);
    expect(r.code).toBe(3);
  });
});

describe('secrets', () => {
  it('secret put from stdin and a file, ls, describe, rm: the value never printed', async () => {
    const name = `db-${family}`;
    const value = `v-${randomBytes(6).toString('hex')}`;
    const put = await berth(['secret', 'put', name], { input: `${value}\n` });
    expect(put.code, put.stderr).toBe(0);
    expect(put.stdout).toMatch(new RegExp(`^${name}\\s`, 'm'));
    await writeFile(path.join(work, 'secret.txt'), value);
    expect((await berth(['secret', 'put', name, '-f', 'secret.txt'])).code).toBe(0);
    expect(json(await berth(['secret', 'ls', '-o', 'json'])).secrets.map((s: { name: string }) => s.name)).toContain(name);
    expect(json(await berth(['secret', 'describe', name, '-o', 'json']))).toMatchObject({ name, createdAt: expect.any(String) });
    const empty = await berth(['secret', 'put', name], { input: '' });
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/the value is empty/);
    expect((await berth(['secret', 'rm', name])).code).toBe(0);
    expect((await berth(['secret', 'describe', name])).code).toBe(3);
    expect(printed.join('\n')).not.toContain(value);
  });
});

describe('functions', () => {
  it('fn deploy, ls, invoke (sync, json), describe, rm', async () => {
    const name = `hello-${family}`;
    const d = await berth(['fn', 'deploy', name, '--image', 'berth/fn-hello:latest', '--memory', '128', '--env', 'GREETING=hi', '-o', 'json']);
    expect(d.code, d.stderr).toBe(0);
    expect(json(d)).toMatchObject({ name, version: 1, image: 'berth/fn-hello:latest', memory: 128, environment: [{ name: 'GREETING', value: 'hi' }] });
    const ls = await berth(['fn', 'ls']);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout.split('\n')[0]).toMatch(/^NAME\s+VERSION\s+IMAGE\s+CPU\s+MEMORY\s+CONCURRENCY\s+MIN\s+MAX\s+INSTANCES/);
    expect(ls.stdout).toMatch(new RegExp(`^${name}\\s+1\\s+berth/fn-hello:latest`, 'm'));
    const inv = await berth(['fn', 'invoke', name, '--data', '{"x":1}'], { timeoutMs: 90_000 });
    expect(inv.code, inv.stderr).toBe(0);
    expect(JSON.parse(inv.stdout)).toMatchObject({ hello: 'from a Berth function', method: 'POST', body: '{"x":1}' });
    const invJson = json(await berth(['fn', 'invoke', name, '-d', 'plain', '-o', 'json']));
    expect(invJson).toMatchObject({ status: 200, body: { body: 'plain' } });
    expect(invJson.headers['x-berth-instance-id']).toBeTruthy();
    expect((await berth(['fn', 'invoke', `nope-${family}`])).code).toBe(3);
    expect((await berth(['fn', 'describe', name, '-o', 'json'])).code).toBe(0);
    const rm = await berth(['fn', 'rm', name]);
    expect(rm.code, rm.stderr).toBe(0);
    expect((await berth(['fn', 'describe', name])).code).toBe(3);
  });
});

describe('nodes, images, config', () => {
  it('node ls: the all-in-one\'s node', async () => {
    const r = await berth(['node', 'ls']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^NODE ID\s+STATUS\s+ADDRESS\s+CPU\s+MEMORY/);
    expect(r.stdout).toMatch(new RegExp(`^${aio.nodeId}\\s+ACTIVE`, 'm'));
    const j = json(await berth(['node', 'ls', '-o', 'json']));
    expect(j.nodes).toEqual([expect.objectContaining({ nodeId: aio.nodeId, status: 'ACTIVE' })]);
  });

  it('image pull: into a store of its own, then again with nothing to download', async () => {
    const root = path.join(work, 'images');
    const first = await berth(['image', 'pull', 'berth/busybox:latest', '--root', root, '-o', 'json'], { env: { BERTH_REGISTRY: registry } });
    expect(first.code, first.stderr).toBe(0);
    const j = json(first);
    expect(j).toMatchObject({ reference: expect.stringContaining('berth/busybox:latest'), digest: expect.stringMatching(/^sha256:[a-f0-9]{64}$/) });
    expect(j.layers).toBeGreaterThan(0);
    expect(j.downloaded).toBe(j.layers);
    const again = await berth(['image', 'pull', `${registry}/berth/busybox:latest`, '--root', root]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/\(0 downloaded, \d+ already here\)/);
    const missing = await berth(['image', 'pull', 'berth/nothing:here', '--root', root, '--registry', registry]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/manifest unknown|not found/i);
  });

  it('config: flags > env > config file > .berth; the key is never printed', async () => {
    const dir = await mkdtemp(path.join(work, 'cwd-'));
    await mkdir(path.join(dir, '.berth'));
    await writeFile(path.join(dir, '.berth', 'admin-key'), aio.adminKey + '\n');
    await writeFile(path.join(dir, '.berth', 'api-url'), aio.url + '\n');
    const noEnv = { BERTH_API: undefined, BERTH_API_KEY: undefined };
    // The all-in-one's files alone are enough.
    const fromState = await berth(['node', 'ls', '-o', 'json'], { cwd: dir, env: noEnv });
    expect(fromState.code, fromState.stderr).toBe(0);
    const shown = json(await berth(['config', '-o', 'json'], { cwd: dir, env: noEnv }));
    expect(shown).toMatchObject({ endpoint: aio.url, endpointSource: 'file .berth/api-url', apiKeySet: true, apiKeySource: 'file .berth/admin-key' });
    // The config file wins over them, the environment over the file, a flag over the environment.
    const home = await mkdtemp(path.join(work, 'home-'));
    await mkdir(path.join(home, '.config', 'berth'), { recursive: true });
    await writeFile(path.join(home, '.config', 'berth', 'config.json'), JSON.stringify({ endpoint: 'http://127.0.0.1:1', apiKey: 'berth_wrong' }));
    const fileWins = await berth(['task', 'ls'], { cwd: dir, env: { ...noEnv, HOME: home } });
    expect(fileWins.code).toBe(5);
    const envWins = await berth(['task', 'ls', '-o', 'json'], { cwd: dir, env: { HOME: home } });
    expect(envWins.code, envWins.stderr).toBe(0);
    const flagWins = await berth(['task', 'ls', '--api-key', 'berth_bad'], { cwd: dir, env: { HOME: home } });
    expect(flagWins.code).toBe(4);
    const c = json(await berth(['config', '-o', 'json', '--endpoint', '127.0.0.1:9'], { env: { HOME: home, BERTH_API_ADDR: '0.0.0.0:7' } }));
    expect(c).toMatchObject({ endpoint: 'http://127.0.0.1:9', endpointSource: 'flag --endpoint', apiKeySource: 'env BERTH_API_KEY' });
    const addr = json(await berth(['config', '-o', 'json'], { env: { HOME: home, BERTH_API: undefined, BERTH_API_ADDR: '0.0.0.0:7' } }));
    expect(addr).toMatchObject({ endpoint: 'http://127.0.0.1:7', endpointSource: 'env BERTH_API_ADDR' });
  });

  it('no run printed the API key', () => {
    expect(printed.length).toBeGreaterThan(20);
    for (const text of printed) expect(text).not.toContain(aio.adminKey);
  });
});
