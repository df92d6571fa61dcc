// Runs a CNI network configuration list, plugin by plugin, as the CNI spec
// (v1.0.0) asks of a runtime: there is no libcni for Node, so this is ours.
//
// - ADD runs the plugins in order; each gets the previous one's result as
//   `prevResult`, and the last result is the list's result.
// - DEL runs them in reverse order, each with the cached ADD result.
// - CHECK runs them in order, each with the cached ADD result.
// - A plugin that declares `capabilities` gets the matching `runtimeConfig`.
// - A plugin reads its config on stdin and the call on CNI_* variables; it
//   answers a result (or an error object) on stdout.
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { commands } from '../spawner.ts';

export const CNI_VERSION = '1.0.0';

/** One plugin's entry in a conflist. */
export interface CniPluginConf {
  type: string;
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

export interface CniConfList {
  cniVersion: string;
  name: string;
  plugins: CniPluginConf[];
}

/** The parts of a CNI 1.0 result Berth reads; the rest is kept as is. */
export interface CniResult {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number }[];
  routes?: { dst: string; gw?: string }[];
  dns?: unknown;
  [key: string]: unknown;
}

export interface CniRuntime {
  containerId: string;
  netns: string;
  ifName: string;
  /** Values for capabilities, e.g. `{ portMappings: [...] }`. */
  runtimeConfig?: Record<string, unknown>;
}

export type CniCommand = 'ADD' | 'DEL' | 'CHECK';

/** A plugin failed: carries the plugin's own error code and message. */
export class CniError extends Error {
  constructor(
    readonly command: CniCommand,
    readonly plugin: string,
    readonly cniCode: number | undefined,
    message: string,
  ) {
    super(`CNI ${command} ${plugin}: ${message}`);
    this.name = 'CniError';
  }
}

export interface CniExec {
  /** Directories searched for plugin binaries (CNI_PATH). */
  paths: string[];
  /** Kill a plugin that runs longer than this. */
  timeoutMs?: number;
}

/** The plugins run iptables and friends: make sure the sbin directories are on their PATH. */
export function pluginPath(): string {
  const dirs = (process.env.PATH ?? '').split(':').filter(Boolean);
  for (const d of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) if (!dirs.includes(d)) dirs.push(d);
  return dirs.join(':');
}

function findPlugin(type: string, paths: string[]): string {
  if (!/^[A-Za-z0-9._-]+$/.test(type)) throw new Error(`CNI plugin type "${type}" is not a plain name`);
  for (const dir of paths) {
    const candidate = path.join(dir, type);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // next directory
    }
  }
  throw new Error(`CNI plugin "${type}" not found in ${paths.join(':')}`);
}

/** The config one plugin gets on stdin, built from its list entry. */
export function pluginConfig(list: CniConfList, plugin: CniPluginConf, rt: CniRuntime, prevResult: CniResult | undefined): Record<string, unknown> {
  const conf: Record<string, unknown> = { ...plugin, cniVersion: list.cniVersion, name: list.name };
  delete conf.capabilities;
  if (prevResult) conf.prevResult = prevResult;
  if (plugin.capabilities && rt.runtimeConfig) {
    const runtimeConfig: Record<string, unknown> = {};
    for (const [cap, on] of Object.entries(plugin.capabilities)) {
      if (on && rt.runtimeConfig[cap] !== undefined) runtimeConfig[cap] = rt.runtimeConfig[cap];
    }
    if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
  }
  return conf;
}

/** Executes one plugin once; resolves its parsed stdout (empty object when it printed nothing). */
export async function execPlugin(exec: CniExec, command: CniCommand, list: CniConfList, plugin: CniPluginConf, rt: CniRuntime, prevResult: CniResult | undefined): Promise<CniResult> {
  const binary = findPlugin(plugin.type, exec.paths);
  const stdin = JSON.stringify(pluginConfig(list, plugin, rt, prevResult));
  const env: NodeJS.ProcessEnv = {
    PATH: pluginPath(),
    CNI_COMMAND: command,
    CNI_CONTAINERID: rt.containerId,
    CNI_NETNS: rt.netns,
    CNI_IFNAME: rt.ifName,
    CNI_PATH: exec.paths.join(':'),
  };
  let r;
  try {
    r = await commands().run(binary, [], { env, input: stdin, timeoutMs: exec.timeoutMs ?? 30_000 });
  } catch (e) {
    throw new CniError(command, plugin.type, undefined, (e as Error).message);
  }
  const stdout = r.stdout.toString('utf8').trim();
  const stderr = r.stderr.toString('utf8').trim();
  let parsed: Record<string, unknown> | undefined;
  try {
    parsed = stdout ? (JSON.parse(stdout) as Record<string, unknown>) : undefined;
  } catch {
    parsed = undefined;
  }
  if (r.exitCode === 0) return (parsed ?? { cniVersion: list.cniVersion }) as CniResult;
  if (parsed && typeof parsed.msg === 'string') {
    const details = typeof parsed.details === 'string' && parsed.details ? `: ${parsed.details}` : '';
    throw new CniError(command, plugin.type, typeof parsed.code === 'number' ? parsed.code : undefined, `${parsed.msg}${details}`);
  }
  const why = r.signal ? `killed by ${r.signal}` : `exited with ${r.exitCode}`;
  throw new CniError(command, plugin.type, undefined, `${why}${stderr || stdout ? `: ${(stderr || stdout).slice(0, 2000)}` : ''}`);
}

/**
 * ADD over the whole list. When a plugin fails, the plugins already added are
 * deleted again (in reverse order) before the error is thrown.
 */
export async function addList(exec: CniExec, list: CniConfList, rt: CniRuntime): Promise<CniResult> {
  let result: CniResult | undefined;
  for (let i = 0; i < list.plugins.length; i++) {
    const plugin = list.plugins[i]!;
    try {
      result = await execPlugin(exec, 'ADD', list, plugin, rt, result);
    } catch (err) {
      await delList(exec, { ...list, plugins: list.plugins.slice(0, i + 1) }, rt, result).catch(() => undefined);
      throw err;
    }
  }
  if (!result) throw new Error(`CNI list "${list.name}" has no plugins`);
  return result;
}

/**
 * DEL over the whole list in reverse order. Every plugin is called even when
 * one fails (so what can be released is); the first failure is thrown after.
 */
export async function delList(exec: CniExec, list: CniConfList, rt: CniRuntime, cached: CniResult | undefined): Promise<void> {
  let first: unknown;
  for (const plugin of [...list.plugins].reverse()) {
    try {
      await execPlugin(exec, 'DEL', list, plugin, rt, cached);
    } catch (err) {
      first ??= err;
    }
  }
  if (first) throw first;
}

/** CHECK over the whole list in order, with the cached ADD result. */
export async function checkList(exec: CniExec, list: CniConfList, rt: CniRuntime, cached: CniResult): Promise<void> {
  for (const plugin of list.plugins) {
    await execPlugin(exec, 'CHECK', list, plugin, rt, cached);
  }
}
