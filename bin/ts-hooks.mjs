// Module hooks that run Berth's TypeScript on Node: each .ts file is stripped of
// its types by esbuild, file by file, as tsx does, but without tsx's keepNames
// (a call to Object.defineProperty for every named function and class each time
// one is created: 20-30 per request on the function gateway's path). Results are
// cached under node_modules/.cache/berth-ts/, keyed by the source and the
// options, so a start transforms only the files changed since the last one.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import process from 'node:process';
import { fileURLToPath, URL } from 'node:url';
import { transform, version } from 'esbuild';

const cacheDir = fileURLToPath(new URL('../node_modules/.cache/berth-ts/', import.meta.url));
const options = { loader: 'ts', format: 'esm', target: `node${process.versions.node}`, sourcemap: 'inline', keepNames: false };
let cacheWritable = true;

export async function load(url, context, nextLoad) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return nextLoad(url, context);
  const file = fileURLToPath(url);
  const source = await readFile(file, 'utf8');
  const key = createHash('sha256').update(JSON.stringify([version, options, file])).update(source).digest('hex');
  const cached = `${cacheDir}${key}.js`;
  try {
    return { format: 'module', source: await readFile(cached, 'utf8'), shortCircuit: true };
  } catch {
    // not transformed yet
  }
  const { code } = await transform(source, { ...options, sourcefile: file });
  if (cacheWritable) {
    try {
      await mkdir(cacheDir, { recursive: true });
      const partial = `${cached}.${process.pid}.tmp`;
      await writeFile(partial, code);
      await rename(partial, cached);
    } catch {
      cacheWritable = false; // a read-only install: transform on every start
    }
  }
  return { format: 'module', source: code, shortCircuit: true };
}
