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
import type { FileWrites, ReserveRequest } from './file-writes';

export interface Reservation {
  readonly id: string;
  readonly bytes: number;
}

// Reservation and settlement are group-committed with the other files in flight: see ./file-writes.ts.

/** What a reservation is for and against which budget: everything but its size. */
export type QuotaRequest = Omit<ReserveRequest, 'bytes'>;

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
  settlements(): { reservation: Reservation; bytes: number }[] {
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
