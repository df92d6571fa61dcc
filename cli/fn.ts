// berth fn deploy | invoke | ls | describe | rm: functions, invoked over HTTP.
import { readFile } from 'node:fs/promises';
import type { components } from '../api/src/openapi-types.ts';
import { envOption, intOption, type Command } from './command.ts';
import { CliError, UsageError } from './errors.ts';
import { age, keyValues, table } from './output.ts';

type Fn = components['schemas']['Function'];

const fnTable = (fns: Fn[]) => table(fns, [
  ['name', (f) => f.name],
  ['version', (f) => f.version, 'right'],
  ['image', (f) => f.image],
  ['cpu', (f) => f.cpu, 'right'],
  ['memory', (f) => f.memory, 'right'],
  ['concurrency', (f) => f.concurrency, 'right'],
  ['min', (f) => f.minInstances, 'right'],
  ['max', (f) => f.maxInstances, 'right'],
  ['instances', (f) => f.instances, 'right'],
  ['updated', (f) => age(f.updatedAt ?? f.createdAt)],
]);

async function readData(data: string, stdin: NodeJS.ReadableStream): Promise<Buffer> {
  if (data === '-') {
    const chunks: Buffer[] = [];
    for await (const c of stdin) chunks.push(Buffer.from(c as Buffer));
    return Buffer.concat(chunks);
  }
  if (data.startsWith('@')) {
    try {
      return await readFile(data.slice(1));
    } catch (err) {
      throw new CliError(`cannot read ${data.slice(1)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  return Buffer.from(data);
}

function looksLikeJson(body: Buffer): boolean {
  try {
    JSON.parse(body.toString('utf8'));
    return true;
  } catch {
    return false;
  }
}

export const fnCommands: Command[] = [
  {
    name: 'fn deploy',
    summary: 'Create a function, or update it.',
    args: 'NAME [-- COMMAND...]',
    positionals: [1, 1000],
    options: {
      image: { type: 'string', value: 'IMAGE', description: 'the function\'s image; it listens on $PORT (required)' },
      memory: { type: 'string', value: 'MIB', description: 'memory per instance, MiB' },
      cpu: { type: 'string', value: 'UNITS', description: 'CPU units per instance (1024 = one vCPU)' },
      concurrency: { type: 'string', value: 'N', description: 'requests one instance serves at once' },
      min: { type: 'string', value: 'N', description: 'instances kept warm (0 scales to zero)' },
      max: { type: 'string', value: 'N', description: 'at most this many instances' },
      timeout: { type: 'string', value: 'SECONDS', description: 'how long one invocation may take (1 to 900)' },
      port: { type: 'string', value: 'PORT', description: 'the port the container listens on, given as $PORT' },
      env: { type: 'string', short: 'e', multiple: true, value: 'K=V', description: 'an environment variable' },
    },
    details: 'Deploying an existing NAME again makes a new version (the instances roll over).\n' +
      'Words after `--` are the container\'s command:  berth fn deploy hi --image berth/node:20 -- -e "..."',
    async run(ctx, values, [name, ...command]) {
      const image = values.image as string | undefined;
      if (!image) throw new UsageError('berth fn deploy: --image is required (see: berth fn deploy --help)');
      const body: Record<string, unknown> = { name, image };
      const put = (field: string, v: unknown) => { if (v !== undefined) body[field] = v; };
      put('memory', intOption(values, 'memory', 6, 122880));
      put('cpu', intOption(values, 'cpu', 2, 16384));
      put('concurrency', intOption(values, 'concurrency', 1, 1000));
      put('minInstances', intOption(values, 'min', 0, 1000));
      put('maxInstances', intOption(values, 'max', 1, 1000));
      put('timeout', intOption(values, 'timeout', 1, 900));
      put('port', intOption(values, 'port', 1, 65535));
      put('environment', envOption(values));
      if (command.length > 0) body.command = command;
      const fn = await ctx.client().request<Fn>('POST', '/v1/functions', { body });
      ctx.emit(fn, () => fnTable([fn]));
    },
  },
  {
    name: 'fn invoke',
    summary: 'Invoke a function and print its answer.',
    args: 'NAME',
    positionals: [1, 1],
    options: {
      data: { type: 'string', short: 'd', value: 'DATA', description: 'the request body; @FILE reads a file, - reads stdin' },
      'content-type': { type: 'string', value: 'TYPE', description: 'of the body (default: application/json if it parses as JSON)' },
      async: { type: 'boolean', description: 'queue it (an Event invocation) and print its invocation id' },
    },
    details: 'The answer\'s body goes to stdout as it came; an answer of 400 or more exits 1 (3 for 404).\n' +
      'With --output json: { status, headers, body }.',
    async run(ctx, values, [name]) {
      const data = values.data as string | undefined;
      const body = data === undefined ? undefined : await readData(data, ctx.io.stdin);
      const type = (values['content-type'] as string | undefined)
        ?? (body ? (looksLikeJson(body) ? 'application/json' : 'application/octet-stream') : undefined);
      const res = await ctx.client().raw('POST', `/v1/functions/${encodeURIComponent(name!)}/invoke`, {
        rawBody: body ? new Uint8Array(body) : undefined,
        headers: { ...(type ? { 'content-type': type } : {}), ...(values.async ? { 'x-berth-invocation-type': 'Event' } : {}) },
        timeoutMs: 15 * 60_000,
      });
      const answer = Buffer.from(await res.arrayBuffer());
      if (ctx.format === 'json') {
        const text = answer.toString('utf8');
        let parsed: unknown = text;
        try { parsed = JSON.parse(text); } catch { /* text */ }
        ctx.emit({ status: res.status, headers: Object.fromEntries(res.headers), body: parsed }, () => '');
        return;
      }
      ctx.io.stdout.write(answer);
      if (answer.length > 0 && answer[answer.length - 1] !== 0x0a && ctx.io.stdout.isTTY) ctx.out('\n');
    },
  },
  {
    name: 'fn ls',
    summary: 'List functions.',
    async run(ctx) {
      const out = await ctx.client().request<{ functions: Fn[] }>('GET', '/v1/functions');
      ctx.emit(out, () => fnTable(out.functions));
    },
  },
  {
    name: 'fn describe',
    summary: 'Describe a function.',
    args: 'NAME',
    positionals: [1, 1],
    async run(ctx, _values, [name]) {
      const fn = await ctx.client().request<Fn>('GET', `/v1/functions/${encodeURIComponent(name!)}`);
      ctx.emit(fn, () => keyValues(Object.entries(fn)));
    },
  },
  {
    name: 'fn rm',
    summary: 'Delete a function and stop its instances.',
    args: 'NAME',
    positionals: [1, 1],
    async run(ctx, _values, [name]) {
      await ctx.client().request('DELETE', `/v1/functions/${encodeURIComponent(name!)}`);
      ctx.emit({ name, deleted: true }, () => `deleted ${name}\n`);
    },
  },
];
