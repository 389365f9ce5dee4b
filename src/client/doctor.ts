/**
 * `doctor`: an operator's first contact with a FileMaker host, read-only. Each check yields a row (check, result,
 * detail, the choice it implies for the engine); the whole says whether a run can start.
 *
 * Input: the FileMaker client the worker would build, and optionally a PostgreSQL pool whose connections refuse
 * writes (`readOnlyPool`, src/store/db.ts). What it reads: product info, every layout and field the mappers read (Data API), every
 * table's count and first row with those fields `$select`ed (OData), one table's whole manifest in small pages, a
 * sample of the files tables' records, a sample container of each read both ways as the run's pre-flight reads it
 * (../activities/container-probe.ts), the transfer log's sum for this year.
 * It writes nothing: no PATCH, no script, no row, no object. Details carry counts, sizes, codes and versions, never a
 * field value, a record id or a filename.
 * Ends with a DoctorReport; `ok` is false when a check failed (the engine cannot run as configured).
 */
import type { Config } from '../config';
import { FileMakerError } from '../errors';
import { FM_ERRORS, type FileMakerClient } from '../filemaker';
import { SOURCE_TABLE_NAMES, SOURCE_TABLES, type SourceTable, type SourceTableName } from '../domain/tables';
import { missingFields } from '../activities/source-checks';
import {
  CONTAINER_PATH_REASONS,
  SAMPLE_MAX_BYTES,
  SAMPLE_RECORDS,
  firstRecords,
  probeContainers,
  sampleTable,
  type ContainerProbeResult,
  type ContainerRead,
  type TableProbe,
  type TableSample,
} from '../activities/container-probe';
import { transferUsedThisYear } from '../store/transfer';
import { DEFAULT_FILE_BYTES, averageFileBytes } from '../activities/verify';
import type { Pool } from '../store/db';
import { formatBytes } from '../notify/format';

export type CheckResult = 'ok' | 'warn' | 'fail';

export interface DoctorCheck {
  readonly check: string;
  readonly result: CheckResult;
  /** Counts, sizes, versions, codes: never patient data. */
  readonly detail: string;
  /** What the engine will do because of this check, when it decides something. */
  readonly choice?: string;
}

export interface DoctorReport {
  /** False when a check failed: the engine cannot run against this host as configured. */
  readonly ok: boolean;
  readonly checks: readonly DoctorCheck[];
  /** The choices of the checks, in order: what a run will do. */
  readonly choices: readonly string[];
  /** What the checks themselves cost: requests sent and bytes received from FileMaker (not in the transfer log). */
  readonly requests: number;
  readonly bytesReceived: number;
}

export interface DoctorDeps {
  fm: FileMakerClient;
  /** For the transfer log and the ledger's file sizes; undefined when DATABASE_URL is unset. */
  pool: Pool | undefined;
  filemaker: Pick<Config['filemaker'], 'containerApi' | 'transferBudgetBytes' | 'transferUsedBytes'>;
  /** How the client logs in, as the table shows it (`Basic`, `FMID`). */
  auth: string;
}

/** Pages the paging check splits its table into, and the largest page it sends. */
const PAGING_PAGES = 3;
const PAGING_MAX_PAGE = 1000;

export async function runDoctor(deps: DoctorDeps): Promise<DoctorReport> {
  const { fm } = deps;
  const checks: DoctorCheck[] = [];
  const tables = SOURCE_TABLE_NAMES.map((name) => SOURCE_TABLES[name]);
  const add = (c: DoctorCheck) => checks.push(c);

  const info = await fm.productInfo().catch((err: unknown) => describeError(err));
  add(checkServer(info));
  const login = await checkLogin(deps, tables[0]!);
  add(login);
  if (login.result !== 'fail') {
    add(await checkLayouts(fm, tables));
    const odata = await checkODataTables(fm, tables);
    add(odata.check);
    add(await checkPaging(fm, tables, odata.counts));
    const samples = await sampleFileRecords(fm, tables);
    add(await checkContainers(deps, samples));
    add(await checkDates(fm, info, tables));
    const budget = await checkBudget(deps);
    add(budget.check);
    add(await checkEstimate(deps, odata.counts, samples, budget.leftBytes));
  }
  const stats = fm.stats();
  return {
    ok: checks.every((c) => c.result !== 'fail'),
    checks,
    choices: checks.flatMap((c) => (c.choice !== undefined ? [c.choice] : [])),
    requests: stats.totalRequests,
    bytesReceived: stats.bytesReceived.total,
  };
}

