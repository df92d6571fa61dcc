// berth task run | ls | describe | stop
import type { components } from '../api/src/openapi-types.ts';
import { envOption, intOption, type Command, type Context } from './command.ts';
import { CliError, EXIT } from './errors.ts';
import { age, keyValues, table } from './output.ts';

export type Task = components['schemas']['Task'];

export const taskTable = (tasks: Task[]) => table(tasks, [
  ['task id', (t) => t.taskId],
  ['definition', (t) => t.taskDefinition],
  ['status', (t) => t.lastStatus],
  ['desired', (t) => t.desiredStatus],
  ['node', (t) => t.nodeId],
  ['cpu', (t) => t.cpu, 'right'],
  ['memory', (t) => t.memory, 'right'],
  ['exit', (t) => t.exitCode, 'right'],
  ['age', (t) => age(t.createdAt)],
  ['reason', (t) => t.stoppedReason],
]);

export function describeTask(t: Task): string {
  return keyValues([
    ['Task', t.taskId],
    ['Definition', t.taskDefinition],
    ['Status', t.lastStatus],
    ['Health', t.healthStatus],
    ['Desired', t.desiredStatus],
    ['Node', t.nodeId],
    ['Address', t.ipAddress],
    ['Image', t.image],
    ['Image digest', t.imageDigest],
    ['CPU', t.cpu],
    ['Memory', `${t.memory} MiB`],
    ['Created', t.createdAt],
    ['Started', t.startedAt],
    ['Stopping', t.stoppingAt],
    ['Stopped', t.stoppedAt],
    ['Exit code', t.exitCode],
    ['Stop code', t.stopCode],
    ['Reason', t.stoppedReason],
    ['Started by', t.startedBy],
    ['Group', t.group],
    ['Tags', t.tags?.length ? t.tags.map((x) => `${x.key}=${x.value}`).join(', ') : undefined],
  ]);
}

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((resolve) => {
  const timer = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
});

/** Polls until every task is STOPPED; returns them in the order of `ids`. */
export async function waitForStopped(ctx: Context, ids: string[], timeoutMs: number): Promise<Task[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const page = await ctx.client().request<components['schemas']['TaskPage']>('GET', '/v1/tasks', { query: { ids: ids.join(',') } });
    const byId = new Map(page.tasks.map((t) => [t.taskId, t]));
    const tasks = ids.map((id) => byId.get(id)).filter((t): t is Task => t !== undefined);
    if (tasks.length < ids.length) throw new CliError(`task ${ids.find((id) => !byId.has(id))} is gone`, EXIT.NOT_FOUND);
    if (tasks.every((t) => t.lastStatus === 'STOPPED')) return tasks;
    if (ctx.signal.aborted) throw new CliError('interrupted; the tasks go on running', EXIT.ERROR);
    if (Date.now() > deadline) throw new CliError(`the tasks did not stop within ${timeoutMs / 1000} s`, EXIT.ERROR);
    await sleep(500, ctx.signal);
  }
}

