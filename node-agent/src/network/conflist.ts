// The conflist of Berth's bridge network, for Debian's containernetworking-plugins:
//   bridge    veth into the netns, the host end on the bridge; the bridge is the
//             gateway, outbound traffic is masqueraded, hairpin lets a task reach
//             itself through a published port
//   host-local IPAM over the subnet, leases under <stateDir>/ipam/<name>
//   portmap   hostPort -> containerPort (DNAT from PREROUTING and OUTPUT; with
//             snat it sets route_localnet on the bridge so 127.0.0.1:hostPort works)
//   firewall  accept rules for the task's IP in CNI-FORWARD, so traffic passes
//             even when dockerd has set the FORWARD policy to DROP
import { CNI_VERSION, type CniConfList, type CniPluginConf } from './cni.ts';
import type { PortMapping } from './types.ts';

export interface BridgeNetworkConfig {
  name: string;
  bridge: string;
  subnet: string;
  ipamDataDir: string;
  firewallAdminChain?: string;
}

/** The portmap plugin's runtimeConfig entries: only mappings with a host port. */
export interface CniPortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
}

export function hostPortMappings(mappings: PortMapping[]): CniPortMapping[] {
  const out: CniPortMapping[] = [];
  for (const m of mappings) {
    if (!Number.isInteger(m.containerPort) || m.containerPort < 1 || m.containerPort > 65535) {
      throw new Error(`container port ${m.containerPort} is not a port number`);
    }
    if (m.hostPort === undefined || m.hostPort === 0) continue;
    if (!Number.isInteger(m.hostPort) || m.hostPort < 1 || m.hostPort > 65535) throw new Error(`host port ${m.hostPort} is not a port number`);
    const protocol = m.protocol ?? 'tcp';
    if (protocol !== 'tcp' && protocol !== 'udp') throw new Error(`protocol "${String(protocol)}" is neither tcp nor udp`);
    out.push({ hostPort: m.hostPort, containerPort: m.containerPort, protocol });
  }
  return out;
}

export function portmapPlugin(): CniPluginConf {
  return { type: 'portmap', capabilities: { portMappings: true }, snat: true };
}

export function bridgeConfList(c: BridgeNetworkConfig, withPortmap: boolean): CniConfList {
  const plugins: CniPluginConf[] = [
    {
      type: 'bridge',
      bridge: c.bridge,
      isGateway: true,
      ipMasq: true,
      hairpinMode: true,
      ipam: {
        type: 'host-local',
        ranges: [[{ subnet: c.subnet }]],
        routes: [{ dst: '0.0.0.0/0' }],
        dataDir: c.ipamDataDir,
      },
    },
  ];
  if (withPortmap) plugins.push(portmapPlugin());
  plugins.push({ type: 'firewall', backend: 'iptables', ...(c.firewallAdminChain ? { iptablesAdminChainName: c.firewallAdminChain } : {}) });
  return { cniVersion: CNI_VERSION, name: c.name, plugins };
}
