// Ground truth for verifiers (tests, benchmarks): what every table holds and every container's size and hash.
// The engine must never read this; it sees FileMaker only through the Data API and OData.
import { CONTENT_TYPES, containerSha256 } from './containers';
import type { Dataset, FieldValue, JournalEntry } from './dataset';

export interface TruthContainer {
  recordId: string;
  id: string;
  field: string;
  state: 'ok' | 'empty' | 'broken';
  size?: number;
  sha256?: string;
  contentType?: string;
  filename?: string;
  extension?: string;
  brokenMode?: string;
}

export function truthTables(ds: Dataset): { name: string; count: number; odataOnly: boolean }[] {
  return ds.tableList.map((t) => ({ name: t.def.name, count: t.count, odataOnly: t.def.odataOnly }));
}

export function truthTable(ds: Dataset, name: string) {
  const table = ds.table(name);
  if (!table) return undefined;
  const out: { recordId: string; modId: string; fieldData: Record<string, FieldValue>; quality: string[] }[] = [];
  for (const r of table.scan()) {
    out.push({
      recordId: String(r.recordId),
      modId: String(r.modId),
      fieldData: { ...r.fields },
      quality: [...r.quality],
    });
  }
  return out;
}

export function truthContainers(ds: Dataset, name: string, withHashes = true): TruthContainer[] | undefined {
  const table = ds.table(name);
  if (!table) return undefined;
  const out: TruthContainer[] = [];
  for (const r of table.scan()) {
    for (const [field, info] of Object.entries(r.containers)) {
      const base = { recordId: String(r.recordId), id: String(r.fields.id), field, state: info.state };
      if (info.state === 'empty') {
        out.push(base);
        continue;
      }
      const key = { seed: ds.opts.seed, table: name, recordIndex: r.index, field };
      out.push({
        ...base,
        size: info.size,
        contentType: CONTENT_TYPES[info.kind],
        filename: info.filename,
        extension: info.kind,
        ...(info.state === 'ok' && withHashes ? { sha256: containerSha256(key, info) } : {}),
        ...(info.state === 'broken' ? { brokenMode: info.brokenMode } : {}),
      });
    }
  }
  return out;
}

/** The changes after `since` (a journal seq), oldest first, and the last seq so far. */
export function truthJournal(ds: Dataset, since = 0): { lastSeq: number; entries: JournalEntry[] } {
  return { lastSeq: ds.journal.length, entries: ds.journal.slice(since) };
}

/** Share of records per quality tag, per table: the numbers the report quotes. */
export function qualitySummary(ds: Dataset): Record<string, Record<string, { count: number; share: number }>> {
  const out: Record<string, Record<string, { count: number; share: number }>> = {};
  for (const t of ds.tableList) {
    const counts: Record<string, number> = {};
    for (const r of t.scan()) for (const q of new Set(r.quality)) counts[q] = (counts[q] ?? 0) + 1;
    out[t.def.name] = Object.fromEntries(
      Object.entries(counts).map(([k, n]) => [k, { count: n, share: Math.round((n / t.count) * 10000) / 10000 }]),
    );
  }
  return out;
}
