/**
 * Backup and restore of the target tables for rollback, and the delete phase.
 *
 * - `snapshot` copies every target table into a per-run schema `backup_<run>` in ONE repeatable-read transaction,
 *   so the copy is one consistent moment even while nothing else is paused.
 * - `exportBackupToS3` writes that schema as gzip JSONL per table plus a manifest under `backups/{runId}/`, so the
 *   backup survives the database host; `importBackupFromS3` brings it back (checksums and fingerprints verified).
 * - `restore` puts every table back exactly (truncate + insert, constraints deferred, one transaction) and proves it
 *   with fingerprints before committing.
 * - `fingerprint` is an ordered SHA-256 over all rows without the store-owned columns (created_at, updated_at,
 *   import_run_id), computed in PostgreSQL in one round trip.
 */
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { PassThrough, Readable } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type pg from 'pg';
import { IntegrityError, SchemaVersionError } from '../errors';
import type { Logger } from '../logger';
import { uploadStream } from '../s3/upload';
import { withTransaction } from './db';
import { KNOWN_MIGRATIONS } from './migrate';
import { ident, STORE_OWNED_COLUMNS, TARGET_TABLE_NAMES, type TargetTableName } from './schema';

type Queryable = pg.Pool | pg.PoolClient;

export interface Fingerprint {
  rows: number;
  /** Hex SHA-256 over the rows' JSON (minus store-owned columns) in filemaker_id order. */
  sha256: string;
}
export type Fingerprints = Record<TargetTableName, Fingerprint>;

/** The table in every backup schema recording the run it belongs to (`run_id`). */
export const INFO_TABLE = '_backup_info';
const SCHEMA_VERSION = KNOWN_MIGRATIONS[KNOWN_MIGRATIONS.length - 1];
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

function qualified(name: string): string {
  const m = QUALIFIED.exec(name);
  if (!m) throw new TypeError(`fingerprint: ${name} is not a table name`);
  return m[1] ? `${ident(m[1])}.${ident(m[2]!)}` : ident(m[2]!);
}

/** Ordered hash over all rows of `table` (or `schema.table`), store-owned columns left out. */
export async function fingerprint(db: Queryable, table: string): Promise<Fingerprint> {
  const minus = STORE_OWNED_COLUMNS.map((c) => ` - '${c}'`).join('');
  const r = await db.query<{ rows: number; sha256: string }>(
    `select count(*)::int as rows,
            encode(sha256(convert_to(coalesce(string_agg((to_jsonb(t)${minus})::text, E'\\n'
              order by t.filemaker_id collate "C"), ''), 'UTF8')), 'hex') as sha256
     from ${qualified(table)} t`,
  );
  const row = r.rows[0]!;
  return { rows: row.rows, sha256: row.sha256 };
}

export async function fingerprintAll(db: Queryable, schema = 'public'): Promise<Fingerprints> {
  const out = {} as Fingerprints;
  for (const t of TARGET_TABLE_NAMES) out[t] = await fingerprint(db, `${schema}.${t}`);
  return out;
}

async function schemaExists(db: Queryable, schema: string): Promise<boolean> {
  const r = await db.query(`select 1 from pg_namespace where nspname = $1`, [schema]);
  return r.rowCount === 1;
}

async function readInfo(db: Queryable, schema: string): Promise<{ fingerprints: Fingerprints; schemaVersion: string }> {
  const r = await db.query<{ fingerprints: Fingerprints; schema_version: string }>(
    `select fingerprints, schema_version from ${ident(schema)}.${INFO_TABLE}`,
  );
  const row = r.rows[0];
  if (!row) throw new IntegrityError(`backup ${schema} has no ${INFO_TABLE} row`);
  return { fingerprints: row.fingerprints, schemaVersion: row.schema_version };
}

export interface SnapshotResult {
  schema: string;
  fingerprints: Fingerprints;
  /** False when the snapshot already existed (a retried activity) and was left as it was. */
  created: boolean;
}

