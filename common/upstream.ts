// What the function gateway and the agent's proxy share to forward a request
// to an instance with undici's dispatcher: the headers passed on each way, and
// the answer's body as it arrives, handed to exactly one
// consumer: piped into the client's response, or read whole (asynchronous
// invocations). No stream object per answer: the chunks go from the upstream
// callback straight to the client's socket, and the upstream is paused while
// the client is slow.
import type { IncomingHttpHeaders } from 'node:http';
import type { Writable } from 'node:stream';
import { Agent } from 'undici';
import { HOP_BY_HOP, PROXY_HEADERS } from './functions.ts';

/** How long a connection to an instance (or an agent) may stay idle before it is closed. */
const IDLE_CONNECTION_MS = 60_000;

/**
 * Keep-alive connections to instances and agents. An idle connection is kept
 * a minute (as nginx keeps upstream ones), or as long as the instance's
 * Keep-Alive header says less: a new connection costs the instance a fork or
 * an accept, and a burst after a pause would pay for dozens at once. The
 * function's timeout is the only timeout (none of undici's own).
 */
export function upstreamAgent(): Agent {
  return new Agent({ headersTimeout: 0, bodyTimeout: 0, keepAliveTimeout: IDLE_CONNECTION_MS });
}

/**
 * What a request's sender must not pass on to the next hop: the connection's
 * own headers, `expect` (the server that received the request answered its
 * 100-continue already) and the agent token (the gateway sets its own).
 */
export const NOT_FORWARDED: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'expect', PROXY_HEADERS.agentToken]);

/** A request's headers to send on: those in `drop` left out. */
export function forwardedHeaders(headers: IncomingHttpHeaders, drop: ReadonlySet<string>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && !drop.has(name)) out[name] = value;
  }
  return out;
}

/**
 * An answer's raw header lines as node:http reads them (names in lower case,
 * repeated ones joined, set-cookie kept apart), less the hop-by-hop ones: what
 * goes back to the caller.
 */
export function answerHeaders(raw: Buffer[]): IncomingHttpHeaders {
  const headers: IncomingHttpHeaders = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1').toLowerCase();
    if (HOP_BY_HOP.has(name)) continue;
    const value = raw[i + 1]!.toString('latin1');
    const known = headers[name];
    if (known === undefined) headers[name] = name === 'set-cookie' ? [value] : value;
    else if (Array.isArray(known)) known.push(value);
    else headers[name] = `${known}, ${value}`;
  }
  return headers;
}

export class AnswerBody {
  private readonly early: Buffer[] = [];
  private dest: Writable | undefined;
  private ended = false;
  private failure: Error | undefined;
  private waiting: { limit: number; resolve(body: Buffer): void; reject(err: Error): void } | undefined;
  private size = 0;
  private resume: (() => void) | undefined;

  /** How the upstream is told to send again after push() answered false. */
  control(resume: () => void): void {
    this.resume = resume;
  }

  /** A chunk arrived from the instance; false when the upstream should pause until resumed. */
  push(chunk: Buffer): boolean {
    const dest = this.dest;
    if (dest) {
      if (dest.write(chunk)) return true;
      const resume = this.resume;
      if (!resume) return true;
      dest.once('drain', resume);
      return false;
    }
    if (!this.waiting || this.size < this.waiting.limit) this.early.push(chunk);
    this.size += chunk.length;
    return true;
  }

  /** The instance's answer ended. */
  end(): void {
    if (this.ended || this.failure) return;
    this.ended = true;
    if (this.dest) this.dest.end();
    else if (this.waiting) this.waiting.resolve(this.collected(this.waiting.limit));
  }

  /** The answer broke off (the instance failed, timed out, or the client left). */
  fail(err: Error): void {
    if (this.ended || this.failure) return;
    this.failure = err;
    if (this.dest) this.dest.destroy(err);
    else if (this.waiting) this.waiting.reject(err);
  }

  /** Streams the body into `dest` and ends it; destroys `dest` if the answer breaks off. */
  pipe(dest: Writable): void {
    if (this.dest || this.waiting) throw new Error('an answer body has one consumer');
    this.dest = dest;
    for (const chunk of this.early.splice(0)) dest.write(chunk);
    if (this.failure) dest.destroy(this.failure);
    else if (this.ended) dest.end();
  }

  /** The first `limit` bytes of the whole body, once it has arrived. */
  read(limit: number): Promise<Buffer> {
    if (this.dest || this.waiting) throw new Error('an answer body has one consumer');
    if (this.failure) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve(this.collected(limit));
    return new Promise((resolve, reject) => { this.waiting = { limit, resolve, reject }; });
  }

  private collected(limit: number): Buffer {
    const body = Buffer.concat(this.early.splice(0));
    return body.length > limit ? body.subarray(0, limit) : body;
  }
}
