// berth secret put | ls | describe | rm: the tenant's secrets. A value goes in from
// a file or stdin (never as an argument, which shells keep in their history) and
// never comes back out.
import type { components } from '../api/src/openapi-types.ts';
import type { Command } from './command.ts';
import { UsageError } from './errors.ts';
import { readInput } from './input.ts';
import { age, keyValues, table } from './output.ts';

type Secret = components['schemas']['Secret'];

const secretTable = (secrets: Secret[]) => table(secrets, [
  ['name', (s) => s.name],
  ['created', (s) => age(s.createdAt)],
  ['updated', (s) => age(s.updatedAt)],
]);

export const secretCommands: Command[] = [
  {
    name: 'secret put',
    summary: 'Create or replace a secret; its value is read from FILE or stdin (`-`).',
    args: 'NAME',
    positionals: [1, 1],
    options: { file: { type: 'string', short: 'f', value: 'FILE', description: 'the value (`-` for stdin, the default); one trailing newline is dropped' } },
    details: 'Task definitions use it as  "secrets": [{"name": "DB_PASSWORD", "valueFrom": "NAME"}].\n' +
      'Example:  printf %s "$PASSWORD" | berth secret put db-password',
    async run(ctx, values, [name]) {
      const value = (await readInput((values.file as string | undefined) ?? '-', ctx.io.stdin)).replace(/\r?\n$/, '');
      if (value === '') throw new UsageError('berth secret put: the value is empty (give it on stdin or with -f FILE)');
      const secret = await ctx.client().request<Secret>('POST', '/v1/secrets', { body: { name, value } });
      ctx.emit(secret, () => secretTable([secret]));
    },
  },
  {
    name: 'secret ls',
    summary: 'List the tenant\'s secrets (names and dates, never values).',
    async run(ctx) {
      const { secrets } = await ctx.client().request<{ secrets: Secret[] }>('GET', '/v1/secrets');
      ctx.emit({ secrets }, () => secretTable(secrets));
    },
  },
  {
    name: 'secret describe',
    summary: 'Describe a secret (never its value).',
    args: 'NAME',
    positionals: [1, 1],
    async run(ctx, _values, [name]) {
      const secret = await ctx.client().request<Secret>('GET', `/v1/secrets/${encodeURIComponent(name!)}`);
      ctx.emit(secret, () => keyValues([['Secret', secret.name], ['Created', secret.createdAt], ['Updated', secret.updatedAt]]));
    },
  },
  {
    name: 'secret rm',
    summary: 'Delete a secret. Tasks already running keep the value they started with.',
    args: 'NAME',
    positionals: [1, 1],
    async run(ctx, _values, [name]) {
      await ctx.client().request('DELETE', `/v1/secrets/${encodeURIComponent(name!)}`);
      ctx.emit({ name, deleted: true }, () => `deleted ${name}\n`);
    },
  },
];
