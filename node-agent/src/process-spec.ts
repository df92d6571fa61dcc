// What the container runs, from the image config and the task: Docker's rules
// for entrypoint and command, the task's environment over the image's.
import { lstat, open } from 'node:fs/promises';
import { constants } from 'node:fs';
import path from 'node:path';
import { BerthError } from '../../common/errors.ts';
import { openRegistryCredentials, type RegistryCredentials, type SecretBox } from '../../common/secret-box.ts';
import type { TaskContainerSpec, TaskRecord } from '../../common/types.ts';
import type { ImageConfig } from './image/index.ts';

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export class TaskSpecError extends Error {}

export function processArgs(image: ImageConfig, spec: TaskContainerSpec): string[] {
  const entrypoint = spec.entryPoint ?? image.entrypoint ?? [];
  // A new entrypoint drops the image's command, as `docker run --entrypoint` does.
  const command = spec.command ?? (spec.entryPoint ? [] : image.cmd ?? []);
  const args = [...entrypoint, ...command];
  if (args.length === 0) throw new TaskSpecError('the image has no Entrypoint or Cmd and the task definition sets no command');
  return args;
}

export function processEnv(image: ImageConfig, spec: TaskContainerSpec, extra: Record<string, string> = {}): string[] {
  const env = new Map<string, string>();
  for (const entry of [DEFAULT_PATH, ...(image.env ?? [])]) {
    const eq = entry.indexOf('=');
    if (eq > 0) env.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  for (const { name, value } of spec.environment) env.set(name, value);
  for (const [name, value] of Object.entries(extra)) env.set(name, value);
  return [...env].map(([k, v]) => `${k}=${v}`);
}

/** The task's secret environment variables, opened with this node's key. */
export function openSecrets(task: Pick<TaskRecord, 'tenant' | 'spec'>, box: SecretBox | null): Record<string, string> {
  const sealed = task.spec.sealedSecrets ?? [];
  if (sealed.length === 0) return {};
  if (!box) throw new TaskSpecError(`the task uses secrets (${sealed.map((s) => s.secret).join(', ')}) and this node has no secrets key (BERTH_SECRETS_KEY_FILE)`);
  const env: Record<string, string> = {};
  for (const s of sealed) {
    try {
      env[s.name] = box.open(s.sealed, task.tenant, s.secret);
    } catch (err) {
      throw new TaskSpecError(err instanceof BerthError ? err.message : `secret ${s.secret}: ${(err as Error).message}`);
    }
  }
  return env;
}

/** The task's registry credentials with the password opened with this node's key. */
export function registryCredentials(task: Pick<TaskRecord, 'tenant' | 'spec'>, box: SecretBox | null): RegistryCredentials | undefined {
  const credentials = task.spec.repositoryCredentials;
  if (!credentials) return undefined;
  if (!box) throw new TaskSpecError('the task pulls with registry credentials and this node has no secrets key (BERTH_SECRETS_KEY_FILE) to open the password');
  try {
    return openRegistryCredentials(box, task.tenant, credentials);
  } catch (err) {
    throw new TaskSpecError(err instanceof BerthError ? err.message : (err as Error).message);
  }
}

/**
 * Reads a file of the image without following any symlink on the way: an
 * image may point /etc or /etc/passwd anywhere, the host's files included.
 */
async function readRootfsFile(rootfs: string, file: string): Promise<string | null> {
  try {
    const parts = file.split('/');
    for (let i = 1; i < parts.length; i++) {
      if (!(await lstat(path.join(rootfs, ...parts.slice(0, i)))).isDirectory()) return null;
    }
    const handle = await open(path.join(rootfs, file), constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      return await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch {
    return null;
  }
}

function lookup(db: string | null, name: string, idField: number): number | undefined {
  for (const line of (db ?? '').split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name && fields[idField] !== undefined && /^\d+$/.test(fields[idField]!)) return Number(fields[idField]);
  }
  return undefined;
}

/** Reads a file of the container's image (`etc/passwd`); null when there is none. */
export type ImageFileReader = (file: string) => Promise<string | null>;

/**
 * `user`, `uid`, `user:group` or `uid:gid`, names resolved in the image's /etc
 * files: read from a mounted rootfs (a path), or through `readFile`.
 */
export async function resolveUser(rootfs: string | ImageFileReader, user: string | undefined): Promise<{ uid: number; gid: number }> {
  const read: ImageFileReader = typeof rootfs === 'string' ? (file) => readRootfsFile(rootfs, file) : rootfs;
  if (!user) return { uid: 0, gid: 0 };
  const [u, g] = user.split(':') as [string, string | undefined];
  let uid: number | undefined = /^\d+$/.test(u) ? Number(u) : undefined;
  let gid: number | undefined;
  if (uid === undefined) {
    const passwd = await read('etc/passwd');
    uid = lookup(passwd, u, 2);
    if (uid === undefined) throw new TaskSpecError(`user "${u}" is not in the image's /etc/passwd`);
    if (g === undefined) gid = lookup(passwd, u, 3);
  } else if (g === undefined) {
    gid = uid;
  }
  if (g !== undefined) {
    gid = /^\d+$/.test(g) ? Number(g) : lookup(await read('etc/group'), g, 2);
    if (gid === undefined) throw new TaskSpecError(`group "${g}" is not in the image's /etc/group`);
  }
  return { uid, gid: gid ?? 0 };
}
