// How the container ended, as the agent reads it from exit.json: exit codes,
// signals (128+N), OOM kills, and the record written atomically after the logs.
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildShim, listDir, readLog, request, runtimes, ShimTestContext, waitExitFile, waitGone, type ExitRecord,
} from './fixture.ts';

buildShim();
const RUNTIMES = await runtimes();

const RFC3339NANO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$/;
const MiB = 1024 * 1024;

describe.each(RUNTIMES)('berth-shim exit record ($name)', (runtime) => {
  let ctx: ShimTestContext;
  beforeAll(() => { ctx = new ShimTestContext(runtime); });
  afterEach(async () => { await ctx.cleanup(); });

  it.each([
    { code: 0, args: ['true'] },
    { code: 3, args: ['sh', '-c', 'exit 3'] },
  ])('records exit code $code', async ({ code, args }) => {
    const run = await ctx.prepare({ args });
    const started = await ctx.start(run);
    const record = await waitExitFile(run.stateDir);
    expect(record).toEqual({
      exitCode: code, signal: null, oomKilled: false, startedAt: expect.stringMatching(RFC3339NANO), exitedAt: expect.stringMatching(RFC3339NANO),
    });
    expect(Date.parse(record.exitedAt)).toBeGreaterThanOrEqual(Date.parse(record.startedAt));
    await waitGone(started.shimPid);
    // the shim cleans up its own files; the record and the runtime's files stay
    expect(await listDir(run.stateDir)).toEqual(['container.pid', 'exit.json', 'runtime.log']);
    expect((await stat(run.stateDir)).mode & 0o777).toBe(0o700);
  });

  it('records a container killed by a signal as 128+N with the signal', async () => {
    const run = await ctx.prepare({ args: ['sleep', '1000'] });
    const started = await ctx.start(run);
    process.kill(started.pid, 'SIGKILL');
    const record = await waitExitFile(run.stateDir);
    expect(record).toMatchObject({ exitCode: 137, signal: 9, oomKilled: false });
  });

  it('writes exit.json atomically, once the output is in the log', async () => {
    // a reader polling the file must only ever see nothing or a whole record
    const run = await ctx.prepare({ args: ['sh', '-c', 'sleep 0.3; i=0; while [ $i -lt 300 ]; do echo "line $i"; i=$((i+1)); done; printf tail'] });
    await ctx.start(run);
    const file = path.join(run.stateDir, 'exit.json');
    let text: string | undefined;
    while (text === undefined) {
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code).toBe('ENOENT');
      }
    }
    expect(text.endsWith('}\n')).toBe(true);
    expect(text.split('\n')).toHaveLength(2);
    const record = JSON.parse(text) as ExitRecord;
    expect(record.exitCode).toBe(0);
    // every line the container wrote is in the log before the record exists
    const log = await readLog(run.logPath);
    expect(log).toHaveLength(301);
    expect(log.at(-1)).toMatchObject({ log: 'tail', partial: true });
    expect(await listDir(run.stateDir)).not.toContain('exit.json.tmp');
  });

  it('reports an OOM kill of a process in the container (the shell exits 137)', async () => {
    const run = await ctx.prepare({ args: ['sh', '-c', 'head -c 100m /dev/zero | tail'], memoryBytes: 8 * MiB });
    await ctx.start(run);
    const record = await waitExitFile(run.stateDir);
    // usually the kernel kills `tail` and the shell exits 137; now and then it picks the shell itself
    expect(record).toMatchObject({ exitCode: 137, oomKilled: true });
    expect([null, 9]).toContain(record.signal);
  });

  it('reports an OOM kill of the init itself (SIGKILL, 137)', async () => {
    const run = await ctx.prepare({ args: ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1'], memoryBytes: 8 * MiB });
    await ctx.start(run);
    const record = await waitExitFile(run.stateDir);
    expect(record).toMatchObject({ exitCode: 137, signal: 9, oomKilled: true });
  });

  it('does not call a SIGKILL from outside an OOM kill, even under a memory limit', async () => {
    const run = await ctx.prepare({ args: ['sleep', '1000'], memoryBytes: 8 * MiB });
    await ctx.start(run);
    expect(await request(run.stateDir, { op: 'kill', signal: 9 })).toEqual({ ok: true });
    const record = await waitExitFile(run.stateDir);
    expect(record).toMatchObject({ exitCode: 137, signal: 9, oomKilled: false });
  });
});