/** An error as codes only: FileMaker's messages may name records, and its bodies may hold patient data. */
export function describeError(err: unknown): string {
  if (err instanceof FileMakerError) {
    const parts = [err.code];
    if (err.fmCode !== undefined) parts.push(`code ${err.fmCode}`);
    if (err.httpStatus !== undefined) parts.push(`HTTP ${err.httpStatus}`);
    return parts.join(', ');
  }
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return err instanceof Error ? err.name : 'error';
}

const n = (v: number) => v.toLocaleString('en-US');
const isCode = (err: unknown, ...codes: string[]) => err instanceof FileMakerError && codes.includes(err.code);

/** productInfo, or what went wrong asking for it. */
type ProductInfo = Record<string, unknown> | string;

function checkServer(info: ProductInfo): DoctorCheck {
  // A run does not need productInfo; a host that cannot be reached fails the login as well.
  if (typeof info === 'string') return { check: 'server', result: 'warn', detail: `productInfo: ${info}` };
  const text = (k: string) => (typeof info[k] === 'string' ? info[k] : '?');
  return { check: 'server', result: 'ok', detail: `${text('name')} ${text('version')}` };
}

/** The first Data API call logs in; a missing layout still proves the login, a refused account does not. */
async function checkLogin(deps: DoctorDeps, first: SourceTable): Promise<DoctorCheck> {
  const check = `login (${deps.auth})`;
  let firstError: unknown;
  try {
    await deps.fm.layoutFields(first.layout);
  } catch (err) {
    if (isCode(err, FM_ERRORS.AUTH_FAILED, FM_ERRORS.SESSION_INVALID) || !(err instanceof FileMakerError))
      return { check, result: 'fail', detail: describeError(err) };
    firstError = err;
  }
  try {
    const valid = await deps.fm.validateSession();
    if (valid) return { check, result: 'ok', detail: 'Data API session token accepted' };
    const why =
      firstError === undefined ? 'the session token was refused right after login' : describeError(firstError);
    return { check, result: 'fail', detail: why };
  } catch (err) {
    return { check, result: 'fail', detail: `validateSession: ${describeError(err)}` };
  }
}

/** The pre-flight's own check: every field each mapper reads is on its layout. */
async function checkLayouts(fm: FileMakerClient, tables: readonly SourceTable[]): Promise<DoctorCheck> {
  const problems: string[] = [];
  let fields = 0;
  for (const t of tables) {
    fields += t.requiredFields.length;
    try {
      const absent = await missingFields(fm, t);
      if (absent.length) problems.push(`${t.layout} lacks ${absent.join(', ')}`);
    } catch (err) {
      problems.push(`${t.layout}: ${isCode(err, FM_ERRORS.LAYOUT_MISSING) ? 'no such layout' : describeError(err)}`);
    }
  }
  return problems.length
    ? { check: 'layouts and fields (Data API)', result: 'fail', detail: problems.join('; ') }
    : {
        check: 'layouts and fields (Data API)',
        result: 'ok',
        detail: `${tables.length} layouts, all ${n(fields)} fields the mappers read`,
      };
}

/** Every table's `$count`, and its first row with every non-container field the mappers read `$select`ed. */
async function checkODataTables(
  fm: FileMakerClient,
  tables: readonly SourceTable[],
): Promise<{ check: DoctorCheck; counts: Map<SourceTableName, number> }> {
  const counts = new Map<SourceTableName, number>();
  const problems: string[] = [];
  let selected = 0;
  for (const t of tables) {
    const fields = t.requiredFields.filter((f) => f !== t.idField && !t.containerFields.includes(f));
    try {
      counts.set(t.name, await fm.count(t.odataTable));
      for await (const entry of fm.manifest(t.odataTable, { idField: t.idField, pageSize: 1, fields })) {
        void entry; // one row proves the names; its values are not looked at
        break;
      }
      selected += fields.length + 1;
    } catch (err) {
      problems.push(`${t.odataTable}: ${describeError(err)}`);
    }
  }
  const records = [...counts.values()].reduce((a, b) => a + b, 0);
  const check: DoctorCheck = problems.length
    ? { check: 'tables (OData)', result: 'fail', detail: problems.join('; ') }
    : {
        check: 'tables (OData)',
        result: 'ok',
        detail: `${tables.length} tables, ${n(records)} records; ${n(selected)} field names $selected`,
        choice: 'OData names: quoted where Claris requires',
      };
  return { check, counts };
}

