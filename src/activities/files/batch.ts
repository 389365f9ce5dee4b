/**
 * The files phases (documents: API_Docs `Doc`; images: API_Images, the container waterfall): one batch of a table's
 * manifest per activity, on the files task queue. This module runs a batch; each step has its own module (./relink.ts,
 * ./download.ts, ./lease.ts, ./documents.ts, ./images.ts).
 *
 * Per file, in order:
 * 1. Already terminal in this run (a retried or resumed batch)? Counted from the ledger, not touched again.
 * 2. Recorded before (any run) at the record version the batch's find read (the ledger's modId is the record's), and
 *    its object is still in S3 with the recorded size and SHA-256 (a listing showing the size and the ETag recorded
 *    when they were confirmed, see confirmListed; else a HEAD)? Relinked: no FileMaker request, no quota
 *    (a server-side copy when the key moved). A record changed since (a replaced container) is read again below
 *    (counted as `replaced`) into a key of its own, marked with the record's modId (see downloadTarget): the object
 *    the tables referred to before the run is never overwritten, so a rollback leaves the restored row pointing at
 *    its intact object.
 * 3. Else the container is read — over OData by the record's ROWID in one request (default; an answer that cannot
 *    be the container is read again through the Data API), or over the Data API (when configured or when the
 *    pre-flight found `$value` unusable: the URL from the batch's find while it is fresh, else the record read
 *    again right before) — the size FileMaker announces is reserved against the transfer budget (drawn from the
 *    batch's lease, see openLease, so a file that fits is read as it arrives), and the bytes stream to S3 with their
 *    SHA-256 computed on the way (a file that fits one part is held whole for its PutObject, within a worker-wide
 *    budget). Content type from the bytes' signature when the response's is generic or contradicts it, else the
 *    response's; the key's extension follows it. A container that turns out to hold 0 bytes counts as empty
 *    (nothing stored; the image waterfall goes on). A broken download is retried a bounded number of times, then
 *    the image waterfall falls back to the next container, then the file ends `failed` DOWNLOAD_FAILED while the
 *    batch goes on.
 * 4. The row is upserted and the ledger state written at once (a crash loses at most the files in flight), in
 *    statements shared with the worker's other files in flight (group commit, ./writes.ts).
 * 5. Optional write-back of NexusExportDate, only now that the file is stored and recorded; the modId its PATCH
 *    returns becomes the ledger's record version when nothing else changed the record.
 *
 * Overload (502/503/812), the transfer budget, and FileMaker or S3 being unreachable end the batch with the error
 * (the workflow cools down, pauses or retries); what was done stays done. Heartbeats carry the ids finished so far.
 */
import { Context } from '@temporalio/activity';
import { normalizeFileMakerId } from '../../domain/ids';
import { documentContainerUrl, documentPatientRefs } from '../../domain/mappers/documents';
import { imageCandidates, imagePatientRefs } from '../../domain/mappers/images';
import { SOURCE_TABLES, type SourceTableName } from '../../domain/tables';
import type { FmRecord } from '../../domain/types';
import { FileMakerError, FileMakerOverloadedError, TransferQuotaError } from '../../errors';
import { FM_ERRORS, type FileMakerRecord } from '../../filemaker';
import { latestEntriesElsewhere, ledgerLookup, terminalEntries, type LedgerFile } from '../../store/ledger';
import { manifestSlice } from '../../store/manifest';
import type { ActivityDeps } from '../deps';
import { countLedger, emptyChunkResult, recordLedger, splitIdIssues, type LedgerEntry } from '../outcomes';
import { inParallel } from '../../parallel';
import { loadMapContext } from '../records';
import type { ChunkInput, ChunkResult } from '../types';
import { addFinding, reasonOf, type FileContext, type FileJob, type ListedPrior } from './context';
import { importDocument } from './documents';
import { importImage } from './images';
import { openLease, settleBatch } from './lease';
import { confirmListed, downloadTarget } from './relink';

