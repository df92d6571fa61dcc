// Kill the agent with SIGKILL while 20 containers run, start it again: every
// container is found again, those that exited meanwhile are reported with their
// real exit codes, the rest go on being supervised, every log line arrives
// exactly once, and no task is lost or started twice.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type AgentProcess, type TestCluster } from '../harness/cluster.ts';
import { leftoverCgroups } from '../harness/host-cleanup.ts';

let cluster: TestCluster;
let agent: AgentProcess;

beforeAll(async () => {
  cluster = await startCluster();
  agent = await cluster.agent(process.env.BERTH_RUNTIME ? { BERTH_RUNTIME: process.env.BERTH_RUNTIME } : {});
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

/** Counts out loud until /tmp/go appears in its root, then says where it got to and exits with `code`. */
function counter(code: number): string[] {
  return ['sh', '-c', `echo start; i=0; while [ ! -e /tmp/go ]; do i=$((i+1)); echo "line $i"; sleep 0.1; done; echo "end $i"; exit ${code}`];
}

/**
 * Lets a counter finish: the host writes into the container's root through its
 * init's /proc/PID/root (the overlay is mounted in the container's own mount
 * namespace with berth-runtime, on the host with runc).
 */
async function release(taskId: string): Promise<void> {
  const pid = (await readFile(path.join(agent.stateDir, 'agent/tasks', taskId, 'shim/container.pid'), 'utf8')).trim();
  await writeFile(`/proc/${pid}/root/tmp/go`, '');
}

it('re-adopts 20 running tasks after the agent is killed with SIGKILL', async () => {
  const plans = Array.from({ length: 20 }, (_, i) => ({ code: i + 1, networkMode: (i % 2 ? 'bridge' : 'none') as 'bridge' | 'none' }));
  const taskIds: string[] = [];
  for (const p of plans) taskIds.push(await cluster.runTask({ command: counter(p.code), networkMode: p.networkMode }));
  const running = await Promise.all(taskIds.map((id) => cluster.waitFor(id, 'RUNNING', 90_000)));
  expect(running.filter((t) => t.lastStatus !== 'RUNNING').map((t) => t.stoppedReason)).toEqual([]);

  await agent.kill('SIGKILL');
  // Ten end while no agent watches.
  for (const id of taskIds.slice(0, 10)) await release(id);
  await new Promise((r) => setTimeout(r, 1_500));
  const whileDown = await Promise.all(taskIds.map((id) => cluster.waitFor(id, 'PROVISIONING')));
  expect(whileDown.map((t) => t.lastStatus)).toEqual(taskIds.map(() => 'RUNNING'));

  await agent.start();
  // The first ten are reported from what their shims recorded.
  const early = await Promise.all(taskIds.slice(0, 10).map((id) => cluster.waitFor(id, 'STOPPED', 30_000)));
  expect(early.map((t) => t.exitCode)).toEqual(plans.slice(0, 10).map((p) => p.code));
  // The other ten were still running: supervised again, they end when told to.
  await new Promise((r) => setTimeout(r, 500));
  for (const id of taskIds.slice(10)) await release(id);
  const stopped = await Promise.all(taskIds.map((id) => cluster.waitFor(id, 'STOPPED', 30_000)));

  stopped.forEach((task, i) => {
    expect(task, `task ${i}`).toMatchObject({ lastStatus: 'STOPPED', exitCode: plans[i]!.code, stopCode: 'EssentialContainerExited' });
  });
  for (const [i, id] of taskIds.entries()) {
    const messages = (await cluster.logLines(id)).map((l) => l.message);
    const last = Number(/^end (\d+)$/.exec(messages[messages.length - 1] ?? '')?.[1]);
    // Complete, in order, once each: the task was started once and no line was lost or repeated.
    expect(messages, `logs of task ${i}`).toEqual(['start', ...Array.from({ length: last }, (_, k) => `line ${k + 1}`), `end ${last}`]);
  }
  expect(leftoverCgroups(taskIds)).toEqual([]);
  expect(agent.output()).not.toMatch(/"level":(50|60)/);
}, 240_000);
