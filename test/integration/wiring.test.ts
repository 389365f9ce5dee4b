import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import pg from 'pg';
import { createTestBucket, createTestDatabase, s3ClientFor, stackEnv } from '../helpers/stack';

export interface WiringActivities {
  writeRow(marker: string): Promise<void>;
  readRow(marker: string): Promise<string>;
  putObject(marker: string): Promise<void>;
  getObject(marker: string): Promise<string>;
}

test('a worker on the dev server runs activities that write to and read back from PostgreSQL and MinIO', async () => {
  const env = await stackEnv();
  const db = await createTestDatabase();
  const bucket = await createTestBucket();
  const s3 = await s3ClientFor();
  const pool = new pg.Pool({ connectionString: db.url });
  await pool.query('create table wiring (marker text primary key, written_at timestamptz not null default now())');

  const activities: WiringActivities = {
    async writeRow(marker) {
      await pool.query('insert into wiring (marker) values ($1)', [marker]);
    },
    async readRow(marker) {
      const r = await pool.query<{ marker: string }>('select marker from wiring where marker = $1', [marker]);
      return r.rows[0]?.marker ?? 'missing';
    },
    async putObject(marker) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `wiring/${marker}.txt`, Body: `object:${marker}` }));
    },
    async getObject(marker) {
      const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `wiring/${marker}.txt` }));
      return (await r.Body?.transformToString()) ?? 'missing';
    },
  };

  const testEnv = await TestWorkflowEnvironment.createFromExistingServer({ address: env.TEMPORAL_ADDRESS });
  const taskQueue = `wiring-${randomUUID()}`;
  const worker = await Worker.create({
    connection: testEnv.nativeConnection,
    taskQueue,
    workflowsPath: require.resolve('../fixtures/wiring-workflow'),
    activities,
  });
  const marker = randomUUID();
  try {
    const result = await worker.runUntil(
      testEnv.client.workflow.execute('wiringWorkflow', {
        taskQueue,
        workflowId: `wiring-${marker}`,
        args: [{ marker }],
      }),
    );
    assert.deepEqual(result, { row: marker, object: `object:${marker}` });
    const landed = await pool.query('select count(*)::int as n from wiring where marker = $1', [marker]);
    assert.equal(landed.rows[0].n, 1);
  } finally {
    await pool.end();
    await testEnv.teardown();
    s3.destroy();
  }
});
