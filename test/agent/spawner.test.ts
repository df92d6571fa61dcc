// The agent's commands through berth-spawner, and through child_process when
// it is not built: both must give the same answers, the spawner must survive
// whatever a command does, and a dead spawner must fail only the commands in
// flight on it.
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { CommandStartError, DirectRunner, SpawnerRunner, spawnerBinary, type CommandRunner } from '../../node-agent/src/spawner.ts';

const binary = spawnerBinary();
if (!binary) throw new Error('berth-spawner is not built: run `make -C native`');

const spawner = new SpawnerRunner(binary);
afterAll(() => spawner.close());

describe.each([
  ['berth-spawner', spawner as CommandRunner],
  ['child_process', new DirectRunner() as CommandRunner],
])('commands through %s', (_, runner) => {
  it('gives the exit status, stdout and stderr', async () => {
    const r = await runner.run('sh', ['-c', 'echo out; echo err >&2; exit 3']);
    expect(r).toMatchObject({ exitCode: 3, signal: null, timedOut: false });
    expect(r.stdout.toString()).toBe('out\n');
    expect(r.stderr.toString()).toBe('err\n');
  });

  it('writes the input to stdin and closes it, and gives no stdin without input', async () => {
    expect((await runner.run('cat', [], { input: 'hello\nworld' })).stdout.toString()).toBe('hello\nworld');
    expect((await runner.run('cat', [])).stdout.toString()).toBe('');
  });

  it('runs in the directory and with exactly the environment given', async () => {
    const r = await runner.run('sh', ['-c', 'pwd; env | sort'], { cwd: '/tmp', env: { PATH: '/usr/bin:/bin', ONE: 'a b', TWO: '' } });
    const lines = r.stdout.toString().trim().split('\n');
    expect(lines[0]).toBe('/tmp');
    expect(lines.filter((l) => /^(ONE|TWO|PATH)=/.test(l))).toEqual(['ONE=a b', 'PATH=/usr/bin:/bin', 'TWO=']);
    expect(lines.some((l) => l.startsWith('HOME='))).toBe(false);
  });

  it('finds the command on the PATH it is given', async () => {
    const r = await runner.run('true', [], { env: { PATH: '/nowhere:/bin' } });
    expect(r.exitCode).toBe(0);
  });

  it('refuses a command that does not exist, naming it', async () => {
    const err = await runner.run('berth-no-such-command', []).catch((e: Error) => e);
    expect(err).toBeInstanceOf(CommandStartError);
    expect((err as CommandStartError).code).toBe('ENOENT');
    expect((err as Error).message).toContain('berth-no-such-command');
  });

  it('kills a command that runs past its timeout', async () => {
    const started = Date.now();
    const r = await runner.run('sleep', ['30'], { timeoutMs: 200 });
    expect(r).toMatchObject({ exitCode: null, signal: 'SIGKILL', timedOut: true });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('reports the signal that ended a command', async () => {
    expect(await runner.run('sh', ['-c', 'kill -TERM $$'])).toMatchObject({ exitCode: null, signal: 'SIGTERM' });
  });

  it('starts commands with no signal ignored or blocked (the spawner ignores SIGPIPE and blocks SIGCHLD)', async () => {
    const status = (await runner.run('cat', ['/proc/self/status'])).stdout.toString();
    expect(status).toMatch(/^SigIgn:\s+0+$/m);
    expect(status).toMatch(/^SigBlk:\s+0+$/m);
  });

  it('keeps output larger than a pipe and runs many commands at once', async () => {
    const big = await runner.run('head', ['-c', String(3 * 1024 * 1024), '/dev/zero']);
    expect(big.stdout.length).toBe(3 * 1024 * 1024);
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => runner.run('sh', ['-c', `sleep 0.0$((${i} % 5)); echo ${i}`])));
    expect(results.map((r) => r.stdout.toString().trim())).toEqual(Array.from({ length: 40 }, (_, i) => String(i)));
  });
});

describe('berth-spawner', () => {
  it('fails the commands in flight when it dies, then starts again for the next', async () => {
    const own = new SpawnerRunner(binary);
    let sleeper: number | undefined;
    try {
      const inFlight = own.run('sleep', ['30']);
      await new Promise((r) => setTimeout(r, 200));
      // Our spawner is the one with this sleep under it.
      const ours = childrenOf(process.pid, 'berth-spawner').filter((pid) => childrenOf(pid, 'sleep').length === 1);
      expect(ours).toHaveLength(1);
      sleeper = childrenOf(ours[0]!, 'sleep')[0];
      process.kill(ours[0]!, 'SIGKILL');
      await expect(inFlight).rejects.toThrow(/berth-spawner was killed by SIGKILL/);
      const again = await own.run('echo', ['back']);
      expect(again.stdout.toString()).toBe('back\n');
    } finally {
      own.close();
      if (sleeper) process.kill(sleeper, 'SIGKILL');
    }
  });

  it('ends when the agent closes it, leaving no process behind', async () => {
    const own = new SpawnerRunner(binary);
    await own.run('true', []);
    const pid = own.pid!;
    expect(childrenOf(process.pid, 'berth-spawner')).toContain(pid);
    own.close();
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline && childrenOf(process.pid, 'berth-spawner').includes(pid)) await new Promise((r) => setTimeout(r, 50));
    expect(childrenOf(process.pid, 'berth-spawner')).not.toContain(pid);
  });
});

function childrenOf(parent: number, name: string): number[] {
  return spawnSync('pgrep', ['-P', String(parent), '-x', name], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).map(Number);
}
