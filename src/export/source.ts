/**
 * The clinic's one-off FileMaker Pro image export as a source for the images phase: a folder (or S3 prefix) of
 * `{recid}.{ext}` files and one metadata CSV (`recid, id_Contact, date, Type`, UTF-8 with a BOM).
 *
 * Opening reads the CSV once (streamed; only the recids are kept) so duplicate recids and orphan files are known
 * before the first row; `rows()` streams it again, pinned to the version that was listed. File contents are only
 * read by `open()`.
 */
import type { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { folderBackend, s3Backend, type Backend, type PinnedFile } from './backends';
import { CsvTokenizer, type CsvRecord } from './csv';
import { ExportSourceError } from './errors';
import { indexFiles, isRecid, type ExportFile } from './files';
import { exportLocationSchema, type ExportLocation, type ExportLocationInput } from './location';

/** The CSV columns, as raw strings ('' when a malformed row lacks the cell). */
export interface ExportFields {
  recid: string;
  id_Contact: string;
  date: string;
  Type: string;
}

export type ExportFindingCode =
  /** Several `{recid}.*` files: one was chosen (see `compareCandidates`), the others are named in the message. */
  | 'EXPORT_FILE_AMBIGUOUS'
  /** The chosen file has 0 bytes. */
  | 'EXPORT_FILE_EMPTY'
  /** The recid is on more than one CSV row; every such row carries this finding. */
  | 'EXPORT_RECID_DUPLICATE';

export interface ExportFinding {
  code: ExportFindingCode;
  /** Names files and counts only, never cell values. */
  message: string;
}

export interface ExportRow {
  /** Line of the CSV the row starts on (1 is the header). */
  line: number;
  /** The canonical recid when valid, else the raw `recid` cell ('' when absent). */
  recid: string;
  fields: ExportFields;
  /** The `{recid}.{ext}` file for this row; absent when FileMaker Pro exported no bytes for it. */
  file?: ExportFile;
  findings: ExportFinding[];
  /** Set when the row cannot be trusted: import nothing for it and record the reason. */
  malformed?: { code: 'EXPORT_ROW_MALFORMED'; reason: string };
}

export interface ExportStats {
  /** CSV rows after the header, malformed ones included. */
  rows: number;
  malformedRows: number;
  /** Files listed next to the CSV (the CSV itself not counted). */
  files: number;
  /** Rows with a file. */
  rowsWithFile: number;
  orphans: number;
}

export interface ExportSource {
  readonly location: ExportLocation;
  readonly csv: { name: string; size: number };
  readonly stats: ExportStats;
  /** The CSV rows in file order; a bad row comes out `malformed`, it never ends the stream. */
  rows(): AsyncIterable<ExportRow>;
  /** The bytes of a listed file, streamed; refuses names not in the listing and files changed since. */
  open(file: ExportFile): Promise<Readable>;
  /** Listed files no CSV row refers to (including names that are not `{recid}.{ext}`), sorted. */
  orphans(): string[];
}

export interface ExportSourceOptions {
  /** Required for an S3 location. */
  s3?: S3Client;
  /** Largest CSV accepted (default 64 MiB; the clinic's 6,664 rows are well under 1 MiB). */
  maxCsvBytes?: number;
  /** Longest CSV row in characters (default 64 Ki). */
  maxRowChars?: number;
}

export const DEFAULT_MAX_CSV_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_ROW_CHARS = 64 * 1024;

const COLUMNS = ['recid', 'id_Contact', 'date', 'Type'] as const;
type Column = (typeof COLUMNS)[number];

interface Header {
  width: number;
  index: Record<Column, number>;
}

function headerError(where: string, detail: string): ExportSourceError {
  return new ExportSourceError('CSV_HEADER_INVALID', `the export CSV header (${where}) ${detail}`);
}

/** Column positions by name: header names trimmed and matched case-insensitively; `recid` and `RECID` is ambiguous. */
export function readHeader(record: CsvRecord | undefined, where: string): Header {
  if (!record) throw headerError(where, 'is missing: the CSV is empty');
  if (record.error) throw headerError(where, `cannot be read: ${record.error}`);
  const names = record.cells.map((c) => c.trim());
  const index = {} as Record<Column, number>;
  const missing: string[] = [];
  for (const col of COLUMNS) {
    const hits = names.flatMap((n, i) => (n.toLowerCase() === col.toLowerCase() ? [i] : []));
    if (hits.length > 1) throw headerError(where, `has the column ${col} ${hits.length} times`);
    if (hits[0] === undefined) missing.push(col);
    else index[col] = hits[0];
  }
  if (missing.length > 0) throw headerError(where, `lacks the column(s) ${missing.join(', ')}`);
  return { width: names.length, index };
}

type ParsedRow = Omit<ExportRow, 'file' | 'findings'>;

export function parseRow(record: CsvRecord, header: Header): ParsedRow {
  const cell = (col: Column) => record.cells[header.index[col]] ?? '';
  const fields: ExportFields = {
    recid: cell('recid'),
    id_Contact: cell('id_Contact'),
    date: cell('date'),
    Type: cell('Type'),
  };
  const reason =
    record.error ??
    (record.cells.length !== header.width
      ? `expected ${header.width} cells, found ${record.cells.length}`
      : fields.recid === ''
        ? 'recid is empty'
        : !isRecid(fields.recid)
          ? 'recid is not a positive integer'
          : undefined);
  const row: ParsedRow = { line: record.line, recid: fields.recid, fields };
  if (reason !== undefined) row.malformed = { code: 'EXPORT_ROW_MALFORMED', reason };
  return row;
}

async function* csvRecords(
  body: Readable,
  where: string,
  maxBytes: number,
  maxRecordChars: number,
): AsyncGenerator<CsvRecord> {
  // fatal: a CSV in another encoding (FileMaker Pro offers several) would silently garble every Type and date.
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const tokenizer = new CsvTokenizer({ maxRecordChars });
  const decode = (chunk?: Buffer): string => {
    try {
      return chunk ? decoder.decode(chunk, { stream: true }) : decoder.decode();
    } catch {
      throw new ExportSourceError('CSV_ENCODING', `the export CSV (${where}) is not UTF-8`);
    }
  };
  let bytes = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (bytes > maxBytes) throw tooLarge(where, maxBytes);
    yield* tokenizer.push(decode(chunk));
  }
  yield* tokenizer.push(decode());
  yield* tokenizer.end();
}

