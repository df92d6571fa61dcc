// A real docker-registry (Debian's distribution 2.8) per test file, on a free
// loopback port with its storage in a temp dir; optionally behind htpasswd
// basic auth or token (bearer) auth. stop() removes everything.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { freePort, startDaemon, waitForPort, type Daemon } from './processes.ts';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export interface RegistryUser {
  username: string;
  password: string;
}

export interface TokenAuthConfig {
  /** Where clients get tokens. */
  realm: string;
  service: string;
  issuer: string;
  /** PEM file with the certificate(s) whose keys sign the tokens. */
  rootCertBundle: string;
}

export interface TestRegistry {
  /** host:port, e.g. 127.0.0.1:41234 */
  host: string;
  url: string;
  port: number;
  dir: string;
  output(): string;
  stop(): Promise<void>;
}

export interface RegistryOptions {
  /** Turns on htpasswd basic auth with these users. */
  users?: RegistryUser[];
  /** Turns on token auth. */
  token?: TokenAuthConfig;
}

/** Registries started here and not stopped yet: killed if the process exits without stop(). */
const running = new Map<Daemon, string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const [daemon, dir] of running) {
      if (daemon.child.exitCode === null && daemon.child.signalCode === null) daemon.child.kill('SIGKILL');
      try { rmSync(dir, { recursive: true, force: true }); } catch { /* best effort at exit */ }
    }
  });
}

function yamlString(s: string): string {
  return JSON.stringify(s);
}

export async function startRegistry(options: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'berth-registry-'));
  let daemon: Daemon | undefined;
  try {
    const port = await freePort();
    const lines = [
      'version: 0.1',
      'log:',
      '  level: warn',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${yamlString(path.join(dir, 'data'))}`,
      '  delete:',
      '    enabled: true',
      '  maintenance:',
      '    uploadpurging:',
      '      enabled: false',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      `  secret: ${randomBytes(16).toString('hex')}`,
    ];
    if (options.users?.length) {
      const htpasswd = options.users.map((u) => `${u.username}:${bcrypt.hashSync(u.password, 5)}`).join('\n') + '\n';
      await writeFile(path.join(dir, 'htpasswd'), htpasswd);
      lines.push('auth:', '  htpasswd:', '    realm: berth-test', `    path: ${yamlString(path.join(dir, 'htpasswd'))}`);
    } else if (options.token) {
      lines.push(
        'auth:', '  token:',
        `    realm: ${yamlString(options.token.realm)}`,
        `    service: ${yamlString(options.token.service)}`,
        `    issuer: ${yamlString(options.token.issuer)}`,
        `    rootcertbundle: ${yamlString(options.token.rootCertBundle)}`,
      );
    }
    const config = path.join(dir, 'config.yml');
    await writeFile(config, lines.join('\n') + '\n');
    daemon = startDaemon(REGISTRY_BIN, ['serve', config], { env: { ...process.env, OTEL_TRACES_EXPORTER: 'none' } });
    installExitHook();
    running.set(daemon, dir);
    try {
      await waitForPort(port, 15_000, daemon.child);
    } catch (err) {
      throw new Error(`docker-registry did not start: ${(err as Error).message}\n${daemon.output()}`);
    }
    const d = daemon;
    return {
      host: `127.0.0.1:${port}`,
      url: `http://127.0.0.1:${port}`,
      port,
      dir,
      output: () => d.output(),
      stop: async () => {
        await d.stop();
        running.delete(d);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (daemon) {
      await daemon.stop();
      running.delete(daemon);
    }
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
