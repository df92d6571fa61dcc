// The HTTP client of the CLI: JSON in, JSON out, the API's errors as ApiError
// (with the exit code their status maps to), a refused connection as exit 5.
import { ApiError, CliError, EXIT } from './errors.ts';
import type { CliConfig } from './config.ts';

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  /** Sent as is instead of `body` as JSON; set the content-type in `headers`. */
  rawBody?: RequestInit['body'];
  headers?: Record<string, string>;
  /** Milliseconds before giving up on the answer's headers. @defaultValue 30000 */
  timeoutMs?: number;
}

export interface ApiClient {
  readonly endpoint: string;
  request<T = unknown>(method: string, route: string, options?: RequestOptions): Promise<T>;
  /** A streamed answer (e.g. `application/x-ndjson`), checked for an error status first. */
  stream(route: string, options?: RequestOptions & { signal?: AbortSignal }): Promise<Response>;
  /** Any method; the answer as it came, checked for an error status first. */
  raw(method: string, route: string, options?: RequestOptions & { signal?: AbortSignal }): Promise<Response>;
}

/** Why a connection failed, from fetch's `cause` chain: `ECONNREFUSED 127.0.0.1:8080`. */
function connectReason(err: unknown): string {
  let e: unknown = err;
  for (let i = 0; i < 5 && e; i++) {
    const c = e as { code?: string; message?: string; cause?: unknown; name?: string };
    if (c.name === 'TimeoutError') return 'timed out';
    if (c.code && c.code !== 'UND_ERR_SOCKET' && /^E[A-Z]+$/.test(c.code)) return c.code;
    if (!c.cause) return c.message ?? String(e);
    e = c.cause;
  }
  return String(err);
}

export function createClient(config: CliConfig): ApiClient {
  const endpoint = config.endpoint.value;
  const apiKey = config.apiKey.value;

  const url = (route: string, query?: Query) => {
    const u = new URL(endpoint + route);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
    return u;
  };

  async function send(method: string, route: string, o: RequestOptions & { signal?: AbortSignal } = {}): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json', ...o.headers };
    if (apiKey) headers.authorization = `Bearer ${apiKey}`;
    if (o.body !== undefined) headers['content-type'] = 'application/json';
    const timeout = AbortSignal.timeout(o.timeoutMs ?? 30_000);
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(url(route, o.query), {
          method,
          headers,
          body: o.rawBody ?? (o.body === undefined ? undefined : JSON.stringify(o.body)),
          signal: o.signal ? AbortSignal.any([o.signal, timeout]) : timeout,
        });
      } catch (err) {
        if (o.signal?.aborted) throw err;
        throw new CliError(`cannot connect to ${endpoint}: ${connectReason(err)}`, EXIT.CONNECT);
      }
      // Over the key's rate limit: wait as told, a few times, then report it.
      if (res.status === 429 && attempt < 3) {
        const wait = Math.min(5, Number(res.headers.get('retry-after')) || 1);
        await res.body?.cancel();
        await new Promise((r) => setTimeout(r, wait * 1000));
        continue;
      }
      if (!res.ok) throw await toApiError(res);
      return res;
    }
  }

  async function toApiError(res: Response): Promise<ApiError> {
    const text = await res.text().catch(() => '');
    let code = `HTTP_${res.status}`;
    let message = text.trim().slice(0, 500) || res.statusText || `HTTP ${res.status}`;
    try {
      const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
      if (body.error?.message) message = body.error.message;
      if (body.error?.code) code = body.error.code;
    } catch { /* not JSON: keep the text */ }
    if (res.status === 401 && !apiKey) {
      message += ' (no API key: set BERTH_API_KEY, pass --api-key, or write ~/.config/berth/config.json)';
    }
    return new ApiError(res.status, code, message);
  }

  return {
    endpoint,
    async request<T>(method: string, route: string, o: RequestOptions = {}): Promise<T> {
      const res = await send(method, route, o);
      if (res.status === 204) return undefined as T;
      const text = await res.text();
      if (!text) return undefined as T;
      try {
        return JSON.parse(text) as T;
      } catch {
        return text as T;
      }
    },
    stream: (route, o = {}) => send('GET', route, { timeoutMs: 2 ** 31 - 1, ...o }),
    raw: (method, route, o = {}) => send(method, route, o),
  };
}
