// Task definitions: register, list, describe, deregister.
import { BerthError } from '../../../common/errors.ts';
import type { BerthRedis } from '../../../common/redis.ts';
import {
  deregisterTaskDefinition, getTaskDefinition, listTaskDefinitions, registerTaskDefinition, toApiTaskDefinition,
  type StoredTaskDefinition,
} from '../../../common/taskdefs.ts';
import { principal } from '../auth.ts';
import type { Body, Handlers, Params, Query } from '../handlers.ts';
import { checkTaskDefinition } from '../limits.ts';
import { decodeToken, encodeToken, invalidField } from '../paging.ts';
import type { SecretBox } from '../../../common/secret-box.ts';
import { sealCredentials } from './credentials.ts';

/** `family` or `family:revision` (the spec's pattern has checked the shape). */
export function parseTaskDefinitionRef(ref: string): { family: string; revision?: number } {
  const [family, revision] = ref.split(':');
  return { family: family!, revision: revision === undefined ? undefined : Number(revision) };
}

/** A definition of the tenant, or 404 TASK_DEFINITION_NOT_FOUND. */
export async function findTaskDefinition(redis: BerthRedis, tenant: string, ref: string): Promise<StoredTaskDefinition> {
  const { family, revision } = parseTaskDefinitionRef(ref);
  const def = await getTaskDefinition(redis, tenant, family, revision);
  if (!def) throw new BerthError('TASK_DEFINITION_NOT_FOUND', `No task definition ${ref}`);
  return def;
}

const isCursor = (v: unknown): v is { f: string; r: number } =>
  typeof v === 'object' && v !== null && typeof (v as { f: unknown }).f === 'string' && Number.isInteger((v as { r: unknown }).r);

export function taskDefinitionHandlers(deps: { redis: BerthRedis; secretBox: SecretBox | null }): Handlers {
  const { redis, secretBox } = deps;
  return {
    async registerTaskDefinition(request, reply) {
      const input = request.body as Required<Pick<Body<'registerTaskDefinition'>, 'cpu' | 'memory' | 'pidsLimit' | 'networkMode' | 'stopTimeout'>> & Body<'registerTaskDefinition'>;
      checkTaskDefinition(input);
      const tenant = principal(request).tenant;
      if (input.repositoryCredentials) input.repositoryCredentials = sealCredentials(secretBox, tenant, input.repositoryCredentials);
      const stored = await registerTaskDefinition(redis, tenant, input);
      request.log.info({ taskDefinition: `${stored.family}:${stored.revision}` }, 'task definition registered');
      return reply.code(201).send(toApiTaskDefinition(stored));
    },

    async listTaskDefinitions(request) {
      const q = request.query as Query<'listTaskDefinitions'>;
      const cursor = q.nextToken ? decodeToken(q.nextToken, isCursor) : undefined;
      const page = await listTaskDefinitions(redis, principal(request).tenant, {
        family: q.family,
        status: q.status,
        after: cursor ? { family: cursor.f, revision: cursor.r } : undefined,
        limit: q.limit ?? 100,
      });
      return {
        taskDefinitions: page.items.map(toApiTaskDefinition),
        ...(page.next ? { nextToken: encodeToken({ f: page.next.family, r: page.next.revision }) } : {}),
      };
    },

    async describeTaskDefinition(request) {
      const { taskDefinition } = request.params as Params<'describeTaskDefinition'>;
      return toApiTaskDefinition(await findTaskDefinition(redis, principal(request).tenant, taskDefinition));
    },

    async deregisterTaskDefinition(request) {
      const { taskDefinition } = request.params as Params<'deregisterTaskDefinition'>;
      const { family, revision } = parseTaskDefinitionRef(taskDefinition);
      if (revision === undefined) throw invalidField('path/taskDefinition', 'must name a revision (family:revision)');
      const tenant = principal(request).tenant;
      const def = await deregisterTaskDefinition(redis, tenant, family, revision);
      if (!def) throw new BerthError('TASK_DEFINITION_NOT_FOUND', `No task definition ${taskDefinition}`);
      return toApiTaskDefinition(def);
    },
  };
}
