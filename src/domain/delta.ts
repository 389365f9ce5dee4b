/** What changed in a source table since the previous completed run (src/store/delta.ts computes it). Counts only. */
export interface TableDelta {
  /** The run compared with; null on the first run, where every record counts as added. */
  readonly previousRunId: string | null;
  readonly added: number;
  /** Records whose version (ROWMODID) differs from the previous run's. */
  readonly changed: number;
  readonly unchanged: number;
  /** Records the previous run listed that FileMaker no longer has. */
  readonly vanished: number;
  /** Of the vanished records, those the previous run imported: their last rows are in `archived_records`. */
  readonly archived?: number;
}

/** A delta in a few characters for a summary line: `+12 ~3 -1`. */
export function formatDelta(d: TableDelta): string {
  return `+${d.added} ~${d.changed} -${d.vanished}`;
}

/** The deltas of several tables added up; compared with a previous run when any of them was. */
export function sumDeltas(deltas: readonly (TableDelta | undefined)[]): TableDelta {
  const sum = { previousRunId: null as string | null, added: 0, changed: 0, unchanged: 0, vanished: 0 };
  for (const d of deltas) {
    if (!d) continue;
    sum.previousRunId ??= d.previousRunId;
    sum.added += d.added;
    sum.changed += d.changed;
    sum.unchanged += d.unchanged;
    sum.vanished += d.vanished;
  }
  return sum;
}
