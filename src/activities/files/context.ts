/**
 * What the files phases' modules share: a batch's context (FileContext), a stored file (StoredFile), one record's
 * job (FileJob), and the rules that decide whether an error fails one file or ends the batch.
 */
import { FileMakerError, FileMakerOverloadedError, IntegrityError, TransferQuotaError } from '../../errors';
import type { ContentTypeSource } from '../../domain/keys';
import type { MapContext } from '../../domain/types';
import { FM_ERRORS, type FileMakerRecord } from '../../filemaker';
import type { Release } from '../../s3/buffer-budget';
import type { UploadStreamResult } from '../../s3/upload';
import type { LedgerFile } from '../../store/ledger';
import type { ActivityDeps } from '../deps';
import type { ChunkInput, ChunkResult } from '../types';
import type { TransferLease } from './lease';
import type { FileWrites, Settlement } from './writes';

/** Errors that are about FileMaker or S3 as a whole, not about one file: they end the batch. */
export function endsBatch(err: unknown): boolean {
  if (err instanceof FileMakerOverloadedError || err instanceof TransferQuotaError) return true;
  if (err instanceof FileMakerError) {
    return (
      err.code === FM_ERRORS.AUTH_FAILED ||
      err.code === FM_ERRORS.SESSION_INVALID ||
      err.code === FM_ERRORS.UNREACHABLE ||
      err.code === FM_ERRORS.TIMEOUT ||
      err.code === FM_ERRORS.TLS ||
      err.code === FM_ERRORS.FILE_UNAVAILABLE ||
      err.code === FM_ERRORS.LAYOUT_MISSING ||
      err.code === FM_ERRORS.FIELD_MISSING
    );
  }
  // Our own integrity checks fail one file; anything else (S3 down, PostgreSQL gone) is not the file's fault.
  return !(err instanceof IntegrityError);
}

/** A container that failed in an earlier completed run and whose record has not changed since (same modId). */
export class KnownBroken extends IntegrityError {
  constructor(modId: string) {
    super(`failed in an earlier run at record version ${modId}, unchanged since: not downloaded again`);
  }
}

export function reasonOf(err: unknown): string {
  if (err instanceof KnownBroken) return err.message;
  if (err instanceof FileMakerError || err instanceof IntegrityError) return err.code;
  return err instanceof Error ? err.name : 'unknown';
}

export interface StoredFile {
  key: string;
  size: number;
  sha256: string;
  contentType: string;
  filename: string | null;
  /** Bytes received from FileMaker for this file (0 when relinked). */
  downloaded: number;
  /** The object's ETag when its size and SHA-256 were confirmed (upload echo or HEAD); see reconcileObjects. */
  etag: string | undefined;
  relinked: boolean;
  /** How the content type was decided from FileMaker's and the bytes' (see effectiveContentType); relinked: declared. */
  typeSource: ContentTypeSource;
  field: string;
  /** The stored bytes, when a single-part upload kept them (images, for the thumbnail). */
  body?: Buffer;
  /** Gives the kept bytes' share of the upload buffer budget back; call once done with `body`. */
  release?: Release;
  /** Relinked as a listing confirmed it, with what the row before the run recorded (no HEAD; see confirmListed). */
  listed?: ListedPrior;
}

/** A relink a listing confirmed (see confirmListed): the object's ETag, and what the row before the run recorded. */
export interface ListedPrior {
  etag: string;
  contentType: string;
  filename: string | null;
  /** Images: the container the row named. */
  sourceField?: string | null;
  /** Images: the thumbnail the row recorded, listed under its key. */
  thumbnail?: { key: string; width: number; height: number };
}

export interface FileContext {
  deps: ActivityDeps;
  input: ChunkInput;
  result: ChunkResult;
  bucket: string;
  signal: AbortSignal;
  budgetBytes: number;
  /** Reservations, rows and ledger entries, group-committed with the other files in flight. */
  writes: FileWrites;
  /** Downloads of this batch whose settlement waits for the batch's end (see settleDownload). */
  settlements: Settlement[];
  /** The batch's transfer lease, when the budget had room for one (see openLease). */
  lease?: TransferLease;
  /** Heartbeats with the ids finished so far (at most once a second; the ledger is what a retry resumes from). */
  beat: () => void;
}

export function addFinding(result: ChunkResult, code: string) {
  result.byReason[code] = (result.byReason[code] ?? 0) + 1;
}

/** A stored file's counts: relinked, or downloaded again over an object of an earlier record version. */
export function countStored(fc: FileContext, stored: StoredFile, replaces: boolean): void {
  if (stored.relinked) fc.result.relinked++;
  else if (replaces) fc.result.replaced++;
  if (stored.typeSource === 'sniffed') addFinding(fc.result, 'CONTENT_TYPE_SNIFFED');
  if (stored.typeSource === 'corrected') addFinding(fc.result, 'CONTENT_TYPE_CORRECTED');
}

/** One record of a batch and what is known about it before its file is touched. */
export interface FileJob {
  id: string;
  record: FileMakerRecord;
  /** When the batch's find read the record (its container URLs are that old). */
  readAtMs: number;
  ctx: MapContext;
  /** The object the ledger recorded for this id in an earlier run at this same record version (relink candidate). */
  prior: LedgerFile | undefined;
  /** The prior object as a listing confirmed it: relinked without a HEAD. */
  listed?: ListedPrior;
  /** The tables refer to an object of another record version: a download replaces it (counted). */
  replaces: boolean;
  /** The revision a download's key carries (see downloadTarget). */
  revision: string | undefined;
  /** Set when this container failed for good in a completed run at this same record version. */
  brokenAtModId?: string;
}

/** A file just uploaded, with what the upload confirmed (key, size, SHA-256, ETag). */
export function uploadedFile(
  up: Pick<UploadStreamResult, 'key' | 'size' | 'sha256' | 'etag'>,
  file: Omit<StoredFile, 'key' | 'size' | 'sha256' | 'etag' | 'relinked'>,
): StoredFile {
  return { key: up.key, size: up.size, sha256: up.sha256, etag: up.etag, relinked: false, ...file };
}
