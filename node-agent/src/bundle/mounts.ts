// The task's own mounts: tmpfs and scratch volumes (ECS's linuxParameters.tmpfs,
// volumes and mountPoints). Paths are checked here again, whatever the API let
// through: absolute, no `.` or `..` component, nothing under /proc, /sys, /dev.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { TaskContainerSpec } from '../../../common/types.ts';
import type { OciMount } from './oci-spec.ts';

export class MountSpecError extends Error {}

export function checkContainerPath(containerPath: string, what: string): string {
  const parts = containerPath.split('/');
  if (!containerPath.startsWith('/') || containerPath.includes('\0')) throw new MountSpecError(`${what}: "${containerPath}" is not an absolute path`);
  if (parts.some((p) => p === '..' || p === '.')) throw new MountSpecError(`${what}: "${containerPath}" climbs with "." or ".."`);
  const clean = `/${parts.filter(Boolean).join('/')}`;
  if (clean === '/') throw new MountSpecError(`${what}: cannot mount over the root`);
  if (/^\/(proc|sys|dev)(\/|$)/.test(clean)) throw new MountSpecError(`${what}: "${clean}" is reserved for the runtime`);
  return clean;
}

/** OCI mounts for the task, parents before children; scratch volumes are made under `volumesDir`. */
export async function taskMounts(spec: TaskContainerSpec, volumesDir: string): Promise<OciMount[]> {
  const mounts: OciMount[] = [];
  for (const t of spec.tmpfs ?? []) {
    const destination = checkContainerPath(t.containerPath, 'tmpfs');
    const options = t.mountOptions ?? [];
    mounts.push({
      destination, type: 'tmpfs', source: 'tmpfs',
      // Docker's tmpfs defaults, then the definition's own options, which win.
      options: ['nosuid', 'nodev', 'noexec', 'mode=1777', `size=${t.size}m`, ...options],
    });
  }
  const volumes = new Set((spec.volumes ?? []).map((v) => v.name));
  for (const m of spec.mountPoints ?? []) {
    const destination = checkContainerPath(m.containerPath, 'mountPoint');
    if (!volumes.has(m.sourceVolume) || !/^[A-Za-z0-9_-]{1,255}$/.test(m.sourceVolume)) {
      throw new MountSpecError(`mountPoint ${destination}: no volume "${m.sourceVolume}" in the task definition`);
    }
    const source = path.join(volumesDir, m.sourceVolume);
    await mkdir(source, { recursive: true, mode: 0o755 });
    mounts.push({ destination, type: 'bind', source, options: ['rbind', 'rprivate', 'nosuid', 'nodev', ...(m.readOnly ? ['ro'] : [])] });
  }
  return mounts.sort((a, b) => a.destination.split('/').length - b.destination.split('/').length);
}
