/**
 * What crosses between workflows and activities: ids, counts, keys and hashes only — never file bytes or
 * patient data (the history is kept, and shown in the Web UI).
 */
import type { TableDelta } from '../domain/delta';
import type { TableFreeze } from '../domain/freeze';
import type { PhaseName, SourceTableName } from '../domain/tables';
import type { NotifyEvent } from '../notify/events';
import type { ExportLocation } from '../export/location';

export type LedgerState = 'imported' | 'unlinked' | 'skipped' | 'failed';

export interface Counts {
  imported: number;
  unlinked: number;
  skipped: number;
  failed: number;
}

export interface ChunkResult {
  /** Source records this chunk accounted for (every one gets a ledger state). */
  processed: number;
  byState: Counts;
  /** Reason code → count (skips, failures, unlinked, and findings on imported rows). */
  byReason: Record<string, number>;
  /** Up to a few failed FileMaker ids per reason, for the report (ids are not patient data). */
  failedIds: Record<string, string[]>;
  /** Container bytes downloaded from FileMaker (0 for core records and for relinked files). */
  bytesDownloaded: number;
  /** Files stored in S3 without downloading again (object already there with the recorded size and checksum). */
  relinked: number;
  /**
   * Files downloaded again because their record changed since the stored object was recorded (its modId differs):
   * a container whose bytes were replaced in FileMaker. The object is replaced.
   */
  replaced: number;
  /** Container downloads that failed on a first try and succeeded on a retry inside the activity. */
  retries: number;
}

/** A chunk's counts before any record: also what a phase adds its chunks up from (no imports, so workflows use it). */
export function emptyChunkResult(): ChunkResult {
  return {
    processed: 0,
    byState: { imported: 0, unlinked: 0, skipped: 0, failed: 0 },
    byReason: {},
    failedIds: {},
    bytesDownloaded: 0,
    relinked: 0,
    replaced: 0,
    retries: 0,
  };
}

export interface PreflightInput {
  runId: string;
  phases: PhaseName[];
  dryRun: boolean;
  /** The images phase reads the FileMaker Pro export: no image container is read, none is probed. */
  imagesFromExport?: boolean;
  /** FileMaker requests the activity may send at once: the run's concurrency (absent: the activity's own limit). */
  inFlight?: number;
}

export interface PreflightResult {
  schemaVersion: string;
  sourceCounts: Partial<Record<SourceTableName, number>>;
  /** Transfer quota left this licence year, in bytes, before this run. */
  transferLeftBytes: number;
  transferBudgetBytes: number;
  /** How the files phases read containers (see src/activities/container-probe.ts), and why. */
  containerPath: ContainerPath;
  /** A reason code: CONFIGURED, PROBED, NOT_PROBED, or why `$value` was found unusable. */
  containerPathReason: string;
}

/** OData's `$value` (one request per container) or the Data API (the record's container URL). */
export type ContainerPath = 'odata' | 'dataapi';

/** Stored objects HEADed against the ledger's size and SHA-256. */
export interface ObjectCheck {
  /** Objects the run recorded and checked. */
  checked: number;
  /** FileMaker ids whose object is missing or differs from the ledger (capped, sorted). */
  mismatches: string[];
  /** Objects HEADed for the check (the others were confirmed by a listing; see reconcileObjects). */
  headed: number;
}

export interface TableReconciliation {
  table: SourceTableName;
  manifest: number;
  imported: number;
  unlinked: number;
  skipped: number;
  failed: number;
  pending: number;
  /** Record ids (FileMaker's) of manifest records without a terminal ledger state (capped). */
  missing: string[];
  /** Files tables: stored objects of this run checked by HEAD against the ledger's size and SHA-256. */
  objectsChecked: number;
  /** FileMaker ids whose object is missing or differs (capped). */
  objectMismatches: string[];
  /** Of the objects checked, those HEADed (the others were listed with the size and ETag confirmed when stored). */
  objectsHeaded?: number;
  /**
   * Files tables: the transfer quota this run spent on the table, from `transfer_log` as the quota counts it — also
   * the bytes of attempts whose batch ended in an error or whose worker died, which no batch result reports.
   */
  bytesTransferred?: number;
  /**
   * Validation: FileMaker ids of records inserted in FileMaker after this run read the table (ROWID above the
   * manifest's highest), not imported by this run; the next run imports them. Capped; absent when unknown.
   */
  arrivals?: string[];
  /** An incremental run: of the manifest's records, those carried over unchanged (their state is an earlier run's). */
  carried?: number;
  /** Every manifest record terminal and every checked object as recorded. */
  ok: boolean;
}

export interface BackupResult {
  tables: Record<string, { rows: number; fingerprint: string }>;
  /** Objects under the import prefix before the run. */
  objectsBefore: number;
  backupKey: string | undefined;
}

export interface RestoreResult {
  tables: Record<string, { rows: number; fingerprint: string }>;
  /** True when every restored table's fingerprint equals the snapshot's. */
  verified: boolean;
}

