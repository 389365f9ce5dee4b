/**
 * The PostgreSQL pool. TLS is decided by src/tls.ts (verification always on, a private CA via DATABASE_CA_FILE);
 * the URL's own sslmode cannot weaken it.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Config } from '../config';
import type { Logger } from '../logger';
import { pgTlsOptions } from '../tls';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

export interface CreatePoolOptions {
  logger?: Logger;
  /** Shown in pg_stat_activity, so an operator can tell the worker's connections apart. */
  applicationName?: string;
}

export function createPool(
  database: Pick<Config['database'], 'url' | 'caFile'> & { poolMax?: number },
  opts: CreatePoolOptions = {},
): Pool {
  const tls = pgTlsOptions(database.url, database.caFile);
  const pool = new pg.Pool({
    connectionString: tls.connectionString,
    ssl: tls.ssl,
    max: database.poolMax ?? 10,
    application_name: opts.applicationName ?? 'fm-reimport',
    // Fail fast when the database is unreachable instead of hanging an activity until its timeout.
    connectionTimeoutMillis: 15_000,
    idleTimeoutMillis: 30_000,
  });
  // An idle client losing its connection emits 'error' on the pool; unhandled it would crash the worker.
  pool.on('error', (err: Error & { code?: string }) => {
    opts.logger?.warn({ code: err.code ?? 'unknown' }, 'idle PostgreSQL connection failed');
  });
  return pool;
}

/**
 * A pool for the doctor: one connection whose transactions are read-only by default, so a write anywhere in the
 * checks fails (SQLSTATE 25006) instead of landing.
 */
export function readOnlyPool(database: Pick<Config['database'], 'url' | 'caFile'>): Pool {
  const pool = createPool({ ...database, poolMax: 1 }, { applicationName: 'fm-reimport doctor' });
  // pg queues a query sent from 'connect' before any the pool hands the connection out for.
  pool.on('connect', (client) => {
    client.query('set default_transaction_read_only = on').catch(() => undefined);
  });
  return pool;
}

const statementNames = new Map<string, string>();

/**
 * A fixed statement text as a named (prepared) statement: PostgreSQL parses and plans it once per connection
 * instead of on every call. For the statements the files phases send per file, tens of thousands a run (measured:
 * PostgreSQL's CPU per stored file about a quarter lower). Only for texts that never vary per call: each one stays
 * prepared on every pooled connection. (Behind a PgBouncer in transaction mode, turn on its support for prepared
 * statements, `max_prepared_statements`.)
 */
export function namedStatement(text: string): { name: string; text: string } {
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `fmr_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
    statementNames.set(text, name);
  }
  return { name, text };
}

/** Runs `fn` in one transaction on one client; rolls back on error. */
export async function withTransaction<T>(
  pool: Pool,
  fn: (client: PoolClient) => Promise<T>,
  opts: { isolation?: 'read committed' | 'repeatable read' | 'serializable'; readOnly?: boolean } = {},
): Promise<T> {
  const client = await pool.connect();
  try {
    const mode = `isolation level ${opts.isolation ?? 'read committed'}${opts.readOnly ? ' read only' : ''}`;
    await client.query(`begin ${mode}`);
    try {
      const result = await fn(client);
      await client.query('commit');
      return result;
    } catch (err) {
      await client.query('rollback').catch(() => undefined);
      throw err;
    }
  } finally {
    client.release();
  }
}
