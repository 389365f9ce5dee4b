/**
 * `npm run bench:store`: upsert throughput of patient-like rows for each statement shape, side by side, and the
 * peak memory of a 1 GB streaming upload. Uses DATABASE_URL / S3_ENDPOINT when set, else starts the local stack
 * (state in .stack/bench). Each run works in its own new database and bucket.
 *
 *   npm run bench:store                 50,000 rows, 1 GB upload
 *   npm run bench:store -- --rows 20000 --upload-mb 256
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { startStack, type Stack } from '../scripts/stack';
import { uploadStream, PART_SIZE, QUEUE_SIZE } from '../src/s3/upload';
import { createPool } from '../src/store/db';
import { migrate } from '../src/store/migrate';
import { upsertRows, type UpsertStrategy } from '../src/store/upsert';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : NaN;
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

const ROWS = arg('rows', 50_000);
const UPLOAD_MB = arg('upload-mb', 1024);

function uuid(n: number, tag: number): string {
  const h = n.toString(16).padStart(12, '0');
  return `${tag.toString(16).padStart(8, '0')}-0000-5000-8000-${h}`;
}

/** Rows shaped like the patients mapper's output at the clinic's real field sizes. */
function patientRows(count: number, clinicId: string, variant = ''): Record<string, unknown>[] {
  return Array.from({ length: count }, (_, i) => {
    const f = uuid(i, 0xa);
    return {
      id: uuid(i, 0xb),
      filemaker_id: f,
      filemaker_metadata: {
        id: f.toUpperCase(),
        nameFirst: `First${i}`,
        nameLast: `Last${i}${variant}`,
        nameMiddle: '',
        title: 'Mr',
        DOB: '03/14/1962',
        gender: 'Male',
        id_Clinic: clinicId,
        Clinic_Name: 'Newtown',
        Funding: 'NDIS',
        'Health Number': `2${String(i).padStart(9, '0')}`,
        NDIS_PlanStart: '01/01/2024',
        NDIS_PlanEnd: '12/31/2024',
        NDIS_CoordinatorName: 'Coordinator Name',
        NDIS_CoordinatorEmail: 'coordinator@example.org',
        CreationTimestamp: '01/02/2015 10:11:12',
        ModificationTimestamp: '06/20/2024 09:30:00',
      },
      first_name: `First${i}`,
      last_name: `Last${i}${variant}`,
      middle_name: null,
      title: 'Mr',
      dob: '1962-03-14',
      sex: 'M',
      health_number: `2${String(i).padStart(9, '0')}`,
      funding: 'NDIS',
      clinic_id: clinicId,
      ndis_plan_start: '2024-01-01',
      ndis_plan_end: '2024-12-31',
      ndis_coordinator_name: 'Coordinator Name',
      ndis_coordinator_email: 'coordinator@example.org',
      contact_json: {
        phones: [{ label: 'Mobile', number: '0400 000 000', kind: 'mobile' }],
        emails: [{ label: 'Email', address: `p${i}@example.org` }],
      },
      address_json: [
        {
          label: 'Home',
          line1: `${i} Example St`,
          line2: '',
          suburb: 'Newtown',
          state: 'NSW',
          postcode: '2042',
          country: 'Australia',
        },
      ],
    };
  });
}

