/** The FileMaker client for activities; see client.ts for the guarantees it gives. */
export {
  createFileMakerClient,
  sessionCookie,
  type ContainerDownload,
  type DownloadOptions,
  type FileMakerClient,
  type FileMakerClientOptions,
  type FileMakerStats,
  type FindOptions,
  type LayoutField,
  type LayoutMetadata,
  type ManifestEntry,
  type ManifestOptions,
  type RecordContainerDownload,
  type RequestKind,
} from './client';
export {
  FM_ERRORS,
  isFileMakerError,
  type FileMakerErrorCode,
  type FileMakerRecord,
  type PortalDataInfo,
} from './responses';
export {
  createTokenCache,
  jwtExpiry,
  tokenFromCommand,
  type ClarisIdTokenSource,
  type TokenCacheOptions,
} from './claris-id';
export { parseContentDisposition, type ContentDisposition } from './content-disposition';
export { Semaphore } from './semaphore';
