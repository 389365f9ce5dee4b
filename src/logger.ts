/**
 * pino logger. JSON by default, pretty when a person is watching a terminal. Tokens, passwords, cookies and
 * Authorization headers are redacted wherever they appear in the first levels of a log object; the code
 * logs ids and counts, never patient names, dates of birth or note text.
 */
import pino, { type Logger } from 'pino';

export type { Logger };

/** Keys whose values are never written to a log line. */
export const REDACTED_KEYS = [
  'password',
  'token',
  'accessToken',
  'authorization',
  'Authorization',
  'cookie',
  'Cookie',
  'set-cookie',
  'x-fm-data-access-token',
  'X-FM-Data-Access-Token',
  'x-fms-session-key',
  'secretAccessKey',
  'apiKey',
  'key',
];

const redactPaths = REDACTED_KEYS.flatMap((k) => {
  const q = /^[A-Za-z_$][\w$]*$/.test(k) ? k : `["${k}"]`;
  const dot = q.startsWith('[') ? q : `.${q}`;
  return [q.startsWith('[') ? q : k, `*${dot}`, `*.*${dot}`, `headers${dot}`, `req.headers${dot}`];
});

export interface LoggerOptions {
  level?: string;
  format?: 'auto' | 'json' | 'pretty';
  name?: string;
  /** A destination stream (tests capture log lines with it). */
  destination?: pino.DestinationStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const pretty = opts.format === 'pretty' || (opts.format !== 'json' && !opts.destination && process.stdout.isTTY);
  const base: pino.LoggerOptions = {
    name: opts.name ?? 'fm-reimport',
    level: opts.level ?? 'info',
    redact: { paths: redactPaths, censor: '[redacted]' },
  };
  if (opts.destination) return pino(base, opts.destination);
  if (pretty) {
    return pino({
      ...base,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss' } },
    });
  }
  return pino(base);
}
