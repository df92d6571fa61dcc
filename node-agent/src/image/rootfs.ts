// A container's root filesystem: overlayfs over the image's layers with a
// private upper and work dir under containers/<id>/. The mount runs with its
// working directory at the store's root and relative lowerdir paths (l/<short>),
// so even many layers fit in the mount data's page-size limit. Either the agent
// mounts it on the host with mount(8) (any runtime), or berth-runtime mounts it
// inside the container's mount namespace from the plan (no host mount at all).
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';

const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const MOUNT_DATA_LIMIT = 4000;

export function checkContainerId(id: string): void {
  if (!CONTAINER_ID.test(id)) throw new Error(`invalid container id "${id}"`);
}

function run(command: string, args: string[], cwd?: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stderr: stderr.trim() }));
  });
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export async function isMountPoint(p: string): Promise<boolean> {
  const info = await fs.readFile('/proc/self/mountinfo', 'utf8');
  for (const line of info.split('\n')) {
    const fields = line.split(' ');
    if (fields.length > 4 && unescapeMountinfo(fields[4]!) === p) return true;
  }
  return false;
}

/** What an overlay rootfs is made of: the mount point and its options, relative to `base`. */
export interface OverlayPlan {
  rootfs: string;
  /** lowerdir=…,upperdir=…,workdir=…, with paths relative to `base`. */
  options: string;
  base: string;
}

/** Makes the container's upper, work and rootfs dirs and the overlay's options; `layers` lowest first. */
export async function planOverlay(root: string, containerDir: string, layers: string[]): Promise<OverlayPlan> {
  const rootfs = path.join(containerDir, 'rootfs');
  for (const d of ['upper', 'work', 'rootfs']) await fs.mkdir(path.join(containerDir, d), { recursive: true, mode: 0o755 });
  const rel = (p: string) => {
    const r = path.relative(root, p);
    return r.startsWith('..') || path.isAbsolute(r) ? p : r;
  };
  // A layer listed twice is shown by its topmost copy alone (overlayfs refuses
  // the same directory twice, and the lower copy adds nothing the upper does not).
  let lower = [...new Set([...layers].reverse().map(rel))];
  if (lower.length === 0) {
    const empty = path.join(root, 'l', 'empty');
    await fs.mkdir(empty, { recursive: true, mode: 0o755 });
    lower = [rel(empty)];
  }
  for (const l of lower) if (/[,:\\]/.test(l)) throw new Error(`layer path "${l}" has a character overlayfs options cannot carry`);
  const options = `lowerdir=${lower.join(':')},upperdir=${rel(path.join(containerDir, 'upper'))},workdir=${rel(path.join(containerDir, 'work'))}`;
  if (options.length > MOUNT_DATA_LIMIT) throw new Error(`too many layers for one overlay mount (${layers.length})`);
  return { rootfs, options, base: root };
}

/** Mounts the overlay on the host with mount(8); `layers` are directories lowest first. */
export async function mountOverlay(root: string, containerDir: string, layers: string[]): Promise<string> {
  const plan = await planOverlay(root, containerDir, layers);
  if (await isMountPoint(plan.rootfs)) return plan.rootfs;
  const { code, stderr } = await run('mount', ['-t', 'overlay', 'overlay', '-o', plan.options, plan.rootfs], root);
  if (code !== 0) throw new Error(`mount overlay for ${containerDir}: ${stderr || `exit ${code}`}`);
  return plan.rootfs;
}

/** Unmounts (lazily if busy) and removes the container's dirs; nothing there is fine. */
export async function removeOverlay(containerDir: string): Promise<void> {
  const rootfs = path.join(containerDir, 'rootfs');
  for (let attempt = 0; attempt < 5 && (await isMountPoint(rootfs)); attempt++) {
    const { code, stderr } = await run('umount', [rootfs]);
    if (code === 0) continue;
    if (/busy/i.test(stderr) && attempt >= 2) {
      await run('umount', ['-l', rootfs]);
      continue;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  if (await isMountPoint(rootfs)) throw new Error(`cannot unmount ${rootfs}`);
  await fs.rm(containerDir, { recursive: true, force: true });
}
