// A loopback HTTP proxy in front of the test registry: counts requests and can
// change blob bodies on the way (to prove digests are checked).
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxyRequest {
  method: string;
  url: string;
}

export interface TestProxy {
  host: string;
  requests: ProxyRequest[];
  /** GETs of /v2/<repo>/blobs/<digest>, by digest. */
  blobGets(): Map<string, number>;
  stop(): Promise<void>;
}

export interface ProxyOptions {
  /** Rewrites a blob's body (GET /v2/.../blobs/<digest>) before it reaches the client. */
  transformBlob?: (digest: string, body: Buffer) => Buffer;
  /** Milliseconds to hold every blob answer (makes concurrent pulls overlap). */
  blobDelayMs?: number;
}

export async function startProxy(target: string, options: ProxyOptions = {}): Promise<TestProxy> {
  const [targetHost, targetPort] = target.split(':') as [string, string];
  const requests: ProxyRequest[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? 'GET', url: req.url ?? '' });
    const blob = /^\/v2\/.+\/blobs\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? '');
    const upstream = http.request({ host: targetHost, port: Number(targetPort), method: req.method, path: req.url, headers: { ...req.headers, host: target } }, async (up) => {
      if (blob && req.method === 'GET' && up.statusCode === 200 && (options.transformBlob || options.blobDelayMs)) {
        const chunks: Buffer[] = [];
        for await (const c of up) chunks.push(c as Buffer);
        let body: Buffer = Buffer.concat(chunks);
        if (options.transformBlob) body = options.transformBlob(blob[1]!, body);
        if (options.blobDelayMs) await new Promise((r) => setTimeout(r, options.blobDelayMs));
        res.writeHead(200, { ...up.headers, 'content-length': String(body.length) });
        res.end(body);
        return;
      }
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', (err) => { res.writeHead(502); res.end(String(err)); });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    requests,
    blobGets: () => {
      const counts = new Map<string, number>();
      for (const r of requests) {
        const m = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(r.url);
        if (m && r.method === 'GET') counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
      }
      return counts;
    },
    stop: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
