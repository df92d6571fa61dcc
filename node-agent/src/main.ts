// The node agent daemon: `node --import ./bin/ts-loader.mjs node-agent/src/main.ts`, configured from the environment.
import os from 'node:os';
import path from 'node:path';
import { loadConfig, parseAddr } from '../../common/config.ts';
import { createLogger } from '../../common/log.ts';
import { loadSecretBox } from '../../common/secret-box.ts';
import { startAgent } from './index.ts';

const config = loadConfig();
// startAgent binds nodeId to every line (a binding here too would print the key twice).
const logger = createLogger('node-agent');
if (!config.redisUrl) {
  logger.fatal('REDIS_URL is not set: the agent needs the cluster Redis');
  process.exit(2);
}
const agent = await startAgent({
  redisUrl: config.redisUrl,
  nodeId: config.nodeId,
  stateDir: path.join(config.stateDir, 'agent'),
  logger,
  defaultRegistry: config.defaultRegistry,
  insecureRegistries: config.insecureRegistries,
  capacity: capacityFromEnv(),
  secretBox: await loadSecretBox(config.secretsKeyFile),
  reservedMemory: positiveInt('BERTH_RESERVED_MEMORY', true),
  labels: parseLabels(process.env.BERTH_NODE_LABELS ?? ''),
  http: parseAddr(process.env.BERTH_AGENT_ADDR ?? '127.0.0.1:8081', 'BERTH_AGENT_ADDR'),
  advertise: process.env.BERTH_AGENT_ADVERTISE_ADDR || undefined,
  subnet: process.env.BERTH_SUBNET || undefined,
  netnsPool: process.env.BERTH_NETNS_POOL ? Number(process.env.BERTH_NETNS_POOL) : undefined,
    bridge: process.env.BERTH_BRIDGE || undefined,
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    logger.info({ signal }, 'shutting down; containers keep running and are re-adopted on the next start');
    void agent.close().then(() => process.exit(0));
  });
}

/** An integer setting; a bad value stops the agent naming the variable (no silent default). */
function positiveInt(name: string, zeroAllowed = false): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < (zeroAllowed ? 0 : 1)) {
    logger.fatal(`${name}: expected a whole number${zeroAllowed ? '' : ' above 0'}, got "${raw}"`);
    process.exit(2);
  }
  return n;
}

/** BERTH_NODE_CPU (units, 1024 a core) and BERTH_NODE_MEMORY (MiB): what this node offers, when not the whole host. */
function capacityFromEnv(): { cpu: number; memory: number } | undefined {
  const cpu = positiveInt('BERTH_NODE_CPU');
  const memory = positiveInt('BERTH_NODE_MEMORY');
  if (cpu === undefined && memory === undefined) return undefined;
  const reserved = positiveInt('BERTH_RESERVED_MEMORY', true) ?? 256;
  return {
    cpu: cpu ?? os.cpus().length * 1024,
    memory: memory ?? Math.max(0, Math.floor(os.totalmem() / 2 ** 20) - reserved),
  };
}

function parseLabels(value: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of value.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`BERTH_NODE_LABELS: expected key=value pairs, got "${pair}"`);
    labels[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return labels;
}
