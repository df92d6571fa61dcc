// API keys (admin only): create (the key is shown once), list, revoke.
import { createApiKey, deleteApiKey, listApiKeys } from '../../../common/apikeys.ts';
import { BerthError } from '../../../common/errors.ts';
import type { BerthRedis } from '../../../common/redis.ts';
import type { Body, Handlers, Params, Query } from '../handlers.ts';

export function apiKeyHandlers(deps: { redis: BerthRedis }): Handlers {
  const { redis } = deps;
  return {
    async createApiKey(request, reply) {
      const { tenant, name, admin = false } = request.body as Body<'createApiKey'>;
      const { record, apiKey } = await createApiKey(redis, { tenant, name, admin });
      request.log.info({ keyId: record.keyId, tenant, admin }, 'API key created');
      return reply.code(201).send({ ...record, apiKey });
    },

    async listApiKeys(request) {
      const { tenant } = request.query as Query<'listApiKeys'>;
      return { apiKeys: await listApiKeys(redis, tenant) };
    },

    async deleteApiKey(request, reply) {
      const { keyId } = request.params as Params<'deleteApiKey'>;
      if (!(await deleteApiKey(redis, keyId))) throw new BerthError('API_KEY_NOT_FOUND', `No API key ${keyId}`);
      request.log.info({ keyId }, 'API key revoked');
      return reply.code(204).send();
    },
  };
}
