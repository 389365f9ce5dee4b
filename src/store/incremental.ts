/**
 * Incremental runs: re-read only what changed since the last completed run, and leave the database as a full run
 * would have left it.
 *
 * - `incrementalBase`: the completed run an incremental run builds on, or why it cannot start.
 * - `planIncremental`: after a table's manifest, the records whose rows stay as they are get the base run's ledger
 *   entries, carried over (`carried_from`); every other record gets a place in the run's work list (`work_pos`), which
 *   the chunks read instead of the whole manifest.
 * - `sweepTable`: after a table's last chunk, the rows no record of the run accounts for any more (vanished records,
 *   ids that changed, records that now fail) are deleted, with the rows that link to them, which the later tables of
 *   the run then import again.
 *
 * A record is carried over only when nothing a full run would read for it has changed: its version (ROWMODID) is the
 * one its rows were imported from, its id is the same and keys a row, it has a row exactly when its entry wrote one,
 * it landed or ended for a reason only the record itself can change (an empty container, an empty link field) or for
 * a link not found in a table that gained no row, and nothing it reads of what it links to changed in this run: the
 * existence and clinic of its patient, the existence of its referrer or company, the clinics it may find by name,
 * the contact details folded into it. Everything else is read again from FileMaker, exactly as a full run reads it.
 */
import { IncrementalRefusedError } from '../errors';
import { SOURCE_TABLES, type SourceTableName, type TargetTable } from '../domain/tables';
import type { FmRecord } from '../domain/types';
import { backupSchemaOf, fingerprint } from './backup';
import { withTransaction, type Pool, type PoolClient } from './db';
import { previousRun } from './delta';
import { ident } from './schema';

type Queryable = Pool | PoolClient;

/** The table a source table's records are rows of (contact details are kept on their own before they are folded). */
export function rowsTableOf(table: SourceTableName): TargetTable | 'contact_details' {
  if (table === 'API_Contact_Details') return 'contact_details';
  const { targets } = SOURCE_TABLES[table];
  return targets[targets.length - 1]!;
}

/** How a target row refers to another: `column` holds the `id` of a row of `parent`. */
interface Link {
  column: string;
  parent: TargetTable;
}

/** Every link between target rows (the foreign keys, and documents' generic owner link to a patient). */
const LINKS: Partial<Record<TargetTable, readonly Link[]>> = {
  patients: [{ column: 'clinic_id', parent: 'clinics' }],
  appointments: [
    { column: 'patient_id', parent: 'patients' },
    { column: 'clinic_id', parent: 'clinics' },
  ],
  notes: [{ column: 'patient_id', parent: 'patients' }],
  sms_messages: [{ column: 'patient_id', parent: 'patients' }],
  patient_referrers: [
    { column: 'patient_id', parent: 'patients' },
    { column: 'referrer_id', parent: 'referrers' },
  ],
  referrer_companies: [
    { column: 'referrer_id', parent: 'referrers' },
    { column: 'company_id', parent: 'companies' },
  ],
  documents: [{ column: 'object_id', parent: 'patients' }],
  image_batches: [{ column: 'patient_id', parent: 'patients' }],
  images: [{ column: 'batch_id', parent: 'image_batches' }],
};

/**
 * Reasons a record did not simply land for that only the record itself can change: such a record, unchanged, ends the
 * same way again. (A missing link, a failed download or a refused row may not: those records are read again.)
 */
const RECORD_ONLY_REASONS = [
  'NO_PATIENT',
  'EMPTY_NOTE',
  'EMPTY_MESSAGE',
  'EMPTY_CONTAINER',
  'NOT_FOUND_IMAGE',
  'EMPTY_CONTACT_DETAIL',
  'NO_OWNER',
];

/** Reasons for a link that was not found, and the table it was looked for in. */
const MISSED_LINK: Record<string, TargetTable> = {
  PATIENT_NOT_FOUND: 'patients',
  MISSING_PATIENT: 'patients',
  MISSING_REFERRER: 'referrers',
  MISSING_COMPANY: 'companies',
  CLINIC_NOT_FOUND: 'clinics',
};

