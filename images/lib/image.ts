// Images and indexes: a config, a manifest (OCI or Docker schema 2) and the
// layer blobs; an index (OCI) or manifest list (Docker) over several images.
import { createHash } from 'node:crypto';
import { mediaTypes as mt, type ImageConfig } from '../../node-agent/src/image/index.ts';
import { buildLayer, type BuiltLayer, type Compression, type FileSpec, type LayerSpec } from './layer.ts';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** The runtime part of an image config, in the image spec's own field names. */
export interface ImageConfigInput {
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  WorkingDir?: string;
  User?: string;
  /** e.g. ['8080/tcp'] */
  ExposedPorts?: string[];
  Volumes?: string[];
  Labels?: Record<string, string>;
  StopSignal?: string;
}

/** The same fields in the agent's spelling (its ImageConfig), accepted too. */
export type ImageConfigAliases = ImageConfig & { labels?: Record<string, string> };

/**
 * A layer: a LayerSpec, a host directory's path, or a bare map of paths to
 * contents (which must then not use `dir`, `files` or `entries` as top-level names).
 */
export type LayerInput = LayerSpec | string | Record<string, FileSpec>;

export function toLayerSpec(layer: LayerInput): LayerSpec {
  if (typeof layer === 'string') return { dir: layer };
  const l = layer as Record<string, unknown>;
  if (typeof l.dir === 'string' || (l.files && typeof l.files === 'object' && !Buffer.isBuffer(l.files)) || Array.isArray(l.entries)) return layer as LayerSpec;
  return { files: layer as Record<string, FileSpec> };
}

function configFields(c: ImageConfigInput & ImageConfigAliases): ImageConfigInput {
  return {
    Entrypoint: c.Entrypoint ?? c.entrypoint,
    Cmd: c.Cmd ?? c.cmd,
    Env: c.Env ?? c.env,
    WorkingDir: c.WorkingDir ?? c.workingDir,
    User: c.User ?? c.user,
    ExposedPorts: c.ExposedPorts ?? c.exposedPorts,
    Volumes: c.Volumes ?? c.volumes,
    Labels: c.Labels ?? c.labels,
    StopSignal: c.StopSignal,
  };
}

export interface BuildImageOptions {
  layers: LayerInput[];
  config?: ImageConfigInput & ImageConfigAliases;
  /** @defaultValue linux/amd64 */
  platform?: Platform;
  /** @defaultValue 'oci' */
  format?: 'oci' | 'docker';
  /** Compression of layers that do not name one. @defaultValue 'gzip' */
  compression?: Compression;
  /** The config's `created`. @defaultValue '1970-01-01T00:00:00Z' */
  created?: string;
}

export interface BuiltImage {
  kind: 'image';
  mediaType: string;
  manifest: Buffer;
  digest: string;
  config: Buffer;
  configDigest: string;
  layers: (BuiltLayer & { mediaType: string })[];
  platform: Platform;
}

export interface BuiltIndex {
  kind: 'index';
  mediaType: string;
  manifest: Buffer;
  digest: string;
  images: BuiltImage[];
}

export const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function layerMediaType(format: 'oci' | 'docker', compression: Compression): string {
  if (format === 'oci') return compression === 'gzip' ? mt.OCI_LAYER_GZIP : compression === 'zstd' ? mt.OCI_LAYER_ZSTD : mt.OCI_LAYER;
  if (compression === 'zstd') throw new Error('Docker schema 2 has no zstd layer type: use the OCI format');
  return compression === 'gzip' ? mt.DOCKER_LAYER_GZIP : mt.DOCKER_LAYER;
}

const toSet = (list: string[] | undefined) => (list ? Object.fromEntries([...list].sort().map((k) => [k, {}])) : undefined);

export async function buildImage(options: BuildImageOptions): Promise<BuiltImage> {
  const format = options.format ?? 'oci';
  const platform = options.platform ?? { os: 'linux', architecture: 'amd64' };
  const layers: BuiltImage['layers'] = [];
  for (const layer of options.layers) {
    const built = await buildLayer(toLayerSpec(layer), options.compression ?? 'gzip');
    layers.push({ ...built, mediaType: layerMediaType(format, built.compression) });
  }
  const c = configFields(options.config ?? {});
  const runtime: Record<string, unknown> = {};
  if (c.User !== undefined) runtime.User = c.User;
  if (c.ExposedPorts) runtime.ExposedPorts = toSet(c.ExposedPorts);
  runtime.Env = c.Env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];
  if (c.Entrypoint) runtime.Entrypoint = c.Entrypoint;
  if (c.Cmd) runtime.Cmd = c.Cmd;
  if (c.Volumes) runtime.Volumes = toSet(c.Volumes);
  if (c.WorkingDir !== undefined) runtime.WorkingDir = c.WorkingDir;
  if (c.Labels) runtime.Labels = Object.fromEntries(Object.entries(c.Labels).sort());
  if (c.StopSignal) runtime.StopSignal = c.StopSignal;
  const created = options.created ?? '1970-01-01T00:00:00Z';
  const configJson = {
    created,
    architecture: platform.architecture,
    ...(platform.variant ? { variant: platform.variant } : {}),
    os: platform.os,
    config: runtime,
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffID) },
    history: layers.map(() => ({ created, created_by: 'berth images' })),
  };
  const config = Buffer.from(JSON.stringify(configJson));
  const configDigest = sha256(config);
  const mediaType = format === 'oci' ? mt.OCI_MANIFEST : mt.DOCKER_MANIFEST;
  const manifestJson = {
    schemaVersion: 2,
    mediaType,
    config: { mediaType: format === 'oci' ? mt.OCI_CONFIG : mt.DOCKER_CONFIG, digest: configDigest, size: config.length },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const manifest = Buffer.from(JSON.stringify(manifestJson));
  return { kind: 'image', mediaType, manifest, digest: sha256(manifest), config, configDigest, layers, platform };
}

/** An OCI index or a Docker manifest list over images of different platforms. */
export function buildIndex(images: BuiltImage[], options: { format?: 'oci' | 'docker' } = {}): BuiltIndex {
  const format = options.format ?? 'oci';
  const mediaType = format === 'oci' ? mt.OCI_INDEX : mt.DOCKER_MANIFEST_LIST;
  const json = {
    schemaVersion: 2,
    mediaType,
    manifests: images.map((img) => ({
      mediaType: img.mediaType,
      digest: img.digest,
      size: img.manifest.length,
      platform: { architecture: img.platform.architecture, os: img.platform.os, ...(img.platform.variant ? { variant: img.platform.variant } : {}) },
    })),
  };
  const manifest = Buffer.from(JSON.stringify(json));
  return { kind: 'index', mediaType, manifest, digest: sha256(manifest), images };
}
