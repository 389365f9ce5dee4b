/**
 * The files phases' per-file writes — transfer reservation, the target row, the ledger entry — with group commit
 * (src/store/group-commit.ts): every file still gets its own result, but files that write while a statement of the
 * same kind is running share the next one. The settlements of a batch's downloads go in one statement (see
 * settleDownload in ./lease.ts). All of them are named statements, parsed and planned once per connection.
 *
 * Nothing about when a write happens changes for a file: its reservation is made before its bytes flow, its row and
 * ledger entry are written before it counts as done (a file waits for at most the statement already running).
 */
import { TransferQuotaError } from '../../errors';
import type { Pool } from '../../store/db';
import type { TargetTableName } from '../../store/schema';
import { upsertRows, type RowOutcome } from '../../store/upsert';
import { GroupCommit } from '../../store/group-commit';
import {
  LEDGER_ALONGSIDE,
  LEDGER_ALONGSIDE_KEYED,
  ledgerJson,
  recordWrittenBack,
  writeLedger,
  type ModIdChange,
} from '../../store/ledger';
import { reserveTransfers, settleTransfers, transferUsedThisYear } from '../../store/transfer';
import { countLedger, type LedgerEntry } from '../outcomes';
import type { ChunkResult } from '../types';

export interface ReserveRequest {
  runId: string;
  table: string;
  filemakerId: string;
  field: string;
  bytes: number;
  budgetBytes: number;
  usedOutsideBytes: number;
}

export interface FileWrites {
  /** Reserves a download's announced size against the year's budget; TransferQuotaError when it does not fit. */
  reserve(r: ReserveRequest): Promise<Reservation>;
  /** Like `reserve`, but undefined when the bytes do not fit the budget. */
  tryReserve(r: ReserveRequest): Promise<Reservation | undefined>;
  /** Records the bytes reserved downloads really received (one statement for all of them). */
  settle(settlements: readonly Settlement[]): Promise<void>;
  /**
   * Upserts one target row (see upsertRows: a bad row is a `failed` outcome, not an error). With `record`, the
   * file's ledger entry is written in the same statement when the row lands (and not at all when it is refused).
   */
  upsert(
    table: TargetTableName,
    row: Record<string, unknown>,
    runId: string,
    record?: { sourceTable: string; entry: LedgerEntry },
  ): Promise<RowOutcome>;
  /** Writes one ledger entry and counts it into `into`. */
  ledger(runId: string, table: string, entry: LedgerEntry, into: ChunkResult): Promise<void>;
  /**
   * A write-back changed the record from modId `from` to `to`, and nothing else did: the file's ledger entry (still
   * at `from`) takes `to` as the record version its object corresponds to.
   */
  writtenBack(runId: string, table: string, change: ModIdChange): Promise<void>;
}

export type { ModIdChange } from '../../store/ledger';

/** A transfer reserved in `transfer_log` (settled later with the bytes really received). */
export interface Reservation {
  readonly id: string;
  readonly bytes: number;
}

/** What a reservation is for and against which budget: everything but its size. */
export type QuotaRequest = Omit<ReserveRequest, 'bytes'>;

/** The bytes a reserved download really received. */
export interface Settlement {
  reservation: Reservation;
  bytes: number;
}

const SEP = '\u0000';

interface UpsertItem {
  table: TargetTableName;
  runId: string;
  row: Record<string, unknown>;
  record?: { sourceTable: string; entry: LedgerEntry };
}

/** Keeps the last item per key (one statement cannot upsert a row twice); `rep[i]` is item i's position in `unique`. */
function lastPerKey<T>(items: readonly T[], key: (t: T) => string | undefined): { unique: T[]; rep: number[] } {
  const last = new Map<string, number>();
  items.forEach((t, i) => {
    const k = key(t);
    if (k !== undefined) last.set(k, i);
  });
  const unique: T[] = [];
  const position = new Map<number, number>();
  items.forEach((t, i) => {
    const k = key(t);
    if (k === undefined || last.get(k) === i) {
      position.set(i, unique.length);
      unique.push(t);
    }
  });
  const rep = items.map((t, i) => {
    const k = key(t);
    return position.get(k === undefined ? i : last.get(k)!)!;
  });
  return { unique, rep };
}

