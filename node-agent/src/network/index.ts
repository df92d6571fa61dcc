// Per-task networking: a named network namespace per task, wired with the
// standard CNI plugins (bridge, host-local, portmap, firewall) for bridge mode.
// The agent sees only this surface; CNI stays behind it.
export { createNetworkManager } from './manager.ts';
export { NetworkError } from './types.ts';
export type { NetworkManager, NetworkManagerOptions, NetworkMode, PortMapping, TaskNetwork } from './types.ts';
