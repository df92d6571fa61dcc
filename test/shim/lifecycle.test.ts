// The shim's life: it detaches from the agent and outlives it, a failed start
// leaves nothing behind, and an idle shim stays small.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  alive, buildShim, listDir, memoryCgroupDirs, pidsMatching, request, rssKiB, runtimes, SHIM, ShimTestContext,
  until, waitExitFile, waitGone,
} from './fixture.ts';

buildShim();
const RUNTIMES = await runtimes();

function parentOf(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/stat`, 'utf8').then((s) => Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]));
}

function sessionOf(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/stat`, 'utf8').then((s) => Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[3]));
}

describe.each(RUNTIMES)('berth-shim lifecycle ($name)', (runtime) => {
  let ctx: ShimTestContext;
  beforeAll(() => { ctx = new ShimTestContext(runtime); });
  afterEach(async () => { await ctx.cleanup(); });

  it('survives its caller being SIGKILLed and still records the exit', async () => {
    const run = await ctx.prepare({ args: ['sh', '-c', 'trap "exit 5" TERM; while true; do sleep 0.05; done'] });
    const out = path.join(run.bundle.scratch, 'started.json');
    // a throwaway agent: starts the shim, then lingers until killed
    const agent = spawn('/bin/sh', ['-c', '"$0" "$@" > "$OUT"; exec sleep 1000', SHIM, ...run.args], {
      env: { ...process.env, OUT: out }, stdio: 'ignore', detached: true,
    });
    ctx.track(agent.pid!);
    const started = await until(async () => {
      const text = existsSync(out) ? await readFile(out, 'utf8') : '';
      return text.endsWith('\n') ? (JSON.parse(text) as { shimPid: number; pid: number }) : undefined;
    }, 'the shim to report the start');
    ctx.track(started.shimPid);
    ctx.track(started.pid);

    // detached: another session, not the agent's child, and no fd of the agent's
    expect(await sessionOf(started.shimPid)).not.toBe(await sessionOf(agent.pid!));
    expect(await parentOf(started.shimPid)).not.toBe(agent.pid);
    const fds = await listDir(`/proc/${started.shimPid}/fd`);
    expect(fds.length).toBeLessThan(16);

    process.kill(-agent.pid!, 'SIGKILL'); // the agent's whole process group
    await until(() => (alive(agent.pid!) ? undefined : true), 'the agent to die');
    await new Promise((r) => setTimeout(r, 100));
    expect(alive(started.shimPid)).toBe(true);
    expect(alive(started.pid)).toBe(true);
    expect(await request(run.stateDir, { op: 'state' })).toMatchObject({ status: 'running', pid: started.pid });

    expect(await request(run.stateDir, { op: 'kill', signal: 15 })).toEqual({ ok: true });
    expect(await waitExitFile(run.stateDir)).toMatchObject({ exitCode: 5, signal: null });
    await waitGone(started.shimPid);
  });

  it('the container is reaped by the shim (its subreaper), not left a zombie', async () => {
    const run = await ctx.prepare({ args: ['sh', '-c', 'sleep 0.3'] });
    const started = await ctx.start(run);
    expect(await parentOf(started.pid)).toBe(started.shimPid);
    await waitExitFile(run.stateDir);
    await waitGone(started.shimPid);
    expect(alive(started.pid)).toBe(false);
  });

  it('fails to start a missing executable: non-zero exit, the runtime\'s message, nothing left', async () => {
    const run = await ctx.prepare({ args: ['/no-such-binary-here'] });
    const r = await ctx.exec(run);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^berth-shim: .*(create|start).*no-such-binary-here/);
    if (runtime.name === 'runc') expect(lines[0]).toContain('no such file or directory');

    // no shim, no container process, no runtime state, no cgroup, no files
    await until(async () => ((await pidsMatching(run.bundle.id)).length === 0 ? true : undefined), 'no process left');
    expect(await listDir(run.stateDir)).toEqual([]);
    const list = await new Promise<string>((resolve) => {
      const p = spawn(runtime.path, ['--root', run.runtimeRoot, 'list', '-q']);
      let out = '';
      p.stdout.on('data', (c: Buffer) => { out += c.toString(); });
      p.on('close', () => resolve(out));
    });
    expect(list).not.toContain(run.bundle.id);
    for (const dir of memoryCgroupDirs(run.bundle.cgroupsPath)) expect(existsSync(dir)).toBe(false);
  });

  it('fails with a usage error for a missing option, before doing anything', async () => {
    const run = await ctx.prepare({ args: ['true'] });
    run.args = run.args.filter((a, i, all) => a !== '--bundle' && all[i - 1] !== '--bundle');
    const r = await ctx.exec(run);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^berth-shim: missing option/);
    expect(existsSync(run.stateDir)).toBe(false);
  });

  it('refuses to start a second shim in the state directory of a running one', async () => {
    const run = await ctx.prepare({ args: ['sleep', '1000'] });
    const started = await ctx.start(run);
    const second = await ctx.exec({ ...run, args: run.args.map((a) => (a === run.bundle.id ? `${a}-2` : a)) });
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/^berth-shim: a shim is already running in /);
    expect(await request(run.stateDir, { op: 'state' })).toMatchObject({ status: 'running', pid: started.pid });
    expect(await readFile(path.join(run.stateDir, 'shim.pid'), 'utf8')).toBe(String(started.shimPid));
  });

  it('reports a runtime that cannot be run', async () => {
    const run = await ctx.prepare({ args: ['true'] });
    run.args = run.args.map((a) => (a === runtime.path ? '/nonexistent/runtime' : a));
    const r = await ctx.exec(run);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^berth-shim: runtime \/nonexistent\/runtime: No such file or directory\n$/);
  });

  it('keeps an idle shim under 1 MiB of RSS', async () => {
    const run = await ctx.prepare({ args: ['sleep', '1000'] });
    const started = await ctx.start(run);
    await new Promise((r) => setTimeout(r, 300));
    const rss = await rssKiB(started.shimPid);
    expect(rss).toBeLessThan(1024);
  });

  it('is back under 1 MiB of RSS once a burst of output is over', async () => {
    const run = await ctx.prepare({
      args: ['sh', '-c', 'yes "a line of output" | head -n 200000; head -c 100000 /dev/zero | tr "\\0" "\\001" >&2; echo done; exec sleep 1000'],
    });
    const started = await ctx.start(run);
    await until(async () => ((await readFile(run.logPath, 'utf8')).includes('"log":"done\\n"') ? true : undefined), 'the burst to be logged');
    await new Promise((r) => setTimeout(r, 1500)); // the shim releases its buffers after 1 s without output
    expect(await rssKiB(started.shimPid)).toBeLessThan(1024);
  });
});

