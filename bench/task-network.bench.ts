// Task network setup time: CNI ADD of the bridge conflist (bridge, host-local,
// firewall; portmap when ports are published) into a fresh namespace, the same
// from the pool, and teardown. No reference tool: the figures stand alone
// (REFERENCE.md's "a CNI bridge ADD ≈ 50 ms" is the plugin's own cost).
import { createLogger } from '../common/log.ts';
import { createNetworkManager } from '../node-agent/src/network/index.ts';
import { cleanupHost, makeTestNetwork, snapshotHost } from '../test/network/host.ts';
import { alternate, median, timeMs, type Benchmark } from './lib.ts';

const RUNS = 9;

const bench: Benchmark = async () => {
  const before = snapshotHost();
  const net = makeTestNetwork();
  const logger = createLogger('bench-network');
  logger.level = 'warn';
  const options = { stateDir: net.stateDir, subnet: net.subnet, bridge: net.bridge, networkName: net.networkName, netnsPrefix: net.netnsPrefix, logger };
  const manager = createNetworkManager(options);
  const pooled = createNetworkManager({ ...options, poolSize: 4 });
  try {
    let n = 0;
    const teardowns: number[] = [];
    const add = await alternate(async () => {
      const id = `bench-${n++}`;
      const ms = await timeMs(() => manager.setup(id, 'bridge', []));
      teardowns.push(await timeMs(() => manager.teardown(id)));
      return ms;
    }, null, { runs: RUNS });
    const addPorts = await alternate(async () => {
      const id = `bench-${n++}`;
      const ms = await timeMs(() => manager.setup(id, 'bridge', [{ containerPort: 80, hostPort: 40_000 + n }]));
      await manager.teardown(id);
      return ms;
    }, null, { runs: RUNS });
    const none = await alternate(async () => {
      const id = `bench-${n++}`;
      const ms = await timeMs(() => manager.setup(id, 'none', []));
      await manager.teardown(id);
      return ms;
    }, null, { runs: RUNS });
    await pooled.recover(new Set());
    const fromPool = await alternate(async () => {
      await pooled.whenPoolFull();
      const id = `bench-${n++}`;
      const ms = await timeMs(() => pooled.setup(id, 'bridge', []));
      await pooled.teardown(id);
      return ms;
    }, null, { runs: RUNS });
    const figure = (name: string, values: number[]) => ({ figure: name, unit: 'ms', berth: median(values), reference: null, referenceName: 'none', runs: values.length });
    return [
      figure('cni_add_ms', add.berth),
      figure('cni_add_with_portmap_ms', addPorts.berth),
      figure('cni_del_ms', teardowns.slice(-RUNS)),
      figure('netns_none_setup_ms', none.berth),
      figure('pooled_bridge_setup_ms', fromPool.berth),
    ];
  } finally {
    await pooled.close().catch(() => undefined);
    await manager.recover(new Set()).catch(() => undefined);
    cleanupHost(net, before);
  }
};

export default bench;
