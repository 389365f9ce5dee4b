/**
 * The FileMaker transfer quota as the files phases spend it (table `transfer_log`, its yearly sum `transfer_totals`).
 * Reservations are made in one statement that holds the year's total row lock, so concurrent batches on any number
 * of workers can never together pass the budget: a batch's lease (TransferLease), from which its downloads draw their
 * read-ahead and their announced size, and a download's own reservation when the lease does not hold its size. Both
 * are settled with the bytes really received, also when a download broke (migration 1763700004000 has the SQL
 * functions).
 * A reservation that was never settled (a worker killed mid-download) keeps counting what it reserved: a quota is
 * better over-counted than over-spent. The statements are in src/store/transfer.ts.
 */
import { reasonOf, type FileContext } from './context';
import type { FileWrites, QuotaRequest, Reservation, Settlement } from './writes';

/**
 * Transfer reserved for a batch as a whole and drawn on by its downloads in memory: a download whose announced size
 * the lease holds needs no statement of its own. One reservation of `chunkBytes` when the batch starts, another when
 * a draw finds the lease spent (one at a time); when the budget has no room for another, `take` says no and the
 * download reserves its own size as before. Settled at the batch's end with the bytes its downloads really received,
 * so what it held but did not spend returns to the budget; a crash leaves it counting what it reserved.
 */
export class TransferLease {
  private readonly reservations: Reservation[] = [];
  private available = 0;
  private spentBytes = 0;
  private growing: Promise<boolean> | undefined;
  private exhausted = false;

  private constructor(
    private readonly writes: Pick<FileWrites, 'tryReserve'>,
    /** Its `filemakerId` names the lease's rows in `transfer_log`. */
    private readonly request: QuotaRequest,
    private readonly chunkBytes: number,
  ) {}

  /** A lease with its first reservation, or undefined when the budget has no room for one. */
  static async open(
    writes: Pick<FileWrites, 'tryReserve'>,
    request: QuotaRequest,
    chunkBytes: number,
  ): Promise<TransferLease | undefined> {
    const lease = new TransferLease(writes, request, chunkBytes);
    return (await lease.grow()) ? lease : undefined;
  }

  /** Draws `bytes`; false (nothing drawn) when neither the lease nor the budget holds them. */
  async take(bytes: number): Promise<boolean> {
    if (bytes > this.chunkBytes) return false;
    while (this.available < bytes) {
      if (this.exhausted) return false;
      this.growing ??= this.grow().finally(() => (this.growing = undefined));
      if (!(await this.growing)) return false;
    }
    this.available -= bytes;
    return true;
  }

  /** Returns a draw: `received` of its bytes were spent, the rest can be drawn again. */
  give(drawn: number, received = 0): void {
    const spent = Math.min(drawn, received);
    this.spentBytes += spent;
    this.available += drawn - spent;
  }

  /** The settlements that close the lease: its bytes spent, spread over its reservations in order. */
  settlements(): Settlement[] {
    let left = this.spentBytes;
    return this.reservations.map((reservation) => {
      const bytes = Math.min(left, reservation.bytes);
      left -= bytes;
      return { reservation, bytes };
    });
  }

  private async grow(): Promise<boolean> {
    const r = await this.writes.tryReserve({ ...this.request, bytes: this.chunkBytes });
    if (!r) {
      this.exhausted = true;
      return false;
    }
    this.reservations.push(r);
    this.available += r.bytes;
    return true;
  }
}

/**
 * A batch's transfer lease is reserved this much at a time: a batch of documents or scaled-down images at once, a
 * few full-size images. While batches run, at most about this much per batch is held and not yet spent.
 */
const LEASE_BYTES = 16 * 1024 * 1024;
/** `transfer_log.filemaker_id` of a batch's lease: this and the batch's manifest offset. */
const LEASE_ID = 'lease@';

/**
 * Records what a download really received. When that is no more than it reserved (the whole announced file, or a
 * download that broke off), the reservation already counts at least the bytes spent: its settlement waits for the
 * end of the batch and goes in one statement with the others (a crash before then leaves the reservation counting
 * what it reserved). A download that received more than it reserved (no size announced) is settled at once, so the
 * year's total never counts less than was spent.
 */
export async function settleDownload(fc: FileContext, settlement: Settlement): Promise<void> {
  if (settlement.bytes <= settlement.reservation.bytes) fc.settlements.push(settlement);
  else await fc.writes.settle([settlement]);
}

/** The batch's waiting settlements, written; after a batch that failed, a failure here is only logged. */
export async function settleBatch(fc: FileContext, batchFailed: boolean): Promise<void> {
  if (fc.lease) {
    fc.settlements.push(...fc.lease.settlements());
    fc.lease = undefined;
  }
  try {
    await fc.writes.settle(fc.settlements.splice(0));
  } catch (err) {
    if (!batchFailed) throw err;
    fc.deps.logger.warn(
      { table: fc.input.table, offset: fc.input.offset, reason: reasonOf(err) },
      'transfer settlements not written; their reservations keep counting what they reserved',
    );
  }
}

/**
 * The batch's transfer lease (see TransferLease): its files in flight draw their read-ahead from it before their
 * request, then their announced size, so a file that fits frees its FileMaker slot as it arrives and a file the
 * lease holds costs no statement of its own. Without room in the budget there is none, and each download reserves
 * its own size before it reads more than the connection's buffers.
 */
export async function openLease(fc: FileContext): Promise<void> {
  fc.lease = await TransferLease.open(fc.writes, quotaRequest(fc, `${LEASE_ID}${fc.input.offset}`, ''), LEASE_BYTES);
}

/** A transfer reservation of this batch's run and table, for `filemakerId` and `field`, against the budget. */
export function quotaRequest(fc: FileContext, filemakerId: string, field: string): QuotaRequest {
  return {
    runId: fc.input.runId,
    table: fc.input.table,
    filemakerId,
    field,
    budgetBytes: fc.budgetBytes,
    usedOutsideBytes: fc.deps.config.filemaker.transferUsedBytes,
  };
}
