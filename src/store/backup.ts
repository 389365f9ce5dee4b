/**
 * The run's backup for rollback, and the delete phase.
 *
 * - `snapshot` copies every snapshot table into the run's schema (`backupSchemaName`) in ONE repeatable-read
 *   transaction, so the copy is one consistent moment even while nothing else is paused.
 * - `restore` puts every table back exactly (truncate + insert with the live column list, one transaction) and
 *   compares fingerprints with the snapshot before committing: a restore that does not match changes nothing.
 * - `fingerprint` is an ordered SHA-256 over the rows' per-row SHA-256 (the row as JSON without the store-owned
 *   columns created_at, updated_at, import_run_id), computed in PostgreSQL in one round trip; hashing each row first
 *   keeps the aggregate at 64 bytes a row whatever the rows hold.
 */
import { createHash } from 'node:crypto';
import { IntegrityError, SchemaVersionError } from '../errors';
import { withTransaction, type Pool, type PoolClient } from './db';
import { ident, STORE_OWNED_COLUMNS, TARGET_TABLE_NAMES } from './schema';
import { inParallel } from '../parallel';

type Queryable = Pool | PoolClient;
/** Called as each table is done, so a long backup, restore or delete can report progress (an activity heartbeat). */
type OnTable = (table: SnapshotTable) => void;

/** Tables a snapshot covers: every target table plus the kept contact details. Parents first. */
export const SNAPSHOT_TABLES = [...TARGET_TABLE_NAMES, 'contact_details'] as const;
export type SnapshotTable = (typeof SNAPSHOT_TABLES)[number];

export interface Fingerprint {
  rows: number;
  /** Hex SHA-256 over the rows' SHA-256 (JSON minus store-owned columns) in filemaker_id order. */
  fingerprint: string;
}
export type Fingerprints = Record<SnapshotTable, Fingerprint>;

/** The table in every backup schema recording the run it belongs to (`run_id`). */
const INFO_TABLE = '_backup_info';
/** Backup tables hashed at once, each on its own connection: PostgreSQL hashes one table per connection. */
const FINGERPRINT_LANES = 3;
const QUALIFIED = /^(?:([a-z_][a-z0-9_]*)\.)?([a-z_][a-z0-9_]*)$/;

/**
 * `backup_<cleaned run id>_<hash>`: the cleaned id (lower case, at most 40 characters) keeps it readable, the hash of
 * the exact run id keeps distinct run ids distinct (`Run-A` and `run-a`, long ids with a common start), and at most
 * 58 bytes it stays within PostgreSQL's 63. Always hashed, so never the unhashed name older backups used.
 */
export function backupSchemaName(runId: string): string {
  const safe = runId
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .slice(0, 40);
  const hash = createHash('sha256').update(runId).digest('hex').slice(0, 10);
  return `backup_${safe}_${hash}`;
}

/**
 * The name backups were made under before `backupSchemaName`: distinct run ids could share it (`Run-A` and `run-a`,
 * long ids cut at the same place), and such backups record no run id. Only read, to restore those backups.
 */
function legacyBackupSchema(runId: string): string {
  return `backup_${runId.toLowerCase().replace(/[^a-z0-9]+/g, '_')}`.slice(0, 60);
}

function qualified(name: string): string {
  const m = QUALIFIED.exec(name);
  if (!m) throw new TypeError(`fingerprint: ${name} is not a table name`);
  return m[1] ? `${ident(m[1])}.${ident(m[2]!)}` : ident(m[2]!);
}

/** Ordered hash over all rows of `table` (or `schema.table`), store-owned columns left out. */
export async function fingerprint(db: Queryable, table: string): Promise<Fingerprint> {
  const minus = STORE_OWNED_COLUMNS.map((c) => ` - '${c}'`).join('');
  const r = await db.query<{ rows: number; fingerprint: string }>(
    `select count(*)::int as rows,
            encode(sha256(convert_to(coalesce(string_agg(
              encode(sha256(convert_to((to_jsonb(t)${minus})::text, 'UTF8')), 'hex'), ''
              order by t.filemaker_id collate "C"), ''), 'UTF8')), 'hex') as fingerprint
     from ${qualified(table)} t`,
  );
  const row = r.rows[0]!;
  return { rows: row.rows, fingerprint: row.fingerprint };
}

/**
 * Every snapshot table's fingerprint. Over a pool (tables nothing else writes: a committed backup), `lanes` tables are
 * hashed at once, each on its own connection; in a transaction, one after another.
 */
export async function fingerprintAll(
  db: Queryable,
  schema = 'public',
  onTable?: OnTable,
  lanes = 1,
): Promise<Fingerprints> {
  const prints: Fingerprint[] = [];
  await inParallel(SNAPSHOT_TABLES, lanes, async (t, i) => {
    prints[i] = await fingerprint(db, `${schema}.${t}`);
    onTable?.(t);
  });
  // In the tables' order, whichever finished first.
  return Object.fromEntries(SNAPSHOT_TABLES.map((t, i) => [t, prints[i]!])) as Fingerprints;
}

