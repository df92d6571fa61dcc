// The container log as the agent reads it: one JSON record per line with the
// right stream and text, partial lines, long lines cut at 16 KiB, escaping, rotation.
import { readFile } from 'node:fs/promises';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildShim, listDir, readLog, runtimes, ShimTestContext, waitExitFile, type LogRecord } from './fixture.ts';

buildShim();
const RUNTIMES = await runtimes();

const RFC3339NANO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$/;

describe.each(RUNTIMES)('berth-shim logs ($name)', (runtime) => {
  let ctx: ShimTestContext;
  beforeAll(() => { ctx = new ShimTestContext(runtime); });
  afterEach(async () => { await ctx.cleanup(); });

  it('writes stdout and stderr lines with their stream, and the unfinished last line as partial', async () => {
    const run = await ctx.prepare({
      args: ['sh', '-c', 'echo out-1; echo err-1 >&2; echo out-2; sleep 0.2; echo err-2 >&2; printf "no newline"'],
    });
    await ctx.start(run);
    await waitExitFile(run.stateDir);
    const records = await readLog(run.logPath);
    const byStream = (s: string) => records.filter((r) => r.stream === s).map((r) => [r.log, r.partial ?? false]);
    expect(byStream('stdout')).toEqual([['out-1\n', false], ['out-2\n', false], ['no newline', true]]);
    expect(byStream('stderr')).toEqual([['err-1\n', false], ['err-2\n', false]]);
    for (const r of records) {
      expect(r.time).toMatch(RFC3339NANO);
      expect(Object.keys(r).sort()).toEqual(r.partial ? ['log', 'partial', 'stream', 'time'] : ['log', 'stream', 'time']);
    }
    // times never go backwards within the file
    const times = records.map((r) => r.time);
    expect([...times].sort()).toEqual(times);
  });

  it('cuts a line longer than 16 KiB into partial pieces and ends with the newline piece', async () => {
    const run = await ctx.prepare({
      args: ['sh', '-c', "head -c 40000 /dev/zero | tr '\\0' a; echo; echo after"],
    });
    await ctx.start(run);
    await waitExitFile(run.stateDir);
    const records = (await readLog(run.logPath)).filter((r) => r.stream === 'stdout');
    expect(records.map((r) => [r.log.length, r.partial ?? false])).toEqual([
      [16384, true], [16384, true], [40000 - 2 * 16384 + 1, false], [6, false],
    ]);
    expect(records.slice(0, 3).map((r) => r.log).join('')).toBe('a'.repeat(40000) + '\n');
    // every record is one line of the file, written whole
    const raw = await readFile(run.logPath, 'utf8');
    expect(raw.endsWith('\n')).toBe(true);
    expect(raw.split('\n').length - 1).toBe(records.length);
  });

  it('escapes control characters and replaces invalid UTF-8 with U+FFFD', async () => {
    const run = await ctx.prepare({
      // \001 and \033 are control characters, \377 is never valid UTF-8; é and 😀 are.
      args: ['sh', '-c', String.raw`printf 'a\001b\tc"d\\e\033[0m \377 \303\251 \360\237\230\200\n'`],
    });
    await ctx.start(run);
    await waitExitFile(run.stateDir);
    const raw = await readFile(run.logPath, 'utf8');
    expect(raw).toContain(String.raw`"log":"a\u0001b\tc\"d\\e\u001b[0m \ufffd`.replace(String.raw`\ufffd`, '\uFFFD'));
    const [record] = await readLog(run.logPath);
    expect(record?.log).toBe('a\u0001b\tc"d\\e\u001b[0m \uFFFD é 😀\n');
  });

  it('keeps bytes of a UTF-8 character together when cutting at 16 KiB', async () => {
    // 16383 ASCII bytes then "é" (2 bytes): the cut must fall before the é, not inside it.
    const run = await ctx.prepare({
      args: ['sh', '-c', String.raw`head -c 16383 /dev/zero | tr '\0' x; printf '\303\251\n'`],
    });
    await ctx.start(run);
    await waitExitFile(run.stateDir);
    const records = await readLog(run.logPath);
    expect(records.map((r) => r.log).join('')).toBe('x'.repeat(16383) + 'é\n');
    expect(records.every((r) => !r.log.includes('\uFFFD'))).toBe(true);
  });

  it('rotates at --log-max-bytes, keeping --log-max-files files of whole lines', async () => {
    const run = await ctx.prepare({
      args: ['sh', '-c', 'i=0; while [ $i -lt 200 ]; do echo "line $i"; i=$((i+1)); done'],
      logMaxBytes: 2000,
      logMaxFiles: 3,
    });
    await ctx.start(run);
    await waitExitFile(run.stateDir);
    const dir = run.logPath.slice(0, run.logPath.lastIndexOf('/'));
    expect(await listDir(dir)).toEqual(['container.log', 'container.log.1', 'container.log.2']);
    const files = [`${run.logPath}.2`, `${run.logPath}.1`, run.logPath];
    const kept: LogRecord[] = [];
    for (const f of files) {
      const raw = await readFile(f, 'utf8');
      expect(Buffer.byteLength(raw)).toBeLessThanOrEqual(2000);
      kept.push(...(await readLog(f)));
    }
    // oldest to newest, contiguous, ending with the last line written
    const numbers = kept.map((r) => Number(/^line (\d+)\n$/.exec(r.log)?.[1]));
    expect(numbers.at(-1)).toBe(199);
    expect(numbers).toEqual(numbers.map((_, i) => numbers[0]! + i));
    expect(numbers[0]).toBeGreaterThan(0);
  });

  it('with --log-max-files 1 starts the file over instead of keeping an old one', async () => {
    const run = await ctx.prepare({
      args: ['sh', '-c', 'i=0; while [ $i -lt 100 ]; do echo "line $i"; i=$((i+1)); done'],
      logMaxBytes: 1000,
      logMaxFiles: 1,
    });
    await ctx.start(run);
    await waitExitFile(run.stateDir);
    const dir = run.logPath.slice(0, run.logPath.lastIndexOf('/'));
    expect(await listDir(dir)).toEqual(['container.log']);
    const records = await readLog(run.logPath);
    expect(records.at(-1)?.log).toBe('line 99\n');
    expect(Buffer.byteLength(await readFile(run.logPath))).toBeLessThanOrEqual(1000);
  });
});
