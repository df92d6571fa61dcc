// Namespaces wired ahead of time (bridge + host-local + firewall), so a bridge
// task starts without waiting for CNI ADD. A task takes one; when it publishes
// ports, portmap is added to it with the entry's result as prevResult (the
// chain is ours to run). The record then moves from pool/ to tasks/ with one
// rename, so a crash never leaves it in both or in neither. The pool refills
// in the background; it starts filling at recover() (after stale entries from
// a previous run are released) or at the first take(). While entries are left,
// a refill waits `refillDelayMs`: a CNI ADD is ~90 ms of CPU, which would
// otherwise compete with the very start that took the entry.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { execPlugin, type CniExec } from './cni.ts';
import { hostPortMappings, portmapPlugin } from './conflist.ts';
import { netnsPath } from './netns.ts';
import type { NetworkRecord, RecordStore } from './state.ts';
import type { PortMapping } from './types.ts';

export interface PoolOptions {
  size: number;
  store: RecordStore;
  netnsPrefix: string;
  wire(store: RecordStore, id: string, netnsName: string, portMappings: PortMapping[]): Promise<NetworkRecord>;
  unwire(store: RecordStore, record: NetworkRecord): Promise<void>;
  exec: CniExec;
  log: Logger;
  /** How long a refill waits after a take while the pool still has entries. @defaultValue 300 */
  refillDelayMs?: number;
}

export class Pool {
  private readonly ready: NetworkRecord[] = [];
  private filling = 0;
  private closed = false;
  private failures = 0;
  private refillTimer: NodeJS.Timeout | undefined;
  private readonly inflight = new Set<Promise<void>>();

  constructor(private readonly o: PoolOptions) {}

  get size(): number {
    return this.ready.length;
  }

  /** Hands a wired namespace to `taskId` (its record moved into `tasks`), or undefined when none is ready. */
  async take(taskId: string, portMappings: PortMapping[], tasks: RecordStore): Promise<NetworkRecord | undefined> {
    if (this.o.size <= 0 || this.closed) return undefined;
    const record = this.ready.shift();
    this.failures = 0; // a task asked: try again even after earlier failures
    if (this.ready.length === 0) this.fill();
    else this.fillSoon();
    if (!record) return undefined;
    const poolId = record.id;
    const mappings = hostPortMappings(portMappings);
    try {
      if (mappings.length > 0) {
        const plugin = portmapPlugin();
        const runtimeConfig = { portMappings: mappings };
        const rt = { containerId: record.containerId, netns: netnsPath(record.netnsName), ifName: record.ifName, runtimeConfig };
        record.result = await execPlugin(this.o.exec, 'ADD', record.conflist!, plugin, rt, record.result);
        record.conflist = { ...record.conflist!, plugins: [...record.conflist!.plugins, plugin] };
        record.runtimeConfig = runtimeConfig;
      }
      record.id = taskId;
      await this.o.store.write(record, poolId);
      await this.o.store.moveTo(tasks, poolId, taskId);
      return record;
    } catch (err) {
      this.o.log.warn({ err, taskId }, 'a pooled namespace could not be given to a task; wiring a fresh one');
      record.id = poolId;
      await this.o.unwire(this.o.store, record).catch(() => undefined);
      return undefined;
    }
  }

  private fillSoon(): void {
    if (this.refillTimer) return;
    this.refillTimer = setTimeout(() => {
      this.refillTimer = undefined;
      this.fill();
    }, this.o.refillDelayMs ?? 300);
    this.refillTimer.unref();
  }

  private fill(): void {
    clearTimeout(this.refillTimer);
    this.refillTimer = undefined;
    if (this.closed || this.o.size <= 0) return;
    while (this.ready.length + this.filling < this.o.size) {
      // Back off after repeated failures instead of spinning on a broken host.
      if (this.failures >= 3) return;
      this.filling++;
      const hex = randomBytes(6).toString('hex');
      const p = this.o.wire(this.o.store, `pool-${hex}`, `${this.o.netnsPrefix}${hex}`, [])
        .then(async (record) => {
          if (this.closed) await this.o.unwire(this.o.store, record);
          else this.ready.push(record);
          this.failures = 0;
        })
        .catch((err: unknown) => {
          this.failures++;
          this.o.log.warn({ err }, 'could not wire a pooled namespace');
        })
        .finally(() => {
          this.filling--;
          this.inflight.delete(p);
          if (this.failures > 0 && this.failures < 3) this.fill();
        });
      this.inflight.add(p);
    }
  }

  /** Releases entries a previous run left on disk, then starts filling. */
  async recover(): Promise<void> {
    const mine = new Set(this.ready.map((r) => r.id));
    for (const id of await this.o.store.list()) {
      if (mine.has(id)) continue;
      const record = await this.o.store.read(id).catch(() => undefined);
      if (!record) continue;
      record.id = id; // a crash mid-take leaves the task's id inside a pool file
      await this.o.unwire(this.o.store, record).catch((err: unknown) => this.o.log.warn({ err, id }, 'could not release a stale pooled namespace'));
    }
    this.failures = 0;
    this.fill();
  }

  /** Resolves once the pool holds `size` entries (or filling has given up). */
  async whenFull(): Promise<void> {
    if (this.refillTimer) this.fill(); // a refill waiting for its delay starts now
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.refillTimer);
    await Promise.all([...this.inflight]);
    const entries = this.ready.splice(0);
    for (const record of entries) {
      await this.o.unwire(this.o.store, record).catch((err: unknown) => this.o.log.warn({ err, id: record.id }, 'could not release a pooled namespace'));
    }
  }
}
