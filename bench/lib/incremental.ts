/**
 * `npm run bench -- --full`, last part: an incremental reimport after 1% of every source table's records changed,
 * beside a full reimport after as many other changes: both read a source that changed as much since the run before,
 * and both must download the containers the changes replaced or added (a record's container can only be known
 * unchanged by reading it again). The requests besides those downloads are printed apart: what an incremental run
 * can save.
 *
 * The changes are drawn from the bench's seed, so the same seed on the same counts changes the same records: per table
 * 1% of its records rounded to the nearest (none in a table of under 50: one of the 16 clinics would be 6% of them,
 * and every patient of a changed clinic is read again with what links to it), mostly edits, a tenth inserts, a tenth
 * deletes, and in the files tables a fifth replaced containers (re-scans). Each change is a record an incremental run must read again; records linking to a
 * changed or deleted one are read again too (src/store/incremental.ts), so the run reads more than the changes.
 *
 * Side by side: wall time and FileMaker requests per phase and for the whole run (pre-flight included), records read
 * again and carried over per table (`import_ledger.carried_from`), the targets (requests ≤ 5% of the full run's, time
 * ≤ 10%), and what the incremental run's time is made of: its phases, and within each import phase the activities it
 * ran (manifest and plan, chunks or file batches, the sweep at a table's end, reconciliation).
 */
import { indexAt, indexListLength, SimTable, type Dataset } from '../../sim/dataset';
import { Rng } from '../../sim/prng';
import type { Mutation } from '../../sim/server';
import { SOURCE_TABLE_NAMES, SOURCE_TABLES } from '../../src/domain/tables';
import type { Pool } from '../../src/store/db';
import { spanOf } from './executions';
import { fmt, keyed, secs } from './format';
import type { RunSpan } from './full-report';
import type { RequestLog } from './request-log';

/** Share of every source table's records changed between the full run and the incremental one. */
export const CHANGED_SHARE = 0.01;
const REQUESTS_TARGET = 0.05;
const TIME_TARGET = 0.1;

export interface ChangePlan {
  mutations: Mutation[];
  /** Per source table: its records before the changes, and how many of each kind of change. */
  tables: { table: string; records: number; ops: Record<Mutation['op'], number> }[];
}

/**
 * 1% of each source table's records (rounded) as simulator mutations, drawn from `seed` (and `draw`, for another set
 * of changes from the same seed): distinct existing records for edits, deletes and replaced containers, inserts besides.
 */
export function planChanges(
  ds: Dataset,
  seed: number,
  { share = CHANGED_SHARE, draw = 'incremental' }: { share?: number; draw?: string } = {},
): ChangePlan {
  const rng = new Rng(seed, draw === 'incremental' ? 'bench-incremental' : `bench-${draw}`);
  const mutations: Mutation[] = [];
  const tables: ChangePlan['tables'] = [];
  for (const name of SOURCE_TABLE_NAMES) {
    const table = ds.table(name);
    if (!table) continue;
    const changes = Math.round(table.count * share);
    const files = SOURCE_TABLES[name].containerFields.length > 0;
    const ops = {
      insert: Math.round(changes * 0.1),
      delete: Math.round(changes * 0.1),
      replaceContainer: files ? Math.round(changes * 0.2) : 0,
      update: 0,
    };
    ops.update = changes - ops.insert - ops.delete - ops.replaceContainer;
    // Distinct records: a partial shuffle of the table's record ids, as many as the changes to existing records need.
    const rows = table.rows();
    const positions = Array.from({ length: indexListLength(rows) }, (_, i) => indexAt(rows, i));
    const picked = changes - ops.insert;
    for (let i = 0; i < picked; i++) {
      const j = i + Math.floor(rng.next() * (positions.length - i));
      [positions[i], positions[j]] = [positions[j]!, positions[i]!];
    }
    const recordIds = positions.slice(0, picked).map((index) => SimTable.recordIdOf(index));
    const take = (op: Mutation['op'], n: number) => {
      for (let i = 0; i < n; i++) mutations.push({ op, table: name, recordId: recordIds.shift() });
    };
    take('update', ops.update);
    take('delete', ops.delete);
    take('replaceContainer', ops.replaceContainer);
    for (let i = 0; i < ops.insert; i++) mutations.push({ op: 'insert', table: name });
    tables.push({ table: name, records: table.count, ops });
  }
  return { mutations, tables };
}

/** Per source table, a run's ledger entries: records it read and wrote itself, and records it carried over. */
export async function ledgerSplit(pool: Pool, runId: string): Promise<Map<string, { read: number; carried: number }>> {
  const r = await pool.query<{ t: string; read: number; carried: number }>(
    `select source_table as t,
            count(*) filter (where carried_from is null)::int as read,
            count(*) filter (where carried_from is not null)::int as carried
       from import_ledger where run_id = $1 group by source_table`,
    [runId],
  );
  return new Map(r.rows.map((x) => [x.t, { read: x.read, carried: x.carried }]));
}

