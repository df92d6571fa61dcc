// A node that goes silent is declared lost and its tasks stopped with NodeLost;
// when its agent comes back it registers again and stops the containers the
// cluster gave up, so no task runs twice.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { getNode } from '../../common/nodes.ts';
import { startCluster, type AgentProcess, type TestCluster } from '../harness/cluster.ts';
import { leftoverCgroups } from '../harness/host-cleanup.ts';

let cluster: TestCluster;
let agent: AgentProcess;

beforeAll(async () => {
  cluster = await startCluster({ nodeGraceMs: 2_000 });
  agent = await cluster.agent();
}, 120_000);

afterAll(async () => {
  agent?.signal('SIGCONT');
  await cluster?.stop();
}, 60_000);

it('stops the tasks of a silent node with NodeLost, and the node stops them for real when it returns', async () => {
  const task = await cluster.runTask({ command: ['sleep', '600'] });
  await cluster.waitFor(task, 'RUNNING');

  agent.signal('SIGSTOP');
  const lost = await cluster.waitFor(task, 'STOPPED', 15_000);
  expect(lost.stopCode).toBe('NodeLost');
  expect(lost.stoppedReason).toMatch(new RegExp(`^NodeLost: node ${agent.nodeId} sent no heartbeat for \\d+ s$`));
  expect(await getNode(cluster.redis, agent.nodeId)).toMatchObject({ status: 'LOST', cpuReserved: 0, memoryReserved: 0 });
  expect(leftoverCgroups([task])).not.toEqual([]); // the container itself still runs on the silent node

  agent.signal('SIGCONT');
  const deadline = Date.now() + 15_000;
  while (leftoverCgroups([task]).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect(leftoverCgroups([task])).toEqual([]);
  expect((await getNode(cluster.redis, agent.nodeId))?.status).toBe('ACTIVE');
  expect((await cluster.waitFor(task, 'STOPPED')).stopCode).toBe('NodeLost'); // the record keeps the first reason
});
