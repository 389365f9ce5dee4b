/**
 * Is the source frozen? Two reads of a table's record ids (ROWID) and record versions (ROWMODID) compared: records
 * added, changed (same id, another version: an edit, a replaced container) and vanished, with the record ids of those
 * that moved. Pure: the cut-over's activities read and store (src/activities/cutover.ts), its workflow reports.
 *
 * No I/O and no Node built-ins: the cut-over workflow formats its failure with `describeMoved`.
 */
import { byRecordId } from './manifest';

/** A record as a freeze read sees it: its FileMaker record id and its record version, nothing else. */
export interface RecordVersion {
  readonly recordId: string;
  readonly modId: string;
}

/** Record ids of moved records listed per table (the counts are always complete). */
export const MOVED_LISTED = 50;

/** One table's read compared with the first: counts, and the record ids that moved (at most MOVED_LISTED). */
export interface TableFreeze {
  table: string;
  /** Records FileMaker lists now. */
  records: number;
  added: number;
  changed: number;
  vanished: number;
  /** Record ids of the moved records by change, in record id order, at most MOVED_LISTED over the three. */
  moved: { added: string[]; changed: string[]; vanished: string[] };
}

/** Compares a read of `table` with the first one (`before`: record id → version). */
export function compareVersions(
  table: string,
  before: ReadonlyMap<string, string>,
  now: readonly RecordVersion[],
  listed = MOVED_LISTED,
): TableFreeze {
  const ids = { added: [] as string[], changed: [] as string[], vanished: [] as string[] };
  const seen = new Set<string>();
  for (const r of now) {
    seen.add(r.recordId);
    const was = before.get(r.recordId);
    if (was === undefined) ids.added.push(r.recordId);
    else if (was !== r.modId) ids.changed.push(r.recordId);
  }
  for (const id of before.keys()) if (!seen.has(id)) ids.vanished.push(id);
  // The cap is shared, in a fixed order: edits first (the frozen file's most likely change), then deletes, then inserts.
  let left = listed;
  const take = (list: string[]) => {
    const out = list.sort(byRecordId).slice(0, Math.max(0, left));
    left -= out.length;
    return out;
  };
  const changed = take(ids.changed);
  const vanished = take(ids.vanished);
  const added = take(ids.added);
  return {
    table,
    records: now.length,
    added: ids.added.length,
    changed: ids.changed.length,
    vanished: ids.vanished.length,
    moved: { added, changed, vanished },
  };
}

/** Records of the table that moved. */
export function movedCount(t: TableFreeze): number {
  return t.added + t.changed + t.vanished;
}

/**
 * The tables that moved, in one line an operator can act on: `API_Contacts: 1 changed (record 17), 1 added (record
 * 2001)`; record ids beyond those listed are counted (`… and 12 more`). Ids only, never a value.
 */
export function describeMoved(tables: readonly TableFreeze[]): string {
  return tables
    .filter((t) => movedCount(t) > 0)
    .map((t) => {
      const parts = (['changed', 'vanished', 'added'] as const)
        .filter((k) => t[k] > 0)
        .map((k) => {
          const ids = t.moved[k];
          const more = t[k] - ids.length;
          const list = ids.length
            ? ` (record${ids.length > 1 ? 's' : ''} ${ids.join(', ')}${more ? ` and ${more} more` : ''})`
            : '';
          return `${t[k]} ${k}${list}`;
        });
      return `${t.table}: ${parts.join(', ')}`;
    })
    .join('; ');
}