export interface IncrementalFigures {
  /** The full run the incremental one is measured against; after `fullChanges` when given. */
  full: RunSpan & { status: string };
  fullChanges?: ChangePlan;
  incremental: RunSpan & { status: string };
  plan: ChangePlan;
  ledger: {
    full: Map<string, { read: number; carried: number }>;
    incremental: Map<string, { read: number; carried: number }>;
  };
  requests: RequestLog;
  machine: { calibrationMs: number; stolenSeconds: number | undefined };
  seed: number;
}

/** The whole run's span: from the parent's start to its close (to the last phase's when it never closed). */
function runSpan(run: RunSpan): { startMs: number; closeMs: number } {
  const span = spanOf(run.executions, run.runId);
  return {
    startMs: span?.startMs ?? run.phases[0]?.startMs ?? 0,
    closeMs: span?.closeMs ?? run.phases.at(-1)?.closeMs ?? Date.now(),
  };
}

/** What an incremental run does in the activities whose names say less (the others are shown by name). */
const LABELS: Record<string, string> = {
  buildManifest: 'manifest + plan',
  importChunk: 'chunks',
  importFiles: 'file batches',
  reconcileTable: 'finish + sweep + reconcile',
  preflight: 'pre-flight',
};

/**
 * Per activity type of one workflow (the run's own, or a phase's), in the order they started: the seconds its
 * activities took added up (scheduled to closed, retries included; chunks and batches run several at once, so theirs
 * may add up to more than the phase), how many ran, and the longest.
 */
function activitySteps(run: RunSpan, workflowId: string): string {
  const byType = new Map<string, { first: number; n: number; total: number; longest: number }>();
  for (const e of run.executions.filter((x) => x.workflowId === workflowId)) {
    for (const [type, a] of Object.entries(e.activities)) {
      const t = byType.get(type) ?? { first: a.firstScheduledMs, n: 0, total: 0, longest: 0 };
      byType.set(type, {
        first: Math.min(t.first, a.firstScheduledMs),
        n: t.n + a.count,
        total: t.total + a.totalMs,
        longest: Math.max(t.longest, a.longestMs),
      });
    }
  }
  return [...byType]
    .sort(([, a], [, b]) => a.first - b.first)
    .map(
      ([type, t]) =>
        `${LABELS[type] ?? type} ${secs(t.total)} s (${t.n}${t.n > 1 ? `, longest ${secs(t.longest)} s` : ''})`,
    )
    .join('; ');
}

const share = (part: number, whole: number) => (whole > 0 ? part / whole : 0);
const pct = (x: number) => `${fmt(x * 100, 1)}%`;

