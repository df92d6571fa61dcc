// The first admin API key: written to <stateDir>/admin-key (mode 0600) once;
// Redis keeps only its hash.
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ADMIN_TENANT, isApiKeyFormat, lookupApiKey, newApiKey, storeApiKey } from '../../common/apikeys.ts';
import type { BerthRedis } from '../../common/redis.ts';

export async function ensureAdminKey(redis: BerthRedis, stateDir: string): Promise<string> {
  const file = path.join(stateDir, 'admin-key');
  let key = (await readFile(file, 'utf8').catch(() => '')).trim();
  if (!key) {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    // Written aside, then linked into place: a reader never sees a half-written file,
    // and of two processes starting at once exactly one key wins.
    const fresh = newApiKey();
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(tmp, `${fresh}\n`, { mode: 0o600, flag: 'wx' });
    try {
      await link(tmp, file);
      key = fresh;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      key = (await readFile(file, 'utf8')).trim(); // another process linked its key first
    } finally {
      await unlink(tmp).catch(() => {});
    }
  }
  if (!isApiKeyFormat(key)) throw new Error(`${file} does not hold a Berth API key; remove it to get a new one`);
  // A file from before (or a fresh Redis): make sure the key works.
  const record = await lookupApiKey(redis, key);
  if (!record) await storeApiKey(redis, key, { tenant: ADMIN_TENANT, name: 'admin', admin: true });
  else if (!record.admin) throw new Error(`${file} holds an API key that is not an admin key`);
  return key;
}
