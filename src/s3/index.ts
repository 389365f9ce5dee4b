/**
 * The S3 layer: a client from configuration and the operations the phases use, each taking that client.
 */
export { createS3Client } from './client';
export { contentDisposition, offeredFilename, asciiFallback } from './content-disposition';
export * from './objects';
export * from './upload';
