/**
 * Every error code of fm-reimport, in one table: the `code` of the errors in src/errors.ts (and the other
 * FmReimportErrors), the `type` of the ApplicationFailures activities throw for them (see toFailure in
 * src/activities/index.ts) and of those the workflows fail with. Workflows branch on these strings, never on error
 * classes. Constants only, no import: the workflow bundle includes this file.
 */

export const ERROR_CODES = {
  /** ConfigError: an environment variable is missing or malformed. */
  CONFIG_INVALID: 'CONFIG_INVALID',
  /** FileMakerOverloadedError (HTTP 502/503/504/429, code 812/956): the workflow cools down and tries again. */
  FILEMAKER_OVERLOADED: 'FILEMAKER_OVERLOADED',
  /** TransferQuotaError: FileMaker's yearly transfer limit (code 953) or the configured budget is spent: a pause. */
  TRANSFER_QUOTA_EXCEEDED: 'TRANSFER_QUOTA_EXCEEDED',
  /** SchemaVersionError: the database schema version is not one this build knows. */
  SCHEMA_VERSION_UNKNOWN: 'SCHEMA_VERSION_UNKNOWN',
  /** IntegrityError: a stored checksum or size does not match what was written or read back. */
  INTEGRITY_MISMATCH: 'INTEGRITY_MISMATCH',
  /** ManifestError: a source table's manifest cannot be trusted (FileMaker counts more records). */
  MANIFEST_INCONSISTENT: 'MANIFEST_INCONSISTENT',
  /** A cut-over saw the source change (records added, edited or deleted); the failure names the records that moved. */
  SOURCE_CHANGED: 'SOURCE_CHANGED',
  /** The pre-flight found the run cannot start as configured (missing fields, unusable container paths). */
  PREFLIGHT_FAILED: 'PREFLIGHT_FAILED',
  /** S3RequestError when S3 could not be reached at all (otherwise its code is S3's own, or `HTTP_<status>`). */
  S3_UNREACHABLE: 'S3_UNREACHABLE',
  /** PayloadKeyUnknownError: a payload names a key id the configured key set does not hold. */
  PAYLOAD_KEY_UNKNOWN: 'PAYLOAD_KEY_UNKNOWN',
  /** PayloadDecryptError: an encrypted payload is malformed or fails authentication. */
  PAYLOAD_DECRYPT_FAILED: 'PAYLOAD_DECRYPT_FAILED',
  /** InvalidNotifyEventError: a notification event has invalid fields. */
  NOTIFY_EVENT_INVALID: 'NOTIFY_EVENT_INVALID',
  /** NotificationNotDeliveredError: a message did not reach every configured channel. */
  NOTIFICATION_NOT_DELIVERED: 'NOTIFICATION_NOT_DELIVERED',
  /** ExportSourceError: the FileMaker Pro export cannot be read as a whole. */
  EXPORT_SOURCE_INVALID: 'EXPORT_SOURCE_INVALID',
  /**
   * IncrementalRefusedError: an incremental run cannot start (no completed run to build on, the schema changed since,
   * or a later run failed without a complete rollback); a full run can.
   */
  INCREMENTAL_REFUSED: 'INCREMENTAL_REFUSED',
  /** A workflow's input does not have its shape. */
  INVALID_INPUT: 'INVALID_INPUT',
  /** A table's ledger or objects do not balance against its manifest after its phase. */
  RECONCILIATION_FAILED: 'RECONCILIATION_FAILED',
  /** The run's last check found a table with records not terminal, or objects that do not match the ledger. */
  VALIDATION_FAILED: 'VALIDATION_FAILED',
  /** A rollback's restored tables do not have the fingerprints of the snapshot. */
  RESTORE_FAILED: 'RESTORE_FAILED',
  /** A compensation failed: the run could not be rolled back completely. */
  ROLLBACK_FAILED: 'ROLLBACK_FAILED',
  /** The run failed and was rolled back; the message names the phase and the cause. */
  RUN_ROLLED_BACK: 'RUN_ROLLED_BACK',
  /** In a run's report: the failure was a cancellation. */
  CANCELLED: 'CANCELLED',
  /** In a run's report: an ApplicationFailure whose type is not a code. */
  APPLICATION_ERROR: 'APPLICATION_ERROR',
  /** In a run's report: a failure with no ApplicationFailure or cancellation at its root. */
  UNKNOWN_FAILURE: 'UNKNOWN_FAILURE',
} as const;

export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

/** The `code` values of the FileMakerErrors this client throws (workflows see them as ApplicationFailure types). */
export const FM_ERRORS = {
  /** Not JSON where JSON was due (an HTML page from the web server in front of FileMaker), or a broken envelope. */
  BAD_RESPONSE: 'FILEMAKER_BAD_RESPONSE',
  /** 952/401 again right after a fresh login and one retry. */
  SESSION_INVALID: 'FILEMAKER_SESSION_INVALID',
  /** 212 or 10 at login: wrong account or password; retrying will not help. */
  AUTH_FAILED: 'FILEMAKER_AUTH_FAILED',
  /** 101 (Data API) or -1023 (OData): the record does not exist. */
  RECORD_MISSING: 'FILEMAKER_RECORD_MISSING',
  /** 105: the layout does not exist (names are case-sensitive). */
  LAYOUT_MISSING: 'FILEMAKER_LAYOUT_MISSING',
  /** 102 (Data API) or 8309 (OData): a field is not on the layout / in the table. */
  FIELD_MISSING: 'FILEMAKER_FIELD_MISSING',
  /** 306: the record changed since it was read; re-read it before writing. */
  MODID_MISMATCH: 'FILEMAKER_MODID_MISMATCH',
  /** 958/960/-1002: the request itself is wrong (a bug here, not a transient state). */
  BAD_REQUEST: 'FILEMAKER_BAD_REQUEST',
  /** 802: the database file is closed or cannot be opened (maintenance); may come back. */
  FILE_UNAVAILABLE: 'FILEMAKER_FILE_UNAVAILABLE',
  /** Connection refused/reset, DNS, socket closed mid-answer. */
  UNREACHABLE: 'FILEMAKER_UNREACHABLE',
  /** No headers or no body bytes within the request timeout. */
  TIMEOUT: 'FILEMAKER_TIMEOUT',
  /** The server's certificate was not accepted (verification is always on). */
  TLS: 'FILEMAKER_TLS',
  /** A container URL answered 401 even after a fresh cookie handshake: read the record again for a new URL. */
  CONTAINER_URL_STALE: 'CONTAINER_URL_STALE',
  /** A container body ended before its Content-Length. */
  CONTAINER_TRUNCATED: 'FILEMAKER_CONTAINER_TRUNCATED',
  /**
   * A 2xx container answer that cannot be the container (text where a file was due, an empty 200, a size that is not
   * its Content-Length): OData's `$value` answering the filename or nothing. Read the file through the Data API.
   */
  CONTAINER_SUSPECT: 'FILEMAKER_CONTAINER_SUSPECT',
  /** Any other FileMaker error code or HTTP status. */
  OTHER: 'FILEMAKER_ERROR',
} as const;

export type FileMakerErrorCode = (typeof FM_ERRORS)[keyof typeof FM_ERRORS];
