/**
 * Test access to the real local stack. `npm test` starts one stack and passes its endpoints in the environment;
 * a test file run on its own (`npx tsx --test test/x.test.ts`) starts a private stack and stops it when done.
 * Each test file gets its own database and bucket, so files can run side by side without seeing each other's data.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import {
  S3Client,
  CreateBucketCommand,
  ListObjectsV2Command,
  DeleteObjectsCommand,
  DeleteBucketCommand,
} from '@aws-sdk/client-s3';
import { startStack, type Stack } from '../../scripts/stack';

let stackPromise: Promise<Record<string, string>> | undefined;
const cleanups: (() => Promise<void>)[] = [];
let stopStack: (() => Promise<void>) | undefined;

// Cleanup runs when the file's tests are done, whatever hook or test created the resource (node:test's `after`
// registered inside a `before` hook would run right away). Resources first, then a private stack.
process.once('beforeExit', () => {
  void (async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await stopStack?.();
  })();
});

function onCleanup(fn: () => Promise<void>) {
  cleanups.push(fn);
}

/** Endpoints of the stack: from the environment when `npm test` started it, else a private stack for this process. */
export function stackEnv(): Promise<Record<string, string>> {
  stackPromise ??= (async () => {
    const e = process.env;
    if (e.TEMPORAL_ADDRESS && e.DATABASE_URL && e.S3_ENDPOINT) {
      return {
        TEMPORAL_ADDRESS: e.TEMPORAL_ADDRESS,
        DATABASE_URL: e.DATABASE_URL,
        S3_ENDPOINT: e.S3_ENDPOINT,
        S3_ACCESS_KEY_ID: e.S3_ACCESS_KEY_ID ?? '',
        S3_SECRET_ACCESS_KEY: e.S3_SECRET_ACCESS_KEY ?? '',
        S3_REGION: e.S3_REGION ?? 'us-east-1',
        S3_BUCKET: e.S3_BUCKET ?? 'nexus-files',
      };
    }
    const stack: Stack = await startStack({
      stateDir: join(__dirname, '..', '..', '.stack', `test-${process.pid}`),
      fresh: true,
      ui: false,
      env: {},
      inMemory: true,
    });
    stopStack = () => stack.stop();
    return stack.env;
  })();
  return stackPromise;
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`;
}

/** A fresh, empty database on the stack's PostgreSQL; dropped after the test file. */
export async function createTestDatabase(): Promise<{ url: string; name: string }> {
  const env = await stackEnv();
  const name = uniqueName('t');
  const admin = new pg.Client({ connectionString: env.DATABASE_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(env.DATABASE_URL!);
  url.pathname = `/${name}`;
  onCleanup(async () => {
    const c = new pg.Client({ connectionString: env.DATABASE_URL });
    await c.connect();
    await c.query(`drop database if exists ${name} with (force)`);
    await c.end();
  });
  return { url: url.toString(), name };
}

export async function s3ClientFor(): Promise<S3Client> {
  const env = await stackEnv();
  return new S3Client({
    endpoint: env.S3_ENDPOINT,
    region: env.S3_REGION ?? 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: env.S3_ACCESS_KEY_ID!, secretAccessKey: env.S3_SECRET_ACCESS_KEY! },
  });
}

/** A fresh bucket on the stack's MinIO; emptied and removed after the test file. */
export async function createTestBucket(): Promise<string> {
  const s3 = await s3ClientFor();
  const bucket = uniqueName('t').replace(/_/g, '-');
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  onCleanup(async () => {
    for (;;) {
      const list = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
      const keys = (list.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (keys.length === 0) break;
      await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys } }));
    }
    await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
    s3.destroy();
  });
  return bucket;
}