export const FILE_TABLES: readonly SourceTableName[] = ['API_Docs', 'API_Images'];

/** Files of one batch processed at once. */
const FILES_IN_FLIGHT = 4;
/**
 * Relinks a listing confirmed, processed at once besides: they make no request to FileMaker or S3, only their rows
 * and ledger entries, which group commit writes in one statement for all those in flight (a batch of relinks holds
 * hundreds: the more at once, the fewer statements).
 */
const LISTED_IN_FLIGHT = 128;
const HEARTBEAT_EVERY_MS = 1000;

/** The FileMaker modId at which each id's container last failed for good in a completed earlier run. */
async function downloadFailuresBefore(deps: ActivityDeps, input: ChunkInput, ids: readonly string[]) {
  const latest = await latestEntriesElsewhere(deps.pool, input.table, ids, input.runId);
  return new Map(
    latest
      .filter((x) => x.state === 'failed' && x.reason_code === 'DOWNLOAD_FAILED')
      .map((x) => [x.filemaker_id, x.mod]),
  );
}

/** FileMaker's date format for NexusExportDate (MM/DD/YYYY, the clinic's files use US dates). */
function fileMakerDate(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getMonth() + 1)}/${p(d.getDate())}/${d.getFullYear()}`;
}

/**
 * Writes NexusExportDate back. The PATCH names the record version the batch's find read: when FileMaker accepts it,
 * the record changed by this write only, and the ledger takes the new modId as the version its object corresponds
 * to (the next run relinks it). When the record changed in between (306), the date is written all the same and the
 * ledger keeps the older version: the next run reads the container again.
 */
async function writeBack(fc: FileContext, record: FileMakerRecord, filemakerId: string): Promise<void> {
  if (!fc.input.writeBack) return;
  const layout = SOURCE_TABLES[fc.input.table].layout;
  const fields = { NexusExportDate: fileMakerDate(new Date()) };
  let modId: string | undefined;
  try {
    try {
      modId = await fc.deps.fm.patchRecord(layout, record.recordId, fields, record.modId);
    } catch (err) {
      if (!(err instanceof FileMakerError && err.code === FM_ERRORS.MODID_MISMATCH)) throw err;
      await fc.deps.fm.patchRecord(layout, record.recordId, fields);
    }
  } catch (err) {
    if (err instanceof FileMakerOverloadedError || err instanceof TransferQuotaError) throw err;
    addFinding(fc.result, 'WRITE_BACK_FAILED');
    fc.deps.logger.warn({ table: fc.input.table, filemakerId, reason: reasonOf(err) }, 'write-back failed');
  }
  if (modId !== undefined) {
    await fc.writes.writtenBack(fc.input.runId, fc.input.table, { filemakerId, from: record.modId, to: modId });
  }
}

interface Resume {
  done: string[];
}

/** A batch under way: its counts, the ids still to do, and the context its files share. */
export interface Batch {
  fc: FileContext;
  /** The ids of the records still to do; each names one record of the manifest. */
  todo: string[];
  /** Id → record id, of the records still to do. */
  recordIdOf: Map<string, string>;
  /** Record ids whose entry is terminal. */
  done: Set<string>;
}

/**
 * Step 1 for a batch: its manifest records, those an earlier attempt (or an earlier batch over the same records)
 * already finished — counted from the ledger, not touched again — the ledger entries of records whose id cannot key
 * a row, and the context for the rest. Undefined when nothing is left to do (`result` then holds the whole batch's
 * counts).
 */
export async function beginBatch(
  deps: ActivityDeps,
  input: ChunkInput,
  result: ChunkResult,
): Promise<Batch | undefined> {
  if (!FILE_TABLES.includes(input.table)) throw new Error(`${input.table} is not a files table`);
  const activity = Context.current();
  const slice = await manifestSlice(deps.pool, input.runId, input.table, input.offset, input.limit, input.work);
  if (slice.length === 0) return undefined;
  const resumed = activity.info.heartbeatDetails as Resume | undefined;
  const finished = await terminalEntries(
    deps.pool,
    input.runId,
    input.table,
    slice.map((e) => e.recordId),
  );
  const done = new Set<string>();
  countLedger(
    finished.map((r) => {
      done.add(r.record_id);
      return { filemakerId: r.filemaker_id, state: r.state, reasonCode: r.reason_code ?? undefined };
    }),
    result,
  );
  if (resumed?.done?.length) {
    deps.logger.info(
      { table: input.table, offset: input.offset, resumed: resumed.done.length, terminal: done.size },
      'batch resumed after a retry',
    );
  }
  const { failed, keyed } = splitIdIssues(input.table, slice);
  const unkeyed = failed.filter((e) => !done.has(e.recordId!));
  await recordLedger(deps.pool, input.runId, input.table, unkeyed, result);
  for (const e of unkeyed) done.add(e.recordId!);
  const rest = keyed.filter((k) => !done.has(k.recordId));
  result.processed = slice.length;
  if (rest.length === 0) return undefined;
  const todo = rest.map((k) => k.id);
  const recordIdOf = new Map(rest.map((k) => [k.id, k.recordId]));
  let lastBeat = 0;
  const fc: FileContext = {
    deps,
    input,
    result,
    bucket: deps.config.s3.bucket,
    signal: activity.cancellationSignal,
    budgetBytes: input.transferBudgetBytes ?? deps.config.filemaker.transferBudgetBytes,
    writes: deps.files.writes,
    settlements: [],
    beat: () => {
      // At most one a second: the server sees one every 24 s at most anyway (the SDK throttles to 80 % of the 30 s
      // timeout), and what a retry resumes from is the ledger; per file, encoding the details for the SDK was a
      // few percent of the worker's CPU.
      const now = Date.now();
      if (now - lastBeat < HEARTBEAT_EVERY_MS) return;
      lastBeat = now;
      activity.heartbeat({ done: [...done] } satisfies Resume);
    },
  };
  return { fc, todo, recordIdOf, done };
}

/** Writes a file's ledger entry and heartbeats: from here on a retry of the batch skips it. */
export async function settleFile(batch: Batch, entry: LedgerEntry): Promise<void> {
  const { fc } = batch;
  // Under the manifest record it stands for: the ledger write then needs no look-up by id.
  const recordId = entry.recordId ?? batch.recordIdOf.get(entry.filemakerId ?? '');
  if (entry.recorded) countLedger([entry], fc.result);
  else await fc.writes.ledger(fc.input.runId, fc.input.table, { ...entry, recordId }, fc.result);
  batch.done.add(recordId ?? '');
  fc.beat();
}

export async function importFileBatch(deps: ActivityDeps, input: ChunkInput): Promise<ChunkResult> {
  const result = emptyChunkResult();
  const batch = await beginBatch(deps, input, result);
  if (!batch) return result;
  const { fc, todo } = batch;
  const source = SOURCE_TABLES[input.table];
  const readAtMs = Date.now();
  const wanted = todo.map((id) => ({ recordId: batch.recordIdOf.get(id)!, id }));
  // What the ledger recorded, the objects a listing confirms of it, and the records: asked all at once.
  const [{ priors, listedPriors }, referenced, failedBefore, records] = await Promise.all([
    ledgerLookup(deps.pool, input.table, todo).then(async (p) => ({
      priors: p,
      listedPriors: await confirmListed(fc, p),
    })),
    ledgerLookup(deps.pool, input.table, todo, { completedOnly: true }),
    downloadFailuresBefore(deps, input, todo),
    deps.fm.recordsById(source.layout, source.idField, wanted, { signal: fc.signal }),
  ]);
  // A large batch of relinks spends its first seconds reading; the heartbeat says it is alive.
  fc.beat();
  // Each record under the id the manifest knows it by; one whose id was edited since is set aside (see below).
  const byId = new Map<string, FileMakerRecord>();
  const idChanged = new Set<string>();
  for (const { recordId, id } of wanted) {
    const r = records.get(recordId);
    if (!r) continue;
    if (normalizeFileMakerId(r.fieldData[source.idField])?.value === id) byId.set(id, r);
    else idChanged.add(id);
  }
  // Relink candidates: the objects recorded at the records' current version; those a listing confirms need no HEAD.
  const current = new Map<string, LedgerFile>();
  const listed = new Map<string, ListedPrior>();
  for (const [id, r] of byId) {
    const p = priors.get(id);
    if (p?.sourceModId !== r.modId) continue;
    current.set(id, p);
    const l = listedPriors.get(id);
    if (l) listed.set(id, l);
  }
  const patientRefs = input.table === 'API_Docs' ? documentPatientRefs : imagePatientRefs;
  const ctx = await loadMapContext(deps, input.runId, input.table, {
    patients: [...byId.values()].flatMap((r) => patientRefs(r as unknown as FmRecord)),
  });

  const importOne = async (id: string) => {
    const record = byId.get(id);
    let entry: LedgerEntry;
    const recordId = batch.recordIdOf.get(id)!;
    if (!record) {
      entry = {
        recordId,
        filemakerId: id,
        state: 'skipped',
        reasonCode: idChanged.has(id) ? 'SOURCE_ID_CHANGED' : 'SOURCE_DELETED',
        message: `${input.table} record ${recordId}`,
      };
    } else {
      // A container that broke on every attempt in a completed run, unchanged since, would only break again:
      // it stays failed with its reason instead of spending the quota once more.
      const broken = failedBefore.get(id) === record.modId ? failedBefore.get(id) : undefined;
      // An object stored at another version of the record may hold a container since replaced in FileMaker.
      const job: FileJob = {
        id,
        record,
        readAtMs,
        ctx,
        prior: current.get(id),
        listed: listed.get(id),
        ...downloadTarget(referenced.get(id), record.modId),
        brokenAtModId: broken,
      };
      entry = input.table === 'API_Docs' ? await importDocument(fc, job) : await importImage(fc, job);
    }
    await settleFile(batch, entry);
    if (record && (entry.state === 'imported' || entry.state === 'unlinked')) await writeBack(fc, record, id);
  };

  // A few files at a time, so FileMaker is not idle while a file is uploaded, thumbnailed and recorded (the
  // worker's FileMaker semaphore still caps the requests). The first error ends the batch once the files in
  // flight are settled: what is done stays done.
  let failed = true;
  try {
    // A batch of relinks a listing confirmed reads nothing from FileMaker (should one download after all, it reserves
    // its own size).
    if (listed.size < todo.length) await openLease(fc);
    // Two lanes, listed relinks and the rest; the first error in either starts no further file in both.
    let stopped = false;
    const lane = async (id: string) => {
      if (stopped) return;
      try {
        await importOne(id);
      } catch (err) {
        stopped = true;
        throw err;
      }
    };
    const lanes = await Promise.allSettled([
      inParallel(
        todo.filter((id) => listed.has(id)),
        LISTED_IN_FLIGHT,
        lane,
      ),
      inParallel(
        todo.filter((id) => !listed.has(id)),
        FILES_IN_FLIGHT,
        lane,
      ),
    ]);
    for (const l of lanes) if (l.status === 'rejected') throw l.reason;
    failed = false;
  } finally {
    await settleBatch(fc, failed);
  }
  return result;
}

/** Whether a record has a container to download (from the find alone); used by the dry run. */
export function hasContainer(table: SourceTableName, record: FmRecord): boolean {
  if (table === 'API_Docs') return documentContainerUrl(record) !== null;
  return imageCandidates(record).length > 0;
}
