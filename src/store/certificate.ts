/**
 * What a run's reconciliation certificate states, read from the database: the run, its ledger by table, state and
 * reason, its delta, the records that failed (with their FileMaker ids), a sample of its patients chosen by the run
 * id, and a digest of the whole ordered ledger that ties the page to exactly one outcome. The page this feeds holds
 * patient data; nothing here logs any of it.
 */
import type { Pool } from './db';
import { RUN_OVERVIEW_COLUMNS, runOverview, type RunOverview, type RunOverviewRow } from './runs';

export interface CertificateRun extends RunOverview {
  options: Record<string, unknown>;
}

export interface TableOutcome {
  table: string;
  /** Records in the run's manifest. */
  source: number;
  byState: Record<string, number>;
  /** `state REASON` → records. */
  byReason: Record<string, number>;
  delta?: { previousRunId: string | null; added: number; changed: number; unchanged: number; vanished: number };
}

export interface FailedRecord {
  table: string;
  filemakerId: string | null;
  recordId: string;
  reason: string | null;
}

export interface CertificateFacts {
  run: CertificateRun;
  tables: TableOutcome[];
  failed: FailedRecord[];
  /** Failed records beyond those listed. */
  failedNotListed: number;
  /** Hex SHA-256 over the run's ledger rows in (table, record id) order. */
  digest: string;
  ledgerRows: number;
}

/** Failed records listed on a certificate; the rest are counted. */
const FAILED_LISTED = 500;

/**
 * The run's ledger digest: SHA-256 over one line per ledger row — table, record id, FileMaker id, state, reason,
 * target table and id, object key and checksum, tab-separated — in byte order of (table, record id). Any change to
 * any row's outcome changes it.
 */
export async function ledgerDigest(pool: Pool, runId: string): Promise<{ digest: string; rows: number }> {
  const r = await pool.query<{ digest: string; rows: number }>(
    `select encode(sha256(convert_to(coalesce(string_agg(concat_ws(E'\\t', source_table, record_id,
              coalesce(filemaker_id, ''), state, coalesce(reason_code, ''), coalesce(target_table, ''),
              coalesce(target_id::text, ''), coalesce(s3_key, ''), coalesce(sha256, '')), E'\\n'
              order by source_table collate "C", record_id collate "C"), ''), 'UTF8')), 'hex') as digest,
            count(*)::int as rows
       from import_ledger where run_id = $1`,
    [runId],
  );
  return r.rows[0]!;
}

/** Everything the certificate states about `runId` except the patient sample; undefined for an unknown run. */
export async function certificateFacts(pool: Pool, runId: string): Promise<CertificateFacts | undefined> {
  const runs = await pool.query<RunOverviewRow & { options: Record<string, unknown> }>(
    `select ${RUN_OVERVIEW_COLUMNS}, options from reimport_runs where run_id = $1`,
    [runId],
  );
  const row = runs.rows[0];
  if (!row) return undefined;
  const [sources, states, deltas, failed, digest] = await Promise.all([
    pool.query<{ table: string; n: number }>(
      `select source_table as table, count(*)::int as n from source_manifest where run_id = $1 group by 1`,
      [runId],
    ),
    pool.query<{ table: string; state: string; reason: string | null; n: number }>(
      `select source_table as table, state, reason_code as reason, count(*)::int as n
         from import_ledger where run_id = $1 group by 1, 2, 3`,
      [runId],
    ),
    pool.query<{
      table: string;
      previous_run_id: string | null;
      added: number;
      changed: number;
      unchanged: number;
      vanished: number;
    }>(
      `select source_table as table, previous_run_id, added, changed, unchanged, vanished
         from run_delta_tables where run_id = $1`,
      [runId],
    ),
    pool.query<{ table: string; filemaker_id: string | null; record_id: string; reason: string | null }>(
      `select source_table as table, filemaker_id, record_id, reason_code as reason
         from import_ledger where run_id = $1 and state = 'failed'
        order by source_table collate "C", record_id collate "C" limit ${FAILED_LISTED + 1}`,
      [runId],
    ),
    ledgerDigest(pool, runId),
  ]);
  const tables = new Map<string, TableOutcome>();
  const tableOf = (name: string) => {
    let t = tables.get(name);
    if (!t) tables.set(name, (t = { table: name, source: 0, byState: {}, byReason: {} }));
    return t;
  };
  for (const s of sources.rows) tableOf(s.table).source = s.n;
  for (const s of states.rows) {
    const t = tableOf(s.table);
    t.byState[s.state] = (t.byState[s.state] ?? 0) + s.n;
    if (s.reason) t.byReason[`${s.state} ${s.reason}`] = s.n;
  }
  for (const d of deltas.rows) {
    tableOf(d.table).delta = {
      previousRunId: d.previous_run_id,
      added: d.added,
      changed: d.changed,
      unchanged: d.unchanged,
      vanished: d.vanished,
    };
  }
  const totalFailed = states.rows.filter((s) => s.state === 'failed').reduce((n, s) => n + s.n, 0);
  return {
    run: { ...runOverview(row), options: row.options },
    tables: [...tables.values()].sort((a, b) => (a.table < b.table ? -1 : 1)),
    failed: failed.rows
      .slice(0, FAILED_LISTED)
      .map((f) => ({ table: f.table, filemakerId: f.filemaker_id, recordId: f.record_id, reason: f.reason })),
    failedNotListed: Math.max(0, totalFailed - FAILED_LISTED),
    digest: digest.digest,
    ledgerRows: digest.rows,
  };
}

