// Function records as the warm path reads them: from memory, so a request
// reads Redis only for its slot. Every writer of a function record publishes
// its name (FUNCTIONS_CHANGED_CHANNEL), so a redeploy or a delete through any
// API replica reaches this cache at once; while that subscription is down,
// nothing is cached.
import { fnId, type FunctionRecord } from '../../../common/functions.ts';
import { InvalidationListener } from '../../../common/invalidations.ts';
import { FUNCTIONS_CHANGED_CHANNEL } from '../../../common/keys.ts';
import type { BerthRedis } from '../../../common/redis.ts';

/** How long a record is trusted even when no change is heard. */
const FN_CACHE_MS = 1000;

export class FunctionCache {
  private readonly cache = new Map<string, { at: number; record: FunctionRecord | null }>();
  private readonly changes: InvalidationListener;
  /** Changes heard; a read that saw one arrive while it read Redis caches nothing. */
  private changesSeen = 0;

  constructor(
    redis: BerthRedis,
    private readonly load: (tenant: string, name: string) => Promise<FunctionRecord | null>,
    onError: (err: Error) => void,
    private readonly ttlMs = FN_CACHE_MS,
  ) {
    this.changes = new InvalidationListener(redis, FUNCTIONS_CHANGED_CHANNEL, {
      changed: (id) => {
        this.changesSeen++;
        this.cache.delete(id);
      },
      subscribed: () => this.cache.clear(),
      onError,
    });
  }

  async get(tenant: string, name: string): Promise<FunctionRecord | null> {
    const key = fnId(tenant, name);
    const hit = this.cache.get(key);
    if (hit && Date.now() - hit.at < this.ttlMs) return hit.record;
    const seen = this.changesSeen;
    const record = await this.load(tenant, name);
    if (this.changes.trusted && seen === this.changesSeen) {
      if (this.cache.size > 10_000) this.cache.clear();
      this.cache.set(key, { at: Date.now(), record });
    } else this.cache.delete(key);
    return record;
  }

  forget(tenant: string, name: string): void {
    this.cache.delete(fnId(tenant, name));
  }

  close(): void {
    this.changes.close();
  }
}