/** Whether ledger entry `l` wrote its record's row (a landed record, or one kept with its metadata only). */
const WROTE_ROW = (l: string) => `(${l}.target_id is not null or ${l}.state in ('imported', 'unlinked'))`;

/** Source tables whose mapping looks clinics up by name as well as by id: any change to the clinics re-reads them. */
const FINDS_CLINICS_BY_NAME: readonly SourceTableName[] = ['API_Contacts', 'API_event', 'API_Contact_Details'];

/** Owner tables whose rows hold their contact details, folded. */
const CONTACT_OWNERS: Partial<Record<SourceTableName, 'patients' | 'referrers' | 'companies'>> = {
  API_Contacts: 'patients',
  API_Referrer: 'referrers',
  API_Company: 'companies',
};

/**
 * The completed run an incremental run `runId` builds on: the last one that started before it. Refused
 * (IncrementalRefusedError) when there is none, when the schema changed since, or when a later run failed without a
 * complete rollback (what the tables hold is then unknown).
 */
export async function incrementalBase(db: Queryable, runId: string): Promise<string> {
  const since = `coalesce((select started_at from reimport_runs where run_id = $1), now())`;
  const base = await db.query<{ run_id: string; schema_version: string | null; current: string | null }>(
    `select run_id, schema_version, (select version from schema_info) as current from reimport_runs
      where run_id <> $1 and status = 'completed' and started_at < ${since}
      order by started_at desc limit 1`,
    [runId],
  );
  const b = base.rows[0];
  if (!b) throw new IncrementalRefusedError('no completed run to build on: run a full reimport first');
  if (b.schema_version === null || b.schema_version !== b.current) {
    throw new IncrementalRefusedError(
      `the schema changed since run ${b.run_id} (${b.schema_version ?? 'unknown'} → ${b.current ?? 'unknown'}): run a full reimport`,
    );
  }
  const failed = await db.query<{ run_id: string }>(
    `select run_id from reimport_runs
      where run_id <> $1 and status = 'failed' and started_at > (select started_at from reimport_runs where run_id = $2)
        and started_at < ${since}
      order by started_at limit 1`,
    [runId, b.run_id],
  );
  const f = failed.rows[0];
  if (f) {
    throw new IncrementalRefusedError(
      `run ${f.run_id} failed after run ${b.run_id} without a complete rollback: run a full reimport`,
    );
  }
  return b.run_id;
}

/**
 * What a record's mapping reads of the rows it links to, besides their existence (the map context's lookups, see
 * src/activities/records.ts): a patient's clinic (an appointment falls back to it). The rest of a linked row (a
 * patient's name, its folded contact details) is never read by the records that link to it.
 */
const READ_THROUGH_LINKS: Partial<Record<TargetTable, readonly string[]>> = { patients: ['clinic_id'] };

/**
 * The ids of `target`'s rows this run wrote new, or with another value than the backup's in a column that records
 * linking to them read (READ_THROUGH_LINKS), as SQL over `$1` (the run) and the backup schema `schema`. Image batches:
 * those of such a patient.
 */
function changedIds(target: TargetTable, schema: string): string {
  if (target === 'image_batches') {
    return `select b.id from image_batches b where b.patient_id in (${changedIds('patients', schema)})`;
  }
  const same = (READ_THROUGH_LINKS[target] ?? []).map((c) => ` and b.${ident(c)} is not distinct from p.${ident(c)}`);
  return `select p.id from ${ident(target)} p
           where p.import_run_id = $1
             and not exists (select 1 from ${ident(schema)}.${ident(target)} b where b.id = p.id${same.join('')})`;
}

/** SQL over `$1`: whether this run wrote a row of `target` that the backup does not have. */
function gainedRows(target: TargetTable, schema: string): string {
  return `exists (select 1 from ${ident(target)} p where p.import_run_id = $1
                   and not exists (select 1 from ${ident(schema)}.${ident(target)} b where b.id = p.id))`;
}

/**
 * The owners (`owner_filemaker_id`) of `owner` whose kept contact details differ from those in the run's backup: their
 * folded rows would differ. SQL over the backup schema `schema` and `$1`.
 */