/** Copies every target table into `backup_<run>` in one repeatable-read transaction. Idempotent per run. */
export async function snapshot(pool: pg.Pool, runId: string, opts: { logger?: Logger } = {}): Promise<SnapshotResult> {
  const schema = backupSchemaName(runId);
  const result = await withTransaction(
    pool,
    async (c) => {
      if (await schemaExists(c, schema)) {
        return { schema, fingerprints: (await readInfo(c, schema)).fingerprints, created: false };
      }
      await c.query(`create schema ${ident(schema)}`);
      for (const t of TARGET_TABLE_NAMES) {
        await c.query(`create table ${ident(schema)}.${ident(t)} as table public.${ident(t)}`);
      }
      const fingerprints = await fingerprintAll(c, schema);
      await c.query(
        `create table ${ident(schema)}.${INFO_TABLE} (run_id text not null, created_at timestamptz not null default now(),
           schema_version text not null, fingerprints jsonb not null)`,
      );
      await c.query(
        `insert into ${ident(schema)}.${INFO_TABLE} (run_id, schema_version, fingerprints) values ($1, $2, $3::jsonb)`,
        [runId, SCHEMA_VERSION, JSON.stringify(fingerprints)],
      );
      return { schema, fingerprints, created: true };
    },
    { isolation: 'repeatable read' },
  );
  opts.logger?.info(
    { runId, schema, created: result.created, rows: sumRows(result.fingerprints) },
    'target tables snapshotted',
  );
  return result;
}

function sumRows(f: Fingerprints): number {
  return Object.values(f).reduce((n, x) => n + x.rows, 0);
}

async function columnsOf(db: Queryable, schema: string, table: string): Promise<string[]> {
  const r = await db.query<{ column_name: string }>(
    `select column_name from information_schema.columns where table_schema = $1 and table_name = $2
     order by ordinal_position`,
    [schema, table],
  );
  return r.rows.map((x) => x.column_name);
}

/**
 * Puts every target table back exactly as the run's snapshot has it, in one transaction: truncate all, insert
 * parents first with foreign keys deferred, then compare fingerprints with the snapshot's before committing
 * (IntegrityError and nothing changed if they differ).
 */
export async function restore(pool: pg.Pool, runId: string, opts: { logger?: Logger } = {}): Promise<Fingerprints> {
  const schema = backupSchemaName(runId);
  const restored = await withTransaction(pool, async (c) => {
    if (!(await schemaExists(c, schema))) throw new IntegrityError(`no backup for run ${runId}`);
    const info = await readInfo(c, schema);
    const columns = new Map<TargetTableName, string[]>();
    for (const t of TARGET_TABLE_NAMES) {
      const live = await columnsOf(c, 'public', t);
      const saved = await columnsOf(c, schema, t);
      if (live.join(',') !== saved.join(',')) {
        throw new SchemaVersionError(`backup of ${t} was taken with other columns (schema ${info.schemaVersion})`);
      }
      columns.set(t, live);
    }
    await c.query('set constraints all deferred');
    await c.query(`truncate ${TARGET_TABLE_NAMES.map((t) => `public.${ident(t)}`).join(', ')}`);
    for (const t of TARGET_TABLE_NAMES) {
      const cols = columns.get(t)!.map(ident).join(', ');
      await c.query(`insert into public.${ident(t)} (${cols}) select ${cols} from ${ident(schema)}.${ident(t)}`);
    }
    // Deferred foreign keys are checked here, before the fingerprints and the commit.
    await c.query('set constraints all immediate');
    const now = await fingerprintAll(c, 'public');
    for (const t of TARGET_TABLE_NAMES) {
      const a = now[t];
      const b = info.fingerprints[t];
      if (a.rows !== b.rows || a.sha256 !== b.sha256) {
        throw new IntegrityError(`restore of ${t} does not match its snapshot (${a.rows} vs ${b.rows} rows)`);
      }
    }
    return now;
  });
  opts.logger?.info({ runId, schema, rows: sumRows(restored) }, 'target tables restored from snapshot');
  return restored;
}

