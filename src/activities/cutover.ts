/**
 * The cut-over's activities: reading every source table's record ids and record versions (OData ROWID/ROWMODID, as
 * the manifest pages them) to prove the source frozen, and writing the final run's reconciliation certificate to S3
 * beside its report. What a read sees stays here and in PostgreSQL (src/store/cutover.ts): only counts and the record
 * ids that moved go back to the workflow.
 */
import { createHash } from 'node:crypto';
import { heartbeat } from '@temporalio/activity';
import { buildCertificate, renderCertificate } from '../certificate';
import { compareVersions, type RecordVersion, type TableFreeze } from '../domain/freeze';
import { byRecordId } from '../domain/manifest';
import { SOURCE_TABLES, type SourceTableName } from '../domain/tables';
import { ManifestError } from '../errors';
import { putObject } from '../s3';
import { freezeReadDigest, freezeReadVersions, writeFreezeRead } from '../store/cutover';
import type { ActivityDeps } from './deps';
import type { CutoverActivities } from './types';

/** Every record of `table` as FileMaker lists it now: record id and version, in record id order, and their digest. */
async function readVersions(
  deps: Pick<ActivityDeps, 'fm'>,
  table: SourceTableName,
): Promise<{ versions: RecordVersion[]; digest: string }> {
  const source = SOURCE_TABLES[table];
  const versions: RecordVersion[] = [];
  let unversioned = 0;
  for await (const e of deps.fm.manifest(source.odataTable, { idField: source.idField })) {
    // Without a record version an edit is invisible: such a read cannot prove the file frozen.
    if (e.rowId === undefined || e.rowModId === undefined) unversioned++;
    else versions.push({ recordId: e.rowId, modId: String(e.rowModId) });
    if ((versions.length + unversioned) % 2000 === 0) heartbeat({ table, records: versions.length + unversioned });
  }
  if (unversioned > 0) {
    throw new ManifestError(`${table}: ${unversioned} records without a record id and version (ROWID/ROWMODID)`);
  }
  versions.sort((a, b) => byRecordId(a.recordId, b.recordId));
  const hash = createHash('sha256');
  for (const v of versions) hash.update(`${v.recordId}\t${v.modId}\n`);
  return { versions, digest: hash.digest('hex') };
}

/** The first read of a cut-over: stored under its id; the records per table. */
export async function freezeSnapshot(
  deps: ActivityDeps,
  { cutoverId, tables }: Parameters<CutoverActivities['freezeSnapshot']>[0],
): Promise<{ table: SourceTableName; records: number }[]> {
  const out: { table: SourceTableName; records: number }[] = [];
  for (const table of tables) {
    const { versions, digest } = await readVersions(deps, table);
    await writeFreezeRead(deps.pool, cutoverId, table, versions, digest);
    heartbeat({ table, records: versions.length });
    out.push({ table, records: versions.length });
  }
  return out;
}

/** A later read, compared with the first including record versions: per table the counts and the ids that moved. */
export async function freezeCheck(
  deps: ActivityDeps,
  { cutoverId, tables }: Parameters<CutoverActivities['freezeCheck']>[0],
): Promise<TableFreeze[]> {
  const out: TableFreeze[] = [];
  for (const table of tables) {
    const { versions, digest } = await readVersions(deps, table);
    const first = await freezeReadDigest(deps.pool, cutoverId, table);
    if (first === undefined) throw new Error(`cut-over ${cutoverId} has no first read of ${table}`);
    // The same digest is the same ids with the same versions: the records need not be compared one by one.
    out.push(
      first === digest
        ? compareVersions(table, new Map(versions.map((v) => [v.recordId, v.modId])), versions)
        : compareVersions(table, await freezeReadVersions(deps.pool, cutoverId, table), versions),
    );
    heartbeat({ table, records: versions.length });
  }
  return out;
}

/** S3 key of a run's certificate: beside its report (`reports/<run>.json`, see finishRun). */
export const certificateKey = (runId: string) => `reports/${runId}.certificate.html`;

/**
 * Writes the run's reconciliation certificate (src/certificate.ts, the page `client certificate` writes) to
 * the reports location. It holds patient data: it goes to the bucket only, never to a log or the workflow.
 */
export async function writeRunCertificate(
  deps: ActivityDeps,
  { runId, sample }: Parameters<CutoverActivities['writeCertificate']>[0],
): Promise<{ certificateKey: string; ledgerDigest: string; ledgerRows: number }> {
  const { pool, fm, s3, config } = deps;
  const certificate = await buildCertificate({ pool, fm, runId, sample, timeZone: config.clinicTimeZone });
  const key = certificateKey(runId);
  await putObject(s3, config.s3.bucket, key, renderCertificate(certificate), 'text/html; charset=utf-8');
  return { certificateKey: key, ledgerDigest: certificate.facts.digest, ledgerRows: certificate.facts.ledgerRows };
}
