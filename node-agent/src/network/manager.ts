// The NetworkManager: a named namespace per task, wired by the standard CNI
// plugins for bridge mode, with everything it made recorded on disk first.
import path from 'node:path';
import { addList, checkList, delList, type CniExec, type CniResult } from './cni.ts';
import { bridgeConfList, hostPortMappings, type BridgeNetworkConfig, type CniPortMapping } from './conflist.ts';
import { leasedIps, resultFromLeases } from './leases.ts';
import { createNetns, deleteNetns, netnsExists, netnsPath } from './netns.ts';
import { Pool } from './pool.ts';
import { RecordStore, type NetworkRecord } from './state.ts';
import { NetworkError, type NetworkManager, type NetworkManagerOptions, type NetworkMode, type PortMapping, type TaskNetwork } from './types.ts';

const IFNAME = 'eth0';
/** A key no task id can take (ids start with an alphanumeric). */
const PORTS_LOCK = '\0ports';
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$/;

function ipOf(result: CniResult | undefined): string | undefined {
  const address = result?.ips?.find((ip) => !ip.address.includes(':'))?.address ?? result?.ips?.[0]?.address;
  return address?.split('/')[0];
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function createNetworkManager(o: NetworkManagerOptions): NetworkManager {
  const subnet = o.subnet ?? process.env.BERTH_SUBNET ?? '10.88.0.0/16';
  if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(subnet)) throw new Error(`network subnet "${subnet}" is not an IPv4 CIDR`);
  const bridge = o.bridge ?? 'berth0';
  if (bridge.length > 15) throw new Error(`bridge name "${bridge}" is longer than 15 characters`);
  const prefix = o.netnsPrefix ?? 'berth-';
  const config: BridgeNetworkConfig = {
    name: o.networkName ?? 'berth',
    bridge,
    subnet,
    ipamDataDir: path.join(o.stateDir, 'ipam'),
    firewallAdminChain: o.firewallAdminChain,
  };
  const exec: CniExec = { paths: (o.cniPath ?? process.env.CNI_PATH ?? '/usr/lib/cni:/opt/cni/bin').split(':').filter(Boolean) };
  const tasks = new RecordStore(path.join(o.stateDir, 'tasks'));
  const log = o.logger.child({ component: 'network' });

  // One operation at a time per task: setup and teardown never interleave.
  const busy = new Map<string, Promise<unknown>>();
  function serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = busy.get(id) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const settled = next.catch(() => undefined);
    busy.set(id, settled);
    void settled.then(() => { if (busy.get(id) === settled) busy.delete(id); });
    return next;
  }

  /** Wires a fresh namespace for `id`, recording each step first. */
  async function wire(store: RecordStore, id: string, netnsName: string, portMappings: PortMapping[]): Promise<NetworkRecord> {
    const mappings = hostPortMappings(portMappings);
    const record: NetworkRecord = {
      id,
      mode: 'bridge',
      netnsName,
      containerId: id,
      ifName: IFNAME,
      conflist: bridgeConfList(config, mappings.length > 0),
      runtimeConfig: mappings.length > 0 ? { portMappings: mappings } : undefined,
      createdAt: new Date().toISOString(),
    };
    await store.write(record);
    try {
      const nsPath = await createNetns(netnsName);
      record.result = await addList(exec, record.conflist!, { containerId: id, netns: nsPath, ifName: IFNAME, runtimeConfig: record.runtimeConfig });
      await store.write(record);
      return record;
    } catch (err) {
      // addList has already deleted the plugins it added.
      await deleteNetns(netnsName).catch((e: unknown) => log.warn({ err: e, netns: netnsName }, 'could not remove the namespace of a failed setup'));
      await store.remove(id);
      throw err;
    }
  }

  /** CNI DEL (while the namespace still exists, so the bridge plugin can undo its masquerade), then the namespace. */
  async function unwire(store: RecordStore, record: NetworkRecord): Promise<void> {
    if (record.mode === 'bridge' && record.conflist) {
      const netns = netnsExists(record.netnsName) ? netnsPath(record.netnsName) : '';
      let cached = record.result;
      if (!cached) {
        // A crash lost the ADD result: rebuild the part DEL needs from host-local's leases.
        // The record's own conflist says where its leases are and how wide its subnet was.
        const ipam = record.conflist.plugins.find((p) => p.type === 'bridge')?.ipam as { dataDir?: string; ranges?: { subnet: string }[][] } | undefined;
        const subnetOfRecord = ipam?.ranges?.[0]?.[0]?.subnet ?? config.subnet;
        const ips = await leasedIps(ipam?.dataDir ?? config.ipamDataDir, record.conflist.name, record.containerId, record.ifName);
        if (ips.length > 0) cached = resultFromLeases(ips, Number(subnetOfRecord.split('/')[1]), record.ifName, netns);
      }
      await delList(exec, record.conflist, { containerId: record.containerId, netns, ifName: record.ifName, runtimeConfig: record.runtimeConfig }, cached);
    }
    await deleteNetns(record.netnsName);
    await store.remove(record.id);
  }

  /**
   * portmap would happily DNAT one host port to two tasks (the first rule wins,
   * silently): refuse a host port another task on this node already publishes.
   */
  async function refusePublishedPorts(taskId: string, portMappings: PortMapping[]): Promise<void> {
    const wanted = new Set(hostPortMappings(portMappings).map((m) => `${m.hostPort}/${m.protocol}`));
    if (wanted.size === 0) return;
    for (const id of await tasks.list()) {
      if (id === taskId) continue;
      const record = await tasks.read(id).catch(() => undefined);
      const published = (record?.runtimeConfig?.portMappings ?? []) as CniPortMapping[];
      const clash = published.find((m) => wanted.has(`${m.hostPort}/${m.protocol}`));
      if (clash) throw new Error(`host port ${clash.hostPort}/${clash.protocol} is already published by task ${id}`);
    }
  }

  const pool = new Pool({
    size: o.poolSize ?? 0,
    store: new RecordStore(path.join(o.stateDir, 'pool')),
    netnsPrefix: `${prefix}pool-`,
    wire,
    unwire,
    exec,
    log,
  });

  async function setupOnce(taskId: string, mode: NetworkMode, portMappings: PortMapping[]): Promise<TaskNetwork> {
    if (mode === 'host') return { mode };
    const existing = await tasks.read(taskId);
    if (existing) {
      // A retried start after a crash: keep what is wired if it is whole.
      if (existing.mode === mode && netnsExists(existing.netnsName) && (mode === 'none' || existing.result)) {
        return { mode, netnsPath: netnsPath(existing.netnsName), ipAddress: ipOf(existing.result) };
      }
      await unwire(tasks, existing);
    }
    const netnsName = `${prefix}${taskId}`;
    if (mode === 'none') {
      await tasks.write({ id: taskId, mode, netnsName, containerId: taskId, ifName: IFNAME, createdAt: new Date().toISOString() });
      try {
        return { mode, netnsPath: await createNetns(netnsName) };
      } catch (err) {
        await deleteNetns(netnsName).catch(() => undefined);
        await tasks.remove(taskId);
        throw err;
      }
    }
    const bridged = async (): Promise<TaskNetwork> => {
      await refusePublishedPorts(taskId, portMappings);
      const pooled = await pool.take(taskId, portMappings, tasks);
      if (pooled) return { mode, netnsPath: netnsPath(pooled.netnsName), ipAddress: ipOf(pooled.result) };
      const record = await wire(tasks, taskId, netnsName, portMappings);
      return { mode, netnsPath: netnsPath(netnsName), ipAddress: ipOf(record.result) };
    };
    // Tasks that publish host ports are set up one at a time, so two cannot both claim one port.
    return hostPortMappings(portMappings).length > 0 ? serial(PORTS_LOCK, bridged) : bridged();
  }

  const manager: NetworkManager = {
    setup(taskId, mode, portMappings) {
      if (!SAFE_ID.test(taskId)) return Promise.reject(new NetworkError(`task id "${taskId}" cannot name a network namespace`, taskId));
      if (mode !== 'bridge' && mode !== 'none' && mode !== 'host') return Promise.reject(new NetworkError(`unknown network mode "${String(mode)}"`, taskId));
      return serial(taskId, async () => {
        const started = process.hrtime.bigint();
        try {
          const network = await setupOnce(taskId, mode, portMappings);
          log.debug({ taskId, mode, ip: network.ipAddress, ms: Number(process.hrtime.bigint() - started) / 1e6 }, 'task network set up');
          return network;
        } catch (err) {
          throw new NetworkError(`could not set up the ${mode} network of task ${taskId}: ${message(err)}`, taskId, { cause: err });
        }
      });
    },

    teardown(taskId) {
      if (!SAFE_ID.test(taskId)) return Promise.resolve();
      return serial(taskId, async () => {
        const record = await tasks.read(taskId);
        if (!record) return;
        try {
          await unwire(tasks, record);
          log.debug({ taskId }, 'task network torn down');
        } catch (err) {
          throw new NetworkError(`could not tear down the network of task ${taskId}: ${message(err)}`, taskId, { cause: err });
        }
      });
    },

    check(taskId) {
      return serial(taskId, async () => {
        const record = await tasks.read(taskId);
        if (!record) return; // host mode, or nothing set up
        if (!netnsExists(record.netnsName)) throw new NetworkError(`the network namespace of task ${taskId} is gone`, taskId);
        if (record.mode !== 'bridge') return;
        if (!record.conflist || !record.result) throw new NetworkError(`the network of task ${taskId} was never completely set up`, taskId);
        try {
          // portmap 1.1.1's CHECK looks for ip6tables rules it never made for an
          // IPv4-only task and fails (containernetworking/plugins#819): skip it.
          const checked = { ...record.conflist, plugins: record.conflist.plugins.filter((p) => p.type !== 'portmap') };
          await checkList(exec, checked, { containerId: record.containerId, netns: netnsPath(record.netnsName), ifName: record.ifName, runtimeConfig: record.runtimeConfig }, record.result);
        } catch (err) {
          throw new NetworkError(`the network of task ${taskId} failed its check: ${message(err)}`, taskId, { cause: err });
        }
      });
    },

    async recover(liveTaskIds) {
      for (const id of await tasks.list()) {
        if (liveTaskIds.has(id)) continue;
        try {
          await manager.teardown(id);
          log.info({ taskId: id }, 'released the network of a task that is no longer running');
        } catch (err) {
          log.warn({ err, taskId: id }, 'could not release a leaked task network');
        }
      }
      // A namespace is recorded before it is made and removed before its record is,
      // so every namespace of ours has a record. Names alone are not swept: another
      // agent (or a test) on this host may use the same prefix with its own state.
      await pool.recover();
    },

    close: () => pool.close(),
    whenPoolFull: () => pool.whenFull(),
  };
  return manager;
}
