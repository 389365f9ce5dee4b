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
  'X-FMS-Session-Key',
  // Temporal's activity task token (the SDK logs it on activity failures): it lets its holder complete the activity.
  'taskToken',
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

/** Temporal's log levels, in order (the SDK's `LogLevel`). */
export type TemporalLogLevel = 'TRACE' | 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';
const TEMPORAL_SEVERITY: Record<TemporalLogLevel, number> = { TRACE: 10, DEBUG: 20, INFO: 30, WARN: 40, ERROR: 50 };

/** The shape of the SDK's `Logger` interface (`@temporalio/common`), so this module needs no Temporal import. */
export interface TemporalLoggerAdapter {
  log(level: TemporalLogLevel, message: string, meta?: Record<string | symbol, unknown>): void;
  trace(message: string, meta?: Record<string | symbol, unknown>): void;
  debug(message: string, meta?: Record<string | symbol, unknown>): void;
  info(message: string, meta?: Record<string | symbol, unknown>): void;
  warn(message: string, meta?: Record<string | symbol, unknown>): void;
  error(message: string, meta?: Record<string | symbol, unknown>): void;
}

/**
 * A Temporal Runtime logger that writes into our pino logger (component `temporal`). The SDK's own messages
 * (`sdkComponent` worker or core: state changes, pollers, workflow lifecycle) below `sdkLevel` are dropped, so they do
 * not clutter the operator's terminal; messages our workflow and activity code log through `log` pass at their level
 * and pino's level decides.
 */
export function temporalLoggerFor(
  logger: Logger,
  opts: {
    sdkLevel?: TemporalLogLevel;
    /** SDK messages that are expected in this setup and say nothing to an operator. */
    ignore?: (message: string, meta: Record<string | symbol, unknown> | undefined) => boolean;
  } = {},
): TemporalLoggerAdapter {
  const log = logger.child({ component: 'temporal' });
  const min = TEMPORAL_SEVERITY[opts.sdkLevel ?? 'WARN'];
  const emit = (level: TemporalLogLevel, message: string, meta?: Record<string | symbol, unknown>) => {
    const component = meta?.sdkComponent;
    const fromApp = component === 'workflow' || component === 'activity' || component === 'nexus';
    if (!fromApp && ((TEMPORAL_SEVERITY[level] ?? 0) < min || opts.ignore?.(message, meta))) return;
    // Symbol keys (the SDK's timestamp) do not survive JSON; an `error` becomes pino's `err` so its message and
    // stack are serialised instead of `{}`.
    const fields: Record<string, unknown> = {};
    if (meta) {
      for (const [k, v] of Object.entries(meta)) {
        if (k === 'error' && v instanceof Error) fields.err = v;
        else fields[k] = typeof v === 'bigint' ? v.toString() : v;
      }
    }
    const method = level.toLowerCase() as 'trace' | 'debug' | 'info' | 'warn' | 'error';
    log[method](fields, message);
  };
  return {
    log: emit,
    trace: (m, meta) => emit('TRACE', m, meta),
    debug: (m, meta) => emit('DEBUG', m, meta),
    info: (m, meta) => emit('INFO', m, meta),
    warn: (m, meta) => emit('WARN', m, meta),
    error: (m, meta) => emit('ERROR', m, meta),
  };
}
