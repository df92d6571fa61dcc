// docker-compose.yml for real: a private dockerd (its own data root, socket and
// pidfile under a temp dir, no iptables changes of its own), the base image built
// from this host (deploy/build-base-image.sh), the project image (Dockerfile),
// `compose up -d --scale agent=3`, then three tasks through the API, spread over
// the three agents; `compose down -v`, dockerd stopped by its pid, everything removed.
// Installs Debian's docker.io and docker-compose when missing; skips only when
// dockerd cannot start here.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { freePort } from '../../common/daemons.ts';
import { leftoverCgroups, removeEmptyCgroups } from '../harness/host-cleanup.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const suffix = randomBytes(3).toString('hex');
const project = `berthtest${suffix}`;
const bridge = `bc${suffix}`;
const log: string[] = [];
const started = Date.now();
/** Progress on stderr, so a slow step shows which one it is. */
const step = (what: string) => process.stderr.write(`[compose test +${Math.round((Date.now() - started) / 1000)}s] ${what}\n`);

interface Result { code: number | null; out: string }

/** Runs a command to its end (async, so the test's timers go on), keeping its output. */
function run(command: string, args: string[], o: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {}): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: repo, env: o.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    const keep = (c: Buffer) => { out = (out + c.toString()).slice(-200_000); };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.stdin.end(o.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 300_000);
    child.once('error', (err) => { clearTimeout(timer); resolve({ code: -1, out: String(err) }); });
    child.once('close', (code) => {
      clearTimeout(timer);
      log.push(`$ ${command} ${args.join(' ')}\n${out.slice(-4000)}`);
      resolve({ code, out });
    });
  });
}