export interface ChunkInput {
  runId: string;
  table: SourceTableName;
  /** Position in the run's manifest of the table (ordered by FileMaker record id), or in its work list (`work`). */
  offset: number;
  limit: number;
  /** An incremental run: positions in the table's work list, the records it reads again. */
  work?: boolean;
  writeBack: boolean;
  /** The annual FileMaker transfer budget in bytes (files phases): a download that would pass it is not started. */
  transferBudgetBytes?: number;
  /** Images phase: read the files from the FileMaker Pro bulk export instead of downloading containers. */
  exportSource?: ExportLocation;
  /** `dataapi` when the pre-flight found OData's `$value` unusable: every container is read through the Data API. */
  containerPath?: ContainerPath;
}

export interface DryRunTableResult {
  table: SourceTableName;
  manifest: number;
  byState: Counts;
  byReason: Record<string, number>;
  /** Ids (or `record <record id>` for a record without one) a run would fail for their id, by reason (capped). */
  failedIds: Record<string, string[]>;
  /** Bytes the files of this table would download (0 when already stored). */
  estimatedBytes: number;
}

export type RunStatus = 'running' | 'completed' | 'failed' | 'rolled_back' | 'cancelled';

/** A run event for the notifier: ids, names, counts and reason codes only (see src/notify/events.ts). */
export type RunEvent = NotifyEvent;

/** The activities the workflows call. `createActivities(deps)` in src/activities/index.ts implements it. */
export interface ReimportActivities {
  preflight(input: PreflightInput): Promise<PreflightResult>;
  startRun(input: { runId: string; workflowId: string; options: unknown }): Promise<void>;
  finishRun(input: { runId: string; status: RunStatus; report: unknown }): Promise<{ reportKey: string | undefined }>;
  backup(input: { runId: string }): Promise<BackupResult>;
  restore(input: { runId: string }): Promise<RestoreResult>;
  deleteRunObjects(input: { runId: string }): Promise<{ deleted: number }>;
  deleteImported(input: { runId: string }): Promise<Record<string, number>>;
  /** `sourceKeyField`: a field stored with each id as the manifest's source key (the export's `recid`). */
  vanishedCensus(input: { runId: string; tables: SourceTableName[]; inFlight?: number }): Promise<VanishedCount[]>;
  /**
   * An incremental run's manifests of `tables`, read before anything is deleted, with their deltas; the vanished
   * counts the gate needs (no census of its own). `sourceKeyFields`: a table's manifest source key field.
   */
  readManifests(input: {
    runId: string;
    tables: SourceTableName[];
    sourceKeyFields?: Partial<Record<SourceTableName, string>>;
    inFlight?: number;
  }): Promise<VanishedCount[]>;
  buildManifest(input: {
    runId: string;
    table: SourceTableName;
    sourceKeyField?: string;
    /** An incremental run: unchanged records are carried over, and `count` is the work list's length. */
    incremental?: boolean;
    inFlight?: number;
  }): Promise<{
    count: number;
    delta?: TableDelta;
    carried?: Counts;
    /**
     * A files table: of the `count` records, those an earlier run settled at the version read (a file stored, or
     * none to download); see relinkableCount.
     */
    relinkable?: number;
  }>;
  importChunk(input: ChunkInput): Promise<ChunkResult>;
  importFiles(input: ChunkInput): Promise<ChunkResult>;
  finishTable(input: { runId: string; table: SourceTableName }): Promise<Counts>;
  /**
   * `finish`: finishTable's work first, in the same activity (one activity per table less); `sweep` (an incremental
   * run) before it: the rows no landed record of the run accounts for are deleted.
   */
  reconcileTable(input: {
    runId: string;
    table: SourceTableName;
    finish?: boolean;
    sweep?: boolean;
  }): Promise<TableReconciliation>;
  dryRunTable(input: { runId: string; table: SourceTableName }): Promise<DryRunTableResult>;
  validate(input: { runId: string; tables: SourceTableName[]; inFlight?: number }): Promise<ValidationResult>;
  notify(event: RunEvent): Promise<void>;
}

export interface ValidationResult {
  tables: TableReconciliation[];
  /** Imported files whose object HEAD did not confirm the recorded size and checksum. */
  objectMismatches: string[];
  ok: boolean;
}

/** Of the records a table had in the previous completed run, how many FileMaker no longer has (before the delete). */
export interface VanishedCount {
  table: SourceTableName;
  previousRunId: string;
  /** Records the previous run listed. */
  previous: number;
  vanished: number;
}

/** The cut-over's activities (src/activities/cutover.ts); `createActivities(deps)` implements them too. */
export interface CutoverActivities {
  /** Reads every record id and record version of `tables` and stores them under the cut-over; records per table. */
  freezeSnapshot(input: {
    cutoverId: string;
    tables: SourceTableName[];
  }): Promise<{ table: SourceTableName; records: number }[]>;
  /** Reads `tables` again and compares them with the first read, record versions included. */
  freezeCheck(input: { cutoverId: string; tables: SourceTableName[] }): Promise<TableFreeze[]>;
  /** The run's reconciliation certificate (`sample` patients compared) written beside its report in S3. */
  writeCertificate(input: {
    runId: string;
    sample: number;
  }): Promise<{ certificateKey: string; ledgerDigest: string; ledgerRows: number }>;
}
