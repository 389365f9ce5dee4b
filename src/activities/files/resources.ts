/**
 * What the files phases share across the batches of one worker process, built once by the worker with its other
 * dependencies (deps.files) so that a test can give its own: the upload buffer budget, the group-committed writes,
 * the opened exports, the thumbnail decodes and
 * recent listings of the bucket.
 */
import { Semaphore } from '../../filemaker/semaphore';
import { ByteBudget } from '../../s3/buffer-budget';
import type { Pool } from '../../store/db';
import { BIG_DECODES_AT_ONCE } from './thumbnails';
import { UPLOAD_BUFFER_BYTES } from './download';
import type { ExportCache } from './export';
import { ObjectListings } from './listing';
import { createFileWrites, type FileWrites } from './writes';

export interface FileResources {
  /** Bytes the uploads in progress hold in memory, worker-wide. */
  uploadBuffers: ByteBudget;
  /** Reservations, rows and ledger entries, group-committed across the worker's files in flight. */
  writes: FileWrites;
  /** Bulk exports opened by the images phase, by location. */
  exports: ExportCache;
  /** Large non-JPEG images decoded for thumbnails at once. */
  decodes: Semaphore;
  /** Recent listings of the bucket, which confirm relinks without a HEAD each. */
  listings: ObjectListings;
}

export function createFileResources(pool: Pool): FileResources {
  return {
    uploadBuffers: new ByteBudget(UPLOAD_BUFFER_BYTES),
    writes: createFileWrites(pool),
    exports: new Map(),
    decodes: new Semaphore(BIG_DECODES_AT_ONCE),
    listings: new ObjectListings(),
  };
}
