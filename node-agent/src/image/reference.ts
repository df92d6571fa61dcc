// Image references as Docker writes them: [registry[:port]/]repo[:tag][@algo:hex].
// A name without a registry host goes to the default registry, or to Docker Hub
// (registry-1.docker.io, with `library/` for one-component names).

export interface ImageReference {
  /** host[:port] used for the HTTP API (docker.io becomes registry-1.docker.io). */
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
  /** The canonical text: registry/repository[:tag][@digest]. */
  text: string;
}

export class InvalidReferenceError extends Error {
  constructor(reference: string, why: string) {
    super(`invalid image reference "${reference}": ${why}`);
    this.name = 'InvalidReferenceError';
  }
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[a-fA-F0-9:]+\])(?::\d{1,5})?$/;

export const DOCKER_HUB = 'registry-1.docker.io';

export function parseReference(reference: string, defaultRegistry?: string): ImageReference {
  const fail = (why: string): never => { throw new InvalidReferenceError(reference, why); };
  if (typeof reference !== 'string' || reference.length === 0) fail('empty');
  if (reference.length > 1024) fail('too long');
  let rest = reference;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) fail(`bad digest "${digest}" (expected sha256:<64 hex>)`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) fail(`bad tag "${tag}"`);
  }
  const parts = rest.split('/');
  let registry: string | undefined;
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['))) {
    registry = first;
    parts.shift();
    if (!HOST.test(registry)) fail(`bad registry host "${registry}"`);
  }
  if (parts.length === 0 || parts.some((p) => !COMPONENT.test(p))) {
    fail('repository must be lowercase components of [a-z0-9] separated by "/", with ".", "_", "__" or "-" inside');
  }
  let repository = parts.join('/');
  if (repository.length > 255) fail('repository name too long');
  if (!registry) {
    if (defaultRegistry) registry = defaultRegistry;
    else {
      registry = DOCKER_HUB;
      if (parts.length === 1) repository = `library/${repository}`;
    }
  } else if (registry === 'docker.io' || registry === 'index.docker.io') {
    registry = DOCKER_HUB;
    if (parts.length === 1) repository = `library/${repository}`;
  }
  if (!tag && !digest) tag = 'latest';
  const text = `${registry}/${repository}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`;
  return { registry, repository, tag, digest, text };
}

/** Loopback registries are reached over plain HTTP, as Docker allows. */
export function isLoopbackHost(hostPort: string): boolean {
  const host = hostPort.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