function ownersWithOtherDetails(schema: string, owner: string): string {
  const side = (from: string) =>
    `select owner_filemaker_id as owner,
            md5(string_agg(filemaker_id || ' ' || entry::text || ' ' || field_data::text, ',' order by filemaker_id))
              as h
       from ${from} where owner_table = '${owner}' group by owner_filemaker_id`;
  return `select coalesce(a.owner, b.owner) from (${side('public.contact_details')}) a
            full join (${side(`${ident(schema)}.contact_details`)}) b on a.owner = b.owner
           where a.h is distinct from b.h`;
}

/** Whether the run changed `target`'s rows at all (any row differs from its backup, or was added or deleted). */
async function tableChanged(c: PoolClient, schema: string, target: TargetTable): Promise<boolean> {
  const now = await fingerprint(c, target);
  return now.fingerprint !== (await fingerprint(c, `${schema}.${target}`)).fingerprint;
}

export interface IncrementalPlan {
  /** The run whose entries were carried over. */
  baseRunId: string;
  /** Records to read from FileMaker: positions 0…work-1 of the work list. */
  work: number;
  /** Records carried over, by their (carried) state: a skipped one ended for a reason only the record can change. */
  carried: { imported: number; unlinked: number; skipped: number; failed: number };
}

/**
 * Plans an incremental run's `table` once its manifest is written: carries the entries of the records whose rows
 * stay (see the module's note) and numbers the others in record id order. A retried plan replaces its carried entries.
 */
