// Makes OCI bundles for tests: a busybox-static rootfs and a config.json from
// the agent's own spec builder, so tests run exactly what the agent would run.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildSpec, type ContainerSpecOptions } from '../../node-agent/src/bundle/spec.ts';
import type { OciSpec } from '../../node-agent/src/bundle/oci-spec.ts';

export const BUSYBOX = '/bin/busybox';

let appletCache: string[] | undefined;
function busyboxApplets(): string[] {
  appletCache ??= execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  return appletCache;
}

/** Fills `rootfs` with busybox-static, its applets as symlinks, and a minimal /etc. */
export async function makeBusyboxRootfs(rootfs: string): Promise<void> {
  for (const dir of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'root', 'home', 'var', 'usr/bin']) {
    await mkdir(path.join(rootfs, dir), { recursive: true });
  }
  await copyFile(BUSYBOX, path.join(rootfs, 'bin/busybox'));
  await Promise.all(
    busyboxApplets()
      .filter((a) => a !== 'busybox')
      .map((a) => symlink('busybox', path.join(rootfs, 'bin', a))),
  );
  await writeFile(path.join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  await writeFile(path.join(rootfs, 'etc/group'), 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n');
}

export interface TestBundle {
  id: string;
  /** The bundle directory holding config.json and rootfs/. */
  bundle: string;
  rootfs: string;
  /** A scratch directory beside the bundle for state, logs and runtime roots. */
  scratch: string;
  cgroupsPath: string;
  spec: OciSpec;
  /** Rewrites config.json after changing `spec`. */
  writeSpec(): Promise<void>;
  /** Removes the bundle and scratch directories. */
  remove(): Promise<void>;
}

export type BundleOptions = Partial<ContainerSpecOptions> & {
  /** Last word on the spec, for tests that need a field the builder does not set. */
  transform?: (spec: OciSpec) => void;
};

/** A fresh bundle in a temp dir; the container id and cgroupsPath are unique per call. */
export async function makeBundle(options: BundleOptions = {}): Promise<TestBundle> {
  const id = `berth-test-${randomBytes(5).toString('hex')}`;
  const top = await mkdtemp(path.join(os.tmpdir(), 'berth-bundle-'));
  const bundle = path.join(top, 'bundle');
  const rootfs = path.join(bundle, 'rootfs');
  const scratch = path.join(top, 'scratch');
  await mkdir(scratch, { recursive: true });
  await makeBusyboxRootfs(rootfs);
  const cgroupsPath = options.cgroupsPath ?? `/berth-test/${id}`;
  const { transform, ...specOptions } = options;
  const spec = buildSpec({ args: ['true'], ...specOptions, cgroupsPath });
  transform?.(spec);
  const writeSpec = () => writeFile(path.join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
  await writeSpec();
  return {
    id, bundle, rootfs, scratch, cgroupsPath, spec, writeSpec,
    remove: () => rm(top, { recursive: true, force: true }),
  };
}
