// Image references as Docker reads them.
import { describe, expect, it } from 'vitest';
import { parseReference } from '../../node-agent/src/image/index.ts';

describe('parseReference', () => {
  const cases: [string, string | undefined, { registry: string; repository: string; tag?: string; digest?: string }][] = [
    ['busybox', undefined, { registry: 'registry-1.docker.io', repository: 'library/busybox', tag: 'latest' }],
    ['docker.io/library/node:20', undefined, { registry: 'registry-1.docker.io', repository: 'library/node', tag: '20' }],
    ['me/app:v1', undefined, { registry: 'registry-1.docker.io', repository: 'me/app', tag: 'v1' }],
    ['me/app:v1', '127.0.0.1:5000', { registry: '127.0.0.1:5000', repository: 'me/app', tag: 'v1' }],
    ['busybox', '127.0.0.1:5000', { registry: '127.0.0.1:5000', repository: 'busybox', tag: 'latest' }],
    ['localhost/x', undefined, { registry: 'localhost', repository: 'x', tag: 'latest' }],
    ['localhost:5000/a/b/c:1.2-rc_3', undefined, { registry: 'localhost:5000', repository: 'a/b/c', tag: '1.2-rc_3' }],
    ['quay.io/org/img@sha256:' + 'a'.repeat(64), undefined, { registry: 'quay.io', repository: 'org/img', digest: 'sha256:' + 'a'.repeat(64) }],
    ['[::1]:5000/x:y@sha256:' + 'b'.repeat(64), undefined, { registry: '[::1]:5000', repository: 'x', tag: 'y', digest: 'sha256:' + 'b'.repeat(64) }],
    ['my_org/my.app__x-y', 'r.example:443', { registry: 'r.example:443', repository: 'my_org/my.app__x-y', tag: 'latest' }],
  ];
  for (const [input, def, want] of cases) {
    it(`reads ${input}${def ? ` (default ${def})` : ''}`, () => {
      const ref = parseReference(input, def);
      expect({ registry: ref.registry, repository: ref.repository, tag: ref.tag, digest: ref.digest }).toEqual({ tag: undefined, digest: undefined, ...want });
    });
  }

  for (const bad of ['', 'UPPER', 'a//b', 'x:', 'x@sha256:123', 'x:tag:tag', '-x', 'x/', 'x y', 'host:5000/UP:x', 'a'.repeat(300)]) {
    it(`refuses ${JSON.stringify(bad.slice(0, 20))}`, () => {
      expect(() => parseReference(bad)).toThrow(/invalid image reference/);
    });
  }
});