export async function planIncremental(
  pool: Pool,
  runId: string,
  table: SourceTableName,
  patientRefs?: (record: FmRecord) => string[],
): Promise<IncrementalPlan> {
  return withTransaction(pool, async (c) => {
    // The run's manifest and ledger rows were written moments ago: the planner's statistics do not know them, estimate
    // one row, and chose nested loops that compared every manifest record with every ledger entry (85 s for 1,070
    // contact details). Hash joins cost one pass over each side, whatever the statistics say.
    await c.query('set local enable_nestloop = off');
    const baseRunId = await previousRun(c, runId, table);
    if (baseRunId === undefined) {
      throw new IncrementalRefusedError(`${table} was never read by a completed run: run a full reimport`);
    }
    const schema = await backupSchemaOf(c, runId);
    const rows = rowsTableOf(table);
    // The record has a row exactly when its entry says it wrote one (a skipped document keeps its metadata row).
    const conditions: string[] = [
      `exists (select 1 from ${ident(rows)} t where t.filemaker_id = cur.filemaker_id) = ${WROTE_ROW('p')}`,
    ];
    for (const link of rows === 'contact_details' ? [] : (LINKS[rows] ?? [])) {
      conditions.push(
        `not exists (select 1 from ${ident(rows)} t where t.filemaker_id = cur.filemaker_id
                       and t.${ident(link.column)} in (${changedIds(link.parent, schema)}))`,
      );
    }
    // A record that missed a link ends the same way unless the table it looked in gained a row.
    // A contact detail looks for its owner in the run's manifests of the owner tables: compared with the base run's.
    const ownersGained = `exists (select 1 from source_manifest o where o.run_id = $1 and o.id_issue is null
        and o.source_table in ('API_Contacts', 'API_Referrer', 'API_Company')
        and not exists (select 1 from source_manifest q where q.run_id = $2 and q.source_table = o.source_table
                          and q.filemaker_id = o.filemaker_id and q.id_issue is null))`;
    const missed = await c.query<{ reason: string }>(
      `select reason from (values ${Object.entries(MISSED_LINK)
        .map(([reason, parent]) => `('${reason}', ${gainedRows(parent, schema)})`)
        .join(', ')}, ('OWNER_NOT_FOUND', ${ownersGained})) as g(reason, gained) where not gained`,
      [runId, baseRunId],
    );
    const carriable = [...RECORD_ONLY_REASONS, ...missed.rows.map((r) => r.reason)];
    const orphans =
      patientRefs && !carriable.includes('PATIENT_NOT_FOUND')
        ? await orphansStillOrphans(c, { runId, baseRunId, table, rows, schema, patientRefs })
        : [];
    const owner = CONTACT_OWNERS[table];
    if (owner) conditions.push(`cur.filemaker_id not in (${ownersWithOtherDetails(schema, owner)})`);
    if (table === 'API_Contact_Details') {
      // A detail's owner must still be one the run imports (its mapping checks the run's owner manifests).
      conditions.push(`not exists (select 1 from contact_details t where t.filemaker_id = cur.filemaker_id
                         and not exists (select 1 from source_manifest o where o.run_id = $1
                           and o.source_table = case t.owner_table when 'patients' then 'API_Contacts'
                                                when 'referrers' then 'API_Referrer' else 'API_Company' end
                           and o.filemaker_id = t.owner_filemaker_id and o.id_issue is null))`);
    }
    const clinicsChanged = FINDS_CLINICS_BY_NAME.includes(table) && (await tableChanged(c, schema, 'clinics'));
    if (clinicsChanged) conditions.push('false');

    await c.query('delete from import_ledger where run_id = $1 and source_table = $2 and carried_from is not null', [
      runId,
      table,
    ]);
    // Both manifests must key records alike (by record id): a run whose server listed no record ids carries nothing.
    await c.query(
      `insert into import_ledger (run_id, source_table, record_id, filemaker_id, state, reason_code, message,
                                  target_table, target_id, s3_key, bytes, sha256, object_etag, source_mod_id,
                                  carried_from)
       select $1, $2, cur.record_id, cur.filemaker_id, p.state, p.reason_code, p.message, p.target_table, p.target_id,
              p.s3_key, p.bytes, p.sha256, p.object_etag, coalesce(p.source_mod_id, pm.mod_id),
              coalesce(p.carried_from, p.run_id)
         from source_manifest cur
         join source_manifest pm on pm.run_id = $3 and pm.source_table = $2 and pm.record_id = cur.record_id
         join import_ledger p on p.run_id = $3 and p.source_table = $2 and p.record_id = cur.record_id
        where cur.run_id = $1 and cur.source_table = $2 and cur.id_issue is null and pm.id_issue is null
          and cur.record_id !~ '^(id|blank):' and cur.mod_id is not null
          and cur.mod_id = coalesce(p.source_mod_id, pm.mod_id) and cur.filemaker_id = pm.filemaker_id
          and (p.state = 'imported' or p.reason_code = any($4::text[]) or p.record_id = any($5::text[]))
          and ${conditions.join('\n          and ')}
       on conflict (run_id, source_table, record_id) do nothing`,
      [runId, table, baseRunId, carriable, orphans],
    );
    // Only a retried plan finds positions set: rewriting every manifest row to clear them cost up to 0.3 s a table.
    await c.query(
      'update source_manifest set work_pos = null where run_id = $1 and source_table = $2 and work_pos is not null',
      [runId, table],
    );
    const work = await c.query(
      `update source_manifest m set work_pos = w.pos
         from (select record_id, (row_number() over (order by length(record_id), record_id) - 1)::int as pos
                 from source_manifest s
                where s.run_id = $1 and s.source_table = $2
                  and not exists (select 1 from import_ledger l where l.run_id = $1 and l.source_table = $2
                                    and l.record_id = s.record_id and l.carried_from is not null)) w
        where m.run_id = $1 and m.source_table = $2 and m.record_id = w.record_id`,
      [runId, table],
    );
    const carried = await c.query<IncrementalPlan['carried']>(
      `select count(*) filter (where state = 'imported')::int as imported,
              count(*) filter (where state = 'unlinked')::int as unlinked,
              count(*) filter (where state = 'skipped')::int as skipped,
              count(*) filter (where state = 'failed')::int as failed
         from import_ledger where run_id = $1 and source_table = $2 and carried_from is not null`,
      [runId, table],
    );
    return { baseRunId, work: work.rowCount ?? 0, carried: carried.rows[0]! };
  });
}

/**
 * The patients table gained rows in this run: of the records the base run left unlinked for a patient not found, those
 * whose patient is still not there (their row's metadata names the patient; none names a gained one). The others are
 * read again, and link now.
 */
