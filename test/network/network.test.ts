// The network manager against the real kernel and Debian's CNI plugins: a
// bridge of its own per run (berth-t<random>, 10.199.x.0/24), busybox
// containers under runc joining the task namespaces, and a cleanup that leaves
// the host as it found it.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.ts';
import { createNetworkManager, NetworkError, type NetworkManager, type TaskNetwork } from '../../node-agent/src/network/index.ts';
import { makeBundle, type TestBundle } from '../harness/bundle.ts';
import { freePort } from '../harness/processes.ts';
import { cleanupHost, hostAddress, leases, leftovers, makeTestNetwork, nsExec, snapshotHost, type HostSnapshot, type TestNetwork } from './host.ts';

const logger = createLogger('network-test', {});
logger.level = 'warn';

let net: TestNetwork;
let before: HostSnapshot;
let manager: NetworkManager;
const containers: { bundle: TestBundle; root: string }[] = [];
let a: TaskNetwork;

function managerFor(n: TestNetwork, extra: { poolSize?: number; cniPath?: string } = {}): NetworkManager {
  return createNetworkManager({
    stateDir: n.stateDir, subnet: n.subnet, bridge: n.bridge, networkName: n.networkName, netnsPrefix: n.netnsPrefix, logger, ...extra,
  });
}

/** A busybox httpd under runc in the task's namespace, answering `body` on :8080. */
async function startHttpd(network: TaskNetwork, body: string): Promise<TestBundle> {
  const bundle = await makeBundle({
    args: ['httpd', '-f', '-p', '8080', '-h', '/www'],
    network: { kind: 'join', path: network.netnsPath! },
  });
  const root = path.join(bundle.scratch, 'runc');
  containers.push({ bundle, root });
  await mkdir(path.join(bundle.rootfs, 'www'), { recursive: true });
  await writeFile(path.join(bundle.rootfs, 'www/index.html'), body);
  await new Promise<void>((resolve, reject) => {
    const child = spawn('runc', ['--root', root, 'run', '--detach', '--bundle', bundle.bundle, bundle.id], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`runc run failed (${code}): ${err}`))));
  });
  return bundle;
}

async function get(url: string, timeoutMs = 5000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      return await res.text();
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`GET ${url}: ${String((last as Error)?.cause ?? last)}`);
}

/**
 * GET from inside a namespace with busybox nc (busybox-static's wget crashes
 * when run against the host's /etc); returns the body.
 */
function httpFrom(netns: string, host: string, port: number): string {
  const raw = execFileSync('ip', ['netns', 'exec', netns, 'busybox', 'nc', '-w', '3', host, String(port)], {
    input: `GET / HTTP/1.0\r\nHost: ${host}\r\n\r\n`, encoding: 'utf8', timeout: 10_000,
  });
  const at = raw.indexOf('\r\n\r\n');
  if (!raw.startsWith('HTTP/1.') || at < 0) throw new Error(`no HTTP answer from ${host}:${port} in ${netns}: ${raw.slice(0, 200)}`);
  return raw.slice(at + 4);
}

beforeAll(() => {
  before = snapshotHost();
  net = makeTestNetwork();
  manager = managerFor(net);
});

afterAll(async () => {
  for (const c of containers) {
    try {
      execFileSync('runc', ['--root', c.root, 'delete', '--force', c.bundle.id], { stdio: 'ignore' });
    } catch {
      // not running
    }
    await c.bundle.remove();
  }
  await manager.recover(new Set()).catch(() => undefined);
  await manager.close();
  cleanupHost(net, before);
});

