// berth-runtime's C unit tests (JSON reader, signal names, ids, errors, path
// resolution inside a root with openat2 and with the fallback walk), run through
// make so `npx vitest run test/runtime` covers both layers.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

it('berth-runtime C unit tests pass', () => {
  const r = spawnSync('make', ['-s', '-C', path.join(repo, 'native/runtime'), 'check', `BUILD=${path.join(repo, 'native/build')}`], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.stdout).toMatch(/^\d+ passed, 0 failed$/m);
  expect(r.status).toBe(0);
});