/**
 * One table's whole manifest in small pages against its `$count` (taken before and after): the smallest table with
 * at least two records, so the pages are few but more than one.
 */
async function checkPaging(
  fm: FileMakerClient,
  tables: readonly SourceTable[],
  counts: ReadonlyMap<SourceTableName, number>,
): Promise<DoctorCheck> {
  const check = 'manifest paging';
  const table = tables
    .filter((t) => (counts.get(t.name) ?? 0) >= 2)
    .sort((a, b) => (counts.get(a.name) ?? 0) - (counts.get(b.name) ?? 0))[0];
  if (table === undefined) return { check, result: 'warn', detail: 'no table with two records to page through' };
  try {
    const before = await fm.count(table.odataTable);
    const pageSize = Math.min(PAGING_MAX_PAGE, Math.max(1, Math.ceil(before / PAGING_PAGES)));
    const rowIds: string[] = [];
    let entries = 0;
    for await (const e of fm.manifest(table.odataTable, { idField: table.idField, pageSize })) {
      entries++;
      if (e.rowId !== undefined) rowIds.push(e.rowId);
    }
    const after = await fm.count(table.odataTable);
    const byRowId = rowIds.length === entries;
    const ascending = rowIds.every((r, i) => i === 0 || Number(r) > Number(rowIds[i - 1]));
    const detail =
      `${table.odataTable}: ${n(entries)} rows in pages of ${n(pageSize)}, $count ${n(before)}` +
      (after !== before ? ` then ${n(after)}` : '');
    const choice = byRowId ? 'manifest: ROWID key paging' : 'manifest: id key paging (the server gives no ROWID)';
    if (before === after && entries < before)
      return { check, result: 'fail', detail: `${detail}: ${n(before - entries)} records not seen`, choice };
    if (before !== after || entries !== before)
      return { check, result: 'warn', detail: `${detail}: the table changed while it was read`, choice };
    if (byRowId && !ascending) return { check, result: 'warn', detail: `${detail}: ROWIDs out of order`, choice };
    return { check, result: byRowId ? 'ok' : 'warn', detail, choice };
  } catch (err) {
    return { check, result: 'fail', detail: `${table.odataTable}: ${describeError(err)}` };
  }
}

/** The first records of each files table, as the engine reads them (Data API `_find`, default date formats). */
async function sampleFileRecords(fm: FileMakerClient, tables: readonly SourceTable[]): Promise<TableSample[]> {
  const out: TableSample[] = [];
  for (const table of tables.filter((t) => t.containerFields.length > 0)) {
    try {
      out.push(await sampleTable(fm, table));
    } catch {
      // The layout and table checks have reported what is wrong with this table.
      out.push({ table, records: [], withFile: [] });
    }
  }
  return out;
}

const described = (d: ContainerRead) => `${n(d.size)} bytes ${d.contentType ?? 'without a type'}`;

function describeValue(odata: Extract<TableProbe, { outcome: 'unusable' }>['odata']): string {
  if (odata === 'empty') return 'empty (204)';
  if (odata === 'too-large') return `more than ${formatBytes(SAMPLE_MAX_BYTES)}`;
  if (odata instanceof FileMakerError)
    return odata.code === FM_ERRORS.CONTAINER_SUSPECT ? 'an answer that cannot be the container' : describeError(odata);
  return described(odata);
}

/**
 * The pre-flight's own container probe (../activities/container-probe.ts), read-only: the same samples, size cap and
 * verdict, without the transfer-log reservation. The row names the path a run will take and why, with the reason
 * code its report will carry.
 */
