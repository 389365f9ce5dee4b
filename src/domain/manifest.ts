/**
 * A run's manifest of one source table: one row per FileMaker *record*, keyed by its record id (Data API `recordId`,
 * OData `ROWID`). The `id` field is data about the record; when it cannot key a target row the record still has its
 * manifest row, with the reason it will be failed for:
 * - `MISSING_ID`: the id is empty or blank;
 * - `DUPLICATE_ID`: two or more records share the id after normalisation (see docs/normalisations.md). None of them
 *   is imported: other records refer to them by that id, and nothing says which of them they mean.
 */

/** Why a record's id cannot key a target row. */
export type IdIssue = 'MISSING_ID' | 'DUPLICATE_ID';

export interface ManifestRow {
  /**
   * FileMaker's record id; `id:<id>` when the server could not list record ids (then an id is one record), and
   * `blank:<n>` for a record without either.
   */
  record_id: string;
  /** The normalised id (see normalizeFileMakerId); null when the record has none. */
  filemaker_id: string | null;
  id_issue: IdIssue | null;
  mod_id: string | null;
  source_key: string | null;
}

/** A manifest entry as read from FileMaker: its record id, when the server lists them. */
export type ManifestRead = Omit<ManifestRow, 'record_id'> & { record_id: string | null };

/**
 * The rows a manifest stores for what was read: every record once (a repeated record id is the same record read
 * twice), each id issue marked.
 */
export function manifestRows(read: readonly ManifestRead[]): ManifestRow[] {
  const rows: ManifestRow[] = [];
  const seen = new Set<string>();
  const byId = new Map<string, ManifestRow[]>();
  let blank = 0;
  for (const e of read) {
    // Without record ids a record without an id has no key: it is still counted, and failed for its id.
    const key = e.record_id ?? (e.filemaker_id === null ? `blank:${++blank}` : `id:${e.filemaker_id}`);
    if (seen.has(key)) continue;
    seen.add(key);
    const row: ManifestRow = {
      ...e,
      record_id: key,
      id_issue: e.filemaker_id === null ? 'MISSING_ID' : null,
    };
    rows.push(row);
    if (row.filemaker_id !== null) {
      const same = byId.get(row.filemaker_id);
      if (same) same.push(row);
      else byId.set(row.filemaker_id, [row]);
    }
  }
  for (const same of byId.values()) if (same.length > 1) for (const r of same) r.id_issue = 'DUPLICATE_ID';
  return rows;
}

/** Record ids in FileMaker's order (numeric, shorter first), for messages and slices alike. */
export function byRecordId(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}