export interface SampledPatient {
  recordId: string;
  filemakerId: string;
  /** The patient's row in Nexus, or undefined when it is not there. */
  row: Record<string, unknown> | undefined;
  /** What Nexus holds for the patient: appointments, notes, documents and images, a few fields each. */
  related: { table: string; rows: Record<string, unknown>[] }[];
}

/** Rows of each table related to a patient shown on the certificate, at most this many each. */
const RELATED_SHOWN = 20;

/**
 * `n` of the run's imported patients, chosen by the run id (the same run gives the same sample), with their Nexus row
 * and related rows.
 */
export async function samplePatients(pool: Pool, runId: string, n: number): Promise<SampledPatient[]> {
  const picked = await pool.query<{ record_id: string; filemaker_id: string }>(
    `select record_id, filemaker_id from import_ledger
      where run_id = $1 and source_table = 'API_Contacts' and state in ('imported', 'unlinked')
        and filemaker_id is not null
      order by md5($1 || ':' || record_id), record_id limit $2`,
    [runId, n],
  );
  const out: SampledPatient[] = [];
  for (const p of picked.rows) {
    // As JSON, so dates and instants read as PostgreSQL writes them (no time zone of this process in between).
    const row = (
      await pool.query<{ row: Record<string, unknown> }>(
        `select to_jsonb(p) as row from patients p where filemaker_id = $1`,
        [p.filemaker_id],
      )
    ).rows[0]?.row;
    const related: SampledPatient['related'] = [];
    if (row) {
      const queries: [string, string][] = [
        ['appointments', `select filemaker_id, start_at, status, type from appointments where patient_id = $1`],
        ['notes', `select filemaker_id, note_date, note_type from notes where patient_id = $1`],
        [
          'documents',
          `select filemaker_id, document_date, category, s3_key, sha256 from documents where object_id = $1`,
        ],
        [
          'images',
          `select i.filemaker_id, i.s3_key, i.sha256 from images i join image_batches b on b.id = i.batch_id
            where b.patient_id = $1`,
        ],
      ];
      for (const [table, sql] of queries) {
        const r = await pool.query<{ row: Record<string, unknown> }>(
          `select to_jsonb(t) as row from (${sql} order by 1 limit ${RELATED_SHOWN}) t`,
          [row.id],
        );
        related.push({ table, rows: r.rows.map((x) => x.row) });
      }
    }
    out.push({ recordId: p.record_id, filemakerId: p.filemaker_id, row, related });
  }
  return out;
}
