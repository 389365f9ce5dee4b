/**
 * The import ledger as the files phases read it back: "never download twice". (The ledger is written by
 * src/activities/ledger.ts, one statement per chunk.)
 */
import type pg from 'pg';
import { cleanString } from './sanitize';

const BATCH = 5000;

/** FileMaker ids are stored trimmed and lower-cased (as every target row is). */
function normId(raw: string): string {
  return cleanString(raw).trim().toLowerCase();
}

export interface LedgerFile {
  runId: string;
  /** Only states that keep a file are looked up. */
  state: 'imported' | 'unlinked';
  targetId: string | null;
  s3Key: string;
  bytes: number | null;
  sha256: string | null;
  sourceModId: string | null;
}

/**
 * "Never download twice": for each id, the most recent ledger row that recorded a file (an S3 key) for
 * `sourceTable`, across runs, or only in `runId` when given, or only in completed runs with `completedOnly`.
 * The FileMaker transfer quota is the scarcest resource of the whole system; a caller compares the source's modId
 * and the object's HEAD with this before downloading again.
 */
export async function ledgerLookup(
  pool: pg.Pool,
  sourceTable: string,
  ids: readonly string[],
  opts: { runId?: string; completedOnly?: boolean } = {},
): Promise<Map<string, LedgerFile>> {
  const out = new Map<string, LedgerFile>();
  const norm = [...new Set(ids.map(normId))];
  for (let i = 0; i < norm.length; i += BATCH) {
    const r = await pool.query<{
      filemaker_id: string;
      run_id: string;
      state: LedgerFile['state'];
      target_id: string | null;
      s3_key: string;
      bytes: string | null;
      sha256: string | null;
      source_mod_id: string | null;
    }>(
      `select distinct on (l.filemaker_id) l.filemaker_id, l.run_id, l.state, l.target_id, l.s3_key, l.bytes,
              l.sha256, l.source_mod_id
       from import_ledger l join reimport_runs r using (run_id)
       where l.source_table = $1 and l.filemaker_id = any($2::text[]) and l.s3_key is not null
         and l.state in ('imported', 'unlinked')
         and ($3::text is null or l.run_id = $3) and (not $4 or r.status = 'completed')
       order by l.filemaker_id, l.updated_at desc`,
      [sourceTable, norm.slice(i, i + BATCH), opts.runId ?? null, opts.completedOnly ?? false],
    );
    for (const x of r.rows) {
      out.set(x.filemaker_id, {
        runId: x.run_id,
        state: x.state,
        targetId: x.target_id,
        s3Key: x.s3_key,
        bytes: x.bytes === null ? null : Number(x.bytes),
        sha256: x.sha256,
        sourceModId: x.source_mod_id,
      });
    }
  }
  return out;
}
