// Where the agent finds berth-shim and the OCI runtime.
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const NATIVE_BUILD = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../native/build');

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** BERTH_SHIM, else the one `make -C native` built. */
export function shimBinary(env: NodeJS.ProcessEnv = process.env): string {
  return env.BERTH_SHIM || path.join(NATIVE_BUILD, 'berth-shim');
}

/** BERTH_RUNTIME (a path, or a name on PATH such as `runc`), else berth-runtime, else runc. */
export function runtimeBinary(env: NodeJS.ProcessEnv = process.env): string {
  if (env.BERTH_RUNTIME) return env.BERTH_RUNTIME;
  const own = path.join(NATIVE_BUILD, 'berth-runtime');
  return executable(own) ? own : 'runc';
}
