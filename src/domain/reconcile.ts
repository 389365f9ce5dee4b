/**
 * Reconciliation: does every id in a table's manifest (the ids that existed when the phase began) have a terminal
 * ledger state? Pure, so the validation phase, the files phases and the tests share one definition.
 *
 * Ids are compared exactly: both sides must carry `normalizeFileMakerId` values. A case mismatch shows up as
 * missing rather than being papered over — that bug lost patient links before.
 */

export const LEDGER_STATES = ['pending', 'imported', 'unlinked', 'skipped', 'failed'] as const;
export type LedgerState = (typeof LEDGER_STATES)[number];
export const TERMINAL_STATES: readonly LedgerState[] = ['imported', 'unlinked', 'skipped', 'failed'];

export interface LedgerEntry {
  readonly filemakerId: string;
  readonly state: LedgerState;
  readonly reasonCode?: string | null;
}

export interface TableReconcileInput {
  readonly manifest: Iterable<string>;
  readonly ledger: Iterable<LedgerEntry>;
}

export interface TableReconciliation {
  /** Distinct manifest ids. */
  readonly manifest: number;
  readonly imported: number;
  readonly unlinked: number;
  readonly skipped: number;
  readonly failed: number;
  /** Manifest ids whose ledger entry is still pending (they are also in `missing`). */
  readonly pending: number;
  /** Manifest ids without a terminal state (no entry, or pending), sorted. */
  readonly missing: string[];
  /** Ids listed more than once in the manifest, sorted: a manifest must be a set. */
  readonly duplicateManifestIds: string[];
  /** Ledger ids that are not in the manifest, sorted (not counted above). */
  readonly unexpected: string[];
  /** Failures by reason code (manifest ids only). */
  readonly failedByReason: Record<string, number>;
  /** manifest = imported + unlinked + skipped + failed, nothing missing, no duplicate. Failed ids still count as accounted. */
  readonly ok: boolean;
}

export interface ReconcileResult {
  readonly tables: Record<string, TableReconciliation>;
  readonly ok: boolean;
}

export function reconcileTable(input: TableReconcileInput): TableReconciliation {
  const manifest = new Set<string>();
  const duplicates = new Set<string>();
  for (const id of input.manifest) {
    if (manifest.has(id)) duplicates.add(id);
    manifest.add(id);
  }
  const ledger = new Map<string, LedgerEntry>();
  for (const e of input.ledger) ledger.set(e.filemakerId, e);
  const counts = { imported: 0, unlinked: 0, skipped: 0, failed: 0, pending: 0 };
  const failedByReason: Record<string, number> = {};
  const missing: string[] = [];
  for (const id of manifest) {
    const e = ledger.get(id);
    if (!e) {
      missing.push(id);
      continue;
    }
    counts[e.state]++;
    if (e.state === 'pending') missing.push(id);
    if (e.state === 'failed') {
      const reason = e.reasonCode ?? 'UNKNOWN';
      failedByReason[reason] = (failedByReason[reason] ?? 0) + 1;
    }
  }
  const unexpected = [...ledger.keys()].filter((id) => !manifest.has(id));
  const terminal = counts.imported + counts.unlinked + counts.skipped + counts.failed;
  return {
    manifest: manifest.size,
    ...counts,
    missing: missing.sort(),
    duplicateManifestIds: [...duplicates].sort(),
    unexpected: unexpected.sort(),
    failedByReason,
    ok: missing.length === 0 && duplicates.size === 0 && terminal === manifest.size,
  };
}

/** Reconcile every table; `ok` only when every table is. */
export function reconcile(tables: Readonly<Record<string, TableReconcileInput>>): ReconcileResult {
  const out: Record<string, TableReconciliation> = {};
  let ok = true;
  for (const name of Object.keys(tables).sort()) {
    const input = tables[name];
    if (!input) continue;
    const r = reconcileTable(input);
    out[name] = r;
    ok &&= r.ok;
  }
  return { tables: out, ok };
}