function tooLarge(where: string, maxBytes: number): ExportSourceError {
  return new ExportSourceError('CSV_TOO_LARGE', `the export CSV (${where}) is larger than ${maxBytes} bytes`);
}

/** Rows of the CSV after its header, parsed. */
async function* parsedRows(records: AsyncIterable<CsvRecord>, where: string): AsyncGenerator<ParsedRow> {
  let header: Header | undefined;
  for await (const record of records) {
    if (!header) header = readHeader(record, where);
    else yield parseRow(record, header);
  }
  if (!header) readHeader(undefined, where);
}

function pickCsv(listing: PinnedFile[], where: string): PinnedFile {
  const csvs = listing.filter((f) => f.name.toLowerCase().endsWith('.csv'));
  if (csvs.length === 0) throw new ExportSourceError('CSV_MISSING', `no *.csv file in the export ${where}`);
  if (csvs.length > 1) {
    const names = csvs.map((f) => f.name).sort();
    const shown = names.slice(0, 5).join(', ') + (names.length > 5 ? ', …' : '');
    throw new ExportSourceError(
      'CSV_AMBIGUOUS',
      `${csvs.length} *.csv files in the export ${where} (${shown}): keep only the metadata CSV`,
    );
  }
  return csvs[0]!;
}

function describeIssues(issues: readonly { path: PropertyKey[]; message: string }[]): string {
  return issues.map((i) => `${i.path.map(String).join('.') || '(location)'}: ${i.message}`).join('; ');
}

/**
 * Lists the export at `location` (names and sizes only), finds its single CSV and reads it once. Throws
 * `ExportSourceError` when the location is invalid or missing, there is no or more than one `*.csv`, the CSV is over
 * the size limit, not UTF-8, has a row over the length limit, or lacks a required column.
 */