describe('bridge mode', () => {
  it('gives each task an IP on the bridge; tasks reach each other, the host reaches them and their published ports', async () => {
    const hostPort = await freePort();
    a = await manager.setup('task-a', 'bridge', [{ containerPort: 8080, hostPort }]);
    const b = await manager.setup('task-b', 'bridge', []);
    expect(a.mode).toBe('bridge');
    expect(a.netnsPath).toBe(`/run/netns/${net.netnsPrefix}task-a`);
    expect(a.ipAddress).toMatch(new RegExp(`^${net.net24.replace(/\./g, '\\.')}\\.\\d+$`));
    expect(b.ipAddress).not.toBe(a.ipAddress);
    expect(existsSync(a.netnsPath!)).toBe(true);

    await startHttpd(a, 'hello from a');
    // host -> task IP
    expect(await get(`http://${a.ipAddress}:8080/`)).toBe('hello from a');
    // task -> task
    expect(httpFrom(`${net.netnsPrefix}task-b`, a.ipAddress!, 8080)).toBe('hello from a');
    // published port on the host's own address, and on loopback (portmap sets route_localnet on the bridge)
    const address = hostAddress();
    if (address) expect(await get(`http://${address}:${hostPort}/`)).toBe('hello from a');
    expect(await get(`http://127.0.0.1:${hostPort}/`)).toBe('hello from a');
    // a task reaches another's published port through the gateway (hairpin through the host)
    const gateway = `${net.net24}.1`;
    expect(httpFrom(`${net.netnsPrefix}task-b`, gateway, hostPort)).toBe('hello from a');
    // and a task reaches itself through it (hairpin mode on the bridge port)
    expect(httpFrom(`${net.netnsPrefix}task-a`, gateway, hostPort)).toBe('hello from a');

    // only lo and eth0 inside, both up
    const links = nsExec(`${net.netnsPrefix}task-b`, ['ip', '-br', 'link']).trim().split('\n').map((l) => l.split(/\s+/)[0]!.split('@')[0]);
    expect(links.sort()).toEqual(['eth0', 'lo']);

    await manager.check('task-a');
    await manager.check('task-b');
  });

  it('still passes traffic when the FORWARD policy is DROP (as after dockerd)', async () => {
    const policy = before.forwardPolicy;
    execFileSync('iptables', ['-P', 'FORWARD', 'DROP']);
    try {
      const c = await manager.setup('task-c', 'bridge', []);
      expect(httpFrom(`${net.netnsPrefix}task-c`, a.ipAddress!, 8080)).toBe('hello from a');
      expect(c.ipAddress).toBeDefined();
    } finally {
      execFileSync('iptables', ['-P', 'FORWARD', policy]);
    }
  });

  it('teardown releases the IP, the iptables rules and the namespace, and is idempotent', async () => {
    for (const c of containers.splice(0)) {
      execFileSync('runc', ['--root', c.root, 'delete', '--force', c.bundle.id], { stdio: 'ignore' });
      await c.bundle.remove();
    }
    expect(leases(net).length).toBe(3);
    for (const id of ['task-a', 'task-b', 'task-c']) {
      await manager.teardown(id);
      await manager.teardown(id);
    }
    expect(leases(net)).toEqual([]);
    expect(leftovers(net)).toEqual({ netns: [], natRules: [], forwardRules: [] });
    expect(await readdir(path.join(net.stateDir, 'tasks'))).toEqual([]);
  });

  it('undoes a failed setup and says why', async () => {
    // A CNI_PATH without the firewall plugin: bridge and host-local succeed, then firewall is missing.
    const partial = path.join(net.stateDir, 'partial-cni');
    await mkdir(partial, { recursive: true });
    for (const p of ['bridge', 'host-local', 'portmap']) execFileSync('ln', ['-sf', `/usr/lib/cni/${p}`, path.join(partial, p)]);
    const broken = managerFor(net, { cniPath: partial });
    const err = await broken.setup('task-f', 'bridge', []).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkError);
    expect((err as Error).message).toMatch(/could not set up the bridge network of task task-f: .*firewall.* not found/);
    expect(leases(net)).toEqual([]);
    expect(leftovers(net)).toEqual({ netns: [], natRules: [], forwardRules: [] });
    expect(existsSync(path.join(net.stateDir, 'tasks', 'task-f.json'))).toBe(false);
  });
});

describe('none and host modes', () => {
  it('none: a namespace with only lo, up', async () => {
    const n = await manager.setup('task-n', 'none', []);
    expect(n).toEqual({ mode: 'none', netnsPath: `/run/netns/${net.netnsPrefix}task-n` });
    const links = nsExec(`${net.netnsPrefix}task-n`, ['ip', '-br', 'link']).trim().split('\n');
    expect(links).toHaveLength(1);
    expect(links[0]).toMatch(/^lo\s+UNKNOWN/);
    await manager.check('task-n');
    await manager.teardown('task-n');
    expect(existsSync(n.netnsPath!)).toBe(false);
    await manager.teardown('task-n');
  });

  it('host: nothing to make or undo', async () => {
    expect(await manager.setup('task-h', 'host', [])).toEqual({ mode: 'host' });
    await manager.check('task-h');
    await manager.teardown('task-h');
  });

  it('refuses a task id that cannot name a namespace', async () => {
    await expect(manager.setup('../etc', 'none', [])).rejects.toThrow(NetworkError);
  });
});

