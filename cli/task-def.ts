// berth task-def register | ls | describe | deregister
import type { components } from '../api/src/openapi-types.ts';
import type { Command } from './command.ts';
import { CliError, UsageError } from './errors.ts';
import { readInput } from './input.ts';
import { age, keyValues, table } from './output.ts';

type TaskDefinition = components['schemas']['TaskDefinition'];

const defTable = (defs: TaskDefinition[]) => table(defs, [
  ['definition', (d) => d.taskDefinition ?? `${d.family}:${d.revision}`],
  ['status', (d) => d.status],
  ['image', (d) => d.image],
  ['cpu', (d) => d.cpu, 'right'],
  ['memory', (d) => d.memory, 'right'],
  ['registered', (d) => age(d.registeredAt)],
]);

export const taskDefCommands: Command[] = [
  {
    name: 'task-def register',
    summary: 'Register a new revision of a task definition family from a JSON file.',
    options: { file: { type: 'string', short: 'f', value: 'FILE', description: 'the task definition, JSON (`-` for stdin); required' } },
    details: 'The file holds a TaskDefinitionInput (api/openapi.yaml), e.g.\n' +
      '  {"family":"hello","image":"berth/busybox:latest","command":["echo","hi"],"memory":64}',
    async run(ctx, values) {
      const file = values.file as string | undefined;
      if (!file) throw new UsageError('berth task-def register: -f FILE is required (see: berth task-def register --help)');
      const text = await readInput(file, ctx.io.stdin);
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch (err) {
        throw new CliError(`${file === '-' ? 'stdin' : file}: not valid JSON (${(err as Error).message})`);
      }
      const def = await ctx.client().request<TaskDefinition>('POST', '/v1/task-definitions', { body });
      ctx.emit(def, () => defTable([def]));
    },
  },
  {
    name: 'task-def ls',
    summary: 'List task definitions, by family then revision.',
    options: {
      family: { type: 'string', value: 'FAMILY', description: 'only this family' },
      status: { type: 'string', value: 'STATUS', description: 'ACTIVE or INACTIVE' },
    },
    async run(ctx, values) {
      const defs: TaskDefinition[] = [];
      let nextToken: string | undefined;
      do {
        const page = await ctx.client().request<components['schemas']['TaskDefinitionPage']>('GET', '/v1/task-definitions', {
          query: { family: values.family as string | undefined, status: values.status as string | undefined, nextToken },
        });
        defs.push(...page.taskDefinitions);
        nextToken = page.nextToken;
      } while (nextToken);
      ctx.emit({ taskDefinitions: defs }, () => defTable(defs));
    },
  },
  {
    name: 'task-def describe',
    summary: 'Describe FAMILY:REVISION, or the latest active revision of FAMILY.',
    args: 'FAMILY[:REV]',
    positionals: [1, 1],
    async run(ctx, _values, [ref]) {
      const def = await ctx.client().request<TaskDefinition>('GET', `/v1/task-definitions/${encodeURIComponent(ref!)}`);
      ctx.emit(def, () => keyValues(Object.entries(def)));
    },
  },
  {
    name: 'task-def deregister',
    summary: 'Deregister FAMILY:REVISION: no new task runs from it.',
    args: 'FAMILY:REV',
    positionals: [1, 1],
    async run(ctx, _values, [ref]) {
      if (!ref!.includes(':')) throw new UsageError('berth task-def deregister: give the revision, FAMILY:REV');
      const def = await ctx.client().request<TaskDefinition>('DELETE', `/v1/task-definitions/${encodeURIComponent(ref!)}`);
      ctx.emit(def, () => defTable([def]));
    },
  },
];
