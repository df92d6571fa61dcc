// Ships a container's log file (written by its shim, one JSON object a line)
// into the task's Redis stream, where the API reads it. Where it got to is kept
// beside the log, so an agent restart neither loses nor repeats a line.
import { open, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { keys } from '../../common/keys.ts';
import type { BerthRedis } from '../../common/redis.ts';

/** Lines kept per task in Redis (approximate, as XADD MAXLEN ~). */
const STREAM_MAX_LINES = 100_000;
const READ_CHUNK = 256 * 1024;

interface Position {
  ino: number;
  offset: number;
}

interface ShimLogLine {
  time: string;
  stream: 'stdout' | 'stderr';
  log: string;
  partial?: boolean;
}

export class LogShipper {
  private position: Position = { ino: 0, offset: 0 };
  private pending = new Map<string, { time: string; text: string }>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly redis: BerthRedis,
    private readonly taskId: string,
    private readonly logPath: string,
    private readonly positionPath: string,
  ) {}

  async start(intervalMs = 100): Promise<void> {
    try {
      this.position = JSON.parse(await readFile(this.positionPath, 'utf8')) as Position;
    } catch {
      // First start: ship from the beginning.
    }
    this.timer = setInterval(() => { this.running = this.running.then(() => this.ship()).catch(() => undefined); }, intervalMs);
  }

  /** Ships everything left, including an unfinished last line, and stops. */
  async finish(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
    await this.ship();
    for (const [stream, line] of this.pending) await this.append([[line.time, stream, line.text]]);
    this.pending.clear();
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
    if (this.position.ino && current.ino !== this.position.ino) {
      // The shim rotated the file: finish the old one (now .1), then start the new one.
      await this.shipFile(`${this.logPath}.1`, this.position.ino);
      this.position = { ino: current.ino, offset: 0 };
    }
    this.position.ino = current.ino;
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
        const { bytesRead } = await handle.read(buffer, 0, READ_CHUNK, this.position.offset);
        if (bytesRead === 0) break;
        const lastNewline = buffer.subarray(0, bytesRead).lastIndexOf(10);
        if (lastNewline < 0) break; // the shim is mid-line: wait for the rest
        await this.append(this.parse(buffer.subarray(0, lastNewline + 1).toString('utf8')));
        this.position.offset += lastNewline + 1;
        await this.savePosition();
        if (bytesRead < READ_CHUNK) break;
      }
    } finally {
      await handle.close();
    }
  }

  /** Joins partial pieces into whole lines; returns [time, stream, text] of each whole line. */
  private parse(lines: string): [string, string, string][] {
    const out: [string, string, string][] = [];
    for (const raw of lines.split('\n')) {
      if (!raw) continue;
      let line: ShimLogLine;
      try {
        line = JSON.parse(raw) as ShimLogLine;
      } catch {
        continue;
      }
      const before = this.pending.get(line.stream);
      const text = (before?.text ?? '') + line.log;
      if (line.partial) {
        this.pending.set(line.stream, { time: before?.time ?? line.time, text });
        continue;
      }
      this.pending.delete(line.stream);
      out.push([before?.time ?? line.time, line.stream, text.endsWith('\n') ? text.slice(0, -1) : text]);
    }
    return out;
  }

  private async append(events: [string, string, string][]): Promise<void> {
    if (events.length === 0) return;
    const pipeline = this.redis.pipeline();
    for (const [time, stream, text] of events) {
      pipeline.xadd(keys.taskLogs(this.taskId), 'MAXLEN', '~', STREAM_MAX_LINES, '*', 't', time, 's', stream, 'm', text);
    }
    await pipeline.exec();
  }

  private async savePosition(): Promise<void> {
    const tmp = `${this.positionPath}.tmp`;
    await writeFile(tmp, JSON.stringify(this.position));
    await rename(tmp, this.positionPath);
  }
}
