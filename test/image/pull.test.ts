// Pulls from a real docker-registry: OCI and Docker manifests, gzip layers,
// the image config, an overlay rootfs, and clear errors.
import { lstat, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage, busyboxImage, pushImage } from '../../images/index.ts';
import { ImagePullError } from '../../node-agent/src/image/index.ts';
import { startRegistry, type TestRegistry } from '../harness/registry.ts';
import { makeStore, type TestStore } from './helpers.ts';

let registry: TestRegistry;
let store: TestStore;

beforeAll(async () => {
  registry = await startRegistry();
  store = await makeStore({ defaultRegistry: registry.host });
});

afterAll(async () => {
  try {
    await store?.cleanup();
  } finally {
    await registry?.stop();
  }
});

describe('pull', () => {
  it('pulls busybox (OCI, gzip) by tag and mounts a rootfs', async () => {
    const image = await busyboxImage();
    await pushImage(registry.host, 'berth/busybox', 'latest', image);
    const progress: number[] = [];
    const pulled = await store.service.pull(`${registry.host}/berth/busybox:latest`, { onProgress: (p) => progress.push(p.bytesDone) });
    expect(pulled.digest).toBe(image.digest);
    expect(pulled.config.cmd).toEqual(['sh']);
    expect(pulled.layers).toHaveLength(1);
    expect(progress.at(-1)).toBe(image.layers[0]!.size);
    const rootfs = await store.service.mountRootfs('c1', pulled);
    expect((await stat(path.join(rootfs, 'bin/busybox'))).mode & 0o777).toBe(0o755);
    expect(await readlink(path.join(rootfs, 'bin/sh'))).toBe('busybox');
    expect(await readFile(path.join(rootfs, 'etc/passwd'), 'utf8')).toContain('root:x:0:0');
    expect((await stat(path.join(rootfs, 'tmp'))).mode & 0o7777).toBe(0o1777);
    // Writes go to the container's upper dir, never to the shared layer.
    await writeFile(path.join(rootfs, 'etc/hello'), 'hi');
    await expect(lstat(path.join(pulled.layers[0]!, 'etc/hello'))).rejects.toThrow();
    await store.service.removeRootfs('c1');
    await expect(lstat(rootfs)).rejects.toThrow();
    await store.service.removeRootfs('c1');
  });

  it('pulls by digest, a Docker schema-2 manifest, without a registry in the name', async () => {
    const image = await buildImage({
      format: 'docker',
      layers: [{ files: { 'hello.txt': 'hello\n', 'bin/x': { content: '#!/bin/sh\n', mode: 0o755 } } }],
      config: { Entrypoint: ['/bin/x'], Cmd: ['a'], Env: ['A=1'], WorkingDir: '/work', User: '1000:1000', ExposedPorts: ['8080/tcp'], Volumes: ['/data'] },
    });
    await pushImage(registry.host, 'docker/fmt', 'v1', image);
    const pulled = await store.service.pull(`docker/fmt@${image.digest}`);
    expect(pulled.reference).toBe(`${registry.host}/docker/fmt@${image.digest}`);
    expect(pulled.config).toEqual({ entrypoint: ['/bin/x'], cmd: ['a'], env: ['A=1'], workingDir: '/work', user: '1000:1000', exposedPorts: ['8080/tcp'], volumes: ['/data'] });
    expect(await readFile(path.join(pulled.layers[0]!, 'hello.txt'), 'utf8')).toBe('hello\n');
  });

  it('builds deterministically: same inputs, same digests', async () => {
    const a = await busyboxImage({ cache: false });
    const b = await busyboxImage({ cache: false });
    expect(a.digest).toBe(b.digest);
    expect(a.layers[0]!.digest).toBe(b.layers[0]!.digest);
  });

  it('says what the registry says when a tag is unknown', async () => {
    const err = await store.service.pull(`${registry.host}/nothing/here:nope`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImagePullError);
    expect((err as Error).message).toBe(`pull ${registry.host}/nothing/here:nope: manifest unknown`);
  });

  it('refuses invalid references clearly', async () => {
    const err = await store.service.pull('UPPER/case:tag').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImagePullError);
    expect((err as Error).message).toMatch(/invalid image reference "UPPER\/case:tag"/);
  });

  it('sends Docker Hub names to registry-1.docker.io when there is no default registry', async () => {
    const hub = await makeStore();
    try {
      const err = await hub.service.pull('busybox').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ImagePullError);
      expect((err as Error).message).toMatch(/^pull registry-1\.docker\.io\/library\/busybox:latest: cannot reach https:\/\/registry-1\.docker\.io: /);
    } finally {
      await hub.cleanup();
    }
  });

  it('uses plain HTTP only for loopback and configured insecure registries', async () => {
    const insecure = await makeStore({ insecureRegistries: ['registry.invalid:5000'] });
    try {
      await expect(insecure.service.pull('registry.invalid:5000/x:y')).rejects.toThrow(/cannot reach http:\/\/registry\.invalid:5000: /);
      await expect(insecure.service.pull('other.invalid:5000/x:y')).rejects.toThrow(/cannot reach https:\/\/other\.invalid:5000: /);
    } finally {
      await insecure.cleanup();
    }
  });
});
