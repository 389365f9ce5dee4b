/**
 * Listings of the bucket shared by a worker's batches (deps.files.listings): the objects S3 holds under a slice of a
 * folder, with their size and ETag, so that the files phases confirm relinks from a listing instead of a HEAD per
 * object (see confirmListed in ./relink.ts). A slice (see listingPrefixes) is listed once per run and stands for at
 * most LISTING_FRESH_MS; the batches that ask for it meanwhile share it. Never across runs: an object deleted or
 * written between two runs is seen by the next run's own listing.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { inventory } from '../../s3';
import { inParallel } from '../../parallel';
import { listingPrefixes } from '../verify';

export interface ListedObject {
  size: number;
  /** The ETag without its quotes, when the listing gives one. */
  etag: string | undefined;
}

/**
 * How old a listing may be when it confirms a relink. A second run's files phase relinks a folder in seconds, and
 * one page of 1,000 keys per slice is cheap next to a HEAD per object; a slice older than this is listed again. What
 * a relink recorded is checked again by the phase's reconciliation and by the validation (each from a new listing).
 */
export const LISTING_FRESH_MS = 30_000;
const LISTINGS_IN_FLIGHT = 4;

export class ObjectListings {
  private readonly slices = new Map<string, { at: number; objects: Promise<Map<string, ListedObject>> }>();

  constructor(
    private readonly freshMs = LISTING_FRESH_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Those of `keys` that S3 lists, with their size and ETag as listed: now, or at most `freshMs` ago for the same
   * run (`runId`).
   */
  async lookup(
    s3: S3Client,
    bucket: string,
    keys: readonly string[],
    runId: string,
  ): Promise<Map<string, ListedObject>> {
    const at = this.now();
    for (const [id, slice] of this.slices) if (at - slice.at > this.freshMs) this.slices.delete(id);
    const found = new Map<string, ListedObject>();
    if (keys.length === 0) return found;
    const wanted = new Set(keys);
    await inParallel(listingPrefixes(keys), LISTINGS_IN_FLIGHT, async (prefix) => {
      for (const [key, o] of await this.slice(s3, bucket, prefix, runId, at)) if (wanted.has(key)) found.set(key, o);
    });
    return found;
  }

  private slice(
    s3: S3Client,
    bucket: string,
    prefix: string,
    runId: string,
    at: number,
  ): Promise<Map<string, ListedObject>> {
    const id = `${runId}\u0000${bucket}\u0000${prefix}`;
    const cached = this.slices.get(id);
    if (cached) return cached.objects;
    const objects = (async () => {
      const listed = new Map<string, ListedObject>();
      for await (const o of inventory(s3, bucket, prefix)) listed.set(o.key, { size: o.size, etag: o.etag });
      return listed;
    })();
    this.slices.set(id, { at, objects });
    // A listing that failed is not kept: the next batch lists again.
    objects.catch(() => {
      if (this.slices.get(id)?.objects === objects) this.slices.delete(id);
    });
    return objects;
  }
}
