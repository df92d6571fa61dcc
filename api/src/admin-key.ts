// The first admin API key: written to <stateDir>/admin-key (mode 0600) once;
// Redis keeps only its hash.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ADMIN_TENANT, lookupApiKey, newApiKey, storeApiKey } from '../../common/apikeys.ts';
import type { BerthRedis } from '../../common/redis.ts';

export async function ensureAdminKey(redis: BerthRedis, stateDir: string): Promise<string> {
  const file = path.join(stateDir, 'admin-key');
  let key = (await readFile(file, 'utf8').catch(() => '')).trim();
  if (!key) {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    const fresh = newApiKey();
    try {
      await writeFile(file, `${fresh}\n`, { mode: 0o600, flag: 'wx' });
      key = fresh;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      key = (await readFile(file, 'utf8')).trim(); // another process wrote it first
    }
  }
  // A file from before (or a fresh Redis): make sure the key works.
  const record = await lookupApiKey(redis, key);
  if (!record) await storeApiKey(redis, key, { tenant: ADMIN_TENANT, name: 'admin', admin: true });
  else if (!record.admin) throw new Error(`${file} holds an API key that is not an admin key`);
  return key;
}