async function schemaExists(db: Queryable, schema: string): Promise<boolean> {
  return (await db.query('select 1 from pg_namespace where nspname = $1', [schema])).rowCount === 1;
}

/**
 * Copies every snapshot table into the run's backup schema in one repeatable-read transaction, replacing a backup
 * of the same run id (a retried activity), and returns the copy's fingerprints. Hashing takes longer than copying;
 * the committed copies no longer change, so they are hashed `FINGERPRINT_LANES` tables at a time.
 */
export async function snapshot(pool: Pool, runId: string, onTable?: OnTable): Promise<Fingerprints> {
  const schema = ident(backupSchemaName(runId));
  await withTransaction(
    pool,
    async (c) => {
      await c.query(`drop schema if exists ${schema} cascade`);
      await c.query(`create schema ${schema}`);
      for (const t of SNAPSHOT_TABLES) {
        await c.query(`create table ${schema}.${ident(t)} as table public.${ident(t)}`);
        onTable?.(t);
      }
      await c.query(
        `create table ${schema}.${INFO_TABLE} (run_id text not null, created_at timestamptz not null default now())`,
      );
      await c.query(`insert into ${schema}.${INFO_TABLE} (run_id) values ($1)`, [runId]);
    },
    { isolation: 'repeatable read' },
  );
  return fingerprintAll(pool, backupSchemaName(runId), onTable, FINGERPRINT_LANES);
}

/**
 * Rows of `table` as they were when the run began (its backup), by filemaker_id: what the tables referred to before
 * the run. Empty when the run has no backup of its own (a run that writes always makes one first).
 */
export async function rowsBefore<T extends { filemaker_id: string }>(
  db: Queryable,
  runId: string,
  table: SnapshotTable,
  ids: readonly string[],
): Promise<Map<string, T>> {
  const name = `${ident(backupSchemaName(runId))}.${ident(table)}`;
  if (ids.length === 0) return new Map();
  const exists = await db.query<{ t: string | null }>('select to_regclass($1)::text as t', [name]);
  if (!exists.rows[0]?.t) return new Map();
  const r = await db.query<T>(`select * from ${name} where filemaker_id = any($1::text[])`, [ids]);
  return new Map(r.rows.map((x) => [x.filemaker_id, x]));
}

/** The run id a backup schema records; undefined for a backup made before backups recorded one, or no schema. */
async function recordedRunId(db: Queryable, schema: string): Promise<string | undefined> {
  const info = `${ident(schema)}.${INFO_TABLE}`;
  const exists = await db.query<{ t: string | null }>('select to_regclass($1)::text as t', [info]);
  if (!exists.rows[0]?.t) return undefined;
  return (await db.query<{ run_id: string }>(`select run_id from ${info} limit 1`)).rows[0]?.run_id;
}

/**
 * Refuses (IntegrityError) a run whose backup the retention policy dropped: it can no longer be rolled back, and its
 * S3 inventory went with it, so nothing may be deleted in its name either.
 */
export async function refuseDroppedBackup(db: Queryable, runId: string): Promise<void> {
  const r = await db.query<{ at: string | null }>(
    `select backup_dropped_at::text as at from reimport_runs where run_id = $1`,
    [runId],
  );
  const at = r.rows[0]?.at;
  if (at) throw new IntegrityError(`the backup of run ${runId} was dropped by the retention policy (${at})`);
}

/**
 * The schema holding the run's backup: its own name, or else the legacy name when that one is provably the run's.
 * A legacy backup records no run id, and the last run to back up under a shared name replaced it: so it is taken
 * only when no run that started later shares the name, except runs whose own backup shows they did not write it.
 */
export async function backupSchemaOf(db: Queryable, runId: string): Promise<string> {
  await refuseDroppedBackup(db, runId);
  const own = backupSchemaName(runId);
  if (await schemaExists(db, own)) {
    const recorded = await recordedRunId(db, own);
    if (recorded !== runId) throw new IntegrityError(`backup ${own} belongs to another run, not ${runId}`);
    return own;
  }
  const legacy = legacyBackupSchema(runId);
  if (!(await schemaExists(db, legacy))) throw new IntegrityError(`no backup for run ${runId}`);
  const recorded = await recordedRunId(db, legacy);
  if (recorded === runId) return legacy;
  if (recorded !== undefined) throw new IntegrityError(`no backup for run ${runId}: ${legacy} is another run's`);
  const later = await db.query<{ run_id: string }>(
    `select run_id from reimport_runs where run_id <> $1
        and started_at >= coalesce((select started_at from reimport_runs where run_id = $1), '-infinity')`,
    [runId],
  );
  for (const { run_id: other } of later.rows) {
    if (legacyBackupSchema(other) !== legacy) continue;
    if ((await recordedRunId(db, backupSchemaName(other))) === other) continue;
    throw new IntegrityError(`backup ${legacy} of run ${runId} may be a later run's: it is not restored`);
  }
  return legacy;
}

