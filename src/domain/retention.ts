/**
 * Which run backups the retention policy keeps. Every writing run snapshots all target tables into a schema of its
 * own; kept for ever they would be hundreds of full copies of every patient, and a record deleted on purpose would
 * live on in all of them. A backup is kept while a rollback can still need it:
 *
 * - a run still running, or one that failed (its automatic rollback did not finish): always;
 * - a completed run: while it is one of the last `keep` completed runs, or has not been signed off;
 * - a rolled-back or cancelled run: until a run that started after it has completed.
 *
 * Everything else is dropped. Pure: the store reads the runs and drops what this returns.
 */

export interface RunForRetention {
  readonly runId: string;
  readonly status: 'running' | 'completed' | 'failed' | 'rolled_back' | 'cancelled';
  /** Start time in ms; newer runs supersede older ones. */
  readonly startedAt: number;
  readonly signedOff: boolean;
}

export interface RetentionDecision {
  readonly runId: string;
  readonly keep: boolean;
  /** Why, for the operator: ids and counts only. */
  readonly why: string;
}

/** Decides for every run in `runs` (any order), newest first. `keep` is the number of completed runs always kept. */
export function retentionDecisions(runs: readonly RunForRetention[], keep: number): RetentionDecision[] {
  if (!Number.isInteger(keep) || keep < 1) throw new RangeError(`keep must be a whole number ≥ 1, not ${keep}`);
  const newestFirst = [...runs].sort((a, b) => b.startedAt - a.startedAt || (a.runId < b.runId ? 1 : -1));
  let completedSeen = 0;
  let laterCompleted: string | undefined;
  return newestFirst.map((run): RetentionDecision => {
    const decide = (keepIt: boolean, why: string) => ({ runId: run.runId, keep: keepIt, why });
    switch (run.status) {
      case 'running':
        return decide(true, 'running');
      case 'failed':
        return decide(true, 'failed: the database may still need this backup to be rolled back');
      case 'completed': {
        completedSeen += 1;
        const decision =
          completedSeen <= keep
            ? decide(true, `one of the last ${keep} completed runs`)
            : run.signedOff
              ? decide(false, `completed and signed off, ${completedSeen - 1} later completed runs`)
              : decide(true, 'completed, not signed off');
        laterCompleted ??= run.runId;
        return decision;
      }
      case 'rolled_back':
      case 'cancelled':
        return laterCompleted === undefined
          ? decide(true, `${run.status.replace('_', ' ')}, no later run has completed`)
          : decide(false, `${run.status.replace('_', ' ')}, superseded by completed run ${laterCompleted}`);
    }
  });
}