describe('berth-shim with a runtime that fails its own way', () => {
  let ctx: ShimTestContext;
  const fake = { name: 'fake', path: '' };
  beforeAll(() => { ctx = new ShimTestContext(fake); });
  afterEach(async () => { await ctx.cleanup(); });

  it('passes on the last stderr line when the runtime writes no JSON log', async () => {
    const run = await ctx.prepare({ args: ['true'] });
    fake.path = path.join(run.bundle.scratch, 'fake-runtime');
    await writeFile(fake.path, '#!/bin/sh\necho "fake runtime: first line" >&2\necho "fake runtime: the real reason" >&2\nexit 3\n', { mode: 0o755 });
    run.args = run.args.map((a, i, all) => (all[i - 1] === '--runtime' ? fake.path : a));
    const r = await ctx.exec(run);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`berth-shim: ${fake.path} create: exit status 3: fake runtime: the real reason\n`);
    expect(await listDir(run.stateDir)).toEqual([]);
  });

  it('kills a runtime verb that hangs and reports the timeout', async () => {
    const run = await ctx.prepare({ args: ['true'] });
    fake.path = path.join(run.bundle.scratch, 'hanging-runtime');
    // hangs in create; answers delete at once
    await writeFile(fake.path, '#!/bin/sh\ncase "$*" in *delete*) exit 0;; esac\nexec sleep 30\n', { mode: 0o755 });
    run.args = run.args.map((a, i, all) => (all[i - 1] === '--runtime' ? fake.path : a));
    const started = Date.now();
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(SHIM, run.args, { env: { ...process.env, BERTH_SHIM_RUNTIME_TIMEOUT: '1' } }, (err, _out, stderr) => {
        resolve({ code: err ? Number(err.code) : 0, stderr });
      });
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`berth-shim: ${fake.path} create: no answer in 1 s, killed\n`);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await listDir(run.stateDir)).toEqual([]);
  });
});
