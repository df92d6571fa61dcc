// Task networking through the agent: two bridge tasks reach each other, the
// host (where the agent runs) reaches their ports, and `none` has only lo.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../harness/cluster.ts';

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster();
  await cluster.agent();
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

const serve = ['sh', '-c', 'mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p 8080 -h /www'];

it('connects two bridge tasks to each other and to the host', async () => {
  const server = await cluster.runTask({ command: serve, networkMode: 'bridge' });
  const running = await cluster.waitFor(server, 'RUNNING');
  expect(running.lastStatus).toBe('RUNNING');
  expect(running.ipAddress).toMatch(/^10\.\d+\.\d+\.\d+$/);

  // The host reaches the task's port (the path the agent's proxy uses).
  let body = '';
  for (let attempt = 0; attempt < 50 && !body; attempt++) {
    body = await fetch(`http://${running.ipAddress}:8080/`).then((r) => r.text(), () => '');
    if (!body) await new Promise((r) => setTimeout(r, 100));
  }
  expect(body).toBe(`hello from ${server.slice(0, 12)}\n`);

  // Another task reaches it over the bridge.
  const client = await cluster.runTask({ command: ['wget', '-qO-', `http://${running.ipAddress}:8080/`], networkMode: 'bridge' });
  const done = await cluster.waitFor(client, 'STOPPED');
  expect(done.exitCode).toBe(0);
  expect((await cluster.logLines(client)).map((l) => l.message)).toContain(`hello from ${server.slice(0, 12)}`);

  await cluster.stopTask(server);
  expect((await cluster.waitFor(server, 'STOPPED')).stopCode).toBe('UserInitiated');
});

it('gives a task in none mode only the loopback interface', async () => {
  const task = await cluster.runTask({ command: ['sh', '-c', 'ls /sys/class/net'], networkMode: 'none' });
  const done = await cluster.waitFor(task, 'STOPPED');
  expect(done.exitCode).toBe(0);
  expect((await cluster.logLines(task)).map((l) => l.message)).toEqual(['lo']);
});
