/**
 * Where the clinic's one-off FileMaker Pro image export lives: a folder the worker can read, or a prefix in S3.
 * Carried in the workflow input, so this module is pure zod (workflows import it; no Node built-ins).
 */
import { z } from 'zod';

/** `/abs/path` or `C:\abs\path`: a relative path would be resolved against the worker's directory, not the operator's. */
const absolutePath = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => !p.includes('\0'), { message: 'path contains a NUL character' })
  .refine((p) => p.startsWith('/') || /^[A-Za-z]:[\\/]/.test(p), { message: 'expected an absolute path' });

const bucketName = z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, { message: 'expected an S3 bucket name' });

/** A key prefix: '' (the whole bucket) or folder-like; a trailing `/` is added when missing. */
const keyPrefix = z
  .string()
  .max(900)
  .refine((p) => !p.startsWith('/'), { message: 'an S3 prefix does not start with /' })
  .refine((p) => !/[\u0000-\u001f\u007f]/.test(p), { message: 'prefix contains a control character' })
  .transform((p) => (p === '' || p.endsWith('/') ? p : `${p}/`));

export const exportLocationSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('folder'), path: absolutePath }).strict(),
  z.object({ kind: z.literal('s3'), bucket: bucketName, prefix: keyPrefix.default('') }).strict(),
]);

/** What a caller writes (the S3 prefix may omit its trailing `/`, or be left out). */
export type ExportLocationInput = z.input<typeof exportLocationSchema>;

/** `{ kind: 'folder'; path }` or `{ kind: 's3'; bucket; prefix }` (prefix '' or ending in `/`) once parsed. */
export type ExportLocation = z.infer<typeof exportLocationSchema>;

/** `folder /path` or `s3://bucket/prefix/`, for messages and logs (no patient data in either). */
export function describeLocation(location: ExportLocation): string {
  return location.kind === 'folder' ? `folder ${location.path}` : `s3://${location.bucket}/${location.prefix}`;
}
