import type { Logger } from '../../../common/log.ts';

export type NetworkMode = 'bridge' | 'none' | 'host';

export interface PortMapping {
  containerPort: number;
  /** Published on every host address when set; without it the port is reached at the task's IP only. */
  hostPort?: number;
  /** @defaultValue 'tcp' */
  protocol?: 'tcp' | 'udp';
}

export interface TaskNetwork {
  mode: NetworkMode;
  /** The namespace to join; undefined for host. */
  netnsPath?: string;
  /** bridge only. */
  ipAddress?: string;
}

export interface NetworkManager {
  /** Makes the task's namespace and wires it; on failure undoes what it made and throws NetworkError. */
  setup(taskId: string, mode: NetworkMode, portMappings: PortMapping[]): Promise<TaskNetwork>;
  /** Undoes setup from the record on disk; idempotent, and works after an agent restart. */
  teardown(taskId: string): Promise<void>;
  /** CNI CHECK of a bridge network; for none, that the namespace is there. */
  check(taskId: string): Promise<void>;
  /** On agent start: tears down every task network on disk whose task is not in the set. */
  recover(liveTaskIds: Set<string>): Promise<void>;
  /** Stops refilling the pool and tears down the pooled namespaces. */
  close(): Promise<void>;
  /** Resolves once the pool has finished filling (tests and benchmarks). */
  whenPoolFull(): Promise<void>;
}

export interface NetworkManagerOptions {
  /** Records, and host-local's IP leases under `ipam/`. */
  stateDir: string;
  /** @defaultValue process.env.BERTH_SUBNET ?? '10.88.0.0/16' */
  subnet?: string;
  /** Linux bridge name (15 characters at most). @defaultValue 'berth0' */
  bridge?: string;
  /** CNI network name: host-local's lease directory and the iptables chain comments. @defaultValue 'berth' */
  networkName?: string;
  /** Prefix of the names under /run/netns; recover() only looks at these. @defaultValue 'berth-' */
  netnsPrefix?: string;
  /** CNI_PATH. @defaultValue process.env.CNI_PATH ?? '/usr/lib/cni:/opt/cni/bin' */
  cniPath?: string;
  /** The firewall plugin's admin chain. @defaultValue 'CNI-ADMIN' */
  firewallAdminChain?: string;
  /** Namespaces kept wired ahead of time for bridge tasks; 0 turns the pool off. @defaultValue 0 */
  poolSize?: number;
  logger: Logger;
}

export class NetworkError extends Error {
  constructor(
    message: string,
    readonly taskId: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'NetworkError';
  }
}
