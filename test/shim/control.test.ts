// The control socket as the agent uses it: state, kill, wait (several clients),
// garbage that must not hurt the shim, and SIGTERM/SIGINT forwarded by the shim.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  alive, buildShim, listDir, rawRequest, request, runtimes, ShimTestContext, waitExitFile, waitGone, type ExitRecord,
} from './fixture.ts';

buildShim();
const RUNTIMES = await runtimes();

describe.each(RUNTIMES)('berth-shim control socket ($name)', (runtime) => {
  let ctx: ShimTestContext;
  beforeAll(() => { ctx = new ShimTestContext(runtime); });
  afterEach(async () => { await ctx.cleanup(); });

  it('answers state while running, and kill then wait gives the exit record', async () => {
    const run = await ctx.prepare({ args: ['sleep', '1000'] });
    const started = await ctx.start(run);
    const sock = path.join(run.stateDir, 'shim.sock');
    expect((await stat(sock)).isSocket()).toBe(true);
    expect((await stat(sock)).mode & 0o777).toBe(0o600);
    expect(await listDir(run.stateDir)).toEqual(['container.pid', 'runtime.log', 'shim.pid', 'shim.sock']);

    const state = await request(run.stateDir, { op: 'state' });
    expect(state).toEqual({ status: 'running', pid: started.pid, startedAt: expect.stringMatching(/Z$/) });

    const waiting = request<ExitRecord>(run.stateDir, { op: 'wait' });
    await new Promise((r) => setTimeout(r, 100));
    expect(await request(run.stateDir, { op: 'kill', signal: 9 })).toEqual({ ok: true });
    const waited = await waiting;
    expect(waited).toMatchObject({ exitCode: 137, signal: 9, oomKilled: false, startedAt: state.startedAt });
    expect(await waitExitFile(run.stateDir)).toEqual(waited);

    await waitGone(started.shimPid);
    expect(await listDir(run.stateDir)).toEqual(['container.pid', 'exit.json', 'runtime.log']);
  });

  it('answers every waiting client, including one that shut down its side', async () => {
    const run = await ctx.prepare({ args: ['sh', '-c', 'sleep 0.5; exit 7'] });
    await ctx.start(run);
    const waits = [
      ...[1, 2, 3, 4, 5].map(() => request<ExitRecord>(run.stateDir, { op: 'wait' })),
      rawRequest(run.stateDir, '{"op":"wait"}', { end: true }).then((t) => JSON.parse(t) as ExitRecord),
    ];
    const records = await Promise.all(waits);
    const onDisk = await waitExitFile(run.stateDir);
    expect(onDisk.exitCode).toBe(7);
    for (const r of records) expect(r).toEqual(onDisk);
  });

  it('answers bad requests with an error and keeps serving', async () => {
    const run = await ctx.prepare({ args: ['sleep', '1000'] });
    const started = await ctx.start(run);
    const cases: (string | Buffer)[] = [
      'garbage\n',
      '{\n',
      '[1,2,3]\n',
      '{"op":"nope"}\n',
      '{"op":42}\n',
      '{"noop":true}\n',
      '{"op":"kill","signal":"TERM"}\n',
      '{"op":"kill","signal":999}\n',
      '{"op":"kill","signal":1.5}\n',
      '{"op":"state"} trailing\n',
      '{"op":"\\u0000\\ud800"}\n',
      '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n',
      `{"op":"state","deep":${'['.repeat(100)}${']'.repeat(100)}}\n`,
      Buffer.from([0xff, 0xfe, 0x00, 0x0a]),
      'x'.repeat(10_000),
    ];
    for (const payload of cases) {
      const answer = await rawRequest(run.stateDir, payload);
      const parsed = JSON.parse(answer) as { ok: boolean; error: string };
      expect(parsed.ok, String(payload).slice(0, 40)).toBe(false);
      expect(typeof parsed.error).toBe('string');
      expect(answer.endsWith('\n')).toBe(true);
    }
    // a client that connects and leaves without a word, and one that sends half a request
    await rawRequest(run.stateDir, '', { end: true });
    await rawRequest(run.stateDir, '{"op":"st', { end: true });
    expect(alive(started.shimPid)).toBe(true);
    expect(await request(run.stateDir, { op: 'state' })).toMatchObject({ status: 'running', pid: started.pid });
    // unknown keys are ignored, a request without newline counts once the client ends
    expect(JSON.parse(await rawRequest(run.stateDir, '{"op":"state","x":[1,{"y":null}]}', { end: true }))).toMatchObject({ status: 'running' });
  });

  it('answers every time even when the client sent more than it reads (no reset)', async () => {
    const run = await ctx.prepare({ args: ['sleep', '1000'] });
    await ctx.start(run);
    for (let i = 0; i < 50; i++) {
      const tooLong = JSON.parse(await rawRequest(run.stateDir, 'y'.repeat(20_000))) as { ok: boolean; error: string };
      expect(tooLong).toEqual({ ok: false, error: 'request too long' });
      const pipelined = JSON.parse((await rawRequest(run.stateDir, '{"op":"state"}\n{"op":"state"}\n' + 'z'.repeat(5000))).split('\n')[0]!) as { status: string };
      expect(pipelined.status).toBe('running');
    }
    // more clients than slots at once: all are answered
    const answers = await Promise.all(Array.from({ length: 100 }, () => request(run.stateDir, { op: 'state' })));
    for (const a of answers) expect(a).toMatchObject({ status: 'running' });
  });

  it('sends the requested signal, SIGTERM by default', async () => {
    const run = await ctx.prepare({ args: ['sh', '-c', 'trap "exit 42" TERM; trap "exit 43" USR1; while true; do sleep 0.05; done'] });
    await ctx.start(run);
    await new Promise((r) => setTimeout(r, 200));
    expect(await request(run.stateDir, { op: 'kill' })).toEqual({ ok: true });
    expect((await waitExitFile(run.stateDir)).exitCode).toBe(42);

    const run2 = await ctx.prepare({ args: ['sh', '-c', 'trap "exit 42" TERM; trap "exit 43" USR1; while true; do sleep 0.05; done'] });
    await ctx.start(run2);
    await new Promise((r) => setTimeout(r, 200));
    expect(await request(run2.stateDir, { op: 'kill', signal: 10 })).toEqual({ ok: true });
    expect((await waitExitFile(run2.stateDir)).exitCode).toBe(43);
  });

  it('forwards SIGTERM and SIGINT it receives to the container', async () => {
    for (const [signal, code] of [['SIGTERM', 42], ['SIGINT', 44]] as const) {
      const run = await ctx.prepare({ args: ['sh', '-c', 'trap "exit 42" TERM; trap "exit 44" INT; while true; do sleep 0.05; done'] });
      const started = await ctx.start(run);
      await new Promise((r) => setTimeout(r, 200));
      process.kill(started.shimPid, signal);
      expect((await waitExitFile(run.stateDir)).exitCode).toBe(code);
      await waitGone(started.shimPid);
    }
  });

  it('ignores SIGHUP', async () => {
    const run = await ctx.prepare({ args: ['sleep', '1000'] });
    const started = await ctx.start(run);
    process.kill(started.shimPid, 'SIGHUP');
    await new Promise((r) => setTimeout(r, 100));
    expect(await request(run.stateDir, { op: 'state' })).toMatchObject({ status: 'running' });
  });
});
