// Configuration from the environment: one name per setting, shared by every
// part and the CLI. The README's configuration table lists them all.
import os from 'node:os';
import path from 'node:path';

export interface BerthConfig {
  /** REDIS_URL; unset in the all-in-one means "start a local redis-server". */
  redisUrl: string | undefined;
  /** BERTH_API_ADDR, host:port. */
  apiAddr: { host: string; port: number };
  /** BERTH_STATE_DIR. */
  stateDir: string;
  /** BERTH_REGISTRY: the registry for image references without one. */
  defaultRegistry: string | undefined;
  /** BERTH_NODE_ID. */
  nodeId: string;
  /** BERTH_INSECURE_REGISTRIES: comma-separated hosts allowed over plain HTTP (loopback always is). */
  insecureRegistries: string[];
  /** BERTH_SECRETS_KEY_FILE: the cluster's key for secrets at rest; `<stateDir>/secrets.key` by default. */
  secretsKeyFile: string;
}

export function parseAddr(value: string, name: string): { host: string; port: number } {
  const match = /^(.*):(\d{1,5})$/.exec(value);
  const port = Number(match?.[2]);
  if (!match || !match[1] || port < 0 || port > 65535) throw new Error(`${name}: expected host:port, got "${value}"`);
  return { host: match[1].replace(/^\[(.*)\]$/, '$1'), port };
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): BerthConfig {
  return {
    redisUrl: env.REDIS_URL || undefined,
    apiAddr: parseAddr(env.BERTH_API_ADDR ?? '127.0.0.1:8080', 'BERTH_API_ADDR'),
    stateDir: path.resolve(env.BERTH_STATE_DIR ?? '.berth'),
    defaultRegistry: env.BERTH_REGISTRY || undefined,
    nodeId: env.BERTH_NODE_ID ?? os.hostname(),
    insecureRegistries: (env.BERTH_INSECURE_REGISTRIES ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    secretsKeyFile: path.resolve(env.BERTH_SECRETS_KEY_FILE || path.join(env.BERTH_STATE_DIR ?? '.berth', 'secrets.key')),
  };
}
