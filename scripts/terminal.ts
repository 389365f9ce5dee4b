/**
 * The operator's terminal during `npm start`: progress and the report on it, every log line in a file instead.
 *
 * - Log lines (the worker's pino logger, Temporal's SDK logs through it) go to `logFile`; warnings and worse are
 *   counted, so the terminal says how many there were and where to read them, not each one.
 * - A closed output (`npm start | head -n 5`, or `| tee log` after Ctrl-C killed tee) is the end of the program, as
 *   Ctrl-C is: the first failed write to stdout or stderr calls `onClosed` once. After that nothing is written to
 *   that stream again; a write to a closed pipe only fails again, and an error handler that writes to it (as
 *   `console.error` in an `uncaughtException` handler did) re-triggers itself and spins a core.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { Writable } from 'node:stream';

export interface Terminal {
  /** A line on stdout (progress, links, the report); dropped once stdout is closed. */
  print(line: string): void;
  /** A line on stderr (start-up steps, failures); dropped once stderr is closed. */
  note(line: string): void;
  /** Where the logger writes (pino's `destination`): the log file, counting warnings and errors. */
  readonly logDestination: { write(line: string): void };
  /** Log lines at warn level or above so far. */
  warnings(): number;
  readonly logFile: string;
  /** True once stdout or stderr is closed. */
  closed(): boolean;
  close(): void;
}

export interface TerminalOptions {
  /** Log file, appended to (created when missing). */
  logFile: string;
  /** Called once, when stdout or stderr can no longer be written to. */
  onClosed: () => void;
  /** The streams to guard (tests pass their own); default process.stdout and process.stderr. */
  stdout?: Writable;
  stderr?: Writable;
}

/** pino's numeric level for `warn`. */
const WARN = 40;

export function openTerminal(opts: TerminalOptions): Terminal {
  const stdout = opts.stdout ?? process.stdout;
  const stderr = opts.stderr ?? process.stderr;
  const fd = openSync(opts.logFile, 'a', 0o600);
  let fdOpen = true;
  let warnings = 0;
  const shut = new Set<Writable>();
  let reported = false;

  const closedBy = (stream: Writable) => () => {
    shut.add(stream);
    if (reported) return;
    reported = true;
    opts.onClosed();
  };
  // A listener per stream for the life of the process: without one, EPIPE is an uncaught exception.
  stdout.on('error', closedBy(stdout));
  stderr.on('error', closedBy(stderr));

  const write = (stream: Writable, line: string) => {
    if (shut.has(stream) || stream.destroyed || stream.writableEnded) return;
    stream.write(line.endsWith('\n') ? line : `${line}\n`);
  };
  const toFile = (line: string) => {
    // Synchronous, so the lines written just before an exit are in the file.
    if (fdOpen) writeSync(fd, line.endsWith('\n') ? line : `${line}\n`);
  };

  return {
    print: (line) => write(stdout, line),
    note: (line) => write(stderr, line),
    logDestination: {
      write(line: string) {
        const level = /"level":(\d+)/.exec(line);
        if (level && Number(level[1]) >= WARN) warnings++;
        toFile(line);
      },
    },
    warnings: () => warnings,
    logFile: opts.logFile,
    closed: () => shut.size > 0,
    close() {
      if (!fdOpen) return;
      fdOpen = false;
      closeSync(fd);
    },
  };
}

export interface Session {
  readonly terminal: Terminal;
  /** Aborted when the session starts stopping (long waits such as the progress watch end on it). */
  readonly signal: AbortSignal;
  /** Runs at the stop, before the ones registered earlier. */
  onStop(cleanup: () => Promise<void>): void;
  /** Runs the cleanups once and exits with `code`; later calls wait for nothing and do nothing. */
  stop(code: number): Promise<void>;
  stopping(): boolean;
}

export function startSession(opts: Omit<TerminalOptions, 'onClosed'> & { exit?: (code: number) => void }): Session {
  const cleanups: (() => Promise<void>)[] = [];
  const aborter = new AbortController();
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const stop = async (code: number) => {
    if (aborter.signal.aborted) return;
    aborter.abort();
    terminal.note('\nstopping…');
    // Nothing may end the process before the detached services are stopped.
    process.on('uncaughtException', (err) => terminal.note(`while stopping: ${err.message}`));
    for (const c of cleanups.reverse()) await c().catch((e: unknown) => terminal.note(String(e)));
    terminal.close();
    exit(code);
  };
  const terminal = openTerminal({ ...opts, onClosed: () => void stop(0) });
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  return {
    terminal,
    signal: aborter.signal,
    onStop: (cleanup) => void cleanups.push(cleanup),
    stop,
    stopping: () => aborter.signal.aborted,
  };
}
