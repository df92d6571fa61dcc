// Builds the example functions' images offline (images/ lib: this machine's
// node binary and its libraries, a static C binary built with musl-gcc) and
// pushes them to a registry:
//   npx tsx functions-examples/build.ts --registry 127.0.0.1:5000 [--name berth/fn-hello:latest ...] [--list]
// The all-in-one pushes them at start too (pushFunctionExamples).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildImageCached, nodeFiles, pushImage, type BuiltImage, type PushOptions } from '../images/index.ts';
import { GROUP, PASSWD } from '../images/lib/recipes.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The static example's binary, compiled once per source (musl-gcc, else gcc -static). */
export function staticServerBinary(): string {
  const source = path.join(here, 'static-c', 'server.c');
  const hash = createHash('sha256').update(readFileSync(source)).digest('hex').slice(0, 16);
  const dir = path.join(os.tmpdir(), 'berth-fn-examples');
  const out = path.join(dir, `server-${hash}`);
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true });
  const tmp = `${out}.${process.pid}`;
  const flags = ['-static', '-Os', '-s', '-o', tmp, source];
  try {
    execFileSync('musl-gcc', flags, { stdio: 'pipe' });
  } catch {
    execFileSync('gcc', flags, { stdio: 'pipe' });
  }
  renameSync(tmp, out);
  return out;
}

const nodeExample = (dir: string) => () => buildImageCached({
  // The same first layer as berth/node:20, so registries and agents keep it once.
  layers: [{ files: nodeFiles() }, { files: { 'app/index.mjs': readFileSync(path.join(here, dir, 'index.mjs')) } }],
  config: { Entrypoint: ['node'], Cmd: ['/app/index.mjs'], ExposedPorts: ['8080/tcp'], Env: ['PORT=8080', 'PATH=/usr/bin:/bin'] },
});

/** Each example's image name and recipe. */
export const FUNCTION_EXAMPLES: Record<string, () => Promise<BuiltImage>> = {
  'berth/fn-hello:latest': nodeExample('hello-node'),
  'berth/fn-cpu:latest': nodeExample('cpu-node'),
  'berth/fn-memory:latest': nodeExample('memory-node'),
  'berth/fn-worker:latest': nodeExample('async-worker'),
  'berth/fn-static:latest': () => buildImageCached({
    layers: [{
      files: {
        server: { source: staticServerBinary(), mode: 0o755 },
        'etc/passwd': PASSWD,
        'etc/group': GROUP,
        tmp: { type: 'dir', mode: 0o1777 },
      },
    }],
    config: { Entrypoint: ['/server'], ExposedPorts: ['8080/tcp'], Env: ['PORT=8080'] },
  }),
};

/** Builds and pushes the examples (or those named); returns `reference@digest` of each. */
export async function pushFunctionExamples(registry: string, options: PushOptions & { names?: string[] } = {}): Promise<string[]> {
  const pushed: string[] = [];
  for (const name of options.names ?? Object.keys(FUNCTION_EXAMPLES)) {
    const recipe = FUNCTION_EXAMPLES[name];
    if (!recipe) throw new Error(`no function example "${name}" (have: ${Object.keys(FUNCTION_EXAMPLES).join(', ')})`);
    const colon = name.lastIndexOf(':');
    const result = await pushImage(registry, name.slice(0, colon), name.slice(colon + 1), await recipe(), options);
    pushed.push(`${result.reference}@${result.digest}`);
  }
  return pushed;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      registry: { type: 'string', default: process.env.BERTH_REGISTRY ?? '127.0.0.1:5000' },
      name: { type: 'string', multiple: true },
      list: { type: 'boolean' },
      insecure: { type: 'string', multiple: true },
    },
  });
  if (values.list) {
    process.stdout.write(Object.keys(FUNCTION_EXAMPLES).join('\n') + '\n');
    return;
  }
  const started = Date.now();
  const pushed = await pushFunctionExamples(values.registry!, { names: values.name, insecureRegistries: values.insecure });
  process.stdout.write(`${pushed.join('\n')}\n(${Date.now() - started} ms)\n`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`functions-examples/build: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