async function columnsOf(db: Queryable, schema: string, table: string): Promise<string[]> {
  const r = await db.query<{ column_name: string }>(
    `select column_name from information_schema.columns where table_schema = $1 and table_name = $2
     order by ordinal_position`,
    [schema, table],
  );
  return r.rows.map((x) => x.column_name);
}

export interface RestoreOutcome {
  /** The live tables' fingerprints after the restore (the snapshot's when `verified`). */
  tables: Fingerprints;
  /** True when every table's fingerprint equals the snapshot's; when false, the restore was rolled back. */
  verified: boolean;
}

/** Thrown inside the restore's transaction to roll it back, carrying what was found. */
class Unverified extends Error {
  constructor(readonly tables: Fingerprints) {
    super('restored fingerprints differ from the snapshot');
  }
}

/**
 * Puts every snapshot table back exactly as the run's backup has it, in one transaction: truncate all, insert
 * parents first with deferrable foreign keys deferred, then compare fingerprints with the backup's before
 * committing. IntegrityError (no backup, or not provably the run's) and SchemaVersionError (the backup has other
 * columns) change nothing; nor does a restore whose fingerprints differ (`verified: false`).
 */
export async function restore(pool: Pool, runId: string, onTable?: OnTable): Promise<RestoreOutcome> {
  try {
    const tables = await withTransaction(pool, async (c) => {
      const schema = await backupSchemaOf(c, runId);
      const columns = new Map<SnapshotTable, string[]>();
      for (const t of SNAPSHOT_TABLES) {
        const live = await columnsOf(c, 'public', t);
        const saved = await columnsOf(c, schema, t);
        if (live.join(',') !== saved.join(',')) {
          throw new SchemaVersionError(`backup of ${t} in ${schema} was taken with other columns`);
        }
        columns.set(t, live);
      }
      // Records this run archived as vanished are as much its writes as its rows.
      await c.query('delete from archived_records where missing_since_run_id = $1', [runId]);
      await c.query('set constraints all deferred');
      await c.query(`truncate ${SNAPSHOT_TABLES.map((t) => `public.${ident(t)}`).join(', ')}`);
      for (const t of SNAPSHOT_TABLES) {
        const cols = columns.get(t)!.map(ident).join(', ');
        await c.query(`insert into public.${ident(t)} (${cols}) select ${cols} from ${ident(schema)}.${ident(t)}`);
        onTable?.(t);
      }
      // Deferred foreign keys are checked here, before the fingerprints and the commit.
      await c.query('set constraints all immediate');
      const now = await fingerprintAll(c, 'public', onTable);
      const saved = await fingerprintAll(c, schema, onTable);
      if (SNAPSHOT_TABLES.some((t) => now[t].fingerprint !== saved[t].fingerprint)) throw new Unverified(now);
      return now;
    });
    return { tables, verified: true };
  } catch (err) {
    if (err instanceof Unverified) return { tables: err.tables, verified: false };
    throw err;
  }
}

/**
 * The delete phase: removes every imported row (those with a filemaker_id), children first, in one transaction.
 * S3 objects are never touched: they are keyed by FileMaker id and re-linked by the next import.
 */
export async function deleteImportedData(pool: Pool, onTable?: OnTable): Promise<Record<SnapshotTable, number>> {
  return withTransaction(pool, async (c) => {
    const out = {} as Record<SnapshotTable, number>;
    for (const t of [...SNAPSHOT_TABLES].reverse()) {
      out[t] = (await c.query(`delete from public.${ident(t)} where filemaker_id is not null`)).rowCount ?? 0;
      onTable?.(t);
    }
    return out;
  });
}

/**
 * Drops the run's backup schema and S3 inventory and records when, in one transaction (the retention policy's one
 * way to remove a backup). A schema of its name that records another run is refused (IntegrityError). Returns false
 * when the run has no backup of its own to drop (a dry run, or a backup made under the older shared name).
 */
export async function dropBackup(pool: Pool, runId: string): Promise<boolean> {
  return withTransaction(pool, async (c) => {
    const own = backupSchemaName(runId);
    if (!(await schemaExists(c, own))) return false;
    const recorded = await recordedRunId(c, own);
    if (recorded !== runId) throw new IntegrityError(`backup ${own} belongs to another run, not ${runId}`);
    await c.query(`drop schema ${ident(own)} cascade`);
    await c.query('delete from s3_inventory where run_id = $1', [runId]);
    await c.query('update reimport_runs set backup_dropped_at = now() where run_id = $1', [runId]);
    return true;
  });
}
