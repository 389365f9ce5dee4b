/**
 * Local error classes. Each has a fixed `name`, a stable machine-readable `code` (from src/error-codes.ts) and a
 * default message.
 * Workflows never branch on these classes (they do not survive bundling): activities convert them into
 * `ApplicationFailure`s whose `type` is the `code` (see `toFailure` in src/activities/index.ts).
 */
import { ERROR_CODES, FM_ERRORS } from './error-codes';

export abstract class FmReimportError extends Error {
  abstract readonly code: string;
  /** Whether retrying the same operation can succeed. */
  readonly retryable: boolean = false;
}

/**
 * A class of error that carries one fixed code and a default message, and is never retryable. The classes below differ
 * only in those three facts; `instanceof` tells them apart.
 */
function codedError(name: string, code: string, defaultMessage: string) {
  return class extends FmReimportError {
    override readonly name = name;
    readonly code = code;
    constructor(message = defaultMessage) {
      super(message);
    }
  };
}

/** Thrown at start-up when an environment variable is missing or malformed. */
export class ConfigError extends codedError('ConfigError', ERROR_CODES.CONFIG_INVALID, 'configuration is invalid') {}

/** Thrown when FileMaker answers with an error code or an HTTP status that is not success. */
export class FileMakerError extends FmReimportError {
  override readonly name: string = 'FileMakerError';
  readonly code: string;
  override readonly retryable: boolean;
  constructor(
    message: string,
    readonly fmCode: string | undefined,
    readonly httpStatus: number | undefined,
    opts: { code?: string; retryable?: boolean } = {},
  ) {
    super(message);
    this.code = opts.code ?? FM_ERRORS.OTHER;
    this.retryable = opts.retryable ?? false;
  }
}

/** Thrown when FileMaker is overloaded (HTTP 502/503, code 812/956): the workflow cools down and retries. */
export class FileMakerOverloadedError extends FileMakerError {
  override readonly name = 'FileMakerOverloadedError';
  constructor(message: string, fmCode: string | undefined, httpStatus: number | undefined) {
    super(message, fmCode, httpStatus, { code: ERROR_CODES.FILEMAKER_OVERLOADED, retryable: true });
  }
}

/** Thrown when FileMaker's annual outbound transfer quota is spent (code 953) or our budget would be exceeded. */
export class TransferQuotaError extends codedError(
  'TransferQuotaError',
  ERROR_CODES.TRANSFER_QUOTA_EXCEEDED,
  'FileMaker transfer quota exhausted',
) {}

/** Thrown when the database schema version is not one this build knows. */
export class SchemaVersionError extends codedError(
  'SchemaVersionError',
  ERROR_CODES.SCHEMA_VERSION_UNKNOWN,
  'database schema version is not supported',
) {}

/** Thrown when a stored checksum or size does not match what was written or read back. */
export class IntegrityError extends codedError(
  'IntegrityError',
  ERROR_CODES.INTEGRITY_MISMATCH,
  'integrity check failed',
) {}

/** Thrown when the manifest of a source table cannot be trusted (count mismatch, duplicate ids). */
export class ManifestError extends codedError(
  'ManifestError',
  ERROR_CODES.MANIFEST_INCONSISTENT,
  'source manifest is inconsistent',
) {}

/** Thrown when an incremental run cannot start: no completed run to build on, or one it cannot build on. */
export class IncrementalRefusedError extends codedError(
  'IncrementalRefusedError',
  ERROR_CODES.INCREMENTAL_REFUSED,
  'an incremental run cannot start: run a full reimport',
) {}

// 5xx and these are worth another attempt (src/s3/wire.ts retries them, and so does the activity).
const RETRYABLE_S3_CODES = new Set(['SlowDown', 'RequestTimeout', 'BadDigest']);

/**
 * Thrown when S3 refuses a request or cannot be reached (after the SDK-like retries of src/s3/wire.ts). `code` is
 * S3's own error code (`AccessDenied`, `NoSuchBucket`, ...), `HTTP_<status>` when it gave none, or `S3_UNREACHABLE`.
 */
export class S3RequestError extends FmReimportError {
  override readonly name = 'S3RequestError';
  override readonly retryable: boolean;
  constructor(
    message: string,
    readonly code: string,
    readonly httpStatus: number | undefined,
  ) {
    super(message);
    this.retryable = httpStatus === undefined || httpStatus >= 500 || RETRYABLE_S3_CODES.has(code);
  }
}