/** The group-committed writes over one connection pool; the worker builds one (deps.files.writes). */
export function createFileWrites(pool: Pool): FileWrites {
  const reservations = new GroupCommit<ReserveRequest, string | null>(async (_g, items) => {
    return reserveTransfers(
      pool,
      items.map((x) => ({ ...x, limitBytes: Math.max(0, x.budgetBytes - x.usedOutsideBytes) })),
    );
  });

  const upserts = new GroupCommit<UpsertItem, RowOutcome>(async (_g, items) => {
    const { unique, rep } = lastPerKey(items, (x) =>
      typeof x.row.filemaker_id === 'string' ? x.row.filemaker_id : undefined,
    );
    const first = items[0]!;
    // One group is one table, run and ledger table: the items of a statement share them.
    const record = first.record;
    const r = await upsertRows(
      pool,
      first.table,
      unique.map((x) => x.row),
      {
        runId: first.runId,
        alongside: record && {
          // Entries that all name their manifest record skip the look-up by id, which the planner, with the
          // manifest of a run just read not yet in its statistics, made a hash of the table's whole manifest: about
          // 6 ms of database CPU per file (57 s in the bench's first documents phase).
          text: unique.every((x) => x.record?.entry.recordId !== undefined) ? LEDGER_ALONGSIDE_KEYED : LEDGER_ALONGSIDE,
          values: (rows) => [first.runId, record.sourceTable, ledgerJson(rows.map((i) => unique[i]!.record!.entry))],
        },
      },
    );
    return rep.map((p) => r.outcomes[p]!);
  });

  /** Writes of one run and table grouped into one statement each, the last item per key winning. */
  const lastPerKeyWrites = <T extends { runId: string; table: string }>(
    keyOf: (x: T) => string | undefined,
    write: (runId: string, table: string, unique: T[], items: T[]) => Promise<void>,
  ) =>
    new GroupCommit<T, void>(async (_g, items) => {
      await write(items[0]!.runId, items[0]!.table, lastPerKey(items, keyOf).unique, items);
      return items.map(() => undefined);
    });

  const ledgers = lastPerKeyWrites<{ runId: string; table: string; entry: LedgerEntry; into: ChunkResult }>(
    (x) => x.entry.recordId ?? x.entry.filemakerId ?? undefined,
    async (runId, table, unique, items) => {
      await writeLedger(
        pool,
        runId,
        table,
        unique.map((x) => x.entry),
      );
      for (const x of items) countLedger([x.entry], x.into);
    },
  );

  const writeBacks = lastPerKeyWrites<{ runId: string; table: string; change: ModIdChange }>(
    (x) => x.change.filemakerId,
    (runId, table, unique) =>
      recordWrittenBack(
        pool,
        runId,
        table,
        unique.map((x) => x.change),
      ),
  );

  return {
    async reserve(req) {
      const id = await reservations.submit('reserve', req);
      if (id === null) {
        const used = (await transferUsedThisYear(pool)) + req.usedOutsideBytes;
        throw new TransferQuotaError(
          `transfer budget reached: ${used} of ${req.budgetBytes} bytes used this year, the next file needs ${req.bytes}`,
        );
      }
      return { id, bytes: req.bytes };
    },
    async tryReserve(req) {
      const id = await reservations.submit('reserve', req);
      return id === null ? undefined : { id, bytes: req.bytes };
    },
    async settle(settlements) {
      if (settlements.length === 0) return;
      await settleTransfers(
        pool,
        settlements.map((x) => ({ id: x.reservation.id, bytes: x.bytes })),
      );
    },
    upsert: (table, row, runId, record) =>
      upserts.submit(`${runId}${SEP}${table}${SEP}${record?.sourceTable ?? ''}`, { table, runId, row, record }),
    ledger: (runId, table, entry, into) => ledgers.submit(`${runId}${SEP}${table}`, { runId, table, entry, into }),
    writtenBack: (runId, table, change) => writeBacks.submit(`${runId}${SEP}${table}`, { runId, table, change }),
  };
}
