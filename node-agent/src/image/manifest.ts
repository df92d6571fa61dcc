// Reading manifests, indexes and image configs; choosing a platform from an index.
import path from 'node:path';
import { DOCKER_CONFIG, isIndex, isManifest, OCI_CONFIG, type Descriptor } from './media-types.ts';

export interface ImageConfig {
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
  workingDir?: string;
  user?: string;
  exposedPorts?: string[];
  volumes?: string[];
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface ParsedManifest {
  config: Descriptor;
  layers: Descriptor[];
}

export interface ParsedIndex {
  manifests: Descriptor[];
}

export function hostPlatform(): Platform {
  const arch: Record<string, Platform> = {
    x64: { os: 'linux', architecture: 'amd64' },
    arm64: { os: 'linux', architecture: 'arm64', variant: 'v8' },
    arm: { os: 'linux', architecture: 'arm', variant: 'v7' },
    ia32: { os: 'linux', architecture: '386' },
    ppc64: { os: 'linux', architecture: 'ppc64le' },
    s390x: { os: 'linux', architecture: 's390x' },
    riscv64: { os: 'linux', architecture: 'riscv64' },
  };
  return arch[process.arch] ?? { os: 'linux', architecture: process.arch };
}

function isDescriptor(d: unknown): d is Descriptor {
  const x = d as Descriptor;
  return typeof x === 'object' && x !== null && typeof x.digest === 'string' && typeof x.size === 'number' && Number.isSafeInteger(x.size) && x.size >= 0;
}

/** The kind of a manifest document: from its mediaType field, else the Content-Type. */
export function documentMediaType(body: Buffer, contentType: string | null): { mediaType: string; json: Record<string, unknown> } {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new Error('manifest is not valid JSON');
  }
  let mediaType = typeof json.mediaType === 'string' ? json.mediaType : (contentType ?? '').split(';')[0]!.trim();
  if (!isIndex(mediaType) && !isManifest(mediaType)) {
    // OCI allows mediaType to be absent: tell by shape.
    if (Array.isArray(json.manifests)) mediaType = 'application/vnd.oci.image.index.v1+json';
    else if (json.config && Array.isArray(json.layers)) mediaType = 'application/vnd.oci.image.manifest.v1+json';
    else if (json.schemaVersion === 1) throw new Error('Docker schema 1 manifests are not supported');
    else throw new Error(`unsupported manifest type "${mediaType || 'unknown'}"`);
  }
  return { mediaType, json };
}

export function parseIndex(json: Record<string, unknown>): ParsedIndex {
  if (!Array.isArray(json.manifests) || !json.manifests.every(isDescriptor)) throw new Error('index has no valid manifests list');
  return { manifests: json.manifests as Descriptor[] };
}

export function parseManifest(json: Record<string, unknown>): ParsedManifest {
  if (!isDescriptor(json.config)) throw new Error('manifest has no valid config descriptor');
  if (!Array.isArray(json.layers) || !json.layers.every(isDescriptor)) throw new Error('manifest has no valid layers list');
  const config = json.config as Descriptor;
  if (config.mediaType && config.mediaType !== OCI_CONFIG && config.mediaType !== DOCKER_CONFIG) {
    throw new Error(`not a container image (config media type ${config.mediaType})`);
  }
  return { config, layers: json.layers as Descriptor[] };
}

/** The host's platform if the index has it, else linux/amd64; never attestations or other OSes. */
export function selectPlatform(index: ParsedIndex, wanted: Platform[] = [hostPlatform(), { os: 'linux', architecture: 'amd64' }]): Descriptor {
  const candidates = index.manifests.filter((m) => isManifest(m.mediaType) || isIndex(m.mediaType) || !m.mediaType);
  for (const want of wanted) {
    const matches = candidates.filter((m) => m.platform?.os === want.os && m.platform?.architecture === want.architecture);
    if (matches.length === 0) continue;
    const exact = matches.find((m) => (m.platform?.variant ?? '') === (want.variant ?? ''));
    return exact ?? matches.find((m) => !m.platform?.variant) ?? matches[0]!;
  }
  const have = candidates.map((m) => (m.platform ? `${m.platform.os}/${m.platform.architecture}${m.platform.variant ? `/${m.platform.variant}` : ''}` : 'unknown')).join(', ');
  throw new Error(`no manifest for ${wanted.map((w) => `${w.os}/${w.architecture}`).join(' or ')} in the index (it has: ${have || 'nothing'})`);
}

export interface ParsedConfig {
  config: ImageConfig;
  diffIDs: string[];
  os?: string;
  architecture?: string;
}

function strings(v: unknown, field: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw new Error(`image config: ${field} is not a list of strings`);
  return v as string[];
}

/** A volume path, absolute, that must stay inside the root. */
function cleanVolume(v: string): string {
  const parts = v.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new Error(`image config: volume "${v}" climbs out of the root`);
  return `/${parts.join('/')}`;
}

export function parseConfig(body: Buffer): ParsedConfig {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new Error('image config is not valid JSON');
  }
  const rootfs = json.rootfs as { type?: string; diff_ids?: unknown } | undefined;
  const diffIDs = strings(rootfs?.diff_ids, 'rootfs.diff_ids') ?? [];
  const c = (json.config ?? {}) as Record<string, unknown>;
  const config: ImageConfig = {};
  const entrypoint = strings(c.Entrypoint, 'Entrypoint');
  if (entrypoint) config.entrypoint = entrypoint;
  const cmd = strings(c.Cmd, 'Cmd');
  if (cmd) config.cmd = cmd;
  const env = strings(c.Env, 'Env');
  if (env) config.env = env;
  if (typeof c.WorkingDir === 'string' && c.WorkingDir !== '') {
    const wd = path.posix.normalize(c.WorkingDir);
    config.workingDir = wd.startsWith('/') ? wd : `/${wd}`;
  }
  if (typeof c.User === 'string' && c.User !== '') config.user = c.User;
  if (c.ExposedPorts && typeof c.ExposedPorts === 'object') config.exposedPorts = Object.keys(c.ExposedPorts).sort();
  if (c.Volumes && typeof c.Volumes === 'object') config.volumes = Object.keys(c.Volumes).map(cleanVolume).sort();
  return {
    config,
    diffIDs,
    os: typeof json.os === 'string' ? json.os : undefined,
    architecture: typeof json.architecture === 'string' ? json.architecture : undefined,
  };
}
