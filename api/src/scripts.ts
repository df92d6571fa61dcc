// The API's Lua scripts (common/lua). connectRedis defines every script there;
// this makes sure they exist on any connection handed to the API, and types them.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BerthRedis } from '../../common/redis.ts';

const luaDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'common', 'lua');

export interface ApiScripts {
  /** common/lua/token-bucket-1.lua: [allowed 1|0, retryAfterMs]. */
  tokenBucket(bucketKey: string, rate: number, burst: number): Promise<[number, number]>;
  /** common/lua/drain-node-1.lua: 1 draining, 0 LOST (unchanged), -1 missing. */
  drainNode(nodeKey: string): Promise<number>;
}

const FILES: Record<keyof ApiScripts, { file: string; keys: number }> = {
  tokenBucket: { file: 'token-bucket-1.lua', keys: 1 },
  drainNode: { file: 'drain-node-1.lua', keys: 1 },
};

export function apiScripts(redis: BerthRedis): ApiScripts {
  const r = redis as unknown as Record<string, unknown>;
  for (const [name, { file, keys }] of Object.entries(FILES)) {
    if (typeof r[name] !== 'function') {
      redis.defineCommand(name, { numberOfKeys: keys, lua: readFileSync(path.join(luaDir, file), 'utf8') });
    }
  }
  return redis as unknown as ApiScripts;
}
