/**
 * Run bookkeeping for the activities: the run row, the transfer-quota ledger, the pre-run snapshot and its restore,
 * the delete phase, and folding contact details into their owners' JSON columns.
 */
import { DeleteObjectCommand, DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { heartbeat } from '@temporalio/activity';
import { foldContactDetails } from '../domain/mappers/patients';
import type { FmRecord } from '../domain/types';
import type { SourceTableName } from '../domain/tables';
import { IntegrityError } from '../errors';
import { backupSchemaName, INFO_TABLE } from '../store/backup';
import { TARGET_TABLE_NAMES, STORE_OWNED_COLUMNS } from '../store/schema';
import { cleanDocument } from '../store/sanitize';
import type { ActivityDeps } from './deps';
import type { BackupResult, Counts, RestoreResult, RunStatus } from './types';
import { transferUsedThisYear } from './transfer';

/** Tables a snapshot covers: every target table plus the kept contact details. Parents first. */
const SNAPSHOT_TABLES = [...TARGET_TABLE_NAMES, 'contact_details'] as const;
export const IMPORT_PREFIX = 'patients/filemaker-import/';

/**
 * The name backups were made under before `backupSchemaName`: distinct run ids could share it (`Run-A` and `run-a`,
 * long ids cut at the same place), and such backups record no run id. Only read, to restore those backups.
 */
function legacyBackupSchema(runId: string): string {
  return `backup_${runId.toLowerCase().replace(/[^a-z0-9]+/g, '_')}`.slice(0, 60);
}

export function runBookkeeping(deps: ActivityDeps) {
  const { pool, s3, config } = deps;
  const bucket = config.s3.bucket;

  async function fingerprint(qualified: string, table: string): Promise<{ rows: number; fingerprint: string }> {
    const cols = await pool.query<{ column_name: string }>(
      `select column_name from information_schema.columns where table_schema = 'public' and table_name = $1
        order by ordinal_position`,
      [table],
    );
    const list = cols.rows
      .map((c) => c.column_name)
      .filter((c) => !(STORE_OWNED_COLUMNS as readonly string[]).includes(c))
      .map((c) => `t.${quoteIdent(c)}`)
      .join(', ');
    const r = await pool.query<{ rows: number; fp: string | null }>(
      `select count(*)::int as rows,
              md5(coalesce(string_agg(md5(row(${list})::text), '' order by t.filemaker_id), '')) as fp
         from ${qualified} t`,
    );
    return { rows: r.rows[0]?.rows ?? 0, fingerprint: r.rows[0]?.fp ?? '' };
  }

  async function schemaExists(schema: string): Promise<boolean> {
    return (await pool.query('select 1 from pg_namespace where nspname = $1', [schema])).rowCount === 1;
  }

  /** The run id a backup schema records; undefined for a backup made before backups recorded one, or no schema. */
  async function recordedRunId(schema: string): Promise<string | undefined> {
    const info = `${quoteIdent(schema)}.${INFO_TABLE}`;
    const exists = await pool.query<{ t: string | null }>('select to_regclass($1)::text as t', [info]);
    if (!exists.rows[0]?.t) return undefined;
    return (await pool.query<{ run_id: string }>(`select run_id from ${info} limit 1`)).rows[0]?.run_id;
  }

  /**
   * The schema holding the run's backup: its own name, or else the legacy name when that one is provably the run's.
   * A legacy backup records no run id, and the last run to back up under a shared name replaced it: so it is taken
   * only when no run that started later shares the name, except runs whose own backup shows they did not write it.
   */
  async function backupSchemaOf(runId: string): Promise<string> {
    const own = backupSchemaName(runId);
    if (await schemaExists(own)) {
      const recorded = await recordedRunId(own);
      if (recorded !== runId) throw new IntegrityError(`backup ${own} belongs to another run, not ${runId}`);
      return own;
    }
    const legacy = legacyBackupSchema(runId);
    if (!(await schemaExists(legacy))) throw new IntegrityError(`no backup for run ${runId}`);
    const recorded = await recordedRunId(legacy);
    if (recorded === runId) return legacy;
    if (recorded !== undefined) throw new IntegrityError(`no backup for run ${runId}: ${legacy} is another run's`);
    const later = await pool.query<{ run_id: string }>(
      `select run_id from reimport_runs where run_id <> $1
          and started_at >= coalesce((select started_at from reimport_runs where run_id = $1), '-infinity')`,
      [runId],
    );
    for (const { run_id: other } of later.rows) {
      if (legacyBackupSchema(other) !== legacy) continue;
      if ((await recordedRunId(backupSchemaName(other))) === other) continue;
      throw new IntegrityError(`backup ${legacy} of run ${runId} may be a later run's: it is not restored`);
    }
    return legacy;
  }

  return {
    async startRun(runId: string, workflowId: string, options: unknown) {
      await pool.query(
        `insert into reimport_runs (run_id, workflow_id, options, status) values ($1, $2, $3, 'running')
         on conflict (run_id) do nothing`,
        [runId, workflowId, JSON.stringify(options ?? {})],
      );
    },

    async finishRun(runId: string, status: RunStatus, report: unknown): Promise<{ reportKey: string | undefined }> {
      const reportKey = `reports/${runId}.json`;
      await pool.query(
        `update reimport_runs set status = $2, finished_at = now(),
                summary = coalesce(summary, '{}'::jsonb) || $3::jsonb where run_id = $1`,
        [runId, status, JSON.stringify(report ?? {})],
      );
      await s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: reportKey,
          Body: JSON.stringify({ runId, status, report }, null, 2),
          ContentType: 'application/json',
        }),
      );
      return { reportKey };
    },

    /** Bytes downloaded from FileMaker this calendar year by all runs, plus what was used before fm-reimport. */
    async transferUsedThisYear(): Promise<number> {
      return (await transferUsedThisYear(pool)) + config.filemaker.transferUsedBytes;
    },

    async checkBucketWritable() {
      const key = `preflight/${Date.now()}-${Math.random().toString(36).slice(2)}`;
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'ok' }));
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    },

    /** Snapshots every table in one REPEATABLE READ transaction, and the S3 inventory under the import prefix. */
    async backup(runId: string): Promise<BackupResult> {
      const schema = quoteIdent(backupSchemaName(runId));
      const client = await pool.connect();
      const tables: BackupResult['tables'] = {};
      try {
        await client.query('begin isolation level repeatable read');
        await client.query(`drop schema if exists ${schema} cascade`);
        await client.query(`create schema ${schema}`);
        for (const t of SNAPSHOT_TABLES) {
          await client.query(`create table ${schema}.${t} as table public.${t}`);
        }
        await client.query(`create table ${schema}.${INFO_TABLE} (run_id text not null, created_at timestamptz not null
                              default now())`);
        await client.query(`insert into ${schema}.${INFO_TABLE} (run_id) values ($1)`, [runId]);
        await client.query('commit');
      } catch (err) {
        await client.query('rollback');
        throw err;
      } finally {
        client.release();
      }
      for (const t of SNAPSHOT_TABLES) tables[t] = await fingerprint(`${schema}.${t}`, t);
      let objectsBefore = 0;
      let token: string | undefined;
      do {
        const page = await s3.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: IMPORT_PREFIX, ContinuationToken: token }),
        );
        const objs = (page.Contents ?? []).map((o) => ({ key: o.Key!, size: o.Size ?? 0 }));
        if (objs.length) {
          await pool.query(
            `insert into s3_inventory (run_id, key, size) select $1, e.key, e.size
               from jsonb_to_recordset($2::jsonb) as e(key text, size bigint) on conflict do nothing`,
            [runId, JSON.stringify(objs)],
          );
        }
        objectsBefore += objs.length;
        heartbeat({ objectsBefore });
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return { tables, objectsBefore, backupKey: undefined };
    },

    /** Restores every table from the run's snapshot in one transaction and verifies the fingerprints. */
    async restore(runId: string): Promise<RestoreResult> {
      const schema = quoteIdent(await backupSchemaOf(runId));
      const client = await pool.connect();
      try {
        await client.query('begin');
        await client.query(`truncate ${SNAPSHOT_TABLES.map((t) => `public.${t}`).join(', ')}`);
        for (const t of SNAPSHOT_TABLES) await client.query(`insert into public.${t} select * from ${schema}.${t}`);
        await client.query('commit');
      } catch (err) {
        await client.query('rollback');
        throw err;
      } finally {
        client.release();
      }
      const tables: RestoreResult['tables'] = {};
      let verified = true;
      for (const t of SNAPSHOT_TABLES) {
        tables[t] = await fingerprint(`public.${t}`, t);
        const snap = await fingerprint(`${schema}.${t}`, t);
        if (snap.fingerprint !== tables[t].fingerprint) verified = false;
      }
      return { tables, verified };
    },

    /** Deletes the objects under the import prefix that did not exist before the run. */
    async deleteRunObjects(runId: string): Promise<{ deleted: number }> {
      const before = new Set(
        (await pool.query<{ key: string }>('select key from s3_inventory where run_id = $1', [runId])).rows.map(
          (r) => r.key,
        ),
      );
      let deleted = 0;
      let token: string | undefined;
      do {
        const page = await s3.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: IMPORT_PREFIX, ContinuationToken: token }),
        );
        const created = (page.Contents ?? []).map((o) => o.Key!).filter((k) => !before.has(k));
        if (created.length) {
          await s3.send(
            new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: created.map((Key) => ({ Key })) } }),
          );
          deleted += created.length;
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return { deleted };
    },

    /** The delete phase: imported rows only (a FileMaker id), children first, in one transaction. */
    async deleteImported(): Promise<Record<string, number>> {
      const client = await pool.connect();
      const out: Record<string, number> = {};
      try {
        await client.query('begin');
        for (const t of [...SNAPSHOT_TABLES].reverse()) {
          out[t] = (await client.query(`delete from public.${t} where filemaker_id is not null`)).rowCount ?? 0;
        }
        await client.query('commit');
      } catch (err) {
        await client.query('rollback');
        throw err;
      } finally {
        client.release();
      }
      return out;
    },

    /** After a table's last chunk: fold the kept contact details into the owners that table holds. */
    async foldContactDetails(table: SourceTableName): Promise<Counts> {
      const owner = ({ API_Contacts: 'patients', API_Referrer: 'referrers', API_Company: 'companies' } as const)[
        table as 'API_Contacts'
      ];
      const counts: Counts = { imported: 0, unlinked: 0, skipped: 0, failed: 0 };
      if (!owner) return counts;
      const rows = await pool.query<{ owner: string; field_data: FmRecord['fieldData'] }>(
        `select owner_filemaker_id as owner, field_data from contact_details where owner_table = $1
          order by owner_filemaker_id, filemaker_id`,
        [owner],
      );
      const byOwner = new Map<string, FmRecord[]>();
      for (const r of rows.rows) {
        const list = byOwner.get(r.owner) ?? [];
        list.push({ recordId: '0', modId: '0', fieldData: r.field_data });
        byOwner.set(r.owner, list);
      }
      const updates = [...byOwner].map(([id, details]) => {
        const f = foldContactDetails(details);
        const row = { filemaker_id: id, contact_json: f.contact_json, address_json: f.address_json };
        // Read back from jsonb, so always JSON; cleaned all the same, like every document that reaches PostgreSQL.
        const cleaned = cleanDocument(row, owner);
        if (!cleaned.ok) throw new Error(`folding contact details into ${owner}: ${cleaned.message}`);
        return cleaned.value;
      });
      if (updates.length) {
        const r = await pool.query(
          `update public.${owner} t set contact_json = u.contact_json, address_json = u.address_json
             from jsonb_to_recordset($1::jsonb) as u(filemaker_id text, contact_json jsonb, address_json jsonb)
            where t.filemaker_id = u.filemaker_id`,
          [JSON.stringify(updates)],
        );
        counts.imported = r.rowCount ?? 0;
      }
      return counts;
    },
  };
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
