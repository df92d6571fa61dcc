// Redis connections and Berth's Lua scripts, loaded from common/lua/*.lua.
// A script file is named <name>-<number of keys>.lua, as BullMQ names its own.
import type { HealthStatus } from './types.ts';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';

const luaDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'lua');

interface LuaScript {
  name: string;
  numberOfKeys: number;
  lua: string;
}

const scripts: LuaScript[] = readdirSync(luaDir)
  .filter((f) => f.endsWith('.lua'))
  .map((f) => {
    const match = /^(.+)-(\d+)\.lua$/.exec(f);
    if (!match) throw new Error(`common/lua/${f}: a script file is named <name>-<keys>.lua`);
    return { name: camelCase(match[1]!), numberOfKeys: Number(match[2]), lua: readFileSync(path.join(luaDir, f), 'utf8') };
  });

function camelCase(kebab: string): string {
  return kebab.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** The scripts, as methods ioredis adds to a connection. */
export interface BerthScripts {
  reserveCapacity(nodeKey: string, taskKey: string, nodeTasksKey: string, groupNodesKey: string,
    nodeId: string, cpu: number, memory: number, taskId: string, distinct: '0' | '1'): Promise<number>;
  transitionTask(taskKey: string, nodeKey: string, nodeTasksKey: string, groupNodesKey: string,
    nodeId: string, status: string, taskId: string, ...fields: string[]): Promise<number>;
  setTaskHealth(taskKey: string, status: HealthStatus): Promise<number>;
}

export type BerthRedis = Redis & BerthScripts;

/**
 * A connection with the scripts defined. `maxRetriesPerRequest: null` is what
 * BullMQ workers require, and it suits the daemons: they wait out a Redis restart.
 */
export function connectRedis(url: string, options: { lazy?: boolean } = {}): BerthRedis {
  // Given as an option (not defineCommand), so `duplicate()` connections have the scripts too.
  const defined = Object.fromEntries(scripts.map((s) => [s.name, { numberOfKeys: s.numberOfKeys, lua: s.lua }]));
  return new Redis(url, { maxRetriesPerRequest: null, lazyConnect: options.lazy ?? false, scripts: defined }) as BerthRedis;
}

/**
 * Closes a connection once the commands already sent have their answers, so
 * nothing in flight fails with "Connection is closed"; gives up waiting after
 * `timeoutMs` (Redis gone) and drops the connection.
 */
export async function closeRedis(redis: Redis, timeoutMs = 2_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs); });
  await Promise.race([redis.quit().then(() => undefined, () => undefined), timedOut]);
  clearTimeout(timer);
  redis.disconnect();
}