export const taskCommands: Command[] = [
  {
    name: 'task run',
    summary: 'Run tasks from a task definition (the latest active revision of FAMILY, or FAMILY:REV).',
    args: 'FAMILY[:REV] [-- COMMAND...]',
    positionals: [1, 1000],
    options: {
      count: { type: 'string', value: 'N', description: 'how many tasks (1 to 100; default 1)' },
      env: { type: 'string', short: 'e', multiple: true, value: 'K=V', description: 'set an environment variable (overrides the definition\'s)' },
      cpu: { type: 'string', value: 'UNITS', description: 'CPU units for these tasks (1024 = one vCPU)' },
      memory: { type: 'string', value: 'MIB', description: 'memory limit in MiB for these tasks' },
      'started-by': { type: 'string', value: 'TEXT', description: 'recorded as the tasks\' startedBy' },
      'idempotency-key': { type: 'string', value: 'KEY', description: 'a retry with the same key returns the same tasks' },
      wait: { type: 'boolean', short: 'w', description: 'wait until every task has stopped; exit 6 unless all exited 0' },
      timeout: { type: 'string', value: 'SECONDS', description: 'with --wait, give up after this long (default 3600)' },
    },
    details: 'Words after `--` replace the definition\'s command:\n  berth task run hello --wait -- sh -c \'echo hi\'',
    async run(ctx, values, [ref, ...command]) {
      const count = intOption(values, 'count', 1, 100);
      const cpu = intOption(values, 'cpu', 2, 16384);
      const memory = intOption(values, 'memory', 6, 122880);
      const timeout = intOption(values, 'timeout', 1) ?? 3600;
      const environment = envOption(values);
      const overrides = {
        ...(command.length > 0 ? { command } : {}),
        ...(environment ? { environment } : {}),
        ...(cpu !== undefined ? { cpu } : {}),
        ...(memory !== undefined ? { memory } : {}),
      };
      const body = {
        taskDefinition: ref!,
        ...(count !== undefined ? { count } : {}),
        ...(Object.keys(overrides).length > 0 ? { overrides } : {}),
        ...(values['started-by'] ? { startedBy: values['started-by'] as string } : {}),
      };
      const key = values['idempotency-key'] as string | undefined;
      const { tasks } = await ctx.client().request<{ tasks: Task[] }>('POST', '/v1/tasks', {
        body, headers: key ? { 'idempotency-key': key } : {},
      });
      if (!values.wait) {
        ctx.emit({ tasks }, () => taskTable(tasks));
        return;
      }
      if (ctx.format === 'table') ctx.err(`waiting for ${tasks.length} task${tasks.length === 1 ? '' : 's'} to stop: ${tasks.map((t) => t.taskId).join(' ')}\n`);
      const stopped = await waitForStopped(ctx, tasks.map((t) => t.taskId), timeout * 1000);
      ctx.emit({ tasks: stopped }, () => taskTable(stopped));
      return stopped.every((t) => t.exitCode === 0) ? EXIT.OK : EXIT.TASK_FAILED;
    },
  },
  {
    name: 'task ls',
    summary: 'List tasks, newest first.',
    options: {
      status: { type: 'string', value: 'STATUS', description: 'PROVISIONING, PENDING, RUNNING, STOPPING or STOPPED' },
      family: { type: 'string', value: 'FAMILY', description: 'only tasks of this family' },
      node: { type: 'string', value: 'NODE', description: 'only tasks on this node' },
      limit: { type: 'string', value: 'N', description: 'at most N tasks (default 100)' },
      all: { type: 'boolean', short: 'a', description: 'every task, however many' },
    },
    async run(ctx, values) {
      const limit = values.all ? Infinity : intOption(values, 'limit', 1) ?? 100;
      const tasks: Task[] = [];
      let nextToken: string | undefined;
      do {
        const page = await ctx.client().request<components['schemas']['TaskPage']>('GET', '/v1/tasks', {
          query: {
            status: values.status as string | undefined,
            family: values.family as string | undefined,
            nodeId: values.node as string | undefined,
            limit: Math.min(100, limit - tasks.length),
            nextToken,
          },
        });
        tasks.push(...page.tasks);
        nextToken = page.nextToken;
      } while (nextToken && tasks.length < limit);
      const shown = tasks.slice(0, limit);
      ctx.emit({ tasks: shown }, () => taskTable(shown));
    },
  },
  {
    name: 'task describe',
    summary: 'Describe tasks: status, node, address, exit code, stop reason.',
    args: 'TASK_ID...',
    details: 'With --output json: the Task for one id; `{ tasks, failures }` for several (exit 3 if any is missing).',
    positionals: [1, 100],
    async run(ctx, _values, ids) {
      if (ids.length === 1) {
        const task = await ctx.client().request<Task>('GET', `/v1/tasks/${encodeURIComponent(ids[0]!)}`);
        ctx.emit(task, () => describeTask(task));
        return;
      }
      const out = await ctx.client().request<components['schemas']['DescribeTasksOutput']>('POST', '/v1/tasks/describe', { body: { taskIds: ids } });
      ctx.emit(out, () => out.tasks.map(describeTask).join('\n'));
      for (const f of out.failures) ctx.err(`berth: no task ${f.taskId}\n`);
      return out.failures.length > 0 ? EXIT.NOT_FOUND : EXIT.OK;
    },
  },
  {
    name: 'task stop',
    summary: 'Stop tasks: SIGTERM, then SIGKILL after the definition\'s stopTimeout.',
    args: 'TASK_ID...',
    positionals: [1, 100],
    options: {
      reason: { type: 'string', value: 'TEXT', description: 'kept as the stoppedReason (default "Task stopped by user")' },
      wait: { type: 'boolean', short: 'w', description: 'wait until the tasks are STOPPED' },
    },
    async run(ctx, values, ids) {
      const reason = values.reason as string | undefined;
      let tasks: Task[] = [];
      for (const id of ids) {
        tasks.push(await ctx.client().request<Task>('POST', `/v1/tasks/${encodeURIComponent(id)}/stop`, { body: reason ? { reason } : {} }));
      }
      if (values.wait) tasks = await waitForStopped(ctx, ids, 300_000);
      ctx.emit({ tasks }, () => taskTable(tasks));
    },
  },
];
