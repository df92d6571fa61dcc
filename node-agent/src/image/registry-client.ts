// A client of the OCI Distribution API (v2) for one registry: plain HTTP for
// loopback and insecure registries, https otherwise; anonymous, basic auth and
// the bearer-token flow (a 401 with `WWW-Authenticate: Bearer realm=…` sends us
// to the realm for a token for the scope, then we retry once).
import { isLoopbackHost } from './reference.ts';

export interface Credentials {
  username: string;
  password: string;
}

export interface RegistryClientOptions {
  /** host[:port] */
  registry: string;
  credentials?: Credentials;
  /** Hosts allowed over plain HTTP besides loopback ones. */
  insecureRegistries?: string[];
  /** Milliseconds before a request that sent no response headers is abandoned. */
  timeoutMs?: number;
}

/** An error answer from a registry, with its reason as the registry put it. */
export class RegistryError extends Error {
  readonly status: number;
  readonly code: string | undefined;
  constructor(message: string, status: number, code?: string) {
    super(message);
    this.name = 'RegistryError';
    this.status = status;
    this.code = code;
  }
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  const re = /\s*([A-Za-z]+)\s+((?:[a-zA-Z0-9_.-]+=(?:"(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?\s*)*)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(header)) !== null) {
    const params: Record<string, string> = {};
    const pre = /([a-zA-Z0-9_.-]+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
    let p: RegExpExecArray | null;
    while ((p = pre.exec(m[2] ?? '')) !== null) params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
    out.push({ scheme: m[1]!.toLowerCase(), params });
    if (m[0].length === 0) break;
  }
  return out;
}

/** The registry's own words for a failed answer: `manifest unknown`, `unauthorized: authentication required`. */
export async function registryErrorFrom(res: Response, what: string): Promise<RegistryError> {
  let text = '';
  try { text = (await res.text()).slice(0, 4096); } catch { /* body lost */ }
  let message = '';
  let code: string | undefined;
  try {
    const body = JSON.parse(text) as { errors?: { code?: string; message?: string; detail?: unknown }[]; details?: string; error?: string };
    const first = body.errors?.[0];
    if (first) {
      code = first.code;
      message = first.message ?? first.code ?? '';
      if (code === 'UNAUTHORIZED' || code === 'DENIED') message = `${code.toLowerCase()}: ${message}`;
    } else if (body.details || body.error) message = String(body.details ?? body.error);
  } catch { /* not JSON */ }
  if (!message) {
    if (res.status === 401) message = 'unauthorized: authentication required';
    else if (res.status === 403) message = 'denied: requested access to the resource is denied';
    else if (res.status === 404) message = `${what} not found`;
    else message = `${what}: HTTP ${res.status}${text ? ` ${text.trim().slice(0, 200)}` : ''}`;
  }
  return new RegistryError(message, res.status, code);
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer;
  /** The token scope, e.g. `repository:foo/bar:pull`. */
  scope: string;
  /** Follow redirects (blob downloads may go to storage elsewhere). */
  redirect?: 'follow' | 'manual';
  signal?: AbortSignal;
}

export class RegistryClient {
  readonly registry: string;
  readonly baseUrl: string;
  private readonly credentials: Credentials | undefined;
  private readonly timeoutMs: number;
  /** Authorization header per scope, with its expiry. */
  private readonly auth = new Map<string, { header: string; expires: number }>();
  private readonly tokenFetches = new Map<string, Promise<string>>();

  constructor(options: RegistryClientOptions) {
    this.registry = options.registry;
    const plain = isLoopbackHost(options.registry) || (options.insecureRegistries ?? []).includes(options.registry);
    this.baseUrl = `${plain ? 'http' : 'https'}://${options.registry}`;
    this.credentials = options.credentials;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  url(path: string): string {
    return path.startsWith('http://') || path.startsWith('https://') ? path : `${this.baseUrl}${path}`;
  }

  /** One request; on a 401 challenge authenticates for the scope and retries once. */
  async request(path: string, options: RequestOptions): Promise<Response> {
    const first = await this.send(path, options, this.cachedAuth(options.scope));
    if (first.status !== 401) return first;
    const challenge = first.headers.get('www-authenticate');
    if (!challenge) return first;
    const header = await this.authenticate(challenge, options.scope);
    if (!header) return first;
    await first.body?.cancel().catch(() => undefined);
    return this.send(path, options, header);
  }

  private async send(path: string, options: RequestOptions, authorization: string | undefined): Promise<Response> {
    const headers: Record<string, string> = { 'user-agent': 'berth/0.1', ...options.headers };
    if (authorization) headers.authorization = authorization;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const controller = new AbortController();
    const onAbort = () => controller.abort((options.signal?.reason as unknown) ?? timeout.reason);
    timeout.addEventListener('abort', onAbort, { once: true });
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const res = await fetch(this.url(path), {
        method: options.method ?? 'GET',
        headers,
        body: options.body as unknown as RequestInit['body'],
        redirect: options.redirect ?? 'follow',
        signal: controller.signal,
      });
      // The timeout bounds waiting for the answer's headers, not a long body.
      timeout.removeEventListener('abort', onAbort);
      return res;
    } catch (err) {
      timeout.removeEventListener('abort', onAbort);
      throw new RegistryError(describeFetchError(err, this.baseUrl), 0);
    }
  }

  private cachedAuth(scope: string): string | undefined {
    const hit = this.auth.get(scope);
    if (hit && hit.expires > Date.now()) return hit.header;
    if (!hit && this.basicPreferred) return this.basicHeader();
    return undefined;
  }

  private basicPreferred = false;

  private basicHeader(): string | undefined {
    if (!this.credentials) return undefined;
    return `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString('base64')}`;
  }

  private async authenticate(header: string, scope: string): Promise<string | undefined> {
    const challenges = parseChallenges(header);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer?.params.realm) {
      const key = `${scope}`;
      let pending = this.tokenFetches.get(key);
      if (!pending) {
        pending = this.fetchToken(bearer.params, scope).finally(() => this.tokenFetches.delete(key));
        this.tokenFetches.set(key, pending);
      }
      return pending;
    }
    if (challenges.some((c) => c.scheme === 'basic')) {
      const basic = this.basicHeader();
      if (!basic) return undefined;
      this.basicPreferred = true;
      this.auth.set(scope, { header: basic, expires: Number.MAX_SAFE_INTEGER });
      return basic;
    }
    return undefined;
  }

  private async fetchToken(params: Record<string, string>, scope: string): Promise<string> {
    const realm = new URL(params.realm!);
    if (params.service) realm.searchParams.set('service', params.service);
    // Ask for the scope we need; the challenge's own scope when it names one.
    const scopes = new Set([scope, ...(params.scope ? params.scope.split(' ') : [])]);
    for (const s of scopes) realm.searchParams.append('scope', s);
    const headers: Record<string, string> = { 'user-agent': 'berth/0.1' };
    const basic = this.basicHeader();
    if (basic) headers.authorization = basic;
    let res: Response;
    try {
      res = await fetch(realm, { headers, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      throw new RegistryError(`token from ${realm.origin}: ${describeFetchError(err, realm.origin)}`, 0);
    }
    if (!res.ok) {
      const err = await registryErrorFrom(res, 'token');
      const reason = res.status === 401 || res.status === 403 ? `unauthorized: ${err.message.replace(/^unauthorized: /, '')}` : err.message;
      throw new RegistryError(`token from ${realm.origin}: ${reason}`, res.status, err.code);
    }
    const body = (await res.json()) as { token?: string; access_token?: string; expires_in?: number };
    const token = body.token ?? body.access_token;
    if (!token) throw new RegistryError(`token from ${realm.origin}: answer has no token`, res.status);
    const header = `Bearer ${token}`;
    const lifetime = Math.max(30, Number(body.expires_in) || 60) * 1000;
    this.auth.set(scope, { header, expires: Date.now() + lifetime - 10_000 });
    return header;
  }
}

const NETWORK_ERRORS: Record<string, string> = {
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'name lookup failed',
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed',
  CERT_HAS_EXPIRED: 'TLS certificate has expired',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed TLS certificate',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'TLS certificate not trusted',
  ERR_SSL_WRONG_VERSION_NUMBER: 'not a TLS server (an insecure registry? list it in BERTH_INSECURE_REGISTRIES)',
};

function describeFetchError(err: unknown, origin: string): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `cannot reach ${origin}: request timed out`;
  const cause = e?.cause;
  const code = cause?.code;
  if (code) return `cannot reach ${origin}: ${NETWORK_ERRORS[code] ?? cause?.message ?? code} (${code})`;
  // fetch() refuses some ports outright (the Fetch standard's "bad ports").
  const reason = cause?.message ?? e?.message ?? String(err);
  return `cannot reach ${origin}: ${reason === 'bad port' ? 'fetch refuses this port (a Fetch-standard blocked port); use another port' : reason}`;
}