describe('many at once', () => {
  it('sets up and tears down tasks in parallel with distinct IPs', async () => {
    const ids = Array.from({ length: 8 }, (_, i) => `task-par-${i}`);
    const networks = await Promise.all(ids.map((id) => manager.setup(id, 'bridge', [])));
    expect(new Set(networks.map((n) => n.ipAddress)).size).toBe(ids.length);
    expect(leases(net)).toHaveLength(ids.length);
    // Each reaches the next one.
    const first = networks[0]!;
    for (const id of ids.slice(1, 3)) {
      expect(nsExec(`${net.netnsPrefix}${id}`, ['busybox', 'ping', '-c', '1', '-W', '2', first.ipAddress!])).toContain('1 packets received');
    }
    await Promise.all(ids.map((id) => manager.teardown(id)));
    expect(leases(net)).toEqual([]);
    expect(leftovers(net)).toEqual({ netns: [], natRules: [], forwardRules: [] });
  });

  it('refuses a host port another task already publishes, also when both ask at once', async () => {
    const hostPort = await freePort();
    const results = await Promise.allSettled([
      manager.setup('task-port-1', 'bridge', [{ containerPort: 80, hostPort }]),
      manager.setup('task-port-2', 'bridge', [{ containerPort: 81, hostPort }]),
    ]);
    const rejected = results.filter((r) => r.status === 'rejected');
    expect(rejected).toHaveLength(1);
    expect(String((rejected[0] as PromiseRejectedResult).reason)).toMatch(new RegExp(`host port ${hostPort}/tcp is already published by task task-port-[12]`));
    // The same port over udp is another port.
    await manager.setup('task-port-3', 'bridge', [{ containerPort: 53, hostPort, protocol: 'udp' }]);
    for (const id of ['task-port-1', 'task-port-2', 'task-port-3']) await manager.teardown(id);
    expect(leases(net)).toEqual([]);
  });
});

describe('recovery', () => {
  it('after a crash, a new manager releases what the dead agent left for tasks that are gone', async () => {
    const crashed = managerFor(net);
    const keep = await crashed.setup('task-keep', 'bridge', []);
    await crashed.setup('task-gone', 'bridge', [{ containerPort: 80, hostPort: await freePort() }]);
    await crashed.setup('task-gone-none', 'none', []);
    // A crash in the middle of ADD: the record is there, the result never made it to disk.
    await crashed.setup('task-mid-add', 'bridge', [{ containerPort: 80, hostPort: await freePort() }]);
    const recordFile = path.join(net.stateDir, 'tasks', 'task-mid-add.json');
    const record = JSON.parse(await readFile(recordFile, 'utf8')) as Record<string, unknown>;
    delete record.result;
    await writeFile(recordFile, JSON.stringify(record));
    expect(leases(net)).toHaveLength(3);

    const restarted = managerFor(net);
    await restarted.recover(new Set(['task-keep']));
    expect(leases(net)).toEqual([keep.ipAddress]);
    const left = leftovers(net);
    expect(left.netns).toEqual([`${net.netnsPrefix}task-keep`]);
    expect(left.natRules.every((l) => l.includes('task-keep'))).toBe(true);
    expect(left.forwardRules.every((l) => l.includes(`${keep.ipAddress}/32`))).toBe(true);

    // The kept task still works and tears down from its record.
    await restarted.check('task-keep');
    await restarted.teardown('task-keep');
    expect(leases(net)).toEqual([]);
    expect(leftovers(net)).toEqual({ netns: [], natRules: [], forwardRules: [] });
  });
});

describe('pool', () => {
  it('hands out pre-wired namespaces, adds portmap to them, and refills', async () => {
    const pooled = managerFor(net, { poolSize: 2 });
    await pooled.recover(new Set());
    await pooled.whenPoolFull();
    expect(leases(net)).toHaveLength(2);

    const hostPort = await freePort();
    const started = Date.now();
    const p = await pooled.setup('task-p', 'bridge', [{ containerPort: 8080, hostPort }]);
    const tookMs = Date.now() - started;
    expect(p.ipAddress).toBeDefined();
    expect(p.netnsPath).toMatch(new RegExp(`/run/netns/${net.netnsPrefix}pool-[0-9a-f]+$`));
    await startHttpd(p, 'hello from the pool');
    expect(await get(`http://127.0.0.1:${hostPort}/`)).toBe('hello from the pool');
    expect(await get(`http://${p.ipAddress}:8080/`)).toBe('hello from the pool');
    await pooled.check('task-p');
    logger.warn({ tookMs }, 'pooled setup with a port mapping');

    await pooled.whenPoolFull();
    expect(leases(net)).toHaveLength(3);
    for (const c of containers.splice(0)) {
      execFileSync('runc', ['--root', c.root, 'delete', '--force', c.bundle.id], { stdio: 'ignore' });
      await c.bundle.remove();
    }
    await pooled.teardown('task-p');
    await pooled.close();
    expect(leases(net)).toEqual([]);
    expect(leftovers(net)).toEqual({ netns: [], natRules: [], forwardRules: [] });
  });
});
