// The scheduler daemon: `node --import ./bin/ts-loader.mjs scheduler/src/main.ts`, configured from the environment.
import { loadConfig, parseAddr } from '../../common/config.ts';
import { createLogger } from '../../common/log.ts';
import { startScheduler } from './index.ts';

const config = loadConfig();
const logger = createLogger('scheduler');
if (!config.redisUrl) {
  logger.fatal('REDIS_URL is not set: the scheduler needs the cluster Redis');
  process.exit(2);
}
const scheduler = await startScheduler({
  redisUrl: config.redisUrl,
  logger,
  placementDeadlineMs: Number(process.env.BERTH_PLACEMENT_DEADLINE_S ?? 600) * 1000,
  nodeGraceMs: Number(process.env.BERTH_NODE_GRACE_S ?? 10) * 1000,
  http: parseAddr(process.env.BERTH_SCHEDULER_ADDR ?? '127.0.0.1:8082', 'BERTH_SCHEDULER_ADDR'),
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    logger.info({ signal }, 'shutting down');
    void scheduler.close().then(() => process.exit(0));
  });
}
