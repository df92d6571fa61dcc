import { pino, type Logger } from 'pino';

/** One logger per part, JSON lines; secrets never reach it (see `redact`). */
export function createLogger(part: string, bindings: Record<string, string> = {}): Logger {
  return pino({
    name: part,
    level: process.env.LOG_LEVEL ?? 'info',
    base: { part, ...bindings },
    redact: {
      paths: ['password', '*.password', '*.*.password', 'authorization', '*.authorization', 'req.headers.authorization', 'apiKey', '*.apiKey'],
      censor: '[redacted]',
    },
  });
}

export type { Logger };
