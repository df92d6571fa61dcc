// berth top: a live table of the running tasks' CPU and memory, from
// GET /v1/tasks/{id}/stats, refreshed every second; q or Ctrl-C leaves.
import type { components } from '../api/src/openapi-types.ts';
import { intOption, type Command, type Context } from './command.ts';
import { ApiError } from './errors.ts';
import { bytes, percent, table } from './output.ts';
import type { Task } from './task.ts';

type Sample = components['schemas']['StatsSample'];

export interface TopRow {
  taskId: string;
  taskDefinition: string;
  nodeId?: string;
  sample: Sample | null;
}

async function collect(ctx: Context, limit: number): Promise<{ rows: TopRow[]; more: boolean }> {
  const tasks: Task[] = [];
  let nextToken: string | undefined;
  let more = false;
  do {
    const page = await ctx.client().request<components['schemas']['TaskPage']>('GET', '/v1/tasks', {
      query: { status: 'RUNNING', limit: 100, nextToken },
    });
    tasks.push(...page.tasks);
    nextToken = page.nextToken;
  } while (nextToken && tasks.length <= limit);
  if (tasks.length > limit || nextToken) more = true;
  const shown = tasks.slice(0, limit);
  // A few at a time: every call counts against the key's rate limit.
  const rows: TopRow[] = [];
  for (let i = 0; i < shown.length; i += 8) {
    rows.push(...await Promise.all(shown.slice(i, i + 8).map(async (t): Promise<TopRow> => {
      let sample: Sample | null = null;
      try {
        const stats = await ctx.client().request<components['schemas']['TaskStats']>('GET', `/v1/tasks/${t.taskId}/stats`, { query: { limit: 0 } });
        sample = stats.current;
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 404)) throw err;
      }
      return { taskId: t.taskId, taskDefinition: t.taskDefinition, nodeId: t.nodeId, sample };
    })));
  }
  return { rows, more };
}

function render(rows: TopRow[], more: boolean): string {
  const text = table(rows, [
    ['task id', (r) => r.taskId],
    ['definition', (r) => r.taskDefinition],
    ['node', (r) => r.nodeId],
    ['cpu %', (r) => percent(r.sample?.cpuPercent), 'right'],
    ['of limit', (r) => percent(r.sample?.cpuLimitPercent), 'right'],
    ['mem usage / limit', (r) => r.sample?.memoryBytes === undefined ? undefined
      : `${bytes(r.sample.memoryBytes)} / ${bytes(r.sample.memoryLimitBytes) ?? '-'}`, 'right'],
    ['mem %', (r) => r.sample?.memoryBytes !== undefined && r.sample.memoryLimitBytes
      ? percent((100 * r.sample.memoryBytes) / r.sample.memoryLimitBytes) : undefined, 'right'],
    ['pids', (r) => r.sample?.pids, 'right'],
    ['net rx / tx', (r) => r.sample?.netRxBytes === undefined ? undefined
      : `${bytes(r.sample.netRxBytes)} / ${bytes(r.sample.netTxBytes) ?? '-'}`, 'right'],
  ]);
  return rows.length === 0 ? 'No running tasks.\n' : text + (more ? '(more running tasks not shown; see --limit)\n' : '');
}

export const topCommands: Command[] = [
  {
    name: 'top',
    summary: 'A live table of the running tasks\' CPU and memory, refreshed every second; q or Ctrl-C quits.',
    options: {
      once: { type: 'boolean', description: 'print the table once and exit (for scripts and tests)' },
      interval: { type: 'string', value: 'SECONDS', description: 'seconds between refreshes (default 1)' },
      limit: { type: 'string', value: 'N', description: 'show at most N tasks, newest first (default 40)' },
    },
    details: 'CPU % is of one CPU; "of limit" is of the task\'s own CPU limit.\n' +
      'With --output json: { rows: [{ taskId, taskDefinition, nodeId, sample }] } (one line per refresh without --once).',
    async run(ctx, values) {
      const interval = (intOption(values, 'interval', 1, 3600) ?? 1) * 1000;
      const limit = intOption(values, 'limit', 1, 1000) ?? 40;
      if (values.once) {
        const { rows, more } = await collect(ctx, limit);
        ctx.emit({ rows }, () => render(rows, more));
        return;
      }
      const { stdout, stdin } = ctx.io;
      const live = Boolean(stdout.isTTY) && ctx.format === 'table';
      const quit = new AbortController();
      ctx.signal.addEventListener('abort', () => quit.abort(), { once: true });
      const onKey = (data: Buffer) => {
        const s = data.toString();
        if (s === 'q' || s === 'Q' || s === '\x03') quit.abort();
      };
      const raw = Boolean(stdin.isTTY && stdin.setRawMode);
      if (raw) {
        stdin.setRawMode!(true);
        stdin.resume();
        stdin.on('data', onKey);
      }
      if (live) ctx.out('\x1b[?25l');
      try {
        while (!quit.signal.aborted) {
          const { rows, more } = await collect(ctx, limit);
          if (quit.signal.aborted) break;
          if (ctx.format === 'json') ctx.out(JSON.stringify({ time: new Date().toISOString(), rows }) + '\n');
          else if (live) ctx.out(`\x1b[H\x1b[2J${new Date().toLocaleTimeString()}  ${rows.length} running   (q to quit)\n\n${render(rows, more)}`);
          else ctx.out(render(rows, more) + '\n');
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, interval);
            quit.signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
          });
        }
      } finally {
        if (live) ctx.out('\x1b[?25h');
        if (raw) {
          stdin.off('data', onKey);
          stdin.setRawMode!(false);
          stdin.pause();
        }
      }
    },
  },
];
