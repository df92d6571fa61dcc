// Ships a container's log file (written by its shim, one JSON object a line)
// into the task's Redis stream, where the API reads it. How far it got is
// written in the same Redis transaction as the lines, so an agent killed at any
// moment neither loses nor repeats a line when it starts again.
import { open, stat } from 'node:fs/promises';
import { keys } from '../../common/keys.ts';
import type { BerthRedis } from '../../common/redis.ts';

/** Lines kept per task in Redis (approximate, as XADD MAXLEN ~). */
const STREAM_MAX_LINES = 100_000;
const READ_CHUNK = 256 * 1024;
const POSITION_FIELD = 'logPosition';

interface Position {
  /** The log file being read (the shim rotates it to `.1`). */
  ino: number;
  /** Bytes of it shipped, up to the end of the last whole line. */
  offset: number;
}

interface ShimLogLine {
  time: string;
  stream: 'stdout' | 'stderr';
  log: string;
  partial?: boolean;
}

type Event = [time: string, stream: string, text: string];

export class LogShipper {
  /** What is in Redis. */
  private committed: Position = { ino: 0, offset: 0 };
  /** Where reading goes on: past `committed` while a long line's pieces wait for their end. */
  private readOffset = 0;
  private pending = new Map<string, { time: string; text: string }>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly redis: BerthRedis,
    private readonly taskId: string,
    private readonly logPath: string,
  ) {}

  async start(intervalMs = 100): Promise<void> {
    const saved = await this.redis.hget(keys.task(this.taskId), POSITION_FIELD);
    if (saved) this.committed = JSON.parse(saved) as Position;
    this.readOffset = this.committed.offset;
    this.timer = setInterval(() => { this.running = this.running.then(() => this.ship()).catch(() => undefined); }, intervalMs);
  }

  /** Ships everything left, including an unfinished last line, and stops. */
  async finish(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
    await this.ship();
    const rest: Event[] = [...this.pending].map(([stream, line]) => [line.time, stream, line.text]);
    this.pending.clear();
    await this.commit(rest, { ...this.committed, offset: this.readOffset });
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async ship(): Promise<void> {
    let current;
    try {
      current = await stat(this.logPath);
    } catch {
      return; // not written yet
    }
    if (this.committed.ino && current.ino !== this.committed.ino) {
      // The shim rotated the file: finish the old one (now .1), then start the new one.
      await this.shipFile(`${this.logPath}.1`, this.committed.ino);
      this.pending.clear();
      this.committed = { ino: current.ino, offset: 0 };
      this.readOffset = 0;
    }
    this.committed.ino = current.ino;
    await this.shipFile(this.logPath, current.ino);
  }

  private async shipFile(file: string, ino: number): Promise<void> {
    let handle;
    try {
      handle = await open(file, 'r');
    } catch {
      return;
    }
    try {
      if ((await handle.stat()).ino !== ino) return;
      const buffer = Buffer.alloc(READ_CHUNK);
      while (true) {
        const { bytesRead } = await handle.read(buffer, 0, READ_CHUNK, this.readOffset);
        if (bytesRead === 0) break;
        const lastNewline = buffer.subarray(0, bytesRead).lastIndexOf(10);
        if (lastNewline < 0) break; // the shim is mid-line: wait for the rest
        const { events, safeBytes } = this.parse(buffer.subarray(0, lastNewline + 1));
        const safeOffset = safeBytes === null ? this.committed.offset : this.readOffset + safeBytes;
        this.readOffset += lastNewline + 1;
        await this.commit(events, { ino, offset: safeOffset });
        if (bytesRead < READ_CHUNK) break;
      }
    } finally {
      await handle.close();
    }
  }

  /**
   * Joins partial pieces into whole lines. `safeBytes` is how far into `chunk`
   * no piece is left waiting for its end (null: nowhere in this chunk), so a
   * restart from there loses nothing and repeats nothing.
   */
  private parse(chunk: Buffer): { events: Event[]; safeBytes: number | null } {
    const events: Event[] = [];
    let safeBytes: number | null = null;
    let at = 0;
    while (at < chunk.length) {
      const end = chunk.indexOf(10, at);
      const raw = chunk.subarray(at, end).toString('utf8');
      at = end + 1;
      let line: ShimLogLine | undefined;
      try {
        line = raw ? (JSON.parse(raw) as ShimLogLine) : undefined;
      } catch {
        line = undefined;
      }
      if (line) {
        const before = this.pending.get(line.stream);
        const text = (before?.text ?? '') + line.log;
        if (line.partial) {
          this.pending.set(line.stream, { time: before?.time ?? line.time, text });
        } else {
          this.pending.delete(line.stream);
          events.push([before?.time ?? line.time, line.stream, text.endsWith('\n') ? text.slice(0, -1) : text]);
        }
      }
      if (this.pending.size === 0) safeBytes = at;
    }
    return { events, safeBytes };
  }

  private async commit(events: Event[], position: Position): Promise<void> {
    if (events.length === 0 && position.offset === this.committed.offset && position.ino === this.committed.ino) return;
    const multi = this.redis.multi();
    for (const [time, stream, text] of events) {
      multi.xadd(keys.taskLogs(this.taskId), 'MAXLEN', '~', STREAM_MAX_LINES, '*', 't', time, 's', stream, 'm', text);
    }
    multi.hset(keys.task(this.taskId), POSITION_FIELD, JSON.stringify(position));
    await multi.exec();
    this.committed = position;
  }
}
