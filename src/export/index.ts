/**
 * Reader for the clinic's one-off FileMaker Pro image export (folder or S3 prefix of `{recid}.{ext}` files plus a
 * metadata CSV), so the images phase can import images without spending the FileMaker transfer quota.
 * Workflows import `./location` only (pure zod); everything here does I/O.
 */
export {
  openExportSource,
  DEFAULT_MAX_CSV_BYTES,
  DEFAULT_MAX_ROW_CHARS,
  type ExportFields,
  type ExportFinding,
  type ExportFindingCode,
  type ExportRow,
  type ExportSource,
  type ExportSourceOptions,
  type ExportStats,
} from './source';
export { exportLocationSchema, describeLocation, type ExportLocation, type ExportLocationInput } from './location';
export { ExportSourceError, type ExportSourceProblem } from './errors';
export { isRecid, parseExportFileName, compareCandidates, type ExportFile } from './files';
export { CsvTokenizer, type CsvRecord } from './csv';
