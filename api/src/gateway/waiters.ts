// Requests waiting for a slot, woken by the pub/sub message that release-slot
// and slot-register-instance publish (berth:fn-events, `<tenant>/<name>`), with
// a short poll as a fallback so a lost message costs at most one interval.
import type { Redis } from 'ioredis';
import { FUNCTION_EVENTS_CHANNEL } from '../../../common/keys.ts';
import type { Logger } from '../../../common/log.ts';
import type { ClientGone } from './client-gone.ts';

export class SlotWaiters {
  private readonly waiting = new Map<string, Set<() => void>>();
  private subscriber: Redis | undefined;

  constructor(private readonly connect: () => Redis, private readonly logger: Logger) {}

  private subscribe(): void {
    if (this.subscriber) return;
    const sub = this.connect();
    this.subscriber = sub;
    sub.on('message', (_channel: string, fn: string) => this.wake(fn));
    sub.on('error', (err: Error) => this.logger.warn({ err: err.message }, 'function events subscriber'));
    sub.subscribe(FUNCTION_EVENTS_CHANNEL).catch((err: Error) => this.logger.warn({ err: err.message }, 'subscribing to function events failed'));
  }

  wake(fn: string): void {
    const set = this.waiting.get(fn);
    if (!set) return;
    this.waiting.delete(fn);
    for (const resolve of set) resolve();
  }

  /** Resolves on the function's next event, after `ms`, or when the client goes. */
  wait(fn: string, ms: number, clientGone: ClientGone): Promise<void> {
    this.subscribe();
    return new Promise((resolve) => {
      let set = this.waiting.get(fn);
      if (!set) {
        set = new Set();
        this.waiting.set(fn, set);
      }
      const done = () => {
        clearTimeout(timer);
        forget();
        this.waiting.get(fn)?.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      const forget = clientGone.onAbort(done);
      set.add(done);
    });
  }

  close(): void {
    for (const fn of [...this.waiting.keys()]) this.wake(fn);
    this.subscriber?.disconnect();
    this.subscriber = undefined;
  }
}
