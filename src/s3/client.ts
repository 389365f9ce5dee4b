/**
 * The S3 client from configuration. TLS verification against S3_CA_FILE comes from src/tls.ts; path-style is the
 * default because MinIO and most self-hosted S3 need it.
 */
import { S3Client } from '@aws-sdk/client-s3';
import type { Config } from '../config';
import { s3RequestHandler } from '../tls';
import { S3Wire } from './wire';

export function createS3Client(s3: Config['s3']): S3Client {
  const requestHandler = s3RequestHandler({ caFile: s3.caFile, connectionTimeoutMs: 10_000 });
  const client = new S3Client({
    region: s3.region,
    forcePathStyle: s3.forcePathStyle,
    ...(s3.endpoint ? { endpoint: s3.endpoint } : {}),
    ...(s3.accessKeyId && s3.secretAccessKey
      ? { credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } }
      : {}),
    ...(requestHandler ? { requestHandler } : {}),
    // Checksums only where asked for: uploads ask for SHA-256 explicitly (src/s3/upload.ts).
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 5,
  });
  S3Wire.trustFor(client, s3.caFile);
  return client;
}
