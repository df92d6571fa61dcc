// Private images: htpasswd basic auth and the bearer-token flow, both on a
// real docker-registry.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage, pushImage, type BuiltImage } from '../../images/index.ts';
import { ImagePullError } from '../../node-agent/src/image/index.ts';
import { startRegistry, type TestRegistry } from '../harness/registry.ts';
import { makeStore, type TestStore } from './helpers.ts';
import { startTokenServer, type TokenServer } from './token-server.ts';

const alice = { username: 'alice', password: 's3cret-pass' };
let image: BuiltImage;

beforeAll(async () => {
  image = await buildImage({ layers: [{ files: { 'secret.txt': 'private\n' } }], config: { Cmd: ['cat', '/secret.txt'] } });
});

describe('basic auth (htpasswd)', () => {
  let registry: TestRegistry;
  let store: TestStore;
  beforeAll(async () => {
    registry = await startRegistry({ users: [alice] });
    store = await makeStore();
    await pushImage(registry.host, 'team/private', 'v1', image, { credentials: alice });
  });
  afterAll(async () => {
    try {
      await store?.cleanup();
    } finally {
      await registry?.stop();
    }
  });

  it('refuses a pull without credentials, saying unauthorized', async () => {
    const err = await store.service.pull(`${registry.host}/team/private:v1`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImagePullError);
    expect((err as Error).message).toBe(`pull ${registry.host}/team/private:v1: unauthorized: authentication required`);
  });

  it('refuses wrong credentials', async () => {
    const err = await store.service.pull(`${registry.host}/team/private:v1`, { credentials: { username: 'alice', password: 'nope' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImagePullError);
    expect((err as Error).message).toMatch(/unauthorized/);
  });

  it('pulls with credentials given to the pull', async () => {
    const pulled = await store.service.pull(`${registry.host}/team/private:v1`, { credentials: alice });
    expect(pulled.digest).toBe(image.digest);
  });

  it('pulls with per-registry credentials from the service options', async () => {
    const other = await makeStore({ credentials: { [registry.host]: alice } });
    try {
      const pulled = await other.service.pull(`${registry.host}/team/private:v1`);
      expect(pulled.config.cmd).toEqual(['cat', '/secret.txt']);
    } finally {
      await other.cleanup();
    }
  });
});

describe('bearer tokens', () => {
  let tokens: TokenServer;
  let registry: TestRegistry;
  let store: TestStore;
  beforeAll(async () => {
    tokens = await startTokenServer({ [alice.username]: alice.password });
    registry = await startRegistry({ token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certFile } });
    store = await makeStore();
    await pushImage(registry.host, 'team/tokened', 'v1', image, { credentials: alice });
  });
  afterAll(async () => {
    try {
      await store?.cleanup();
    } finally {
      await registry?.stop();
      await tokens?.stop();
    }
  });

  it('gets a token for the scope from the realm and pulls', async () => {
    const before = tokens.requests.length;
    const pulled = await store.service.pull(`${registry.host}/team/tokened:v1`, { credentials: alice });
    expect(pulled.digest).toBe(image.digest);
    const asked = tokens.requests.slice(before);
    expect(asked.length).toBeGreaterThanOrEqual(1);
    expect(asked[0]).toBe('alice repository:team/tokened:pull');
  });

  it('an anonymous token without access is refused as unauthorized', async () => {
    const other = await makeStore();
    try {
      const err = await other.service.pull(`${registry.host}/team/tokened:v1`).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ImagePullError);
      expect((err as Error).message).toMatch(new RegExp(`^pull ${registry.host}/team/tokened:v1: unauthorized`));
    } finally {
      await other.cleanup();
    }
  });

  it('bad credentials are refused by the token server', async () => {
    const other = await makeStore();
    try {
      const err = await other.service.pull(`${registry.host}/team/tokened:v1`, { credentials: { username: 'alice', password: 'x' } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ImagePullError);
      expect((err as Error).message).toMatch(/token from http:\/\/127\.0\.0\.1:\d+: unauthorized: incorrect username or password/);
    } finally {
      await other.cleanup();
    }
  });
});
