// The API key store. A key is `berth_` + 32 random bytes (base64url); Redis keeps
// only its sha256, so a leaked database does not leak usable keys. Keys are
// high-entropy, so a plain hash (no salt, no KDF) is enough.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { InvalidationListener } from './invalidations.ts';
import { API_KEYS_REVOKED_CHANNEL, keys } from './keys.ts';
import type { BerthRedis } from './redis.ts';

export interface ApiKeyRecord {
  keyId: string;
  tenant: string;
  name: string;
  admin: boolean;
  createdAt: string;
}

/** The tenant admin keys belong to (they may run tasks like any other key). */
export const ADMIN_TENANT = 'default';

const KEY_FORMAT = /^berth_[A-Za-z0-9_-]{43}$/;

/** Whether a string has the shape of a Berth API key. */
export function isApiKeyFormat(apiKey: string): boolean {
  return KEY_FORMAT.test(apiKey);
}

export function hashApiKey(apiKey: string): string {
  return createHash('sha256').update(apiKey).digest('hex');
}

export function newApiKey(): string {
  return `berth_${randomBytes(32).toString('base64url')}`;
}

function decode(hash: Record<string, string>): ApiKeyRecord | null {
  if (!hash.keyId || !hash.tenant) return null;
  return { keyId: hash.keyId, tenant: hash.tenant, name: hash.name ?? '', admin: hash.admin === '1', createdAt: hash.createdAt ?? '' };
}

/** Stores a key (by its hash) and returns its record. */
export async function storeApiKey(
  redis: BerthRedis,
  apiKey: string,
  input: { tenant: string; name: string; admin: boolean },
): Promise<ApiKeyRecord> {
  const hash = hashApiKey(apiKey);
  const record: ApiKeyRecord = { keyId: randomBytes(8).toString('hex'), ...input, createdAt: new Date().toISOString() };
  await redis
    .multi()
    .hset(keys.apiKey(hash), 'keyId', record.keyId, 'tenant', record.tenant, 'name', record.name,
      'admin', record.admin ? '1' : '0', 'createdAt', record.createdAt, 'hash', hash)
    .set(keys.apiKeyId(record.keyId), hash)
    .zadd(keys.apiKeyIds(), Date.parse(record.createdAt), record.keyId)
    .exec();
  return record;
}

export async function createApiKey(
  redis: BerthRedis,
  input: { tenant: string; name: string; admin: boolean },
): Promise<{ record: ApiKeyRecord; apiKey: string }> {
  const apiKey = newApiKey();
  return { record: await storeApiKey(redis, apiKey, input), apiKey };
}

/** The record of a presented key, or null. Malformed keys never reach Redis. */
export async function lookupApiKey(redis: BerthRedis, apiKey: string): Promise<ApiKeyRecord | null> {
  if (!KEY_FORMAT.test(apiKey)) return null;
  const hash = hashApiKey(apiKey);
  const stored = await redis.hgetall(keys.apiKey(hash));
  // The lookup is by hash already; comparing again in constant time keeps it so
  // should the storage ever change to a lookup by a shorter id.
  if (!stored.hash || !timingSafeEqual(Buffer.from(stored.hash), Buffer.from(hash))) return null;
  return decode(stored);
}

/**
 * How long an API replica trusts a key it looked up without asking Redis again,
 * while its RevocationListener is subscribed: a revocation through any replica
 * reaches every cache at once, so this bounds only how stale a key's record
 * (its tenant, its admin flag) may be.
 */
export const API_KEY_CACHE_MS = 5000;
const MAX_CACHED_KEYS = 10_000;
const cachedKeys = new Map<string, { record: ApiKeyRecord; until: number }>();
/** Revocations seen; a lookup that saw one arrive while it read Redis caches nothing. */
let revocationsSeen = 0;

function forget(hash: string): void {
  revocationsSeen++;
  cachedKeys.delete(hash);
}

/**
 * Drops revoked keys from this process's cache as deleteApiKey publishes them.
 * The cache is trusted only while the subscription stands: after a lost
 * connection it starts empty again once subscribed.
 */
export class RevocationListener extends InvalidationListener {
  constructor(redis: BerthRedis, onError: (err: Error) => void) {
    super(redis, API_KEYS_REVOKED_CHANNEL, { changed: forget, subscribed: () => cachedKeys.clear(), onError });
  }
}

/** lookupApiKey, remembering found keys (by hash) for API_KEY_CACHE_MS while `revocations` listens. Unknown keys always ask Redis. */
export async function lookupApiKeyCached(redis: BerthRedis, apiKey: string, revocations: RevocationListener): Promise<ApiKeyRecord | null> {
  if (!revocations.trusted) return lookupApiKey(redis, apiKey);
  if (!KEY_FORMAT.test(apiKey)) return null;
  const hash = hashApiKey(apiKey);
  const hit = cachedKeys.get(hash);
  const now = Date.now();
  if (hit && hit.until > now) return hit.record;
  const seen = revocationsSeen;
  const record = await lookupApiKey(redis, apiKey);
  if (record && revocations.trusted && seen === revocationsSeen) {
    if (cachedKeys.size >= MAX_CACHED_KEYS) cachedKeys.clear();
    cachedKeys.set(hash, { record, until: now + API_KEY_CACHE_MS });
  } else cachedKeys.delete(hash);
  return record;
}

export async function getApiKey(redis: BerthRedis, keyId: string): Promise<ApiKeyRecord | null> {
  const hash = await redis.get(keys.apiKeyId(keyId));
  return hash ? decode(await redis.hgetall(keys.apiKey(hash))) : null;
}

export async function listApiKeys(redis: BerthRedis, tenant?: string): Promise<ApiKeyRecord[]> {
  const ids = await redis.zrange(keys.apiKeyIds(), 0, -1);
  const records = await Promise.all(ids.map((id) => getApiKey(redis, id)));
  return records.filter((r): r is ApiKeyRecord => r !== null && (tenant === undefined || r.tenant === tenant));
}

/** Revokes a key at once. Returns false when there is no such key. */
export async function deleteApiKey(redis: BerthRedis, keyId: string): Promise<boolean> {
  const hash = await redis.get(keys.apiKeyId(keyId));
  if (!hash) return false;
  forget(hash);
  await redis.multi().del(keys.apiKey(hash), keys.apiKeyId(keyId), keys.rateLimit(keyId)).zrem(keys.apiKeyIds(), keyId)
    .publish(API_KEYS_REVOKED_CHANNEL, hash).exec();
  return true;
}