async function orphansStillOrphans(
  c: PoolClient,
  o: {
    runId: string;
    baseRunId: string;
    table: SourceTableName;
    rows: string;
    schema: string;
    patientRefs: (record: FmRecord) => string[];
  },
): Promise<string[]> {
  const gained = await c.query<{ id: string }>(
    `select p.filemaker_id as id from patients p where p.import_run_id = $1
        and not exists (select 1 from ${ident(o.schema)}.patients b where b.id = p.id)`,
    [o.runId],
  );
  const found = new Set(gained.rows.map((r) => r.id));
  const orphans = await c.query<{ record_id: string; fields: FmRecord['fieldData'] }>(
    `select l.record_id, t.filemaker_metadata as fields from import_ledger l
       join ${ident(o.rows)} t on t.filemaker_id = l.filemaker_id
      where l.run_id = $1 and l.source_table = $2 and l.state = 'unlinked' and l.reason_code = 'PATIENT_NOT_FOUND'`,
    [o.baseRunId, o.table],
  );
  return orphans.rows
    .filter(
      (r) => !o.patientRefs({ recordId: r.record_id, modId: '', fieldData: r.fields }).some((id) => found.has(id)),
    )
    .map((r) => r.record_id);
}

/** Deletes the rows of `target` whose ids `idsSql` selects, and first every row linking to them; how many went. */
async function deleteWithDependents(
  c: PoolClient,
  target: TargetTable,
  idsSql: string,
  params: unknown[] = [],
): Promise<number> {
  const temp = `sweep_${target}`;
  await c.query(`create temp table ${temp} on commit drop as ${idsSql}`, params);
  let deleted = 0;
  for (const [child, links] of Object.entries(LINKS) as [TargetTable, readonly Link[]][]) {
    for (const link of links.filter((l) => l.parent === target)) {
      const linking = `select id from ${ident(child)} where ${ident(link.column)} in (select id from ${temp})`;
      deleted += await deleteWithDependents(c, child, linking);
    }
  }
  const r = await c.query(`delete from ${ident(target)} where id in (select id from ${temp})`);
  await c.query(`drop table ${temp}`);
  return deleted + (r.rowCount ?? 0);
}

/**
 * After an incremental run's last chunk of `table`: deletes the imported rows that no landed entry of the run accounts
 * for (and the rows that link to them, which later tables import again), and image batches left without images that
 * the run did not write. One transaction; returns how many rows went.
 */
export async function sweepTable(pool: Pool, runId: string, table: SourceTableName): Promise<number> {
  return withTransaction(pool, async (c) => {
    await c.query('set local enable_nestloop = off'); // as in planIncremental: fresh rows, no statistics
    const rows = rowsTableOf(table);
    const unaccounted = `select t.id from ${ident(rows)} t
      where t.filemaker_id is not null and not exists (
        select 1 from import_ledger l where l.run_id = $1 and l.source_table = $2
           and l.filemaker_id = t.filemaker_id and ${WROTE_ROW('l')})`;
    if (rows === 'contact_details') {
      const r = await c.query(`delete from contact_details where id in (${unaccounted})`, [runId, table]);
      return r.rowCount ?? 0;
    }
    let deleted = await deleteWithDependents(c, rows, unaccounted, [runId, table]);
    if (rows === 'images') {
      const r = await c.query(
        `delete from image_batches b where b.filemaker_id is not null and b.import_run_id is distinct from $1
            and not exists (select 1 from images i where i.batch_id = b.id)`,
        [runId],
      );
      deleted += r.rowCount ?? 0;
    }
    return deleted;
  });
}

/** How many of the run's entries of `table` were carried over unchanged. */
export async function carriedCount(pool: Pool, runId: string, table: SourceTableName): Promise<number> {
  const r = await pool.query<{ n: number }>(
    `select count(*)::int as n from import_ledger where run_id = $1 and source_table = $2 and carried_from is not null`,
    [runId, table],
  );
  return r.rows[0]?.n ?? 0;
}
