// The offline image builder: OCI images from parts on this machine, pushed to
// any registry over the OCI Distribution API with our own client.
//   const image = await buildImage({ layers: [{ files: { 'app/main.js': src } }], config: { Cmd: ['node', '/app/main.js'] } });
//   await pushImage('127.0.0.1:5000', 'me/app', 'latest', image);
export { buildImage, buildIndex, sha256, toLayerSpec, type BuildImageOptions, type BuiltImage, type BuiltIndex, type ImageConfigAliases, type ImageConfigInput, type LayerInput, type Platform } from './lib/image.ts';
export { buildLayer, layerTar, type BuiltLayer, type Compression, type FileSpec, type LayerSource, type LayerSpec } from './lib/layer.ts';
export { pushImage, type PushOptions, type PushResult } from './lib/push.ts';
export { writeTar, type TarWriteEntry } from './lib/tar-writer.ts';
export { busyboxImage, busyboxFiles, nodeImage, nodeFiles, sharedLibraries } from './lib/recipes.ts';
export { buildImageCached, cacheKey, defaultCacheDir } from './lib/cache.ts';
