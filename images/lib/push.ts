// Pushing images and indexes over the OCI Distribution API: each blob once
// (HEAD first, then a monolithic POST+PUT upload), then the manifests.
import { RegistryClient, registryErrorFrom, type Credentials } from '../../node-agent/src/image/index.ts';
import type { BuiltImage, BuiltIndex } from './image.ts';

export interface PushOptions {
  credentials?: Credentials;
  /** Registries to reach over plain HTTP besides loopback ones. */
  insecureRegistries?: string[];
  /** Called after each blob or manifest. */
  onProgress?: (what: string) => void;
}

export interface PushResult {
  /** The digest of what the tag points at (the index for an index). */
  digest: string;
  reference: string;
}

function withDigest(location: string, digest: string): string {
  return `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
}

async function pushBlob(client: RegistryClient, repo: string, scope: string, digest: string, data: Buffer): Promise<boolean> {
  const head = await client.request(`/v2/${repo}/blobs/${digest}`, { method: 'HEAD', scope });
  await head.body?.cancel().catch(() => undefined);
  if (head.ok) return false;
  if (head.status !== 404) throw await registryErrorFrom(head, `blob ${digest}`);
  const start = await client.request(`/v2/${repo}/blobs/uploads/`, { method: 'POST', scope, headers: { 'content-length': '0' } });
  if (start.status !== 202) throw await registryErrorFrom(start, 'starting an upload');
  await start.body?.cancel().catch(() => undefined);
  const location = start.headers.get('location');
  if (!location) throw new Error('the registry started an upload without a Location');
  const url = location.startsWith('/') ? location : new URL(location).toString();
  const put = await client.request(withDigest(url, digest), {
    method: 'PUT', scope, body: data,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(data.length) },
  });
  if (put.status !== 201) throw await registryErrorFrom(put, `uploading blob ${digest}`);
  await put.body?.cancel().catch(() => undefined);
  return true;
}

async function putManifest(client: RegistryClient, repo: string, scope: string, ref: string, mediaType: string, body: Buffer): Promise<void> {
  const res = await client.request(`/v2/${repo}/manifests/${ref}`, {
    method: 'PUT', scope, body, headers: { 'content-type': mediaType },
  });
  if (res.status !== 201) throw await registryErrorFrom(res, `pushing manifest ${ref}`);
  await res.body?.cancel().catch(() => undefined);
}

async function pushOne(client: RegistryClient, repo: string, scope: string, image: BuiltImage, ref: string, options: PushOptions): Promise<void> {
  for (const layer of image.layers) {
    const sent = await pushBlob(client, repo, scope, layer.digest, layer.data);
    options.onProgress?.(`${sent ? 'pushed' : 'exists'} layer ${layer.digest} (${layer.size} bytes)`);
  }
  await pushBlob(client, repo, scope, image.configDigest, image.config);
  await putManifest(client, repo, scope, ref, image.mediaType, image.manifest);
  options.onProgress?.(`pushed manifest ${image.digest}`);
}

/** Pushes an image (or an index and its images) to registry/repo:tag. */
export async function pushImage(registry: string, repo: string, tag: string, image: BuiltImage | BuiltIndex, options: PushOptions = {}): Promise<PushResult> {
  const client = new RegistryClient({ registry, credentials: options.credentials, insecureRegistries: options.insecureRegistries, timeoutMs: 120_000 });
  const scope = `repository:${repo}:pull,push`;
  if (image.kind === 'index') {
    for (const img of image.images) await pushOne(client, repo, scope, img, img.digest, options);
    await putManifest(client, repo, scope, tag, image.mediaType, image.manifest);
  } else {
    await pushOne(client, repo, scope, image, tag, options);
  }
  return { digest: image.digest, reference: `${registry}/${repo}:${tag}` };
}
