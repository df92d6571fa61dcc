// The secret store: one Redis hash per tenant, name -> JSON { sealed, createdAt, updatedAt }.
// Values are sealed (common/secret-box.ts) before they reach Redis and stay
// sealed in task records; only the agent starting a task opens them.
import { keys } from './keys.ts';
import type { BerthRedis } from './redis.ts';
import type { SecretBox } from './secret-box.ts';

export interface SecretMeta {
  name: string;
  createdAt: string;
  updatedAt: string;
}

interface StoredSecret {
  /** The value sealed under the cluster's key, bound to tenant and name. */
  sealed?: string;
  /** Written by Berth before secrets were sealed; sealed when next read. */
  value?: string;
  createdAt: string;
  updatedAt: string;
}

function parse(raw: string | null): StoredSecret | null {
  if (raw === null) return null;
  try {
    return JSON.parse(raw) as StoredSecret;
  } catch {
    return null;
  }
}

/** Creates or replaces a secret; returns its metadata, never its value. */
export async function putSecret(redis: BerthRedis, box: SecretBox, tenant: string, name: string, value: string): Promise<SecretMeta> {
  const now = new Date().toISOString();
  const previous = parse(await redis.hget(keys.secrets(tenant), name));
  const stored: StoredSecret = { sealed: box.seal(value, tenant, name), createdAt: previous?.createdAt ?? now, updatedAt: now };
  await redis.hset(keys.secrets(tenant), name, JSON.stringify(stored));
  return { name, createdAt: stored.createdAt, updatedAt: stored.updatedAt };
}

export async function getSecretMeta(redis: BerthRedis, tenant: string, name: string): Promise<SecretMeta | null> {
  const stored = parse(await redis.hget(keys.secrets(tenant), name));
  return stored ? { name, createdAt: stored.createdAt, updatedAt: stored.updatedAt } : null;
}

export async function listSecrets(redis: BerthRedis, tenant: string): Promise<SecretMeta[]> {
  const all = await redis.hgetall(keys.secrets(tenant));
  return Object.entries(all)
    .map(([name, raw]) => ({ name, stored: parse(raw) }))
    .filter((s): s is { name: string; stored: StoredSecret } => s.stored !== null)
    .map(({ name, stored }) => ({ name, createdAt: stored.createdAt, updatedAt: stored.updatedAt }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

export async function deleteSecret(redis: BerthRedis, tenant: string, name: string): Promise<boolean> {
  return (await redis.hdel(keys.secrets(tenant), name)) === 1;
}

/**
 * The sealed values of the named secrets, for a task's record; names that do
 * not exist are left out. A value stored before sealing is sealed here.
 */
export async function sealedSecrets(redis: BerthRedis, box: SecretBox, tenant: string, names: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (names.length === 0) return out;
  const unique = [...new Set(names)];
  const raws = await redis.hmget(keys.secrets(tenant), ...unique);
  unique.forEach((name, i) => {
    const stored = parse(raws[i] ?? null);
    if (stored?.sealed) out.set(name, stored.sealed);
    else if (stored?.value !== undefined) out.set(name, box.seal(stored.value, tenant, name));
  });
  return out;
}