/** Removes a run's backup schema (after a successful run has been verified). */
export async function dropBackup(pool: pg.Pool, runId: string): Promise<boolean> {
  const schema = backupSchemaName(runId);
  const existed = await schemaExists(pool, schema);
  await pool.query(`drop schema if exists ${ident(schema)} cascade`);
  return existed;
}

export interface BackupManifest {
  runId: string;
  schemaVersion: string;
  exportedAt: string;
  fingerprints: Fingerprints;
  objects: Record<TargetTableName, { key: string; rows: number; size: number; sha256: string }>;
}

export function backupPrefix(runId: string): string {
  return `backups/${runId}/`;
}

/**
 * Writes the run's backup schema to S3: `backups/{runId}/{table}.jsonl.gz` (every column, filemaker_id order,
 * read with a cursor so memory stays flat) and `backups/{runId}/manifest.json` last, so a manifest means complete.
 */
export async function exportBackupToS3(
  pool: pg.Pool,
  s3: S3Client,
  bucket: string,
  runId: string,
  opts: { logger?: Logger } = {},
): Promise<BackupManifest> {
  const schema = backupSchemaName(runId);
  const prefix = backupPrefix(runId);
  const manifest = await withTransaction(
    pool,
    async (c) => {
      if (!(await schemaExists(c, schema))) throw new IntegrityError(`no backup for run ${runId}`);
      const info = await readInfo(c, schema);
      const objects = {} as BackupManifest['objects'];
      for (const t of TARGET_TABLE_NAMES) {
        let rows = 0;
        const cursor = `export_${t}`;
        await c.query(
          `declare ${cursor} no scroll cursor for
           select to_jsonb(t)::text as line from ${ident(schema)}.${ident(t)} t order by t.filemaker_id collate "C"`,
        );
        async function* lines(): AsyncGenerator<Buffer> {
          for (;;) {
            const r = await c.query<{ line: string }>(`fetch 2000 from ${cursor}`);
            if (r.rows.length === 0) break;
            rows += r.rows.length;
            yield Buffer.from(r.rows.map((x) => `${x.line}\n`).join(''), 'utf8');
          }
          await c.query(`close ${cursor}`);
        }
        const gz = Readable.from(lines()).pipe(createGzip());
        const key = `${prefix}${t}.jsonl.gz`;
        const up = await uploadStream(s3, { bucket, key, body: gz, contentType: 'application/gzip' });
        objects[t] = { key, rows, size: up.size, sha256: up.sha256 };
      }
      return {
        runId,
        schemaVersion: info.schemaVersion,
        exportedAt: new Date().toISOString(),
        fingerprints: info.fingerprints,
        objects,
      } satisfies BackupManifest;
    },
    { isolation: 'repeatable read', readOnly: true },
  );
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: `${prefix}manifest.json`,
      Body: JSON.stringify(manifest, null, 2),
      ContentType: 'application/json',
    }),
  );
  opts.logger?.info({ runId, bucket, prefix, rows: sumRows(manifest.fingerprints) }, 'backup exported to S3');
  return manifest;
}

async function readManifest(s3: S3Client, bucket: string, runId: string): Promise<BackupManifest> {
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `${backupPrefix(runId)}manifest.json` }));
  const text = await r.Body!.transformToString('utf8');
  return JSON.parse(text) as BackupManifest;
}

/**
 * Loads `backups/{runId}/` from S3 into the run's backup schema (created fresh; `replace` drops an existing one),
 * verifying each object's SHA-256 and each table's fingerprint against the manifest, in one transaction. After it,
 * `restore(pool, runId)` works as if the snapshot had never left the database.
 */
