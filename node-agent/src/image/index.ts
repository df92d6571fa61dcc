// The agent's image service: pulls OCI images from any registry into a
// content-addressed store and assembles container root filesystems with overlayfs.
// This file is the whole public surface; everything else in this folder is private.
export { createImageService, ImagePullError } from './service.ts';
export type { ImageService, ImageServiceOptions, PulledImage, PullOptions } from './service.ts';
export type { ImageConfig } from './manifest.ts';
export type { PullProgress } from './pull.ts';
export { IMAGE_PULL_BEHAVIORS, InvalidPullBehaviorError, parsePullBehavior, type ImagePullBehavior } from './pull-behavior.ts';
export { parseReference, InvalidReferenceError, type ImageReference } from './reference.ts';
// The registry client and media types are shared with the image builder (images/).
export { RegistryClient, RegistryError, registryErrorFrom, type Credentials } from './registry-client.ts';
export * as mediaTypes from './media-types.ts';
export type { Descriptor } from './media-types.ts';
