// Exit codes scripts can rely on, and the error that carries one.
//   0 ok · 1 API or user error · 2 usage error · 3 not found · 4 auth · 5 cannot connect
//   6 a task waited on (`task run --wait`) did not exit 0
export const EXIT = {
  OK: 0,
  ERROR: 1,
  USAGE: 2,
  NOT_FOUND: 3,
  AUTH: 4,
  CONNECT: 5,
  TASK_FAILED: 6,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An error the CLI reports as one line on stderr before exiting with `exitCode`. */
export class CliError extends Error {
  readonly exitCode: ExitCode;
  constructor(message: string, exitCode: ExitCode = EXIT.ERROR) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

export class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT.USAGE);
    this.name = 'UsageError';
  }
}

/** An error answer of the API: `{ error: { code, message } }` with its status. */
export class ApiError extends CliError {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message, exitCodeForStatus(status));
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

export function exitCodeForStatus(status: number): ExitCode {
  if (status === 404) return EXIT.NOT_FOUND;
  if (status === 401 || status === 403) return EXIT.AUTH;
  return EXIT.ERROR;
}