export async function importBackupFromS3(
  pool: pg.Pool,
  s3: S3Client,
  bucket: string,
  runId: string,
  opts: { replace?: boolean; logger?: Logger } = {},
): Promise<Fingerprints> {
  const manifest = await readManifest(s3, bucket, runId);
  if (manifest.schemaVersion !== SCHEMA_VERSION) {
    throw new SchemaVersionError(
      `backup ${runId} was taken at schema ${manifest.schemaVersion}, not ${SCHEMA_VERSION}`,
    );
  }
  const schema = backupSchemaName(runId);
  const result = await withTransaction(pool, async (c) => {
    if (await schemaExists(c, schema)) {
      if (!opts.replace) throw new IntegrityError(`backup schema for run ${runId} already exists`);
      await c.query(`drop schema ${ident(schema)} cascade`);
    }
    await c.query(`create schema ${ident(schema)}`);
    for (const t of TARGET_TABLE_NAMES) {
      const obj = manifest.objects[t];
      await c.query(`create table ${ident(schema)}.${ident(t)} (like public.${ident(t)})`);
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: obj.key }));
      const hash = createHash('sha256');
      const raw = got.Body as Readable;
      const tap = new PassThrough();
      tap.on('data', (chunk: Buffer) => hash.update(chunk));
      raw.on('error', (err) => tap.destroy(err));
      const gunzip = createGunzip();
      tap.on('error', (err) => gunzip.destroy(err));
      const rl = createInterface({ input: raw.pipe(tap).pipe(gunzip), crlfDelay: Infinity });
      let batch: string[] = [];
      let rows = 0;
      const flush = async () => {
        if (batch.length === 0) return;
        await c.query(
          `insert into ${ident(schema)}.${ident(t)} select * from jsonb_populate_recordset(null::${ident(schema)}.${ident(t)}, $1::jsonb)`,
          [`[${batch.join(',')}]`],
        );
        rows += batch.length;
        batch = [];
      };
      for await (const line of rl) {
        if (line === '') continue;
        batch.push(line);
        if (batch.length >= 1000) await flush();
      }
      await flush();
      const sha256 = hash.digest('hex');
      if (sha256 !== obj.sha256 || rows !== obj.rows) {
        throw new IntegrityError(`backup object ${obj.key} does not match its manifest`);
      }
    }
    const fingerprints = await fingerprintAll(c, schema);
    for (const t of TARGET_TABLE_NAMES) {
      if (fingerprints[t].sha256 !== manifest.fingerprints[t].sha256) {
        throw new IntegrityError(`imported backup of ${t} does not match the exported fingerprint`);
      }
    }
    await c.query(
      `create table ${ident(schema)}.${INFO_TABLE} (run_id text not null, created_at timestamptz not null default now(),
         schema_version text not null, fingerprints jsonb not null)`,
    );
    await c.query(
      `insert into ${ident(schema)}.${INFO_TABLE} (run_id, schema_version, fingerprints) values ($1, $2, $3::jsonb)`,
      [runId, manifest.schemaVersion, JSON.stringify(fingerprints)],
    );
    return fingerprints;
  });
  opts.logger?.info({ runId, schema, rows: sumRows(result) }, 'backup imported from S3');
  return result;
}

/**
 * The delete phase: removes every imported row (those with a filemaker_id), children first, in one transaction.
 * S3 objects are never touched: they are keyed by FileMaker id and re-linked by the next import.
 */
export async function deleteImportedData(
  pool: pg.Pool,
  opts: { logger?: Logger } = {},
): Promise<Record<TargetTableName, number>> {
  const counts = await withTransaction(pool, async (c) => {
    const out = {} as Record<TargetTableName, number>;
    for (const t of [...TARGET_TABLE_NAMES].reverse()) {
      const r = await c.query(`delete from public.${ident(t)} where filemaker_id is not null`);
      out[t] = r.rowCount ?? 0;
    }
    return out;
  });
  opts.logger?.info({ counts }, 'imported data deleted');
  return counts;
}
