// What a user sees of a task's end through the agent: OOM kills, graceful and
// forced stops, a command that does not exist, a user from the image.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TS_LOADER } from '../../common/daemons.ts';
import { keys } from '../../common/keys.ts';
import { SecretBox } from '../../common/secret-box.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { leftoverCgroups } from '../harness/host-cleanup.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster();
  await cluster.agent();
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

async function untilLogged(taskId: string, message: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await cluster.logLines(taskId)).some((l) => l.message === message)) {
    if (Date.now() > deadline) throw new Error(`task ${taskId} never printed "${message}"`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

it('reports a task killed at its memory limit as OutOfMemoryError with exit code 137', async () => {
  const task = await cluster.runTask({ memory: 16, command: ['sh', '-c', 'echo filling; a=x; while :; do a="$a$a"; done'] });
  const stopped = await cluster.waitFor(task, 'STOPPED');
  expect(stopped).toMatchObject({
    exitCode: 137,
    stopCode: 'EssentialContainerExited',
    stoppedReason: 'OutOfMemoryError: container killed due to memory usage',
  });
  expect(leftoverCgroups([task])).toEqual([]);
});

it('records why a task stopped as soon as its container exits: STOPPING with the exit code, then STOPPED once released', async () => {
  // Every move of the task's status (the transition script), in the order Redis ran them.
  const monitor = await cluster.redis.monitor();
  const moves: string[][] = [];
  monitor.on('monitor', (_time: string, args: string[]) => {
    if (!/^eval/i.test(args[0] ?? '') || !args.includes(keys.task(task))) return;
    const at = args.findIndex((a) => a === 'STOPPING' || a === 'STOPPED');
    if (at >= 0) moves.push(args.slice(at));
  });
  let task = '';
  try {
    task = await cluster.runTask({ networkMode: 'bridge', command: ['sh', '-c', 'echo going; exit 3'] });
    const stopped = await cluster.waitFor(task, 'STOPPED');
    expect(stopped).toMatchObject({ exitCode: 3, stopCode: 'EssentialContainerExited', stoppedReason: 'Essential container in task exited' });
  } finally {
    monitor.disconnect();
  }
  const fields = (move: string[]) => Object.fromEntries(move.slice(2).flatMap((v, i, all) => (i % 2 === 0 ? [[v, all[i + 1]]] : [])));
  const [first, ...rest] = moves;
  expect(first?.[0]).toBe('STOPPING');
  expect(fields(first!)).toMatchObject({ exitCode: '3', stopCode: 'EssentialContainerExited', stoppedReason: 'Essential container in task exited' });
  expect(rest.map((m) => m[0])).toEqual(['STOPPED']);
});

it('stops a task gracefully with SIGTERM when it handles it', async () => {
  const task = await cluster.runTask({ command: ['sh', '-c', 'trap "echo bye; exit 0" TERM; echo up; while :; do sleep 0.1; done'] });
  await cluster.waitFor(task, 'RUNNING');
  await untilLogged(task, 'up'); // the trap is set
  await cluster.stopTask(task, 'deploying a new version');
  const stopped = await cluster.waitFor(task, 'STOPPED');
  expect(stopped).toMatchObject({ exitCode: 0, stopCode: 'UserInitiated', stoppedReason: 'deploying a new version' });
  expect((await cluster.logLines(task)).map((l) => l.message)).toEqual(['up', 'bye']);
});

it('kills a task that ignores SIGTERM once its stop timeout has passed', async () => {
  const task = await cluster.runTask({ stopTimeout: 1, command: ['sh', '-c', 'trap "" TERM; echo up; while :; do sleep 0.1; done'] });
  await cluster.waitFor(task, 'RUNNING');
  await untilLogged(task, 'up');
  const asked = Date.now();
  await cluster.stopTask(task);
  const stopped = await cluster.waitFor(task, 'STOPPED', 20_000);
  expect(Date.now() - asked).toBeGreaterThanOrEqual(900);
  expect(stopped).toMatchObject({ exitCode: 137, stopCode: 'UserInitiated' });
});

it('reports a command that does not exist as CannotStartContainerError', async () => {
  const task = await cluster.runTask({ command: ['/no/such/binary'] });
  const stopped = await cluster.waitFor(task, 'STOPPED');
  expect(stopped.stopCode).toBe('TaskFailedToStart');
  expect(stopped.stoppedReason).toMatch(/^CannotStartContainerError: .*\/no\/such\/binary/);
  expect(leftoverCgroups([task])).toEqual([]);
});

it('runs as the user the definition names, resolved in the image', async () => {
  const task = await cluster.runTask({ user: 'nobody', command: ['id'] });
  await cluster.waitFor(task, 'STOPPED');
  expect((await cluster.logLines(task)).map((l) => l.message)).toEqual(['uid=65534(nobody) gid=65534(nogroup)']);
});

it('mounts tmpfs and scratch volumes on a read-only root filesystem', async () => {
  const task = await cluster.runTask({
    readonlyRootFilesystem: true,
    tmpfs: [{ containerPath: '/scratch', size: 8 }],
    volumes: [{ name: 'data' }],
    mountPoints: [{ sourceVolume: 'data', containerPath: '/var/data', readOnly: false }, { sourceVolume: 'data', containerPath: '/ro-data', readOnly: true }],
    command: ['sh', '-c', [
      'touch /rootfile 2>/dev/null && echo root-writable || echo root-read-only',
      'echo a > /scratch/a && echo tmpfs-writable',
      'grep " /scratch " /proc/mounts | cut -d" " -f3',
      'echo b > /var/data/b && cat /ro-data/b',
      'touch /ro-data/c 2>/dev/null && echo volume-ro-writable || echo volume-ro-read-only',
    ].join('; ')],
  });
  const stopped = await cluster.waitFor(task, 'STOPPED');
  expect(stopped.exitCode).toBe(0);
  expect((await cluster.logLines(task)).map((l) => l.message)).toEqual([
    'root-read-only', 'tmpfs-writable', 'tmpfs', 'b', 'volume-ro-read-only',
  ]);
});

it('refuses a mount point that climbs out of the root, before anything runs', async () => {
  const task = await cluster.runTask({ tmpfs: [{ containerPath: '/../../etc', size: 1 }], command: ['true'] });
  const stopped = await cluster.waitFor(task, 'STOPPED');
  expect(stopped).toMatchObject({ stopCode: 'TaskFailedToStart' });
  expect(stopped.stoppedReason).toMatch(/tmpfs: "\/\.\.\/\.\.\/etc" climbs/);
  expect(leftoverCgroups([task])).toEqual([]);
});

it('fails a task with secrets on a node without the secrets key, saying so', async () => {
  const box = SecretBox.fromText(SecretBox.generateText(), 'test');
  const task = await cluster.runTask(
    { command: ['true'], sealedSecrets: [{ name: 'DB', secret: 'db-pw', sealed: box.seal('v', 'test', 'db-pw') }] },
  );
  const stopped = await cluster.waitFor(task, 'STOPPED');
  expect(stopped.stopCode).toBe('TaskFailedToStart');
  expect(stopped.stoppedReason).toMatch(/the task uses secrets \(db-pw\) and this node has no secrets key \(BERTH_SECRETS_KEY_FILE\)/);
  expect(leftoverCgroups([task])).toEqual([]);
});

it('offers what BERTH_NODE_CPU and BERTH_NODE_MEMORY say instead of the whole host', async () => {
  const agent = await cluster.agent({ BERTH_NODE_CPU: '1536', BERTH_NODE_MEMORY: '700' });
  try {
    // The agent's port opens before it registers its node.
    let node = await cluster.redis.hgetall(keys.node(agent.nodeId));
    for (let i = 0; i < 100 && !node.nodeId; i++) {
      await new Promise((r) => setTimeout(r, 50));
      node = await cluster.redis.hgetall(keys.node(agent.nodeId));
    }
    expect([node.cpuTotal, node.memoryTotal]).toEqual(['1536', '700']);
  } finally {
    await agent.kill('SIGTERM');
  }
});

it('refuses a capacity setting that is not a whole number, naming it', () => {
  const r = spawnSync(process.execPath, ['--import', TS_LOADER, 'node-agent/src/main.ts'], {
    cwd: repo, encoding: 'utf8', timeout: 30_000,
    env: { ...process.env, REDIS_URL: 'redis://127.0.0.1:1', BERTH_NODE_MEMORY: '4GB', LOG_LEVEL: 'info' },
  });
  expect(r.status).toBe(2);
  expect(r.stdout + r.stderr).toContain('BERTH_NODE_MEMORY: expected a whole number above 0, got \\"4GB\\"');
});
