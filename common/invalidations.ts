// A cache's ear on the other processes: a pub/sub subscription on which
// writers publish what they changed. A cache keeps entries only while the
// subscription stands; once (re)subscribed it starts empty, since whatever
// was published meanwhile was missed.
import type { Redis } from 'ioredis';
import type { BerthRedis } from './redis.ts';

export interface InvalidationHandlers {
  /** Something named by `message` changed in another process (or this one). */
  changed(message: string): void;
  /** The subscription (again) stands: forget everything. */
  subscribed(): void;
  onError(err: Error): void;
}

export class InvalidationListener {
  private listening = false;
  private closed = false;
  private readonly subscriber: Redis;

  constructor(redis: BerthRedis, channel: string, handlers: InvalidationHandlers) {
    this.subscriber = redis.duplicate({ autoResubscribe: false });
    this.subscriber.on('message', (_channel: string, message: string) => handlers.changed(message));
    this.subscriber.on('error', handlers.onError);
    this.subscriber.on('close', () => { this.listening = false; });
    this.subscriber.on('ready', () => {
      this.subscriber.subscribe(channel).then(() => {
        handlers.subscribed();
        this.listening = !this.closed;
      }, handlers.onError);
    });
  }

  /** True while every change published reaches this process. */
  get trusted(): boolean {
    return this.listening;
  }

  close(): void {
    this.closed = true;
    this.listening = false;
    this.subscriber.disconnect();
  }
}
