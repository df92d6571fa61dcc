// The images the all-in-one puts in its local registry at start: the stock
// images of images/build.ts. Returns the references pushed.
import { busyboxImage, nodeImage } from './lib/recipes.ts';
import { pushImage, type PushOptions } from './lib/push.ts';

export const EXAMPLE_IMAGES = ['berth/busybox:latest', 'berth/node:20'] as const;

export async function pushExampleImages(registry: string, options: PushOptions = {}): Promise<string[]> {
  const pushed: string[] = [];
  const busybox = await pushImage(registry, 'berth/busybox', 'latest', await busyboxImage(), options);
  pushed.push(`${busybox.reference}@${busybox.digest}`);
  const node = await pushImage(registry, 'berth/node', '20', await nodeImage(), options);
  pushed.push(`${node.reference}@${node.digest}`);
  return pushed;
}
