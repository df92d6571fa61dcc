// The README's curl example, run as written against a running all-in-one (only
// its address and state directory swapped for this test's).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAllInOne, type AllInOne } from '../harness/allinone.ts';

const readme = readFileSync(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../README.md'), 'utf8');
let aio: AllInOne;

beforeAll(async () => {
  aio = await startAllInOne();
}, 180_000);

afterAll(async () => {
  await aio?.stop();
});

/** curl prints JSON bodies back to back: split them where the top-level value ends. */
function jsonDocuments(text: string): any[] {
  const out: any[] = [];
  let depth = 0, start = -1, inString = false, escaped = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') { if (depth++ === 0) start = i; }
    else if (c === '}' || c === ']') { if (--depth === 0) out.push(JSON.parse(text.slice(start, i + 1))); }
  }
  return out;
}

function shellBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

it('the README has the two quick-start command lines', () => {
  const first = shellBlocks(readme)[0]!.trim().split('\n').map((l) => l.replace(/\s+#.*$/, ''));
  expect(first).toEqual(['npm ci && npm start', 'npm ci && npm test']);
  expect(readFileSync(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../.ci/run'), 'utf8')).toContain('npm ci && npm test');
});

it('the README curl example registers, runs, and shows status and logs', () => {
  const example = shellBlocks(readme).find((b) => b.includes('/v1/task-definitions'));
  expect(example).toBeDefined();
  const script = example!
    .replaceAll('.berth/admin-key', path.join(aio.stateDir, 'admin-key'))
    .replaceAll('http://127.0.0.1:8080', aio.url);
  const output = execFileSync('bash', ['-euo', 'pipefail', '-c', script], { encoding: 'utf8', timeout: 60_000 });
  const documents = jsonDocuments(output);
  const task = documents[documents.length - 2];
  const logs = documents[documents.length - 1];
  expect(task).toMatchObject({ family: 'hello', lastStatus: 'STOPPED', exitCode: 3 });
  expect(logs.events.map((e: { message: string }) => e.message)).toContain('hello from berth');
}, 90_000);