async function benchUpsert(adminUrl: string): Promise<void> {
  const strategies: UpsertStrategy[] = ['json', 'unnest', 'values'];
  const results: Record<string, string | number>[] = [];
  for (const strategy of strategies) {
    for (const concurrency of [1, 4]) {
      const name = `bench_${strategy}_${concurrency}_${randomBytes(3).toString('hex')}`;
      const admin = new pg.Client({ connectionString: adminUrl });
      await admin.connect();
      await admin.query(`create database ${name}`);
      const url = new URL(adminUrl);
      url.pathname = `/${name}`;
      await migrate(url.toString());
      const pool = createPool({ url: url.toString(), caFile: undefined, poolMax: 8 });
      try {
        const clinicId = uuid(1, 0xc);
        await upsertRows(pool, 'clinics', [
          { id: clinicId, filemaker_id: 'clinic-1', filemaker_metadata: {}, name: 'Newtown', sms_enabled: true },
        ]);
        const rows = patientRows(ROWS, clinicId);
        const changed = patientRows(ROWS, clinicId, 'x');
        const time = async (r: Record<string, unknown>[]) => {
          const t = process.hrtime.bigint();
          const out = await upsertRows(pool, 'patients', r, { strategy, concurrency });
          const s = Number(process.hrtime.bigint() - t) / 1e9;
          if (out.counts.failed > 0) throw new Error(`${out.counts.failed} rows failed`);
          return Math.round(r.length / s);
        };
        const insert = await time(rows);
        const unchanged = await time(rows);
        const update = await time(changed);
        results.push({
          strategy,
          concurrency,
          'insert rows/s': insert,
          'unchanged rows/s': unchanged,
          'update rows/s': update,
        });
      } finally {
        await pool.end();
        await admin.query(`drop database ${name} with (force)`);
        await admin.end();
      }
    }
  }
  console.log(`\nupsert of ${ROWS.toLocaleString('en')} patient-like rows (batch 1,000; target ≥ 20,000 rows/s)`);
  console.table(results);
}

/** `total` bytes produced on the fly (1 MiB chunks, each different), never held at once. */
function generated(total: number): Readable {
  const block = randomBytes(1024 * 1024);
  let sent = 0;
  let n = 0;
  return new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      const size = Math.min(block.length, total - sent);
      const chunk = Buffer.from(block.subarray(0, size));
      chunk.writeUInt32LE(n++, 0);
      sent += size;
      this.push(chunk);
    },
  });
}

async function benchUpload(env: Record<string, string | undefined>): Promise<void> {
  const s3 = new S3Client({
    endpoint: env.S3_ENDPOINT,
    region: env.S3_REGION ?? 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: env.S3_ACCESS_KEY_ID ?? '', secretAccessKey: env.S3_SECRET_ACCESS_KEY ?? '' },
  });
  const bucket = `bench-${randomBytes(4).toString('hex')}`;
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  const total = UPLOAD_MB * 1024 * 1024;
  global.gc?.();
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 25);
  const t = process.hrtime.bigint();
  try {
    const r = await uploadStream(s3, { bucket, key: 'bench/large.bin', body: generated(total), expectedSize: total });
    const s = Number(process.hrtime.bigint() - t) / 1e9;
    clearInterval(timer);
    console.log(`\nstreaming upload of ${UPLOAD_MB} MiB (part ${PART_SIZE / 2 ** 20} MiB × queue ${QUEUE_SIZE})`);
    console.table([
      {
        parts: r.parts,
        seconds: Number(s.toFixed(1)),
        'MiB/s': Math.round(UPLOAD_MB / s),
        'rss before MiB': Math.round(base / 2 ** 20),
        'peak rss MiB': Math.round(peak / 2 ** 20),
        'growth MiB': Math.round((peak - base) / 2 ** 20),
      },
    ]);
  } finally {
    clearInterval(timer);
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'bench/large.bin' })).catch(() => undefined);
    await s3.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => undefined);
    s3.destroy();
  }
}

async function main(): Promise<void> {
  let stack: Stack | undefined;
  let env: Record<string, string | undefined> = process.env;
  if (!process.env.DATABASE_URL || !process.env.S3_ENDPOINT) {
    stack = await startStack({
      stateDir: join(__dirname, '..', '.stack', 'bench'),
      ui: false,
      // Temporal is not needed here: a placeholder address keeps the stack from starting it.
      env: { ...process.env, TEMPORAL_ADDRESS: process.env.TEMPORAL_ADDRESS ?? 'unused:7233' },
    });
    env = { ...process.env, ...stack.env };
  }
  try {
    // The upload first, so its RSS is measured before the row arrays of the upsert bench fill the heap.
    await benchUpload(env);
    await benchUpsert(env.DATABASE_URL!);
  } finally {
    await stack?.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
