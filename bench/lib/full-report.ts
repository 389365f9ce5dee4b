/**
 * `npm run bench -- --full`: every phase of two reimports side by side — wall time, records or files a second,
 * FileMaker requests, the source's lower bound and the ratio, CPU per part of the stack — and every target of the
 * whole run with its figure and "met"/"MISSED".
 *
 * Lower bounds, from the fault profile:
 * - core phases (patients, appointments, notes, referrers) and a second run's files phases (which must relink, so
 *   need only the records, not the containers): the requests and bytes a reference read of the phase's tables takes
 *   at the largest page FileMaker gives (table-reads.ts): ⌈requests ÷ allowed concurrency⌉ × mean latency (at least
 *   the longest chain of pages read one after the other) + bytes ÷ bandwidth;
 * - a first run's files phases: the files bench's bound over the requests and bytes the phase really caused (one
 *   container download a file dominates; see source-stats.ts).
 * FileMaker requests per phase are exact (request-log.ts): counted by arrival between the phase's start and close.
 */
import { IMPORT_PHASES, tablesForPhase, type SourceTableName } from '../../src/domain/tables';
import type { FaultSettings } from '../../sim/server';
import type { CpuTimeline } from './cpu';
import { spanOf, type ExecutionFacts } from './executions';
import type { RequestLog } from './request-log';
import { lowerBound, type LowerBound, type StatsWindow } from './source-stats';
import { neededLowerBound, type NeededBound, type TableRead } from './table-reads';
import { fmt, keyed, MB, secs } from './format';

const CORE_PHASES = ['patients', 'appointments', 'notes', 'referrers'];
const FILES_PHASES = ['documents', 'images'];
const RECORDS_PER_SECOND = 20_000;

/** What the bench measured of one phase of a run (a subset of bench/files.ts's PhaseFigures). */
export interface PhaseSpan {
  phase: string;
  status: string;
  wallMs: number;
  startMs: number;
  closeMs: number;
  counts: { records: number; files: number; relinked: number; bytesDownloaded: number } | undefined;
  window: StatsWindow;
  /** From the requests and bytes the phase caused. */
  bound: LowerBound;
}

export interface RunSpan {
  runId: string;
  wallMs: number;
  phases: PhaseSpan[];
  executions: ExecutionFacts[];
}

export interface FullFigures {
  runs: { name: string; run: RunSpan | undefined }[];
  reads: Map<SourceTableName, TableRead>;
  faults: FaultSettings;
  requests: RequestLog;
  cpu: CpuTimeline | undefined;
  machine: { calibrationMs: number; stolenSeconds: number | undefined; cores: number };
  peakRssBytes: number;
}

interface Row {
  run: string;
  p: PhaseSpan;
  requests: number;
  /** The bound the phase is judged by, and what it was derived from. */
  bound: { ms: number; from: 'needed' | 'made'; needed?: NeededBound } | undefined;
  ratio: number | undefined;
  /** Records a second (core phases) or files a second (files phases). */
  perSecond: number | undefined;
  cpu: Record<string, number> | undefined;
}

function neededFor(phase: string, reads: FullFigures['reads'], f: FaultSettings): NeededBound | undefined {
  const tables = tablesForPhase(phase as (typeof IMPORT_PHASES)[number]).map((t) => reads.get(t.name));
  if (tables.length === 0 || tables.some((t) => t === undefined)) return undefined;
  return neededLowerBound(tables as TableRead[], f);
}

function rowsOf(name: string, run: RunSpan, x: FullFigures, first: boolean): Row[] {
  return run.phases.map((p) => {
    const core = CORE_PHASES.includes(p.phase);
    const files = FILES_PHASES.includes(p.phase);
    const needed = core || (files && !first) ? neededFor(p.phase, x.reads, x.faults) : undefined;
    const bound = needed
      ? { ms: needed.boundMs, from: 'needed' as const, needed }
      : files
        ? { ms: p.bound.boundMs, from: 'made' as const }
        : undefined;
    const done = p.status === 'completed';
    const wallS = Math.max(0.001, p.wallMs / 1000);
    const perSecond = !p.counts
      ? undefined
      : core
        ? p.counts.records / wallS
        : files
          ? p.counts.files / wallS
          : undefined;
    return {
      run: name,
      p,
      requests: x.requests.between(p.startMs, p.closeMs).total,
      bound,
      ratio: done && bound && bound.ms > 0 ? p.wallMs / bound.ms : undefined,
      perSecond,
      cpu: x.cpu?.window(p.startMs, p.closeMs),
    };
  });
}

