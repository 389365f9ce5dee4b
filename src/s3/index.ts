/**
 * The S3 layer: a client from configuration and the operations the phases use, bound to that client.
 */
import type { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Config } from '../config';
import { createS3Client } from './client';
import {
  deleteObjects,
  headObject,
  inventory,
  type DeleteResult,
  type InventoryItem,
  type ObjectInfo,
} from './objects';
import { uploadStream, type UploadStreamOptions, type UploadStreamResult } from './upload';

export { createS3Client } from './client';
export { contentDisposition, cleanFilename, asciiFallback } from './content-disposition';
export * from './objects';
export * from './upload';

export interface S3Store {
  readonly client: S3Client;
  uploadStream(opts: UploadStreamOptions & { body: Readable }): Promise<UploadStreamResult>;
  headObject(bucket: string, key: string): Promise<ObjectInfo | undefined>;
  deleteObjects(bucket: string, keys: readonly string[]): Promise<DeleteResult>;
  inventory(bucket: string, prefix?: string): AsyncGenerator<InventoryItem>;
  destroy(): void;
}

/** Binds the operations to an existing client (tests pass the stack's client). */
export function s3Store(client: S3Client): S3Store {
  return {
    client,
    uploadStream: (opts) => uploadStream(client, opts),
    headObject: (bucket, key) => headObject(client, bucket, key),
    deleteObjects: (bucket, keys) => deleteObjects(client, bucket, keys),
    inventory: (bucket, prefix) => inventory(client, bucket, prefix),
    destroy: () => client.destroy(),
  };
}

/** `createS3(config.s3)`: a client with TLS from configuration and the operations bound to it. */
export function createS3(config: Config['s3']): S3Store {
  return s3Store(createS3Client(config));
}
