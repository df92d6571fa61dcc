// When a task start asks the registry about an image it already has (ECS's
// ECS_IMAGE_PULL_BEHAVIOR). Content is never trusted without a check: what the
// store holds was verified when it was pulled; the behaviour only decides whether
// the registry is asked what a reference points at now.
//
// - `default`: the registry is asked, unless this agent resolved the same
//   reference with the same credentials within `tagCacheMs` (10 s): a burst of
//   starts asks once. Digests are asked about too: the answer is also the
//   registry's word that these credentials may read the image, and one tenant
//   must not run another's private image from the node's cache.
// - `always`: the registry is asked on every start.
// - `once` / `prefer-cached`: an image stored for the reference is used, however
//   old and whoever pulled it; the registry is asked only when there is none.
//   Berth's store is the only cache, so the two behave alike. For nodes that
//   only run trusted definitions (or no private images).
import type { ImageReference } from './reference.ts';

export const IMAGE_PULL_BEHAVIORS = ['default', 'always', 'once', 'prefer-cached'] as const;
export type ImagePullBehavior = (typeof IMAGE_PULL_BEHAVIORS)[number];

export const DEFAULT_TAG_CACHE_MS = 10_000;

export class InvalidPullBehaviorError extends Error {
  constructor(value: string) {
    super(`unknown image pull behaviour "${value}" (expected one of ${IMAGE_PULL_BEHAVIORS.join(', ')})`);
    this.name = 'InvalidPullBehaviorError';
  }
}

export function parsePullBehavior(value: string | undefined): ImagePullBehavior {
  if (value === undefined || value === '') return 'default';
  if ((IMAGE_PULL_BEHAVIORS as readonly string[]).includes(value)) return value as ImagePullBehavior;
  throw new InvalidPullBehaviorError(value);
}

/** Which manifest digest each reference was last resolved to, and when, per set of credentials. */
export class Resolutions {
  private readonly byKey = new Map<string, { digest: string; at: number }>();

  private static key(ref: ImageReference, credentialsKey: string): string {
    return `${ref.text}\0${credentialsKey}`;
  }

  remember(ref: ImageReference, credentialsKey: string, digest: string): void {
    this.byKey.set(Resolutions.key(ref, credentialsKey), { digest, at: Date.now() });
  }

  /** The digest resolved within `maxAgeMs` (any age when undefined). */
  recent(ref: ImageReference, credentialsKey: string, maxAgeMs?: number): string | undefined {
    const hit = this.byKey.get(Resolutions.key(ref, credentialsKey));
    if (!hit || (maxAgeMs !== undefined && Date.now() - hit.at > maxAgeMs)) return undefined;
    return hit.digest;
  }

  /** The latest digest resolved for the reference with any credentials. */
  latest(ref: ImageReference): string | undefined {
    let best: { digest: string; at: number } | undefined;
    for (const [key, hit] of this.byKey) {
      if (key.startsWith(`${ref.text}\0`) && (!best || hit.at > best.at)) best = hit;
    }
    return best?.digest;
  }
}

/**
 * The digest to take from the store without asking the registry, or undefined
 * when the behaviour wants the registry asked. `storedFor` finds an image the
 * store holds for a tag (once / prefer-cached only).
 */
export async function digestToUseCached(
  behavior: ImagePullBehavior,
  ref: ImageReference,
  credentialsKey: string,
  resolutions: Resolutions,
  tagCacheMs: number,
  storedFor: (ref: ImageReference) => Promise<string | undefined>,
): Promise<string | undefined> {
  if (behavior === 'always') return undefined;
  if (behavior === 'default') return tagCacheMs > 0 ? resolutions.recent(ref, credentialsKey, tagCacheMs) : undefined;
  return ref.digest ?? resolutions.latest(ref) ?? (await storedFor(ref));
}