export function printFullReport(x: FullFigures, print: (line: string) => void = console.log): void {
  const f = x.faults;
  const rows = x.runs.flatMap(({ name, run }, i) => (run ? rowsOf(name, run, x, i === 0) : []));
  print(
    `\nevery phase, ${x.runs.length} reimports back to back (FileMaker requests counted by arrival within the phase; ` +
      `machine calibration ${fmt(x.machine.calibrationMs)} ms` +
      (x.machine.stolenSeconds !== undefined ? `, ${fmt(x.machine.stolenSeconds, 1)} s stolen in the first run` : '') +
      `; CPU seconds per part on ${x.machine.cores} cores):`,
  );
  print(
    `lower bound: core phases and re-run files = ⌈needed requests ÷ ${f.maxConcurrentRequests}⌉ (at least the ` +
      `longest chain of pages) × ${f.latencyMs + f.latencyJitterMs / 2} ms + needed bytes ÷ ` +
      `${fmt(f.bandwidthTotalBps / 2 ** 20, 1)} MiB/s (needed: a read of the phase's tables at ` +
      `${fmt(f.odataPageCap)} records a page); first-run files = the files bench's bound ` +
      'over the requests and bytes made',
  );
  console.table(
    keyed(
      rows.map((r) => {
        const c = r.p.counts;
        const files = FILES_PHASES.includes(r.p.phase);
        return {
          phase: `${r.run} ${r.p.phase}`,
          status: r.p.status,
          'wall s': secs(r.p.wallMs),
          records: c ? fmt(c.records) : '',
          'files / relinked': c && files ? `${fmt(c.files)} / ${fmt(c.relinked)}` : '',
          'per s': r.perSecond !== undefined ? `${fmt(r.perSecond)} ${files ? 'files' : 'rec'}` : '',
          'FM requests': fmt(r.requests),
          needed: r.bound?.needed ? fmt(r.bound.needed.requests) : '',
          'MB from FM': fmt(r.p.window.bytes / MB, 1),
          'bound s': r.bound ? `${fmt(r.bound.ms / 1000, 2)} (${r.bound.from})` : '',
          ratio: r.ratio !== undefined ? fmt(r.ratio, 2) : '',
          // The files bench's bound over what the phase did ask for: beside the needed one, how much of the gap is
          // requests and bytes the engine adds, and how much is time between them.
          'bound over made s': fmt(r.p.bound.boundMs / 1000, 2),
          ...Object.fromEntries(Object.entries(r.cpu ?? {}).map(([part, s]) => [`${part} CPU s`, fmt(s, 1)])),
        };
      }),
      'phase',
    ),
  );

  // The whole run, pre-flight included: from the parent's start to its close (to the last phase's if it never closed).
  const requestsOf = (run: RunSpan) => {
    const span = spanOf(run.executions, run.runId);
    return x.requests.between(span?.startMs ?? run.phases[0]?.startMs ?? 0, span?.closeMs ?? Date.now());
  };
  const tables = IMPORT_PHASES.flatMap((p) => tablesForPhase(p).map((t) => t.name));
  print('FileMaker requests per table (whole run; `containers`: streaming URLs) beside what one read needs:');
  console.table(
    keyed(
      [...tables, 'containers', 'other'].map((table) => {
        const read = x.reads.get(table as SourceTableName);
        return {
          table,
          records: read ? fmt(read.records) : '',
          'needed pages': read ? `${read.manifestPages} + ${read.recordPages}` : '',
          'needed MB': read ? fmt(read.bytes / MB, 1) : '',
          ...Object.fromEntries(
            x.runs.map(({ name, run }) => [`${name} requests`, run ? fmt(requestsOf(run).byTable[table] ?? 0) : '']),
          ),
        };
      }),
      'table',
    ),
  );

  const mark = (ok: boolean) => (ok ? 'met' : 'MISSED');
  const targets: { figure: string; value: string; target: string; result: string }[] = [];
  for (const r of rows) {
    const core = CORE_PHASES.includes(r.p.phase);
    const files = FILES_PHASES.includes(r.p.phase);
    const done = r.p.status === 'completed';
    const label = `${r.run} ${r.p.phase}`;
    const boundText = r.bound ? ` (wall ${secs(r.p.wallMs)} s, bound ${fmt(r.bound.ms / 1000, 2)} s)` : '';
    if (core) {
      targets.push({
        figure: `${label}: ratio to lower bound`,
        value: r.ratio !== undefined ? `${fmt(r.ratio, 2)}${boundText}` : r.p.status,
        target: '≤ 2',
        result: r.ratio !== undefined ? mark(r.ratio <= 2) : 'n/a',
      });
      // The source is the limit where even its lower bound leaves less than the target rate.
      const sourceRate = r.bound?.needed && r.bound.ms > 0 ? (r.bound.needed.records * 1000) / r.bound.ms : Infinity;
      const sourceBound = sourceRate < RECORDS_PER_SECOND;
      targets.push({
        figure: `${label}: records/s`,
        value: r.perSecond !== undefined ? fmt(r.perSecond) : r.p.status,
        target: sourceBound ? `source allows ${fmt(sourceRate)}` : `≥ ${fmt(RECORDS_PER_SECOND)}`,
        result:
          !done || r.perSecond === undefined
            ? 'n/a'
            : sourceBound
              ? 'n/a (source-bound)'
              : mark(r.perSecond >= RECORDS_PER_SECOND),
      });
    } else if (files) {
      const first = r.bound?.from === 'made';
      const limit = first ? 1.2 : 3;
      targets.push({
        figure: `${label}: ${first ? 'first download' : 'relink'}, ratio to lower bound`,
        value:
          r.ratio !== undefined
            ? `${fmt(r.ratio, 2)}${boundText}` + (first ? `, calibration ${fmt(x.machine.calibrationMs)} ms` : '')
            : r.p.status,
        target: `≤ ${limit}`,
        result: r.ratio !== undefined ? mark(r.ratio <= limit) : 'n/a',
      });
    }
  }
  const first = rows.filter((r) => r.run === x.runs[0]?.name && FILES_PHASES.includes(r.p.phase));
  if (first.length === FILES_PHASES.length) {
    // Both files phases as one stretch of work, as the files summary above judges them.
    const wallMs = first.reduce((n, r) => n + r.p.wallMs, 0);
    const bound = lowerBound(
      { bytes: first.reduce((n, r) => n + r.p.window.bytes, 0), requests: first.reduce((n, r) => n + r.requests, 0) },
      f,
    );
    const done = first.every((r) => r.p.status === 'completed');
    const ratio = bound.boundMs > 0 ? wallMs / bound.boundMs : 0;
    targets.push({
      figure: `${x.runs[0]!.name} documents + images: first download, ratio to lower bound`,
      value: done
        ? `${fmt(ratio, 2)} (wall ${secs(wallMs)} s, bound ${fmt(bound.boundMs / 1000, 2)} s), calibration ` +
          `${fmt(x.machine.calibrationMs)} ms`
        : 'did not complete',
      target: '≤ 1.2',
      result: done ? mark(ratio <= 1.2) : 'n/a',
    });
  }
  const histories = x.runs.flatMap(({ run }) => run?.executions ?? []);
  const largest = histories.reduce<ExecutionFacts | undefined>(
    (m, e) => (m && m.events >= e.events ? m : e),
    undefined,
  );
  targets.push(
    {
      figure: 'worker peak RSS (after start-up, both runs)',
      value: `${fmt(x.peakRssBytes / MB)} MB`,
      target: '< 300 MB',
      result: mark(x.peakRssBytes < 300 * MB),
    },
    {
      figure: 'largest history',
      value: largest ? `${fmt(largest.events)} events (${largest.workflowId})` : 'n/a',
      target: '< 10,000',
      result: largest ? mark(largest.events < 10_000) : 'n/a',
    },
  );
  print(`\ntargets of the whole run (machine calibration ${fmt(x.machine.calibrationMs)} ms):`);
  console.table(keyed(targets, 'figure'));
}
