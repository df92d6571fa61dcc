// A tiny token server for the registry's bearer-token auth: it signs JWTs
// (ES256, with the certificate in the x5c header) that the real docker-registry
// checks against the certificate bundle in its config.
import { execFileSync } from 'node:child_process';
import { createPrivateKey, randomBytes, sign, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  certFile: string;
  /** Token requests seen, as "user scope…". */
  requests: string[];
  stop(): Promise<void>;
}

const b64url = (b: Buffer) => b.toString('base64url');

/** users: name → password; a known user gets every action asked for, anyone else nothing. */
export async function startTokenServer(users: Record<string, string>): Promise<TokenServer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'berth-token-'));
  try {
    const keyFile = path.join(dir, 'key.pem');
    const certFile = path.join(dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=berth-test-token'], { stdio: 'ignore' });
    const key = createPrivateKey(await readFile(keyFile));
    const cert = new X509Certificate(await readFile(certFile));
    const service = 'berth-test-registry';
    const issuer = 'berth-test-issuer';
    const requests: string[] = [];
    const server = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      let user = '';
      const auth = req.headers.authorization;
      if (auth?.startsWith('Basic ')) {
        const [u, p] = Buffer.from(auth.slice(6), 'base64').toString().split(':');
        if (!u || users[u] === undefined || users[u] !== p) {
          res.writeHead(401, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ details: 'incorrect username or password' }));
          return;
        }
        user = u;
      }
      const scopes = url.searchParams.getAll('scope');
      requests.push(`${user || '-'} ${scopes.join(' ')}`);
      const access = user ? scopes.map((s) => {
        const [type, name, actions] = s.split(':');
        return { type, name, actions: (actions ?? '').split(',').filter(Boolean) };
      }) : [];
      const now = Math.floor(Date.now() / 1000);
      const headerJson = { alg: 'ES256', typ: 'JWT', x5c: [cert.raw.toString('base64')] };
      const claims = { iss: issuer, sub: user, aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access };
      const signing = `${b64url(Buffer.from(JSON.stringify(headerJson)))}.${b64url(Buffer.from(JSON.stringify(claims)))}`;
      const signature = sign('sha256', Buffer.from(signing), { key, dsaEncoding: 'ieee-p1363' });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token: `${signing}.${b64url(signature)}`, expires_in: 300 }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const { port } = server.address() as AddressInfo;
    return {
      realm: `http://127.0.0.1:${port}/token`,
      service,
      issuer,
      certFile,
      requests,
      stop: async () => {
        await new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); });
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
