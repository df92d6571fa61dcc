// berth logs [-f] TASK: what the task printed, stdout to stdout and stderr to stderr.
import type { components } from '../api/src/openapi-types.ts';
import type { Command, Context } from './command.ts';
import { CliError } from './errors.ts';

type LogEvent = components['schemas']['LogEvent'];

function printer(ctx: Context, timestamps: boolean) {
  return (e: LogEvent) => {
    if (ctx.format === 'json') {
      ctx.out(JSON.stringify(e) + '\n');
      return;
    }
    const line = `${timestamps ? `${e.time} ` : ''}${e.message}\n`;
    if (e.stream === 'stderr') ctx.err(line);
    else ctx.out(line);
  };
}

async function follow(ctx: Context, taskId: string, print: (e: LogEvent) => void): Promise<void> {
  let after: string | undefined;
  // The stream ends once the task is STOPPED and all it printed was sent; a
  // connection lost before that is opened again from the last event seen.
  for (let attempt = 0; ; attempt++) {
    let res: Response;
    try {
      res = await ctx.client().stream(`/v1/tasks/${encodeURIComponent(taskId)}/logs`, {
        query: { follow: true, after }, headers: { accept: 'application/x-ndjson' }, signal: ctx.signal,
      });
    } catch (err) {
      if (ctx.signal.aborted) return;
      throw err;
    }
    let buffered = '';
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffered += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (!line.trim()) continue;
          const event = JSON.parse(line) as LogEvent;
          if (event.id) after = event.id;
          print(event);
        }
      }
      return;
    } catch (err) {
      if (ctx.signal.aborted) return;
      if (attempt >= 5) throw new CliError(`the log stream broke: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 500 * (attempt + 1)));
    }
  }
}

export const logsCommands: Command[] = [
  {
    name: 'logs',
    summary: 'Print what a task\'s container printed, oldest first (its stderr on stderr).',
    args: 'TASK_ID',
    positionals: [1, 1],
    options: {
      follow: { type: 'boolean', short: 'f', description: 'keep printing until the task has stopped' },
      timestamps: { type: 'boolean', short: 't', description: 'start each line with its time' },
    },
    details: 'With --output json: one LogEvent ({ id, time, stream, message }) per line.',
    async run(ctx, values, [taskId]) {
      const print = printer(ctx, Boolean(values.timestamps));
      if (values.follow) {
        await follow(ctx, taskId!, print);
        return;
      }
      let after: string | undefined;
      for (;;) {
        const page = await ctx.client().request<components['schemas']['LogPage']>('GET', `/v1/tasks/${encodeURIComponent(taskId!)}/logs`, {
          query: { after, limit: 10000 },
        });
        page.events.forEach(print);
        if (!page.nextToken || page.events.length === 0 || page.nextToken === after) return;
        after = page.nextToken;
      }
    },
  },
];