export function printIncrementalReport(x: IncrementalFigures, print: (line: string) => void = console.log): void {
  const changes = x.plan.tables.reduce(
    (acc, t) => {
      for (const [op, n] of Object.entries(t.ops)) acc[op] = (acc[op] ?? 0) + n;
      return acc;
    },
    {} as Record<string, number>,
  );
  const records = x.plan.tables.reduce((n, t) => n + t.records, 0);
  print(
    `\nincremental reimport ${x.incremental.runId}: ${x.incremental.status}, ${secs(x.incremental.wallMs)} s, after ` +
      `${pct(CHANGED_SHARE)} of every source table's records changed (seed ${x.seed}: ${fmt(x.plan.mutations.length)} ` +
      `changes of ${fmt(records)} records — ${fmt(changes.update ?? 0)} edits, ${fmt(changes.insert ?? 0)} inserts, ` +
      `${fmt(changes.delete ?? 0)} deletes, ${fmt(changes.replaceContainer ?? 0)} replaced containers), beside the ` +
      (x.fullChanges
        ? `full reimport ${x.full.runId} (${x.full.status}) after ${fmt(x.fullChanges.mutations.length)} other changes`
        : `second full reimport ${x.full.runId} (${x.full.status}), after no change`) +
      `; machine calibration ${fmt(x.machine.calibrationMs)} ms` +
      (x.machine.stolenSeconds !== undefined ? `, ${fmt(x.machine.stolenSeconds, 1)} s stolen in the first run` : ''),
  );

  // Phases in run order, the full run's first (the incremental run has no delete phase).
  const names = [...new Set([...x.full.phases, ...x.incremental.phases].map((p) => p.phase))];
  const phaseOf = (run: RunSpan, phase: string) => run.phases.find((p) => p.phase === phase);
  const requestsIn = (from: number, to: number) => x.requests.between(from, to).total;
  const rows: Record<string, string>[] = names.map((phase) => {
    const f = phaseOf(x.full, phase);
    const i = phaseOf(x.incremental, phase);
    const fr = f ? requestsIn(f.startMs, f.closeMs) : 0;
    const ir = i ? requestsIn(i.startMs, i.closeMs) : 0;
    return {
      phase,
      'full s': f ? secs(f.wallMs) : '',
      'incremental s': i ? secs(i.wallMs) : 'not run',
      'time share': f && i ? pct(share(i.wallMs, f.wallMs)) : '',
      'full FM requests': f ? fmt(fr) : '',
      'incremental FM requests': i ? fmt(ir) : '',
      'requests share': f && i ? pct(share(ir, fr)) : '',
      'incremental time is': i ? activitySteps(x.incremental, `${x.incremental.runId}/${phase}`) : '',
    };
  });
  const whole = (run: RunSpan) => {
    const span = runSpan(run);
    const inPhases = run.phases.reduce((n, p) => n + p.wallMs, 0);
    const all = x.requests.between(span.startMs, span.closeMs);
    const phaseRequests = run.phases.reduce((n, p) => n + requestsIn(p.startMs, p.closeMs), 0);
    return {
      wallMs: run.wallMs,
      requests: all.total,
      containers: all.containers,
      outsideMs: run.wallMs - inPhases,
      outsideRequests: all.total - phaseRequests,
    };
  };
  const fw = whole(x.full);
  const iw = whole(x.incremental);
  rows.push(
    {
      phase: 'outside the phases',
      'full s': secs(fw.outsideMs),
      'incremental s': secs(iw.outsideMs),
      'time share': '',
      'full FM requests': fmt(fw.outsideRequests),
      'incremental FM requests': fmt(iw.outsideRequests),
      'requests share': '',
      // The run's own activities, and the time between them: starting and waiting for each phase's workflow.
      'incremental time is': activitySteps(x.incremental, x.incremental.runId),
    },
    {
      phase: 'whole run',
      'full s': secs(fw.wallMs),
      'incremental s': secs(iw.wallMs),
      'time share': pct(share(iw.wallMs, fw.wallMs)),
      'full FM requests': fmt(fw.requests),
      'incremental FM requests': fmt(iw.requests),
      'requests share': pct(share(iw.requests, fw.requests)),
      'incremental time is': '',
    },
    {
      phase: 'of which container downloads',
      'full s': '',
      'incremental s': '',
      'time share': '',
      'full FM requests': fmt(fw.containers),
      'incremental FM requests': fmt(iw.containers),
      'requests share': pct(share(iw.containers, fw.containers)),
      'incremental time is': '',
    },
  );
  print(
    'full and incremental, per phase (FileMaker requests counted by arrival; what the incremental time is: its ' +
      'activities by type, seconds scheduled to closed added up, how many ran, the longest):',
  );
  console.table(keyed(rows, 'phase'));

  print('records per source table: changed, read again (carried_from null) and carried over (carried_from set):');
  const tables = [...new Set([...x.plan.tables.map((t) => t.table), ...x.ledger.incremental.keys()])];
  const sum = { changed: 0, full: 0, read: 0, carried: 0 };
  const tableRows = tables.map((table) => {
    const plan = x.plan.tables.find((t) => t.table === table);
    const changed = plan ? Object.values(plan.ops).reduce((a, b) => a + b, 0) : 0;
    const full = x.ledger.full.get(table)?.read ?? 0;
    const inc = x.ledger.incremental.get(table) ?? { read: 0, carried: 0 };
    sum.changed += changed;
    sum.full += full;
    sum.read += inc.read;
    sum.carried += inc.carried;
    return { table, changed, full, ...inc };
  });
  tableRows.push({ table: 'all', ...sum });
  console.table(
    keyed(
      tableRows.map((r) => ({
        table: r.table,
        changed: fmt(r.changed),
        'full: read': fmt(r.full),
        'incremental: read again': fmt(r.read),
        'incremental: carried over': fmt(r.carried),
        'read again share': pct(share(r.read, r.read + r.carried)),
      })),
      'table',
    ),
  );

  // A run that did not complete has already missed a target its figure so far exceeds; the other, it cannot show.
  const mark = (ok: boolean) =>
    x.full.status !== 'completed' ? 'n/a' : ok ? (x.incremental.status === 'completed' ? 'met' : 'n/a') : 'MISSED';
  const requestShare = share(iw.requests, fw.requests);
  const timeShare = share(iw.wallMs, fw.wallMs);
  print(
    `targets of the incremental run, ${pct(CHANGED_SHARE)} of the records changed (machine calibration ` +
      `${fmt(x.machine.calibrationMs)} ms):`,
  );
  console.table(
    keyed(
      [
        {
          figure: 'FileMaker requests, incremental ÷ full',
          value: `${pct(requestShare)} (${fmt(iw.requests)} of ${fmt(fw.requests)})`,
          target: `≤ ${pct(REQUESTS_TARGET)}`,
          result: mark(requestShare <= REQUESTS_TARGET),
        },
        {
          figure: 'wall time, incremental ÷ full',
          value: `${pct(timeShare)} (${secs(iw.wallMs)} s of ${secs(fw.wallMs)} s)`,
          target: `≤ ${pct(TIME_TARGET)}`,
          result: mark(timeShare <= TIME_TARGET),
        },
        {
          figure: 'FileMaker requests besides container downloads, incremental ÷ full',
          value: `${pct(share(iw.requests - iw.containers, fw.requests - fw.containers))} (${fmt(
            iw.requests - iw.containers,
          )} of ${fmt(fw.requests - fw.containers)})`,
          target: '',
          result: '',
        },
      ],
      'figure',
    ),
  );
}
