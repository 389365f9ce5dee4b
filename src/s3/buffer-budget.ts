/**
 * A worker-wide budget of bytes held in memory by uploads in progress. A small file is buffered whole (one PutObject
 * with its checksum), a large one holds its parts in flight; with many files in flight at the clinic's real sizes
 * (image renditions of several MB) that adds up. Each upload takes its share before it reads the body and gives it
 * back when the bytes are no longer needed; when the budget is spent, the next file waits (first come, first
 * served) instead of the worker growing past its memory target.
 */
export type Release = () => void;

export class ByteBudget {
  private used = 0;
  private readonly waiters: { bytes: number; grant: () => void; reject: (err: unknown) => void }[] = [];

  constructor(readonly limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`budget must be a positive byte count`);
  }

  get inUse(): number {
    return this.used;
  }

  /** Takes `bytes` (at most the whole budget) once they are free; the release function is idempotent. */
  async acquire(bytes: number, signal?: AbortSignal): Promise<Release> {
    const want = Math.max(0, Math.min(Math.ceil(bytes), this.limit));
    if (this.waiters.length > 0 || this.used + want > this.limit) {
      await new Promise<void>((resolve, reject) => {
        const waiter = {
          bytes: want,
          grant: () => {
            signal?.removeEventListener('abort', onAbort);
            resolve();
          },
          reject,
        };
        const onAbort = () => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
          this.drain();
        };
        if (signal?.aborted) return onAbort();
        signal?.addEventListener('abort', onAbort, { once: true });
        this.waiters.push(waiter);
      });
    } else {
      this.used += want;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used -= want;
      this.drain();
    };
  }

  private drain(): void {
    while (this.waiters.length > 0 && this.used + this.waiters[0]!.bytes <= this.limit) {
      const next = this.waiters.shift()!;
      this.used += next.bytes;
      next.grant();
    }
  }
}
