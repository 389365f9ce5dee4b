/**
 * The files phases' activities (documents and images, from FileMaker or from a bulk export) and the per-process
 * resources they share. See ./batch.ts for what happens to one file.
 */
export { FILE_TABLES, hasContainer, importFileBatch } from './batch';
export { importExportBatch } from './export';
export { createFileResources, type FileResources } from './resources';