async function checkContainers(deps: DoctorDeps, samples: readonly TableSample[]): Promise<DoctorCheck> {
  const check = 'sample container';
  const configured = deps.filemaker.containerApi === 'dataapi';
  const skipped = 'containers: Data API (FM_CONTAINER_API=dataapi: no probe)';
  let probe: ContainerProbeResult;
  try {
    probe = await probeContainers(deps.fm, samples);
  } catch (err) {
    return { check, result: 'fail', detail: `the pre-flight's probe would fail: ${describeError(err)}` };
  }
  const parts = probe.tables.map((t) => {
    if (t.outcome === 'not-probed') return `${t.table}: not probed (${t.passedOver.join('; ')})`;
    const where = `${t.table}.${t.field}`;
    if (t.outcome === 'usable')
      return (
        `${where}: ${described(t.dataApi)}, SHA-256 ${t.dataApi.sha256.slice(0, 12)}… ` +
        'equal through OData $value and the Data API'
      );
    return `${where}: OData $value gave ${describeValue(t.odata)}, the Data API ${described(t.dataApi)}`;
  });
  const detail = parts.join('; ');
  if (probe.path === 'dataapi') {
    return {
      check,
      result: 'warn',
      detail:
        `${detail}: $value unusable (${probe.reason})` +
        (configured
          ? ''
          : "; a run's pre-flight finds the same and reads every container through the Data API " +
            '(FM_CONTAINER_API=dataapi skips that probe)'),
      choice: configured ? skipped : 'containers: Data API',
    };
  }
  if (probe.reason === CONTAINER_PATH_REASONS.PROBED)
    return { check, result: 'ok', detail, choice: configured ? skipped : 'containers: OData $value' };
  return {
    check,
    result: 'warn',
    detail:
      `${detail}: no sample told` +
      (configured ? '' : '; a run reads $value and reads each answer that cannot be the container again'),
    choice: configured ? skipped : 'containers: OData $value (not probed)',
  };
}

type DateShape = 'US MM/dd/yyyy' | 'ISO yyyy-MM-dd' | 'another format';

function dateShape(v: string): DateShape {
  if (/^\d{1,2}\/\d{1,2}\/\d{4}(?!\d)/.test(v)) return 'US MM/dd/yyyy';
  if (/^\d{4}-\d{2}-\d{2}(?!\d)/.test(v)) return 'ISO yyyy-MM-dd';
  return 'another format';
}

/** A record's date or timestamp field that the mappers read, and its value as the engine reads it. */
interface DatedValue {
  readonly table: SourceTable;
  readonly field: string;
  readonly id: string;
  readonly value: string;
}

/** The first table whose layout types a mapper's field as a date or timestamp, with a record that has one. */
async function findDatedValue(fm: FileMakerClient, tables: readonly SourceTable[]): Promise<DatedValue | undefined> {
  for (const table of tables) {
    try {
      const meta = await fm.layoutMetadata(table.layout);
      const fields = meta.fields
        .filter((f) => (f.result === 'date' || f.result === 'timeStamp') && table.requiredFields.includes(f.name))
        .map((f) => f.name);
      if (fields.length === 0) continue;
      for (const record of await firstRecords(fm, table)) {
        for (const field of fields) {
          const value = record.fieldData[field];
          const id = record.fieldData[table.idField];
          if (typeof value === 'string' && value !== '' && (typeof id === 'string' || typeof id === 'number'))
            return { table, field, id: String(id), value };
        }
      }
    } catch {
      // The layout and table checks report what is wrong with this table.
    }
  }
  return undefined;
}

/**
 * The Data API's date format as productInfo states it and as a date field shows it (the engine sends no
 * `dateformats`, so records come in the server's default), and whether `dateformats=2` gives ISO 8601 (FileMaker
 * Server 19.6.1+).
 */
async function checkDates(
  fm: FileMakerClient,
  info: ProductInfo,
  tables: readonly SourceTable[],
): Promise<DoctorCheck> {
  const check = 'dates (Data API)';
  const stated = typeof info === 'string' ? info : typeof info['dateFormat'] === 'string' ? info['dateFormat'] : '?';
  const dated = await findDatedValue(fm, tables);
  if (dated === undefined) {
    return { check, result: 'warn', detail: `productInfo: ${stated}; no date field with a value to confirm it` };
  }
  const shape = dateShape(dated.value);
  let iso: string;
  try {
    const [again] = await fm.findByIds(dated.table.layout, dated.table.idField, [dated.id], { dateFormats: 2 });
    const v = again?.fieldData[dated.field];
    iso =
      typeof v === 'string' && dateShape(v) === 'ISO yyyy-MM-dd'
        ? 'dateformats=2 answers ISO 8601'
        : 'dateformats=2 does not answer ISO (a server before 19.6.1)';
  } catch (err) {
    iso = `dateformats=2: ${describeError(err)}`;
  }
  const detail = `productInfo: ${stated}; ${dated.table.layout}.${dated.field} answers ${shape}; ${iso}`;
  if (shape === 'another format') return { check, result: 'fail', detail, choice: 'dates: unreadable' };
  return {
    check,
    result: 'ok',
    detail,
    choice:
      shape === 'ISO yyyy-MM-dd'
        ? 'dates: ISO 8601 as the server sends them'
        : 'dates: US (dateformats=0), an ambiguous date read month first',
  };
}

