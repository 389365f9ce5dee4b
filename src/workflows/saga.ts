/**
 * The reimport's saga: each step that changes something registers its compensation right after it succeeds; on a
 * failure or a cancel they run last-first, each to its end even when the run is being cancelled. A compensation that
 * fails does not stop the ones before it: its error is logged and collected for the run's report.
 */
import { CancellationScope, log } from '@temporalio/workflow';
import { describeFailure } from './failures';

export class Saga {
  private readonly compensations: { name: string; run: () => Promise<void> }[] = [];

  /** Registers the compensation of a step that has just succeeded. */
  add(name: string, run: () => Promise<void>): void {
    this.compensations.push({ name, run });
  }

  /** Runs every compensation, last-first and not cancellable; returns `<name>: <cause>` for each that failed. */
  async compensate(): Promise<string[]> {
    return CancellationScope.nonCancellable(async () => {
      const errors: string[] = [];
      for (const c of [...this.compensations].reverse()) {
        try {
          await c.run();
        } catch (err) {
          errors.push(`${c.name}: ${describeFailure(err)}`);
          log.error('compensation failed', { step: c.name, error: describeFailure(err) });
        }
      }
      return errors;
    });
  }
}
