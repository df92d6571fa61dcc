// The API-only daemon: one more stateless API replica on the cluster's Redis.
import { loadConfig } from '../../common/config.ts';
import { createLogger } from '../../common/log.ts';
import { connectRedis } from '../../common/redis.ts';
import { loadSecretBox } from '../../common/secret-box.ts';
import { buildApi, ensureAdminKey } from './index.ts';

const config = loadConfig();
const logger = createLogger('api');
if (!config.redisUrl) {
  logger.fatal('REDIS_URL is required for the API daemon (the all-in-one starts its own Redis)');
  process.exit(1);
}
const redis = connectRedis(config.redisUrl);
await ensureAdminKey(redis, config.stateDir);
// The API makes the key on its first start; every agent (and any other API replica) needs the same file.
const secretBox = await loadSecretBox(config.secretsKeyFile, { create: true });
const app = await buildApi({ redis, logger, secretBox });
await app.listen({ host: config.apiAddr.host, port: config.apiAddr.port });

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    app.close()
      .then(() => redis.quit())
      .then(() => process.exit(0), (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      });
  });
}
