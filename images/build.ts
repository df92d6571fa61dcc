// Builds the project's images offline and pushes them to a registry:
//   npx tsx images/build.ts --registry 127.0.0.1:5000 [--name berth/busybox:latest] [--user u --password p]
//     [--format oci|docker] [--compression gzip|zstd|none] [--insecure host:port]
import { parseArgs } from 'node:util';
import { busyboxImage, nodeImage, pushImage, type BuildImageOptions, type BuiltImage } from './index.ts';

type Recipe = (options: Partial<BuildImageOptions>) => Promise<BuiltImage>;
const RECIPES: Record<string, Recipe> = {
  'berth/busybox:latest': (o) => busyboxImage(o),
  'berth/node:20': (o) => nodeImage(o),
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      registry: { type: 'string', default: process.env.BERTH_REGISTRY ?? '127.0.0.1:5000' },
      name: { type: 'string', multiple: true },
      user: { type: 'string' },
      password: { type: 'string' },
      insecure: { type: 'string', multiple: true },
      list: { type: 'boolean' },
      format: { type: 'string', default: 'oci' },
      compression: { type: 'string', default: 'gzip' },
    },
  });
  if (values.format !== 'oci' && values.format !== 'docker') throw new Error('--format is oci or docker');
  if (!['gzip', 'zstd', 'none'].includes(values.compression!)) throw new Error('--compression is gzip, zstd or none');
  const buildOptions: Partial<BuildImageOptions> = { format: values.format, compression: values.compression as BuildImageOptions['compression'] };
  if (values.list) {
    process.stdout.write(Object.keys(RECIPES).join('\n') + '\n');
    return;
  }
  const names = values.name?.length ? values.name : Object.keys(RECIPES);
  const credentials = values.user ? { username: values.user, password: values.password ?? process.env.BERTH_REGISTRY_PASSWORD ?? '' } : undefined;
  for (const name of names) {
    const recipe = RECIPES[name] ?? RECIPES[`${name}:latest`];
    if (!recipe) throw new Error(`no image recipe "${name}" (have: ${Object.keys(RECIPES).join(', ')})`);
    const full = RECIPES[name] ? name : `${name}:latest`;
    const colon = full.lastIndexOf(':');
    const started = Date.now();
    const image = await recipe(buildOptions);
    const result = await pushImage(values.registry!, full.slice(0, colon), full.slice(colon + 1), image, { credentials, insecureRegistries: values.insecure });
    const bytes = image.layers.reduce((n, l) => n + l.size, 0);
    process.stdout.write(`${result.reference}@${result.digest} (${(bytes / 1e6).toFixed(1)} MB, ${Date.now() - started} ms)\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`images/build: ${(err as Error).message}\n`);
  process.exit(1);
});
