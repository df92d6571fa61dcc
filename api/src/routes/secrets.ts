// The tenant's secrets. Values go in, never out (not in responses, not in logs).
import { BerthError } from '../../../common/errors.ts';
import type { BerthRedis } from '../../../common/redis.ts';
import type { SecretBox } from '../../../common/secret-box.ts';
import { deleteSecret, getSecretMeta, listSecrets, putSecret } from '../../../common/secrets.ts';
import { principal } from '../auth.ts';
import type { Body, Handlers, Params } from '../handlers.ts';

export function secretHandlers(deps: { redis: BerthRedis; secretBox: SecretBox | null }): Handlers {
  const { redis, secretBox } = deps;
  return {
    async putSecret(request, reply) {
      const { name, value } = request.body as Body<'putSecret'>;
      if (!secretBox) throw new BerthError('SECRETS_KEY_MISSING', 'This API has no secrets key to seal the value with: set BERTH_SECRETS_KEY_FILE (the API makes the file when it can)');
      const meta = await putSecret(redis, secretBox, principal(request).tenant, name, value);
      request.log.info({ secret: name }, 'secret stored');
      return reply.code(201).send(meta);
    },

    async listSecrets(request) {
      return { secrets: await listSecrets(redis, principal(request).tenant) };
    },

    async describeSecret(request) {
      const { name } = request.params as Params<'describeSecret'>;
      const meta = await getSecretMeta(redis, principal(request).tenant, name);
      if (!meta) throw new BerthError('SECRET_NOT_FOUND', `No secret ${name}`);
      return meta;
    },

    async deleteSecret(request, reply) {
      const { name } = request.params as Params<'deleteSecret'>;
      if (!(await deleteSecret(redis, principal(request).tenant, name))) throw new BerthError('SECRET_NOT_FOUND', `No secret ${name}`);
      return reply.code(204).send();
    },
  };
}
