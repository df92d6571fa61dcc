// The berth CLI: finds the command named by the first words of argv, parses the
// rest with parseArgs, runs it and maps what it threw to an exit code:
//   0 ok · 1 API or user error · 2 usage error · 3 not found · 4 auth (401/403)
//   5 cannot connect to the API · 6 a task waited on with --wait did not exit 0
import { commandHelp, makeContext, parseCommandArgs, GLOBAL_OPTIONS, type Command } from './command.ts';
import { configCommands } from './config-cmd.ts';
import { CliError, EXIT, UsageError } from './errors.ts';
import { fnCommands } from './fn.ts';
import { imageCommands } from './image.ts';
import { logsCommands } from './logs.ts';
import { nodeCommands } from './node.ts';
import type { Io } from './output.ts';
import { secretCommands } from './secret.ts';
import { taskDefCommands } from './task-def.ts';
import { taskCommands } from './task.ts';
import { topCommands } from './top.ts';

export const COMMANDS: Command[] = [
  ...taskDefCommands, ...taskCommands, ...logsCommands, ...topCommands,
  ...secretCommands, ...fnCommands, ...nodeCommands, ...imageCommands, ...configCommands,
];

const VERSION = '0.1.0';

const EXIT_CODES_HELP = `Exit codes:
  0  ok
  1  the API refused the request (its message is on stderr), or another error
  2  usage error (unknown command or option, missing argument)
  3  not found (no such task, definition, node or function)
  4  authentication: no valid API key (401), or not allowed (403)
  5  cannot connect to the API
  6  task run --wait: a task did not exit 0`;

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => (c.name + (c.args ? ` ${c.args}` : '')).length));
  return [
    'Usage: berth <command> [options]',
    '',
    'Berth runs containers (tasks) and functions on your own machines.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${(c.name + (c.args ? ` ${c.args}` : '')).padEnd(width)}  ${c.summary.split('. ')[0]!.replace(/\.$/, '')}`),
    '',
    'Global options: --endpoint URL, --api-key KEY, -o/--output table|json, -h/--help',
    'Environment: BERTH_API (or BERTH_API_ADDR), BERTH_API_KEY; see `berth config --help`.',
    '',
    EXIT_CODES_HELP,
    '',
    'Run `berth <command> --help` for a command\'s options.',
    '',
  ].join('\n');
}

function groupHelp(group: string): string {
  const members = COMMANDS.filter((c) => c.name.startsWith(group + ' '));
  const width = Math.max(...members.map((c) => (c.name + (c.args ? ` ${c.args}` : '')).length));
  return [`Usage: berth ${group} <command> [options]`, '', 'Commands:',
    ...members.map((c) => `  ${(c.name + (c.args ? ` ${c.args}` : '')).padEnd(width)}  ${c.summary}`), ''].join('\n');
}

/** The command words: leading arguments that are not options (nor a global option's value). */
function commandWords(argv: string[]): { words: string[]; rest: string[] } {
  const valued = new Set(Object.entries(GLOBAL_OPTIONS).filter(([, s]) => s.type === 'string')
    .flatMap(([n, s]) => [`--${n}`, ...(s.short ? [`-${s.short}`] : [])]));
  const words: { word: string; index: number }[] = [];
  for (let i = 0; i < argv.length && words.length < 2; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (valued.has(a)) { i++; continue; }
    if (a.startsWith('-')) continue;
    words.push({ word: a, index: i });
  }
  // The longest match: `task run` before `task`, `logs` alone.
  for (const n of [2, 1]) {
    const name = words.slice(0, n).map((w) => w.word).join(' ');
    if (words.length >= n && COMMANDS.some((c) => c.name === name)) {
      const drop = new Set(words.slice(0, n).map((w) => w.index));
      return { words: words.slice(0, n).map((w) => w.word), rest: argv.filter((_, i) => !drop.has(i)) };
    }
  }
  return { words: words.map((w) => w.word), rest: argv };
}

export async function main(argv: string[], io: Io): Promise<number> {
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    // The first Ctrl-C lets a waiting command finish cleanly; the second leaves at once.
    if (++interrupts > 1) process.exit(signal === 'SIGINT' ? 130 : 143);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
      io.stdout.write(`berth ${VERSION}\n`);
      return EXIT.OK;
    }
    const { words, rest } = commandWords(argv);
    const name = words.join(' ');
    const command = COMMANDS.find((c) => c.name === name);
    if (!command) {
      const wantsHelp = argv.includes('--help') || argv.includes('-h') || words[0] === 'help';
      if (words.length === 0 || words[0] === 'help') {
        (wantsHelp ? io.stdout : io.stderr).write(overview());
        return wantsHelp ? EXIT.OK : EXIT.USAGE;
      }
      if (COMMANDS.some((c) => c.name.startsWith(words[0]! + ' '))) {
        if (words.length === 1) {
          (wantsHelp ? io.stdout : io.stderr).write(groupHelp(words[0]!));
          return wantsHelp ? EXIT.OK : EXIT.USAGE;
        }
        throw new UsageError(`unknown command "berth ${name}"\n${groupHelp(words[0]!)}`);
      }
      throw new UsageError(`unknown command "${words[0]}" (see: berth --help)`);
    }
    const parsed = parseCommandArgs(command, rest);
    if (parsed.values.help) {
      io.stdout.write(commandHelp(command));
      return EXIT.OK;
    }
    const ctx = makeContext(io, parsed, controller.signal);
    return (await command.run(ctx, parsed.values, parsed.positionals)) ?? EXIT.OK;
  } catch (err) {
    if (err instanceof CliError) {
      io.stderr.write(`berth: ${err.message}\n`);
      return err.exitCode;
    }
    io.stderr.write(`berth: ${(err as Error).stack ?? String(err)}\n`);
    return EXIT.ERROR;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
