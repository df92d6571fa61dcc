// Where the API is and which key to use. Each setting comes from the first of:
// a flag (--endpoint, --api-key), the environment (BERTH_API, or BERTH_API_ADDR as
// host:port; BERTH_API_KEY), the config file (~/.config/berth/config.json:
// { "endpoint", "apiKey" }), and the all-in-one's own files when run from its
// directory (.berth/api-url, .berth/admin-key; BERTH_STATE_DIR moves them).
// The key's value is never printed: `source` says where it came from.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseAddr } from '../common/config.ts';
import { UsageError } from './errors.ts';

export interface ResolvedSetting {
  value: string | undefined;
  /** `flag --endpoint`, `env BERTH_API`, `file ~/.config/berth/config.json`, `file .berth/admin-key`, `default` */
  source: string;
}

export interface CliConfig {
  endpoint: ResolvedSetting & { value: string };
  apiKey: ResolvedSetting;
}

export interface ConfigInputs {
  flags: { endpoint?: string; apiKey?: string };
  env: NodeJS.ProcessEnv;
  cwd: string;
  home: string;
}

export function configFilePath(env: NodeJS.ProcessEnv, home: string): string {
  const base = env.XDG_CONFIG_HOME || path.join(home, '.config');
  return path.join(base, 'berth', 'config.json');
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

function readConfigFile(file: string): { endpoint?: string; apiKey?: string } {
  const text = readText(file);
  if (text === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new UsageError(`${file}: expected a JSON object with "endpoint" and "apiKey"`);
  const o = parsed as Record<string, unknown>;
  const str = (k: string) => {
    const v = o[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') throw new UsageError(`${file}: "${k}" must be a string`);
    return v || undefined;
  };
  return { endpoint: str('endpoint'), apiKey: str('apiKey') };
}

/** `host:port` or a URL, as an http(s) URL without a trailing slash. */
export function normaliseEndpoint(value: string, source: string): string {
  let url: URL;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    try {
      url = new URL(value);
    } catch {
      throw new UsageError(`${source}: not a URL: "${value}"`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`${source}: expected an http:// or https:// URL, got "${value}"`);
  } else {
    let addr;
    try {
      addr = parseAddr(value, source);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    // A daemon listening on every address is reached on loopback.
    const host = addr.host === '0.0.0.0' || addr.host === '::' ? '127.0.0.1' : addr.host;
    url = new URL(`http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`);
  }
  return url.href.replace(/\/+$/, '');
}

export function resolveConfig(i: ConfigInputs): CliConfig {
  const file = configFilePath(i.env, i.home);
  const fromFile = readConfigFile(file);
  const shownFile = file.startsWith(i.home + path.sep) ? '~' + file.slice(i.home.length) : file;
  const stateDir = path.resolve(i.cwd, i.env.BERTH_STATE_DIR || '.berth');
  const shownState = path.relative(i.cwd, stateDir) || '.';

  const endpointCandidates: [string | undefined, string][] = [
    [i.flags.endpoint, 'flag --endpoint'],
    [i.env.BERTH_API, 'env BERTH_API'],
    [i.env.BERTH_API_ADDR, 'env BERTH_API_ADDR'],
    [fromFile.endpoint, `file ${shownFile}`],
    [readText(path.join(stateDir, 'api-url')), `file ${path.join(shownState, 'api-url')}`],
  ];
  const chosen = endpointCandidates.find(([v]) => v);
  const endpoint = chosen
    ? { value: normaliseEndpoint(chosen[0]!, chosen[1]), source: chosen[1] }
    : { value: 'http://127.0.0.1:8080', source: 'default' };

  const keyCandidates: [string | undefined, string][] = [
    [i.flags.apiKey, 'flag --api-key'],
    [i.env.BERTH_API_KEY, 'env BERTH_API_KEY'],
    [fromFile.apiKey, `file ${shownFile}`],
    [readText(path.join(stateDir, 'admin-key')), `file ${path.join(shownState, 'admin-key')}`],
  ];
  const key = keyCandidates.find(([v]) => v);
  return { endpoint, apiKey: key ? { value: key[0], source: key[1] } : { value: undefined, source: 'none' } };
}

export function defaultConfigInputs(flags: ConfigInputs['flags']): ConfigInputs {
  return { flags, env: process.env, cwd: process.cwd(), home: os.homedir() };
}
