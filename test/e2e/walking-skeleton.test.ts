// The whole path once, every hop real: the API takes a definition and a run,
// the scheduler places the task through BullMQ, the agent pulls the image from
// a real docker-registry, unpacks it, writes a bundle and starts it through the
// shim under the runtime with a memory limit; status, exit code and logs come
// back through the API.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushExampleImages } from '../../images/examples.ts';
import { startAllInOne, waitForTask, type AllInOne } from '../harness/allinone.ts';
import { startRegistry } from '../harness/registry.ts';

let aio: AllInOne;

beforeAll(async () => {
  aio = await startAllInOne();
}, 180_000);

afterAll(async () => {
  await aio?.stop();
});

/** The memory limit the kernel enforces on the task, read from its cgroup on the host. */
function memoryLimitOf(taskId: string): number | undefined {
  const candidates = [
    `/sys/fs/cgroup/memory/berth/${taskId}/memory.limit_in_bytes`,
    `/sys/fs/cgroup/berth/${taskId}/memory.max`,
    `/sys/fs/cgroup/unified/berth/${taskId}/memory.max`,
  ];
  for (const file of candidates) {
    if (existsSync(file)) return Number(readFileSync(file, 'utf8').trim());
  }
  return undefined;
}

describe('one task, end to end', () => {
  it('runs a task from a registered definition and reports its exit code, logs and memory limit', async () => {
    const def = await aio.api('POST', '/v1/task-definitions', {
      family: 'hello',
      image: 'berth/busybox:latest',
      command: ['sh', '-c', 'echo hello from berth; echo to stderr >&2; cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; sleep 3; exit 3'],
      memory: 64,
      cpu: 256,
    });
    expect(def.status).toBe(201);
    expect(def.body).toMatchObject({ family: 'hello', revision: 1 });

    const run = await aio.api('POST', '/v1/tasks', { taskDefinition: 'hello' });
    expect(run.status).toBe(201);
    const taskId: string = run.body.tasks[0].taskId;
    expect(run.body.tasks[0].lastStatus).toBe('PROVISIONING');

    const running = await waitForTask(aio, taskId, 'RUNNING');
    expect(running).toMatchObject({ lastStatus: 'RUNNING', nodeId: aio.nodeId });
    expect(memoryLimitOf(taskId)).toBe(64 * 1024 * 1024);

    const stopped = await waitForTask(aio, taskId, 'STOPPED');
    expect(stopped).toMatchObject({ lastStatus: 'STOPPED', exitCode: 3, stopCode: 'EssentialContainerExited' });
    expect(memoryLimitOf(taskId)).toBeUndefined(); // the cgroup is gone with the task

    const logs = await aio.api('GET', `/v1/tasks/${taskId}/logs`);
    expect(logs.status).toBe(200);
    const events = logs.body.events as { stream: string; message: string }[];
    expect(events).toContainEqual(expect.objectContaining({ stream: 'stdout', message: 'hello from berth' }));
    expect(events).toContainEqual(expect.objectContaining({ stream: 'stderr', message: 'to stderr' }));
    // The container saw its own limit too.
    expect(events).toContainEqual(expect.objectContaining({ stream: 'stdout', message: String(64 * 1024 * 1024) }));
  });

  it('reports an image that is not in the registry as CannotPullContainerError', async () => {
    await aio.api('POST', '/v1/task-definitions', { family: 'missing', image: 'berth/no-such-image:1' });
    const run = await aio.api('POST', '/v1/tasks', { taskDefinition: 'missing' });
    const stopped = await waitForTask(aio, run.body.tasks[0].taskId, 'STOPPED');
    expect(stopped.stopCode).toBe('TaskFailedToStart');
    expect(stopped.stoppedReason).toMatch(/^CannotPullContainerError: /);
  });

  it('answers bad input on the two POST routes with a 400 naming the field', async () => {
    const badDef = await aio.api('POST', '/v1/task-definitions', { family: 'bad', image: 'berth/busybox:latest', memory: 'lots' });
    expect(badDef.status).toBe(400);
    expect(badDef.body.error.code).toBe('VALIDATION_ERROR');
    expect(JSON.stringify(badDef.body.error)).toContain('memory');

    const noFamily = await aio.api('POST', '/v1/task-definitions', { image: 'berth/busybox:latest' });
    expect(noFamily.status).toBe(400);
    expect(JSON.stringify(noFamily.body.error)).toContain('family');

    const badRun = await aio.api('POST', '/v1/tasks', { taskDefinition: 'hello', count: 0 });
    expect(badRun.status).toBe(400);
    expect(JSON.stringify(badRun.body.error)).toContain('count');

    const climbing = await aio.api('POST', '/v1/task-definitions', {
      family: 'bad', image: 'berth/busybox:latest', tmpfs: [{ containerPath: '/../../etc', size: 1 }],
    });
    expect(climbing.status).toBe(400);
    expect(JSON.stringify(climbing.body.error)).toContain('tmpfs/0/containerPath');

    const noVolume = await aio.api('POST', '/v1/task-definitions', {
      family: 'bad', image: 'berth/busybox:latest', mountPoints: [{ sourceVolume: 'nope', containerPath: '/data' }],
    });
    expect(noVolume.status).toBe(400);
    expect(JSON.stringify(noVolume.body.error)).toContain('mountPoints/0/sourceVolume');

    const notJson = await aio.api('POST', '/v1/tasks', '{"taskDefinition":');
    expect(notJson.status).toBe(400);
    expect(notJson.body.error.code).toBeTruthy();
  });

  it('gives a task its secret as an environment variable, and keeps the value out of Redis, its files and the logs', async () => {
    const value = `s3cr3t-${Date.now()}`;
    expect((await aio.api('POST', '/v1/secrets', { name: 'db-password', value })).status).toBe(201);
    await aio.api('POST', '/v1/task-definitions', {
      family: 'with-secret', image: 'berth/busybox:latest', memory: 64, cpu: 128,
      // A digest of it, not the value: task logs are kept in Redis too.
      command: ['sh', '-c', 'echo "password-md5=$(printf %s "$DB_PASSWORD" | md5sum | cut -d" " -f1)"'],
      secrets: [{ name: 'DB_PASSWORD', valueFrom: 'db-password' }],
    });
    const run = await aio.api('POST', '/v1/tasks', { taskDefinition: 'with-secret' });
    expect(run.status).toBe(201);
    const stopped = await waitForTask(aio, run.body.tasks[0].taskId, 'STOPPED');
    expect(stopped).toMatchObject({ exitCode: 0 });
    const logs = await aio.api('GET', `/v1/tasks/${stopped.taskId}/logs`);
    expect(logs.body.events.map((e: { message: string }) => e.message)).toEqual([`password-md5=${createHash('md5').update(value).digest('hex')}`]);

    // Redis keeps its data in the state dir (append-only file and snapshots): the value is not in it.
    const redisFiles = execFileSync('find', [path.join(aio.stateDir, 'redis'), '-type', 'f'], { encoding: 'utf8' }).split('\n').filter(Boolean);
    expect(redisFiles.length).toBeGreaterThan(0);
    execFileSync('redis-cli', ['-u', aio.redisUrl, 'save']);
    for (const file of execFileSync('find', [path.join(aio.stateDir, 'redis'), '-type', 'f'], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
      expect(readFileSync(file).includes(value), file).toBe(false);
    }
    // The key is the all-in-one's own, readable by root only.
    expect(statSync(path.join(aio.stateDir, 'secrets.key')).mode & 0o777).toBe(0o600);
    expect(aio.output()).not.toContain(value);
  });

  it('pulls from a private registry with the definition\'s credentials, keeping the password sealed', async () => {
    const password = `pw-${Date.now()}`;
    const registry = await startRegistry({ users: [{ username: 'carol', password }] });
    try {
      await pushExampleImages(registry.host, { credentials: { username: 'carol', password } });
      for (const [family, pw] of [['private-ok', password], ['private-bad', 'wrong']] as const) {
        const def = await aio.api('POST', '/v1/task-definitions', {
          family, image: `${registry.host}/berth/busybox:latest`, command: ['echo', 'pulled'], memory: 64, cpu: 128,
          repositoryCredentials: { username: 'carol', password: pw },
        });
        expect(def.status).toBe(201);
      }
      // The wrong password first, while nothing of this registry is cached on the node.
      const bad = await aio.api('POST', '/v1/tasks', { taskDefinition: 'private-bad' });
      const refused = await waitForTask(aio, bad.body.tasks[0].taskId, 'STOPPED');
      expect(refused.stopCode).toBe('TaskFailedToStart');
      expect(refused.stoppedReason).toMatch(/^CannotPullContainerError: .*(401|unauthorized|authentication)/i);
      const ok = await aio.api('POST', '/v1/tasks', { taskDefinition: 'private-ok' });
      expect(await waitForTask(aio, ok.body.tasks[0].taskId, 'STOPPED')).toMatchObject({ exitCode: 0 });
      // Now the image is on the node: still, without the credentials (or with wrong ones) it may not be run,
      // or one tenant could run another's private image from the node's cache.
      await aio.api('POST', '/v1/task-definitions', { family: 'private-none', image: `${registry.host}/berth/busybox:latest`, command: ['echo', 'pulled'] });
      for (const family of ['private-none', 'private-bad']) {
        const again = await aio.api('POST', '/v1/tasks', { taskDefinition: family });
        const stopped = await waitForTask(aio, again.body.tasks[0].taskId, 'STOPPED');
        expect(stopped.stoppedReason, family).toMatch(/^CannotPullContainerError: .*(401|unauthorized|authentication)/i);
      }

      execFileSync('redis-cli', ['-u', aio.redisUrl, 'save']);
      for (const file of execFileSync('find', [path.join(aio.stateDir, 'redis'), '-type', 'f'], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
        expect(readFileSync(file).includes(password), file).toBe(false);
      }
      expect(aio.output()).not.toContain(password);
    } finally {
      await registry.stop();
    }
  });
});
