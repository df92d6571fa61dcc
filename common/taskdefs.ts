// The task definition store. Per tenant and family: a counter of revisions, a
// hash revision -> JSON definition, and a sorted set of the ACTIVE revisions;
// per tenant, a sorted set of family names (lexicographic, for listing).
// Revisions are immutable; deregistering only marks one INACTIVE.
import { keys } from './keys.ts';
import type { BerthRedis } from './redis.ts';
import type { TaskDefinition, TaskDefinitionInput } from './types.ts';

/** A definition as stored: every field, with the registry password. */
export type StoredTaskDefinition = TaskDefinitionInput & {
  family: string;
  revision: number;
  status: 'ACTIVE' | 'INACTIVE';
  registeredAt: string;
  deregisteredAt?: string;
  cpu: number;
  memory: number;
  pidsLimit: number;
  networkMode: 'bridge' | 'none' | 'host';
  stopTimeout: number;
};

function parse(raw: string | null | undefined): StoredTaskDefinition | null {
  if (!raw) return null;
  try {
    return JSON.parse(raw) as StoredTaskDefinition;
  } catch {
    return null;
  }
}

/** Registers the next revision of input.family (defaults already filled). */
export async function registerTaskDefinition(
  redis: BerthRedis,
  tenant: string,
  input: TaskDefinitionInput & Pick<StoredTaskDefinition, 'cpu' | 'memory' | 'pidsLimit' | 'networkMode' | 'stopTimeout'>,
): Promise<StoredTaskDefinition> {
  const family = input.family;
  const revision = await redis.incr(keys.taskDefinitionSeq(tenant, family));
  const stored: StoredTaskDefinition = { ...input, revision, status: 'ACTIVE', registeredAt: new Date().toISOString() };
  await redis
    .multi()
    .hset(keys.taskDefinitions(tenant, family), String(revision), JSON.stringify(stored))
    .zadd(keys.taskDefinitionActive(tenant, family), revision, String(revision))
    .zadd(keys.families(tenant), 0, family)
    .exec();
  return stored;
}

/** `family:revision`, or with no revision the latest ACTIVE one. */
export async function getTaskDefinition(
  redis: BerthRedis,
  tenant: string,
  family: string,
  revision?: number,
): Promise<StoredTaskDefinition | null> {
  let rev = revision;
  if (rev === undefined) {
    const latest = await redis.zrevrange(keys.taskDefinitionActive(tenant, family), 0, 0);
    if (latest.length === 0) return null;
    rev = Number(latest[0]);
  }
  return parse(await redis.hget(keys.taskDefinitions(tenant, family), String(rev)));
}

/** Marks a revision INACTIVE (again harmlessly); null when it does not exist. */
export async function deregisterTaskDefinition(
  redis: BerthRedis,
  tenant: string,
  family: string,
  revision: number,
): Promise<StoredTaskDefinition | null> {
  const stored = await getTaskDefinition(redis, tenant, family, revision);
  if (!stored) return null;
  if (stored.status === 'INACTIVE') return stored;
  const updated: StoredTaskDefinition = { ...stored, status: 'INACTIVE', deregisteredAt: new Date().toISOString() };
  await redis
    .multi()
    .hset(keys.taskDefinitions(tenant, family), String(revision), JSON.stringify(updated))
    .zrem(keys.taskDefinitionActive(tenant, family), String(revision))
    .exec();
  return updated;
}

export interface TaskDefinitionListing {
  items: StoredTaskDefinition[];
  /** Where the next page starts, when there may be more. */
  next?: { family: string; revision: number };
}

/**
 * Definitions ordered by family then revision, after `after` (exclusive). Looks
 * at no more than `budget` revisions per call, so a filter that matches little
 * cannot make one request slow: the page may then be short, with `next` set.
 */
export async function listTaskDefinitions(
  redis: BerthRedis,
  tenant: string,
  options: { family?: string; status?: 'ACTIVE' | 'INACTIVE'; after?: { family: string; revision: number }; limit: number; budget?: number },
): Promise<TaskDefinitionListing> {
  const budget = options.budget ?? 2000;
  const items: StoredTaskDefinition[] = [];
  let examined = 0;
  let families: string[];
  if (options.family !== undefined) {
    families = [options.family];
    if (options.after && options.after.family !== options.family) return { items };
  } else {
    families = await redis.zrangebylex(keys.families(tenant), options.after ? `[${options.after.family}` : '-', '+');
  }
  for (const family of families) {
    const seq = Number(await redis.get(keys.taskDefinitionSeq(tenant, family)) ?? 0);
    let rev = options.after && options.after.family === family ? options.after.revision + 1 : 1;
    while (rev <= seq) {
      const upto = Math.min(seq, rev + 99);
      const revs = Array.from({ length: upto - rev + 1 }, (_, i) => String(rev + i));
      const raws = await redis.hmget(keys.taskDefinitions(tenant, family), ...revs);
      for (let i = 0; i < revs.length; i++) {
        const def = parse(raws[i]);
        examined++;
        if (def && (options.status === undefined || def.status === options.status)) items.push(def);
        const more = rev + i < seq || family !== families[families.length - 1];
        if (items.length >= options.limit || examined >= budget) {
          return more ? { items, next: { family, revision: rev + i } } : { items };
        }
      }
      rev = upto + 1;
    }
  }
  return { items };
}

/** The API's view: `taskDefinition` added, the registry password left out. */
export function toApiTaskDefinition(d: StoredTaskDefinition): TaskDefinition & { taskDefinition: string } {
  const { repositoryCredentials, ...rest } = d;
  const out = { ...rest, taskDefinition: `${d.family}:${d.revision}` } as TaskDefinition & { taskDefinition: string };
  if (repositoryCredentials) (out as unknown as Record<string, unknown>).repositoryCredentials = { username: repositoryCredentials.username };
  return out;
}
