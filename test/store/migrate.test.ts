import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import pg from 'pg';
import { SchemaVersionError } from '../../src/errors';
import { checkSchemaVersion, KNOWN_MIGRATIONS, migrate, migrationFiles } from '../../src/store/migrate';
import { createPool } from '../../src/store/db';
import { TABLE_SPECS, TARGET_TABLE_NAMES } from '../../src/store/schema';
import { createTestDatabase } from '../helpers/stack';
import { after } from 'node:test';

const PG_TYPE: Record<string, string> = {
  uuid: 'uuid',
  text: 'text',
  char1: 'character',
  boolean: 'boolean',
  date: 'date',
  timestamptz: 'timestamp with time zone',
  integer: 'integer',
  bigint: 'bigint',
  jsonb: 'jsonb',
};

describe('migrations', () => {
  test('the migration files on disk are exactly the ones this build knows', () => {
    assert.deepEqual(migrationFiles(), [...KNOWN_MIGRATIONS]);
  });

  test('migrate brings an empty database to the known version, and a second run applies nothing', async () => {
    const { url } = await createTestDatabase();
    const pool = createPool({ url, caFile: undefined });
    after(() => pool.end());
    await assert.rejects(checkSchemaVersion(pool), SchemaVersionError);
    assert.deepEqual(await migrate(url), [...KNOWN_MIGRATIONS]);
    assert.deepEqual(await migrate(url), []);
    assert.deepEqual(await checkSchemaVersion(pool), { version: KNOWN_MIGRATIONS.at(-1) });

    const tables = await pool.query<{ table_name: string }>(
      `select table_name from information_schema.tables where table_schema = 'public' order by 1`,
    );
    const names = tables.rows.map((r) => r.table_name);
    for (const t of [
      ...TARGET_TABLE_NAMES,
      'reimport_runs',
      'source_manifest',
      'import_ledger',
      's3_inventory',
      'schema_info',
    ]) {
      assert.ok(names.includes(t), `table ${t} exists`);
    }
  });

  test('the store catalogue matches the migrated columns, types and nullability', async () => {
    const { url } = await createTestDatabase();
    await migrate(url);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    after(() => c.end());
    for (const t of TARGET_TABLE_NAMES) {
      const r = await c.query<{ column_name: string; data_type: string; is_nullable: string }>(
        `select column_name, data_type, is_nullable from information_schema.columns
         where table_schema = 'public' and table_name = $1 order by ordinal_position`,
        [t],
      );
      const live = r.rows
        .filter((x) => !['created_at', 'updated_at', 'import_run_id'].includes(x.column_name))
        .map((x) => `${x.column_name}:${x.data_type}:${x.is_nullable === 'YES' && x.column_name !== 'id'}`);
      const catalogue = TABLE_SPECS[t].columns.map((col) => `${col.name}:${PG_TYPE[col.type]}:${col.nullable}`);
      assert.deepEqual(live, catalogue, `columns of ${t}`);
    }
  });

  test('constraints refuse upper-case filemaker ids, unknown states and failures without a reason', async () => {
    const { url } = await createTestDatabase();
    await migrate(url);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    after(() => c.end());
    await assert.rejects(
      c.query(`insert into clinics (filemaker_id, filemaker_metadata, name) values ('ABC', '{}', 'x')`),
      /clinics_filemaker_id_lower/,
    );
    await c.query(`insert into reimport_runs (run_id) values ('run-1')`);
    const ledger = (state: string, reason: string | null) =>
      c.query(
        `insert into import_ledger (run_id, source_table, record_id, filemaker_id, state, reason_code)
          values ('run-1', 'API_Notes', $1, $1, $2, $3)`,
        [`id-${state}-${reason ?? 'none'}`.toLowerCase(), state, reason],
      );
    await assert.rejects(ledger('done', 'SOME_REASON'), /import_ledger_state_check/);
    await assert.rejects(ledger('failed', null), /import_ledger_reason_check/);
    await assert.rejects(ledger('skipped', 'lower_case'), /import_ledger_reason_check/);
    await assert.rejects(ledger('imported', 'EMPTY_NOTE'), /import_ledger_reason_check/);
    await ledger('failed', 'MISSING_FIELD');
    await ledger('imported', null);
    await assert.rejects(
      c.query(`update reimport_runs set status = 'finished', finished_at = now()`),
      /reimport_runs_status_check/,
    );
  });

  test('pre-flight and migrate refuse a database with a migration this build does not know', async () => {
    const { url } = await createTestDatabase();
    await migrate(url);
    const pool = createPool({ url, caFile: undefined });
    after(() => pool.end());
    await pool.query(`insert into pgmigrations (name, run_on) values ('1999999999999_from-the-future', now())`);
    await assert.rejects(checkSchemaVersion(pool), (err: unknown) => {
      assert.ok(err instanceof SchemaVersionError);
      assert.match(err.message, /1999999999999_from-the-future/);
      return true;
    });
    await assert.rejects(migrate(url), SchemaVersionError);
  });

  test('pre-flight refuses a database that lacks a known migration', async () => {
    const { url } = await createTestDatabase();
    await migrate(url);
    const pool = createPool({ url, caFile: undefined });
    after(() => pool.end());
    await pool.query(`delete from pgmigrations where name = $1`, [KNOWN_MIGRATIONS.at(-1)]);
    await assert.rejects(checkSchemaVersion(pool), /lacks migration/);
  });
});
