// The all-in-one killed outright (SIGKILL, the OOM killer): no exit hook runs,
// yet the redis-server and the registry it started must not outlive it. The
// kernel sends them SIGTERM when it dies (their parent-death signal,
// common/daemons.ts), so the next start finds their ports free.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForPort } from '../../common/daemons.ts';
import { processesOf, startAllInOne, type AllInOne } from '../harness/allinone.ts';

let aio: AllInOne;

beforeAll(async () => {
  aio = await startAllInOne({ BERTH_API_WORKERS: '1' });
}, 180_000);

afterAll(async () => {
  await aio?.stop();
});

describe('the all-in-one killed with SIGKILL', () => {
  it('leaves neither its redis-server nor its registry running', async () => {
    const before = processesOf(aio.stateDir).map((d) => d.command).sort();
    expect(before).toEqual(['docker-registry', 'redis-server']);
    const redisPort = Number(new URL(aio.redisUrl).port);

    process.kill(aio.pid, 'SIGKILL');
    const deadline = Date.now() + 10_000;
    let left = processesOf(aio.stateDir);
    while (left.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      left = processesOf(aio.stateDir);
    }
    expect(left).toEqual([]);
    await expect(waitForPort(redisPort, 200)).rejects.toThrow(/nothing listened/);
  }, 30_000);
});
