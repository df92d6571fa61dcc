// The project's stock images, from what this machine has: busybox-static and
// the host's node with the shared libraries it needs.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { buildImageCached } from './cache.ts';
import { buildImage, type BuildImageOptions, type BuiltImage } from './image.ts';
import type { FileSpec } from './layer.ts';

export const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n';
export const GROUP = 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n';

const base = (): Record<string, FileSpec> => ({
  'etc/passwd': PASSWD,
  'etc/group': GROUP,
  tmp: { type: 'dir', mode: 0o1777 },
  root: { type: 'dir', mode: 0o700 },
  proc: { type: 'dir' },
  sys: { type: 'dir' },
  dev: { type: 'dir' },
});

/** busybox-static as /bin/busybox, every applet a symlink to it, and a minimal /etc. */
export function busyboxFiles(busybox = '/bin/busybox'): Record<string, FileSpec> {
  const applets = execFileSync(busybox, ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => a && a !== 'busybox').sort();
  const files: Record<string, FileSpec> = { ...base(), 'bin/busybox': { source: busybox, mode: 0o755 } };
  for (const a of applets) files[`bin/${a}`] = { type: 'symlink', target: 'busybox' };
  files['usr/bin'] = { type: 'dir' };
  return files;
}

/** Built once per machine (see cache.ts) unless `cache: false`. */
export function busyboxImage(options: Partial<BuildImageOptions> & { cache?: boolean } = {}): Promise<BuiltImage> {
  const { cache = true, ...rest } = options;
  const build = { layers: [{ files: busyboxFiles() }], config: { Cmd: ['sh'] }, ...rest };
  return cache ? buildImageCached(build) : buildImage(build);
}

/** The shared libraries and loader `ldd` lists for a binary (real files, at the paths the binary asks for). */
export function sharedLibraries(binary: string): string[] {
  const out = execFileSync('ldd', [binary], { encoding: 'utf8' });
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  return [...new Set(libs)].sort();
}

/** The host's node binary, its libraries and loader, and a minimal /etc. */
export function nodeFiles(node = '/usr/bin/node'): Record<string, FileSpec> {
  const files: Record<string, FileSpec> = { ...base(), 'usr/bin/node': { source: fs.realpathSync(node), mode: 0o755 } };
  for (const lib of sharedLibraries(node)) files[lib.slice(1)] = { source: fs.realpathSync(lib), mode: 0o755 };
  return files;
}

/** Built once per machine (see cache.ts) unless `cache: false`. */
export function nodeImage(options: Partial<BuildImageOptions> & { cache?: boolean } = {}): Promise<BuiltImage> {
  const { cache = true, ...rest } = options;
  const build = { layers: [{ files: nodeFiles() }], config: { Entrypoint: ['node'] }, ...rest };
  return cache ? buildImageCached(build) : buildImage(build);
}
