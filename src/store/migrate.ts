/**
 * Schema migrations with node-pg-migrate (files in `migrations/`, loaded by its own TypeScript loader), and the
 * pre-flight check that refuses a database whose applied migrations differ from the ones this build knows: an
 * older engine against a newer schema (or the other way round) would write rows the schema does not expect.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { runner } from 'node-pg-migrate';
import type { Logger } from '../logger';
import { SchemaVersionError } from '../errors';
import { pgTlsOptions } from '../tls';

/** The migrations this build was made with, in order. Adding a migration file means adding its name here. */
export const KNOWN_MIGRATIONS = [
  '1763700000000_target-schema',
  '1763700001000_run-ledger',
  '1763700002000_contact-details',
  '1763700003000_files-phases',
  '1763700004000_transfer-totals',
  '1763700005000_object-etag',
  '1763700006000_record-identity',
  '1763700007000_backup-retention',
  '1763700008000_run-delta',
  '1763700009000_archived-records',
  '1763700010000_manifest-slice-order',
  '1763700011000_incremental',
  '1763700012000_cutover-freeze',
] as const;

export const MIGRATIONS_DIR = join(__dirname, '..', '..', 'migrations');
export const MIGRATIONS_TABLE = 'pgmigrations';

export interface MigrateOptions {
  logger?: Logger;
  /** DATABASE_CA_FILE, for TLS verification against a private CA. */
  caFile?: string;
}

/** Names of the migration files on disk (without extension), sorted as node-pg-migrate sorts them. */
export function migrationFiles(dir = MIGRATIONS_DIR): string[] {
  return readdirSync(dir)
    .filter((f) => /\.(ts|js|sql)$/.test(f) && !f.startsWith('.'))
    .map((f) => f.replace(/\.(ts|js|sql)$/, ''))
    .sort();
}

/** Applied migration names in run order; an empty list when the database has never been migrated. */
export async function appliedMigrations(client: pg.ClientBase): Promise<string[]> {
  const exists = await client.query<{ t: string | null }>(`select to_regclass($1) as t`, [
    `public.${MIGRATIONS_TABLE}`,
  ]);
  if (exists.rows[0]?.t == null) return [];
  const r = await client.query<{ name: string }>(`select name from ${MIGRATIONS_TABLE} order by run_on, id`);
  return r.rows.map((row) => row.name);
}

function unknownApplied(applied: readonly string[]): string[] {
  const known = new Set<string>(KNOWN_MIGRATIONS);
  return applied.filter((n) => !known.has(n));
}

/**
 * Applies every pending migration in one transaction. Refuses (SchemaVersionError) when the database already has a
 * migration this build does not know, rather than running an older schema's engine against it. Returns the names
 * applied now.
 */
export async function migrate(databaseUrl: string, opts: MigrateOptions = {}): Promise<string[]> {
  const tls = pgTlsOptions(databaseUrl, opts.caFile);
  const client = new pg.Client({ connectionString: tls.connectionString, ssl: tls.ssl });
  await client.connect();
  try {
    const unknown = unknownApplied(await appliedMigrations(client));
    if (unknown.length > 0) {
      throw new SchemaVersionError(
        `database has ${unknown.length} migration(s) this build does not know (newest: ${unknown.at(-1)}); upgrade fm-reimport`,
      );
    }
    const log = opts.logger;
    const ran = await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      migrationsTable: MIGRATIONS_TABLE,
      direction: 'up',
      checkOrder: true,
      singleTransaction: true,
      // The tool prints every SQL statement at info level; keep that at debug so the run log stays readable.
      logger: {
        debug: (m: string) => log?.debug({ tool: 'node-pg-migrate' }, m),
        info: (m: string) => log?.debug({ tool: 'node-pg-migrate' }, m),
        warn: (m: string) => log?.warn({ tool: 'node-pg-migrate' }, m),
        error: (m: string) => log?.error({ tool: 'node-pg-migrate' }, m),
      },
    });
    const names = ran.map((m) => m.name);
    log?.info({ applied: names, count: names.length }, names.length > 0 ? 'migrations applied' : 'schema up to date');
    return names;
  } finally {
    await client.end();
  }
}

/**
 * Pre-flight: the applied migrations must be exactly KNOWN_MIGRATIONS, in order. Throws SchemaVersionError naming
 * what is unknown or missing; returns the current version.
 */
export async function checkSchemaVersion(pool: pg.Pool): Promise<{ version: string }> {
  const client = await pool.connect();
  try {
    const applied = await appliedMigrations(client);
    const unknown = unknownApplied(applied);
    if (unknown.length > 0) {
      throw new SchemaVersionError(
        `database has migration(s) this build does not know: ${unknown.join(', ')}; upgrade fm-reimport`,
      );
    }
    const missing = KNOWN_MIGRATIONS.filter((n) => !applied.includes(n));
    if (missing.length > 0) {
      throw new SchemaVersionError(`database lacks migration(s): ${missing.join(', ')}; run npm run migrate`);
    }
    if (applied.some((n, i) => n !== KNOWN_MIGRATIONS[i])) {
      throw new SchemaVersionError('database migrations were applied in an order this build does not know');
    }
    const info = await client.query<{ version: string }>('select version from schema_info');
    const version = info.rows[0]?.version;
    const expected = KNOWN_MIGRATIONS[KNOWN_MIGRATIONS.length - 1];
    if (version === undefined || version !== expected) {
      throw new SchemaVersionError(`schema_info says ${version ?? 'nothing'}, expected ${expected}`);
    }
    return { version };
  } finally {
    client.release();
  }
}
