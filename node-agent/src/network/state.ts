// What a task's network is made of, one JSON file per task under
// <stateDir>/tasks (and per pooled namespace under <stateDir>/pool). The file is
// written before anything is created, so a crash at any point leaves enough on
// disk to undo it: the conflist and runtime config that were used, and the ADD
// result once there is one (CNI DEL and CHECK need it as prevResult).
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { CniConfList, CniResult } from './cni.ts';

export interface NetworkRecord {
  /** The task id, or the pool entry's id. */
  id: string;
  mode: 'bridge' | 'none';
  /** Name under /run/netns. */
  netnsName: string;
  /** CNI_CONTAINERID used for ADD (a pool entry keeps its own). */
  containerId: string;
  ifName: string;
  conflist?: CniConfList;
  runtimeConfig?: Record<string, unknown>;
  result?: CniResult;
  createdAt: string;
}

export class RecordStore {
  constructor(private readonly dir: string) {}

  private file(id: string): string {
    return path.join(this.dir, `${id}.json`);
  }

  /** Writes atomically (temp file, rename) to the file of `fileId`, by default the record's id. */
  async write(record: NetworkRecord, fileId = record.id): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const tmp = `${this.file(fileId)}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(record), { mode: 0o600 });
    await rename(tmp, this.file(fileId));
  }

  async read(id: string): Promise<NetworkRecord | undefined> {
    try {
      return JSON.parse(await readFile(this.file(id), 'utf8')) as NetworkRecord;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async remove(id: string): Promise<void> {
    await rm(this.file(id), { force: true });
  }

  /** Moves the record `id` into `to` as `newId`, with one rename (the record must already say `newId` inside). */
  async moveTo(to: RecordStore, id: string, newId: string): Promise<void> {
    await mkdir(to.dir, { recursive: true });
    await rename(this.file(id), to.file(newId));
  }

  /** The ids with a record. */
  async list(): Promise<string[]> {
    try {
      return (await readdir(this.dir)).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -'.json'.length));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }
}
