/**
 * A FIFO counting semaphore: the per-worker cap on requests in flight to FileMaker. FileMaker Cloud answers 502 and
 * 812 when too many requests arrive at once, so every request (container streams included, until they end) holds a
 * slot. The cap can be changed while running (an operator update lowers or raises it); lowering it never interrupts
 * requests already in flight, it only delays new ones until the count drops below the new cap.
 */
export type Release = () => void;

export class Semaphore {
  private active = 0;
  private peak = 0;
  private readonly waiters: Array<{ grant: (release: Release) => void; reject: (err: Error) => void }> = [];

  constructor(private max: number) {
    Semaphore.check(max);
  }

  private static check(max: number): void {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`concurrency must be a whole number >= 1, got ${max}`);
  }

  get inFlight(): number {
    return this.active;
  }

  /** The most slots ever held at once since creation (the concurrency tests read it). */
  get peakInFlight(): number {
    return this.peak;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  get limit(): number {
    return this.max;
  }

  setLimit(max: number): void {
    Semaphore.check(max);
    this.max = max;
    this.drain();
  }

  /** Resolves with a release function once a slot is free. The release function is idempotent. */
  acquire(signal?: AbortSignal): Promise<Release> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    if (this.active < this.max && this.waiters.length === 0) return Promise.resolve(this.take());
    return new Promise<Release>((resolve, reject) => {
      const waiter = {
        grant: (release: Release) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(release);
        },
        reject,
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(abortReason(signal));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  private take(): Release {
    this.active++;
    if (this.active > this.peak) this.peak = this.active;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.drain();
    };
  }

  private drain(): void {
    while (this.active < this.max && this.waiters.length > 0) {
      const next = this.waiters.shift();
      next?.grant(this.take());
    }
  }
}

function abortReason(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof Error ? reason : new DOMException('The operation was aborted', 'AbortError');
}
