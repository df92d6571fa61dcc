// Container health checks on the real all-in-one: the definition's command runs
// inside the task's container (it sees the container's files and user), the
// task's healthStatus goes UNKNOWN → HEALTHY → UNHEALTHY as the checks find it,
// a check that outruns its timeout fails, and none is left running afterwards.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAllInOne, waitForTask, type AllInOne } from '../harness/allinone.ts';

let aio: AllInOne;

beforeAll(async () => {
  aio = await startAllInOne();
}, 180_000);

afterAll(async () => {
  await aio?.stop();
});

async function healthOf(taskId: string): Promise<string | undefined> {
  return (await aio.api('GET', `/v1/tasks/${taskId}`)).body.healthStatus;
}

/** Polls until the task's healthStatus is `wanted`; returns how long that took. */
async function waitForHealth(taskId: string, wanted: string, timeoutMs = 30_000): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if ((await healthOf(taskId)) === wanted) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`task ${taskId} did not become ${wanted}; it is ${await healthOf(taskId)}`);
}

async function runTask(family: string, healthCheck: object, command: string[]): Promise<string> {
  const def = await aio.api('POST', '/v1/task-definitions', { family, image: 'berth/busybox:latest', command, healthCheck, user: '1000', stopTimeout: 1 });
  expect(def.status).toBe(201);
  const run = await aio.api('POST', '/v1/tasks', { taskDefinition: family });
  expect(run.status).toBe(201);
  const taskId: string = run.body.tasks[0].taskId;
  expect((await waitForTask(aio, taskId, 'RUNNING')).lastStatus).toBe('RUNNING');
  return taskId;
}

function execsInContainer(taskId: string): string {
  return execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(`exec ${taskId}`)).join('\n');
}

describe('health checks', () => {
  it('runs the check inside the container: UNKNOWN, then HEALTHY, then UNHEALTHY when it starts failing', async () => {
    // Healthy while /tmp/ok exists (a file only the container has), made by the
    // container's user; removed after 7 s. One failure is enough (retries 1).
    const taskId = await runTask(
      'health-flip',
      { command: ['CMD-SHELL', 'test -O /tmp/ok && test "$(id -u)" = 1000'], interval: 5, timeout: 2, retries: 1 },
      ['sh', '-c', 'touch /tmp/ok; sleep 7; rm /tmp/ok; sleep 60'],
    );
    expect(await healthOf(taskId)).toBe('UNKNOWN');
    await waitForHealth(taskId, 'HEALTHY');
    await waitForHealth(taskId, 'UNHEALTHY');

    expect((await aio.api('POST', `/v1/tasks/${taskId}/stop`, { reason: 'done' })).status).toBe(200);
    const stopped = await waitForTask(aio, taskId, 'STOPPED');
    expect(stopped.healthStatus).toBe('UNHEALTHY'); // what the checks last found, kept with the task
    expect(execsInContainer(taskId)).toBe('');
  }, 60_000);

  it('counts a check that outruns its timeout as a failure, after the start period', async () => {
    const taskId = await runTask(
      'health-slow',
      { command: ['CMD', 'sleep', '30'], interval: 5, timeout: 2, retries: 2, startPeriod: 6 },
      ['sleep', '60'],
    );
    // Checks begin at about 5 s (in the start period: not counted), 12 s and 19 s, each failing 2 s later.
    const tookMs = await waitForHealth(taskId, 'UNHEALTHY', 40_000);
    expect(tookMs).toBeGreaterThan(15_000);
    expect(execsInContainer(taskId)).toBe('');
    expect((await aio.api('POST', `/v1/tasks/${taskId}/stop`, { reason: 'done' })).status).toBe(200);
    await waitForTask(aio, taskId, 'STOPPED');
  }, 60_000);

  it('shows no healthStatus for a task whose definition has no check', async () => {
    const def = await aio.api('POST', '/v1/task-definitions', { family: 'health-none', image: 'berth/busybox:latest', command: ['true'] });
    expect(def.status).toBe(201);
    const run = await aio.api('POST', '/v1/tasks', { taskDefinition: 'health-none' });
    const stopped = await waitForTask(aio, run.body.tasks[0].taskId, 'STOPPED');
    expect(stopped).not.toHaveProperty('healthStatus');
  });
});
