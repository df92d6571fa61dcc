// Host state for the network tests: a network of their own (bridge, subnet,
// CNI name, netns prefix) and a cleanup that removes everything that network
// left behind, even after a failure: namespaces, the bridge, its iptables
// rules and per-container chains, and the plugins' shared chains when they
// were not there before the tests began.
import { execFileSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TestNetwork {
  suffix: string;
  bridge: string;
  subnet: string;
  /** The first three octets, e.g. "10.199.42". */
  net24: string;
  networkName: string;
  netnsPrefix: string;
  stateDir: string;
}

const SHARED = {
  filter: ['CNI-FORWARD', 'CNI-ADMIN'],
  nat: ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-MASQ', 'CNI-HOSTPORT-SETMARK'],
} as const;

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function trySh(cmd: string, args: string[]): void {
  try {
    sh(cmd, args);
  } catch {
    // already gone
  }
}

function chains(table: 'filter' | 'nat'): Set<string> {
  return new Set(sh('iptables', ['-t', table, '-S']).split('\n').filter((l) => l.startsWith('-N ')).map((l) => l.slice(3).trim()));
}

/** Splits an `iptables -S` rule line into argv, honouring double quotes. */
function splitRule(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line))) out.push(m[1] !== undefined ? m[1].replace(/\\"/g, '"') : m[2]!);
  return out;
}

export interface HostSnapshot {
  filterChains: Set<string>;
  natChains: Set<string>;
  forwardPolicy: string;
}

export function snapshotHost(): HostSnapshot {
  const policy = /^-P FORWARD (\S+)/m.exec(sh('iptables', ['-S', 'FORWARD']))?.[1] ?? 'ACCEPT';
  return { filterChains: chains('filter'), natChains: chains('nat'), forwardPolicy: policy };
}

export function makeTestNetwork(): TestNetwork {
  const suffix = randomBytes(3).toString('hex');
  const net24 = `10.199.${randomInt(1, 250)}`;
  return {
    suffix,
    bridge: `berth-t${suffix}`,
    subnet: `${net24}.0/24`,
    net24,
    networkName: `berth-t${suffix}`,
    netnsPrefix: `berth-t${suffix}-`,
    stateDir: mkdtempSync(path.join(os.tmpdir(), 'berth-net-')),
  };
}

/** Deletes every rule of `table` for which `match` holds; returns the chains those rules jumped to. */
function deleteRules(table: 'filter' | 'nat', match: (line: string) => boolean): Set<string> {
  const targets = new Set<string>();
  for (const line of sh('iptables', ['-t', table, '-S']).split('\n')) {
    if (!line.startsWith('-A ') || !match(line)) continue;
    const argv = splitRule(line);
    const j = argv.indexOf('-j');
    if (j >= 0 && argv[j + 1]) targets.add(argv[j + 1]!);
    trySh('iptables', ['-t', table, '-D', ...argv.slice(1)]);
  }
  return targets;
}

function dropChain(table: 'filter' | 'nat', chain: string): void {
  // Remove every jump to it first, then the chain.
  deleteRules(table, (line) => / -j (\S+)/.exec(line)?.[1] === chain);
  trySh('iptables', ['-t', table, '-F', chain]);
  trySh('iptables', ['-t', table, '-X', chain]);
}

function onlyScaffolding(table: 'filter' | 'nat', chain: string): boolean {
  let rules: string[];
  try {
    rules = sh('iptables', ['-t', table, '-S', chain]).split('\n').filter((l) => l.startsWith('-A '));
  } catch {
    return false;
  }
  // What the plugins put there for themselves, not for a container.
  return rules.every((l) => / -j CNI-ADMIN$/.test(l) || /MARK --set-xmark/.test(l) || /--mark 0x2000\/0x2000 -j MASQUERADE/.test(l));
}

export function cleanupHost(net: TestNetwork, before: HostSnapshot): void {
  for (const ns of (() => { try { return readdirSync('/run/netns'); } catch { return []; } })()) {
    if (ns.startsWith(net.netnsPrefix)) trySh('ip', ['netns', 'delete', ns]);
  }
  trySh('ip', ['link', 'delete', net.bridge]);

  const quoted = `"${net.networkName}"`;
  const inSubnet = (line: string) => line.includes(` ${net.net24}.`);
  const natTargets = deleteRules('nat', (line) => line.includes(`\\"${net.networkName}\\"`) || line.includes(quoted));
  for (const chain of natTargets) {
    if (/^CNI-(DN-)?[0-9a-f]+$/.test(chain)) dropChain('nat', chain);
  }
  deleteRules('filter', (line) => line.startsWith('-A CNI-FORWARD ') && inSubnet(line));

  for (const chain of SHARED.nat) {
    if (!before.natChains.has(chain) && onlyScaffolding('nat', chain)) dropChain('nat', chain);
  }
  if (!before.filterChains.has('CNI-FORWARD') && onlyScaffolding('filter', 'CNI-FORWARD')) dropChain('filter', 'CNI-FORWARD');
  if (!before.filterChains.has('CNI-ADMIN') && onlyScaffolding('filter', 'CNI-ADMIN')) dropChain('filter', 'CNI-ADMIN');

  trySh('iptables', ['-P', 'FORWARD', before.forwardPolicy]);
  rmSync(net.stateDir, { recursive: true, force: true });
}

/** What is left of `net` on the host, for assertions. */
export function leftovers(net: TestNetwork): { netns: string[]; natRules: string[]; forwardRules: string[] } {
  const netns = (() => { try { return readdirSync('/run/netns').filter((n) => n.startsWith(net.netnsPrefix)); } catch { return []; } })();
  const natRules = sh('iptables', ['-t', 'nat', '-S']).split('\n').filter((l) => l.includes(`\\"${net.networkName}\\"`));
  const forwardRules = sh('iptables', ['-S']).split('\n').filter((l) => l.startsWith('-A CNI-FORWARD ') && l.includes(` ${net.net24}.`));
  return { netns, natRules, forwardRules };
}

/** IP leases host-local holds for the network. */
export function leases(net: TestNetwork): string[] {
  try {
    return readdirSync(path.join(net.stateDir, 'ipam', net.networkName)).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
  } catch {
    return [];
  }
}

/** The host's first non-loopback IPv4 address. */
export function hostAddress(): string | undefined {
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

export function nsExec(netns: string, args: string[], timeoutMs = 10_000): string {
  return execFileSync('ip', ['netns', 'exec', netns, ...args], { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
}