/** The budget against what the transfer log counts for this year (read-only) and FM_TRANSFER_USED. */
async function checkBudget(deps: DoctorDeps): Promise<{ check: DoctorCheck; leftBytes: number }> {
  const check = 'transfer budget';
  const { transferBudgetBytes: budget, transferUsedBytes: before } = deps.filemaker;
  let logged: number | string;
  if (deps.pool === undefined) logged = 'DATABASE_URL unset';
  else {
    try {
      logged = await transferUsedThisYear(deps.pool);
    } catch (err) {
      logged = `PostgreSQL unreachable or not migrated (${describeError(err)})`;
    }
  }
  const used = (typeof logged === 'number' ? logged : 0) + before;
  const left = budget - used;
  const spent =
    typeof logged === 'number'
      ? `${formatBytes(logged)} by fm-reimport this year + ${formatBytes(before)} FM_TRANSFER_USED`
      : `${logged}: only FM_TRANSFER_USED (${formatBytes(before)}) counted`;
  const detail = `FM_TRANSFER_BUDGET ${formatBytes(budget)}; spent ${spent}; left ${formatBytes(Math.max(0, left))}`;
  const choice = `budget left: ${formatBytes(Math.max(0, left))}`;
  if (left <= 0)
    return { check: { check, result: 'warn', detail: `${detail}: downloads will pause`, choice }, leftBytes: left };
  return { check: { check, result: typeof logged === 'number' ? 'ok' : 'warn', detail, choice }, leftBytes: left };
}

/**
 * Bytes a full run would download, from the sample: records × the share of the sample with a file × the average file
 * size (the ledger's, else the clinic's reported one). An upper bound: files already stored are relinked for
 * nothing, which the dry run's estimate counts by reading every record and HEADing every object.
 */
async function checkEstimate(
  deps: DoctorDeps,
  counts: ReadonlyMap<SourceTableName, number>,
  samples: readonly TableSample[],
  leftBytes: number,
): Promise<DoctorCheck> {
  const check = 'full-run estimate';
  let total = 0;
  const parts: string[] = [];
  for (const s of samples) {
    const records = counts.get(s.table.name) ?? 0;
    const share = s.records.length > 0 ? s.withFile.length / s.records.length : 1;
    let average = { bytes: DEFAULT_FILE_BYTES[s.table.name] ?? 0, from: 'reported' as 'ledger' | 'reported' };
    if (deps.pool !== undefined) average = await averageFileBytes(deps.pool, s.table.name).catch(() => average);
    const bytes = Math.round(records * share * average.bytes);
    total += bytes;
    parts.push(
      `${s.table.name} ${n(records)} × ${Math.round(share * 100)}% with a file × ${formatBytes(average.bytes)} ` +
        `(${average.from} average)`,
    );
  }
  const detail = `${formatBytes(total)} at most: ${parts.join(' + ')}; sampled ${SAMPLE_RECORDS} records a table`;
  const choice = 'estimate: sample-based (a dry run gives the exact figure)';
  if (total > leftBytes)
    return { check, result: 'warn', detail: `${detail}; more than the budget left: the run will pause`, choice };
  return { check, result: 'ok', detail, choice };
}

/** The capability table, for a terminal: check, result, the choice it implies, detail. */
export function formatDoctor(report: DoctorReport): string {
  const rows = [
    ['check', 'result', 'choice', 'detail'],
    ...report.checks.map((c) => [c.check, c.result, c.choice ?? '', c.detail]),
  ];
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i < widths.length ? c.padEnd(widths[i]!) : c))
      .join('  ')
      .trimEnd();
  const lines = rows.map(line);
  lines.splice(1, 0, line([...widths.map((w) => '-'.repeat(w)), '------']));
  lines.push(
    '',
    `${report.ok ? 'ready: a run can start' : 'not ready: fix the failed checks first'} ` +
      `(doctor sent ${n(report.requests)} requests and received ${formatBytes(report.bytesReceived)}; it wrote nothing)`,
  );
  return lines.join('\n');
}