async function must(command: string, args: string[], o: Parameters<typeof run>[2] = {}): Promise<string> {
  const r = await run(command, args, o);
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${r.code}:\n${r.out.slice(-6000)}`);
  return r.out;
}

const has = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;

async function aptInstall(pkgs: string[]): Promise<void> {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = await run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...pkgs], { env });
  if (r.code !== 0) {
    await run('apt-get', ['update', '-q'], { env });
    r = await run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...pkgs], { env });
  }
  if (r.code !== 0) throw new Error(`apt-get install ${pkgs.join(' ')} failed:\n${r.out.slice(-3000)}`);
}

interface Docker { dir: string; env: NodeJS.ProcessEnv; pid: number; compose: string[] }

let skipReason = '';
const iptablesRules: string[][] = [];
const forwardPolicy = /-P FORWARD (\w+)/.exec(spawnSync('iptables', ['-S', 'FORWARD'], { encoding: 'utf8' }).stdout ?? '')?.[1];

/** Installs what is missing and starts a private dockerd; undefined (with skipReason) when it cannot start. */
async function startDocker(): Promise<Docker | undefined> {
  if (!has('dockerd')) await aptInstall(['docker.io']);
  const composePlugin = (await run('docker', ['compose', 'version'])).code === 0;
  if (!composePlugin && !has('docker-compose')) await aptInstall(['docker-compose']);
  const compose = composePlugin ? ['docker', 'compose'] : ['docker-compose'];

  const dir = await mkdtemp(path.join(os.tmpdir(), 'bdk-'));
  const sock = `unix://${dir}/docker.sock`;
  // No iptables rules, masquerading or ip_forward changes of its own (the FORWARD
  // policy of the host stays as it is); the compose network's bridge is let through below.
  const child = spawn('dockerd', [
    '--data-root', `${dir}/data`, '--exec-root', `${dir}/exec`, '--pidfile', `${dir}/docker.pid`, '-H', sock,
    '--iptables=false', '--ip6tables=false', '--ip-masq=false', '--ip-forward=false', '--bridge=none', '--log-level=warn',
  ], { stdio: ['ignore', 'pipe', 'pipe'], detached: false });
  let out = '';
  child.stdout.on('data', (c: Buffer) => { out += c; });
  child.stderr.on('data', (c: Buffer) => { out += c; });
  const env = { ...process.env, DOCKER_HOST: sock, DOCKER_BUILDKIT: '0', COMPOSE_DOCKER_CLI_BUILD: '0' };
  for (let i = 0; i < 120; i++) {
    if (child.exitCode !== null) break;
    if ((await run('docker', ['version'], { env, timeoutMs: 10_000 })).code === 0) {
      return { dir, env, pid: child.pid!, compose };
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  skipReason = `dockerd could not start on this machine: ${out.split('\n').filter(Boolean).slice(-3).join(' | ')}`;
  child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
  return undefined;
}

const docker: Docker | undefined = await startDocker().catch((err: Error) => {
  skipReason = `docker could not be installed or started: ${err.message}`;
  return undefined;
});

/** Stops dockerd by its pid and removes its directory (unmounting what it left). */
async function stopDocker(d: Docker): Promise<void> {
  try { process.kill(d.pid, 'SIGTERM'); } catch { /* gone */ }
  for (let i = 0; i < 60; i++) {
    try { process.kill(d.pid, 0); } catch { break; }
    await new Promise((r) => setTimeout(r, 500));
    if (i === 40) try { process.kill(d.pid, 'SIGKILL'); } catch { /* gone */ }
  }
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(d.dir)).sort((a, b) => b.length - a.length);
  for (const m of mounts) spawnSync('umount', ['-l', m]);
  await rm(d.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
}

afterAll(async () => {
  if (!docker) return;
  const d = docker;
  await run(d.compose[0]!, [...d.compose.slice(1), ...composeFiles, 'down', '-v', '--remove-orphans', '-t', '10'], { env: composeEnv, timeoutMs: 120_000 });
  await stopDocker(d);
  for (const rule of iptablesRules) spawnSync('iptables', ['-D', ...rule]);
  if (forwardPolicy && forwardPolicy !== 'ACCEPT') spawnSync('iptables', ['-P', 'FORWARD', forwardPolicy]);
  removeEmptyCgroups(taskIds);
  await rm(overrideFile, { force: true });
}, 240_000);

let composeEnv: NodeJS.ProcessEnv = {};
let composeFiles: string[] = [];
const overrideFile = path.join(os.tmpdir(), `${project}.override.yml`);
const taskIds: string[] = [];

/** True when root here lacks a capability (a privileged container then cannot start). */
function capabilitiesShort(): boolean {
  const bnd = BigInt('0x' + (/CapBnd:\s*([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0'));
  const last = Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8'));
  return bnd !== (1n << BigInt(last + 1)) - 1n;
}

it.skipIf(!docker)(`compose up --scale agent=3 runs tasks on three agents and a function${docker ? '' : ` (skipped: ${skipReason})`}`, async () => {
  const d = docker!;
  const [apiPort, registryPort] = [await freePort(), await freePort()];
  composeEnv = {
    ...d.env,
    COMPOSE_PROJECT_NAME: project,
    BERTH_API_PUBLISH: `127.0.0.1:${apiPort}`,
    BERTH_REGISTRY_PUBLISH: `127.0.0.1:${registryPort}`,
    LOG_LEVEL: 'info',
  };
  // This test's network gets a bridge name of its own, let through FORWARD whatever the host's policy.
  await writeFile(overrideFile, [
    'networks:', '  default:', '    driver_opts:', `      com.docker.network.bridge.name: ${bridge}`, '',
  ].join('\n'));
  composeFiles = ['-f', 'docker-compose.yml', ...(capabilitiesShort() ? ['-f', 'deploy/compose.no-sys-resource.yml'] : []), '-f', overrideFile];
  for (const rule of [['FORWARD', '-i', bridge, '-j', 'ACCEPT'], ['FORWARD', '-o', bridge, '-j', 'ACCEPT']]) {
    if (spawnSync('iptables', ['-I', ...rule]).status === 0) iptablesRules.push(rule);
  }
  const compose = (args: string[], timeoutMs = 300_000) => must(d.compose[0]!, [...d.compose.slice(1), ...composeFiles, ...args], { env: composeEnv, timeoutMs });

  // The images: the base from this host, then the project's FROM it.
  if (!existsSync(path.join(repo, 'native/build/berth-runtime')) || !existsSync(path.join(repo, 'native/build/berth-shim'))) {
    await must('make', ['-s', '-C', 'native']);
  }
  step('building the base image');
  await must('bash', ['deploy/build-base-image.sh', 'berth-base:local'], { env: d.env });
  step('building the project image');
  await must('docker', ['build', '-q', '--build-arg', 'BASE_IMAGE=berth-base:local', '-t', 'berth:local', '.'], { env: d.env });

  step('compose up');
  await compose(['up', '-d', '--no-build', '--scale', 'agent=3']);

  const url = `http://127.0.0.1:${apiPort}`;
  const until = async <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> => {
    step(`waiting for ${what}`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await fn().catch(() => undefined);
      if (v !== undefined) return v;
      if (Date.now() > deadline) {
        const logs = await run(d.compose[0]!, [...d.compose.slice(1), ...composeFiles, 'logs', '--no-color', '--tail', '30'], { env: composeEnv, timeoutMs: 30_000 });
        throw new Error(`timed out waiting for ${what}\n${logs.out.slice(-8000)}`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  await until('the API', async () => ((await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5_000) })).ok ? true : undefined));
  const key = await until('the admin key', async () => {
    const r = await run(d.compose[0]!, [...d.compose.slice(1), ...composeFiles, 'exec', '-T', 'api', 'cat', '/var/lib/berth/admin-key'], { env: composeEnv, timeoutMs: 30_000 });
    return r.code === 0 && /^berth_\S+/.test(r.out.trim()) ? r.out.trim() : undefined;
  });
  const api = async (method: string, route: string, body?: unknown) => {
    const res = await fetch(url + route, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) as any : undefined };
  };

  const nodes = await until('three ACTIVE nodes', async () => {
    const { body } = await api('GET', '/v1/nodes');
    const active = body.nodes.filter((n: any) => n.status === 'ACTIVE');
    return active.length === 3 ? active : undefined;
  });
  expect(new Set(nodes.map((n: any) => n.nodeId)).size).toBe(3);
  // The CLI against the compose API.
  step('berth node ls');
  const cli = await run(path.join(repo, 'bin/berth.ts'), ['node', 'ls', '-o', 'json'], { env: { ...process.env, BERTH_API: url, BERTH_API_KEY: key }, timeoutMs: 60_000 });
  expect(cli.code, cli.out).toBe(0);
  expect(JSON.parse(cli.out).nodes).toHaveLength(3);

  // The stock images are pushed by the one-shot `images` service.
  await until('berth/busybox in the registry', async () =>
    ((await fetch(`http://127.0.0.1:${registryPort}/v2/berth/busybox/manifests/latest`, {
      method: 'HEAD',
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json' },
      signal: AbortSignal.timeout(10_000),
    })).ok ? true : undefined), 120_000);

  step('running three tasks');
  // The greeting is a secret: each agent opens it with the key the API made (shared read-only).
  expect((await api('POST', '/v1/secrets', { name: 'greeting', value: 'hello' })).status).toBe(201);
  const def = await api('POST', '/v1/task-definitions', {
    family: 'compose', image: 'berth/busybox:latest', command: ['sh', '-c', 'echo $GREETING from $(hostname); exit 3'], memory: 16, cpu: 64,
    secrets: [{ name: 'GREETING', valueFrom: 'greeting' }],
  });
  expect(def.status, JSON.stringify(def.body)).toBe(201);
  const ran = await api('POST', '/v1/tasks', { taskDefinition: 'compose', count: 3, placementStrategy: { type: 'spread' }, placementConstraints: [{ type: 'distinctInstance' }] });
  expect(ran.status, JSON.stringify(ran.body)).toBe(201);
  taskIds.push(...ran.body.tasks.map((t: any) => t.taskId));
  const stopped = await until('three STOPPED tasks', async () => {
    const { body } = await api('GET', `/v1/tasks?ids=${taskIds.join(',')}`);
    return body.tasks.length === 3 && body.tasks.every((t: any) => t.lastStatus === 'STOPPED') ? body.tasks : undefined;
  });
  for (const t of stopped) {
    expect(t, JSON.stringify(t)).toMatchObject({ exitCode: 3, stopCode: 'EssentialContainerExited' });
    const logs = await api('GET', `/v1/tasks/${t.taskId}/logs`);
    expect(logs.body.events.map((e: any) => e.message)).toEqual([`hello from ${t.taskId.slice(0, 12)}`]);
  }
  expect(new Set(stopped.map((t: any) => t.nodeId)).size).toBe(3);

  // A function: the API's gateway reaches an instance through its agent's advertised address.
  step('a function');
  await until('berth/node in the registry', async () =>
    ((await fetch(`http://127.0.0.1:${registryPort}/v2/berth/node/manifests/20`, {
      method: 'HEAD',
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json' },
      signal: AbortSignal.timeout(10_000),
    })).ok ? true : undefined), 120_000);
  const fn = await api('POST', '/v1/functions', {
    name: 'echo', image: 'berth/node:20', memory: 128,
    command: ['-e', "require('http').createServer((q, s) => s.end('echo ' + q.method)).listen(process.env.PORT)"],
  });
  expect(fn.status, JSON.stringify(fn.body)).toBe(201);
  const invoked = await fetch(`${url}/v1/functions/echo/invoke`, {
    method: 'POST', headers: { authorization: `Bearer ${key}` }, body: 'x', signal: AbortSignal.timeout(90_000),
  });
  expect(invoked.status).toBe(200);
  expect(await invoked.text()).toBe('echo POST');
  expect((await api('DELETE', '/v1/functions/echo')).status).toBe(204);
  // Its instances are tasks of family fn-echo: they stop before the agents go away.
  const instances = await until('the function instances STOPPED', async () => {
    const { body } = await api('GET', '/v1/tasks?family=fn-echo');
    return body.tasks.length > 0 && body.tasks.every((t: any) => t.lastStatus === 'STOPPED') ? body.tasks : undefined;
  });
  taskIds.push(...instances.map((t: any) => t.taskId));

  // Every daemon logs JSON lines naming its part.
  const logs = await run(d.compose[0]!, [...d.compose.slice(1), ...composeFiles, 'logs', '--no-color', 'api', 'scheduler', 'agent'], { env: composeEnv, timeoutMs: 60_000 });
  const parts = new Set(logs.out.split('\n').map((l) => /\{.*\}$/.exec(l)?.[0]).filter(Boolean).map((j) => {
    try { return JSON.parse(j!).part as string; } catch { return undefined; }
  }));
  expect([...parts].sort()).toEqual(expect.arrayContaining(['api', 'node-agent', 'scheduler']));

  step('compose down');
  await compose(['down', '-v', '--remove-orphans', '-t', '10'], 120_000);
  expect(leftoverCgroups(taskIds)).toEqual([]);
  const volumes = await must('docker', ['volume', 'ls', '-q'], { env: d.env });
  expect(volumes.trim()).toBe('');
}, 420_000);

it('leaves no iptables rule of its own and the FORWARD policy as it was', async () => {
  if (!docker) return;
  // afterAll has not run yet: check what dockerd itself did (nothing, with --iptables=false).
  const policy = /-P FORWARD (\w+)/.exec(spawnSync('iptables', ['-S', 'FORWARD'], { encoding: 'utf8' }).stdout)?.[1];
  expect(policy).toBe(forwardPolicy);
  const nat = spawnSync('iptables', ['-t', 'nat', '-S'], { encoding: 'utf8' }).stdout;
  expect(nat).not.toMatch(/DOCKER/);
});
