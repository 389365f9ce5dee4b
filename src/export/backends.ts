/**
 * Listing and reading the export where it lives: a local folder or an S3 prefix. Both list only the plain files
 * directly inside (no recursion, no contents read) and pin what they listed, so a file replaced after the listing
 * is refused instead of silently read: by size and mtime in a folder, by ETag (`If-Match`) in S3.
 */
import { constants, type Stats } from 'node:fs';
import { lstat, open, readdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { getObject, listObjectsPage } from '../s3/objects';
import { ExportSourceError } from './errors';
import type { ListedFile } from './files';
import { describeLocation, type ExportLocation } from './location';

export interface PinnedFile extends ListedFile {
  /** What the bytes must still be when read: `size:mtimeMs` in a folder, the ETag in S3. */
  version: string;
}

export interface Backend {
  readonly where: string;
  list(): Promise<PinnedFile[]>;
  read(file: PinnedFile): Promise<Readable>;
}

/** A plain file name: no separators, no NUL, not `.` or `..`. Listings never hold others; callers might. */
export function isPlainName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !/[/\\\0]/.test(name);
}

function changed(where: string, name: string): ExportSourceError {
  return new ExportSourceError('SOURCE_CHANGED', `${name} in the export (${where}) changed after it was listed`);
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

// ---------------------------------------------------------------------------------------------------------------
// Folder

const STAT_CONCURRENCY = 32;

export function folderBackend(location: Extract<ExportLocation, { kind: 'folder' }>): Backend {
  const root = resolve(location.path);
  const where = describeLocation(location);
  const versionOf = (s: Stats) => `${s.size}:${s.mtimeMs}`;

  /** The path of a listed name, refusing anything that would leave the folder. */
  const pathOf = (name: string): string => {
    const p = join(root, name);
    if (!isPlainName(name) || dirname(p) !== root) {
      throw new ExportSourceError('FILE_UNKNOWN', `not a plain file name in the export (${where})`);
    }
    return p;
  };

  return {
    where,
    async list() {
      let entries;
      try {
        entries = await readdir(root, { withFileTypes: true });
      } catch (err) {
        const code = errno(err);
        if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES' || code === 'EPERM') {
          throw new ExportSourceError('LOCATION_NOT_FOUND', `the export ${where} cannot be listed (${code})`);
        }
        throw err;
      }
      // Regular files only: a symlink could point outside the folder, a subfolder is not part of the export.
      const names = entries.filter((e) => e.isFile() && isPlainName(e.name)).map((e) => e.name);
      const out: PinnedFile[] = [];
      for (let i = 0; i < names.length; i += STAT_CONCURRENCY) {
        const batch = names.slice(i, i + STAT_CONCURRENCY);
        const stats = await Promise.all(batch.map((n) => lstat(pathOf(n)).catch(() => undefined)));
        batch.forEach((name, k) => {
          const s = stats[k];
          // Gone or replaced by something else between readdir and lstat: not part of what we list.
          if (s?.isFile()) out.push({ name, size: s.size, version: versionOf(s) });
        });
      }
      return out;
    },
    async read(file) {
      // O_NOFOLLOW: a file swapped for a symlink after the listing is refused rather than followed.
      const handle = await open(pathOf(file.name), constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0)).catch(
        (err: unknown) => {
          if (errno(err) === 'ENOENT' || errno(err) === 'ELOOP') throw changed(where, file.name);
          throw err;
        },
      );
      try {
        const s = await handle.stat();
        if (!s.isFile() || versionOf(s) !== file.version) throw changed(where, file.name);
      } catch (err) {
        await handle.close();
        throw err;
      }
      return handle.createReadStream();
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// S3

function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

export function s3Backend(s3: S3Client, location: Extract<ExportLocation, { kind: 's3' }>): Backend {
  const { bucket, prefix } = location;
  const where = describeLocation(location);
  return {
    where,
    async list() {
      const out: PinnedFile[] = [];
      let token: string | undefined;
      do {
        let page;
        try {
          // Delimiter '/': objects in "subfolders" come back as CommonPrefixes, which are not part of the export.
          page = await listObjectsPage(s3, bucket, prefix, { delimiter: '/', token });
        } catch (err) {
          const name = (err as { name?: string }).name;
          if (name === 'NoSuchBucket' || httpStatus(err) === 404 || httpStatus(err) === 403) {
            throw new ExportSourceError('LOCATION_NOT_FOUND', `the export ${where} cannot be listed (${name})`);
          }
          throw err;
        }
        for (const o of page.Contents ?? []) {
          if (o.Key === undefined || !o.Key.startsWith(prefix)) continue;
          const name = o.Key.slice(prefix.length);
          // '' is a "folder" marker object; '.' and '..' are legal S3 keys but no export file.
          if (!isPlainName(name)) continue;
          out.push({ name, size: o.Size ?? 0, version: o.ETag ?? '' });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return out;
    },
    async read(file) {
      if (!isPlainName(file.name)) {
        throw new ExportSourceError('FILE_UNKNOWN', `not a plain file name in the export (${where})`);
      }
      let r;
      try {
        r = await getObject(s3, bucket, prefix + file.name, { ifMatch: file.version });
      } catch (err) {
        const status = httpStatus(err);
        if (status === 412 || status === 404) throw changed(where, file.name);
        throw err;
      }
      const body = r.Body;
      if (!(body instanceof Readable)) {
        (body as { destroy?: () => void } | undefined)?.destroy?.();
        throw new TypeError('S3 GetObject did not return a Node.js stream');
      }
      if (r.ContentLength !== undefined && r.ContentLength !== file.size) {
        body.destroy();
        throw changed(where, file.name);
      }
      return body;
    },
  };
}