export async function openExportSource(
  location: ExportLocationInput,
  opts: ExportSourceOptions = {},
): Promise<ExportSource> {
  const parsed = exportLocationSchema.safeParse(location);
  if (!parsed.success) {
    throw new ExportSourceError('LOCATION_INVALID', `export location: ${describeIssues(parsed.error.issues)}`);
  }
  const loc = parsed.data;
  let backend: Backend;
  if (loc.kind === 'folder') backend = folderBackend(loc);
  else if (opts.s3) backend = s3Backend(opts.s3, loc);
  else throw new ExportSourceError('LOCATION_INVALID', 'an S3 export location needs an S3 client');
  const maxCsvBytes = opts.maxCsvBytes ?? DEFAULT_MAX_CSV_BYTES;
  const maxRowChars = opts.maxRowChars ?? DEFAULT_MAX_ROW_CHARS;
  const where = backend.where;

  const listing = await backend.list();
  const csv = pickCsv(listing, where);
  if (csv.size > maxCsvBytes) throw tooLarge(where, maxCsvBytes);
  const listed = new Map(listing.filter((f) => f !== csv).map((f) => [f.name, f]));
  const { byRecid, unmatched } = indexFiles(listed.values());

  const readRows = async function* (): AsyncGenerator<ParsedRow> {
    yield* parsedRows(csvRecords(await backend.read(csv), where, maxCsvBytes, maxRowChars), where);
  };

  // First pass: which recids the CSV names and how often, so duplicates and orphans are known up front.
  const recidCount = new Map<string, number>();
  let rowCount = 0;
  let malformedRows = 0;
  for await (const row of readRows()) {
    rowCount++;
    if (row.malformed) malformedRows++;
    // A malformed row with a usable recid still claims its file: the file is accounted for, not an orphan.
    if (isRecid(row.recid)) recidCount.set(row.recid, (recidCount.get(row.recid) ?? 0) + 1);
  }

  const orphanNames = [...unmatched];
  let rowsWithFile = 0;
  for (const [recid, files] of byRecid) {
    if (recidCount.has(recid)) rowsWithFile += recidCount.get(recid)!;
    else orphanNames.push(...files.map((f) => f.name));
  }
  orphanNames.sort();

  const findingsFor = (recid: string, candidates: ExportFile[] | undefined): ExportFinding[] => {
    const findings: ExportFinding[] = [];
    const n = recidCount.get(recid) ?? 0;
    if (n > 1) findings.push({ code: 'EXPORT_RECID_DUPLICATE', message: `recid ${recid} is on ${n} rows` });
    const [chosen, ...others] = candidates ?? [];
    if (chosen && others.length > 0) {
      findings.push({
        code: 'EXPORT_FILE_AMBIGUOUS',
        message: `${others.length + 1} files for recid ${recid}: chose ${chosen.name} over ${others.map((f) => f.name).join(', ')}`,
      });
    }
    if (chosen?.size === 0) findings.push({ code: 'EXPORT_FILE_EMPTY', message: `${chosen.name} is empty` });
    return findings;
  };

  return {
    location: loc,
    csv: { name: csv.name, size: csv.size },
    stats: { rows: rowCount, malformedRows, files: listed.size, rowsWithFile, orphans: orphanNames.length },
    async *rows() {
      for await (const row of readRows()) {
        const candidates = isRecid(row.recid) ? byRecid.get(row.recid) : undefined;
        const file = candidates?.[0];
        yield {
          ...row,
          ...(file ? { file: { ...file } } : {}),
          findings: isRecid(row.recid) ? findingsFor(row.recid, candidates) : [],
        };
      }
    },
    async open(file) {
      const pinned = listed.get(file.name);
      if (!pinned)
        throw new ExportSourceError('FILE_UNKNOWN', `a file that is not in the export ${where} was asked for`);
      return backend.read(pinned);
    },
    orphans: () => [...orphanNames],
  };
}
