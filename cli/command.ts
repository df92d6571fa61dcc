// What a command is (its options, arguments, help and run function), the context
// it runs in, and the parsing of its arguments with node:util's parseArgs.
import { parseArgs } from 'node:util';
import { createClient, type ApiClient } from './client.ts';
import { defaultConfigInputs, resolveConfig, type CliConfig } from './config.ts';
import { UsageError } from './errors.ts';
import { json, type Io, type OutputFormat } from './output.ts';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** Shown in help as `--name VALUE`. */
  value?: string;
  description: string;
}

export type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface Command {
  /** `task run`: the words that select it. */
  name: string;
  summary: string;
  /** Positional arguments as shown in help: `FAMILY[:REV]`. */
  args?: string;
  /** How many positional arguments it takes. @defaultValue [0, 0] */
  positionals?: [min: number, max: number];
  options?: Record<string, OptionSpec>;
  /** More help: examples, what the output holds. */
  details?: string;
  /** Returns the exit code (0 when nothing is returned). */
  run(ctx: Context, values: Values, positionals: string[]): Promise<number | void>;
}

export interface Context {
  io: Io;
  format: OutputFormat;
  /** Endpoint and key, resolved once (flags > env > config file > .berth). */
  config(): CliConfig;
  client(): ApiClient;
  out(text: string): void;
  err(text: string): void;
  /** `--output json`: the value; otherwise the text `human()` makes. */
  emit(value: unknown, human: () => string): void;
  /** Aborted on SIGINT/SIGTERM, for commands that wait. */
  signal: AbortSignal;
}

export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  endpoint: { type: 'string', value: 'URL', description: 'the API, a URL or host:port (env BERTH_API or BERTH_API_ADDR)' },
  'api-key': { type: 'string', value: 'KEY', description: 'the API key (env BERTH_API_KEY; prefer the env or the config file)' },
  output: { type: 'string', short: 'o', value: 'FORMAT', description: '`table` (default) or `json`' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

export interface Parsed {
  values: Values;
  positionals: string[];
  format: OutputFormat;
}

/** Parses argv (after the command words) against the command's and the global options. */
export function parseCommandArgs(command: Command, argv: string[]): Parsed {
  const specs = { ...GLOBAL_OPTIONS, ...command.options };
  const options = Object.fromEntries(Object.entries(specs).map(([name, s]) => [
    name, { type: s.type, ...(s.short ? { short: s.short } : {}), ...(s.multiple ? { multiple: true } : {}) },
  ]));
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${(err as Error).message.split('\n')[0]}\n(see: berth ${command.name} --help)`);
  }
  const values = parsed.values as Values;
  const output = (values.output as string | undefined) ?? 'table';
  if (output !== 'table' && output !== 'json') throw new UsageError(`--output must be "table" or "json", got "${output}"`);
  if (!values.help) {
    const [min, max] = command.positionals ?? [0, 0];
    const n = parsed.positionals.length;
    if (n < min) throw new UsageError(`berth ${command.name}: missing ${command.args ?? 'arguments'}\n(see: berth ${command.name} --help)`);
    if (n > max) throw new UsageError(`berth ${command.name}: unexpected argument "${parsed.positionals[max]}"\n(see: berth ${command.name} --help)`);
  }
  return { values, positionals: parsed.positionals, format: output };
}

function optionLines(specs: Record<string, OptionSpec>): string[] {
  const left = Object.entries(specs).map(([name, s]) =>
    `${s.short ? `-${s.short}, ` : '    '}--${name}${s.value ? ` ${s.value}` : ''}${s.multiple ? ' ...' : ''}`);
  const width = Math.max(...left.map((l) => l.length));
  return Object.values(specs).map((s, i) => `  ${left[i]!.padEnd(width)}  ${s.description}`);
}

export function commandHelp(command: Command): string {
  const lines = [
    `Usage: berth ${command.name}${command.args ? ` ${command.args}` : ''} [options]`,
    '',
    command.summary,
  ];
  if (command.details) lines.push('', command.details.trimEnd());
  if (command.options && Object.keys(command.options).length > 0) lines.push('', 'Options:', ...optionLines(command.options));
  lines.push('', 'Global options:', ...optionLines(GLOBAL_OPTIONS));
  return lines.join('\n') + '\n';
}

export function makeContext(io: Io, parsed: Parsed, signal: AbortSignal): Context {
  let config: CliConfig | undefined;
  let client: ApiClient | undefined;
  const ctx: Context = {
    io,
    format: parsed.format,
    signal,
    config: () => (config ??= resolveConfig(defaultConfigInputs({
      endpoint: parsed.values.endpoint as string | undefined,
      apiKey: parsed.values['api-key'] as string | undefined,
    }))),
    client: () => (client ??= createClient(ctx.config())),
    out: (text) => { io.stdout.write(text); },
    err: (text) => { io.stderr.write(text); },
    emit: (value, human) => { io.stdout.write(parsed.format === 'json' ? json(value) : human()); },
  };
  return ctx;
}

/** A positive integer option, or a usage error naming it. */
export function intOption(values: Values, name: string, min = 1, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const text = String(raw);
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got "${text}"`);
  }
  return Number(text);
}

/** `--env K=V` options as `[{ name, value }]`. */
export function envOption(values: Values, name = 'env'): { name: string; value: string }[] | undefined {
  const raw = values[name] as string[] | undefined;
  if (!raw || raw.length === 0) return undefined;
  return raw.map((pair) => {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--${name} expects NAME=VALUE, got "${pair}"`);
    const key = pair.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new UsageError(`--${name}: "${key}" is not a valid variable name`);
    return { name: key, value: pair.slice(eq + 1) };
  });
}
