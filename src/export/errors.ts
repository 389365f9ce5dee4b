/**
 * The export reader's error. Kept next to the reader (src/errors.ts belongs to the core); same shape as the classes
 * there: fixed `name`, stable `code`, and a `problem` that says which check failed.
 */
import { FmReimportError } from '../errors';
import { ERROR_CODES } from '../error-codes';

export type ExportSourceProblem =
  /** The location does not parse (relative path, bad bucket name). */
  | 'LOCATION_INVALID'
  /** The folder or bucket does not exist or is not readable. */
  | 'LOCATION_NOT_FOUND'
  /** No `*.csv` next to the files. */
  | 'CSV_MISSING'
  /** More than one `*.csv`: which one is the metadata is a guess we do not make. */
  | 'CSV_AMBIGUOUS'
  /** The CSV is larger than the limit (a wrong file, or not the export). */
  | 'CSV_TOO_LARGE'
  /** One row is longer than the limit (often an unclosed quote swallowing the rest of the file). */
  | 'CSV_ROW_TOO_LONG'
  /** The header lacks a required column, repeats one, or cannot be read. */
  | 'CSV_HEADER_INVALID'
  /** The bytes are not UTF-8 (FileMaker Pro can export other encodings; this reader only takes UTF-8). */
  | 'CSV_ENCODING'
  /** The CSV or a file changed after the export was opened. */
  | 'SOURCE_CHANGED'
  /** `open()` was given a file that is not in the listing, or a name that is not a plain file name. */
  | 'FILE_UNKNOWN';

/** Thrown when the FileMaker Pro export cannot be read as a whole (bad location, no or several CSVs, limits). */
export class ExportSourceError extends FmReimportError {
  override readonly name = 'ExportSourceError';
  readonly code = ERROR_CODES.EXPORT_SOURCE_INVALID;
  constructor(
    readonly problem: ExportSourceProblem,
    message = 'the FileMaker Pro export cannot be read',
  ) {
    super(message);
  }
}
