/**
 * `npm run migrate`: applies pending migrations to DATABASE_URL. Only the database settings are needed, so this
 * reads the configuration the way a client does and requires DATABASE_URL itself.
 */
import { loadConfig } from '../config';
import { ConfigError, FmReimportError } from '../errors';
import { createLogger } from '../logger';
import { migrate } from './migrate';

async function main(): Promise<void> {
  const config = loadConfig(process.env, 'client');
  const logger = createLogger({ level: config.log.level, format: config.log.format, name: 'migrate' });
  if (config.database.url === '') {
    throw new ConfigError('invalid configuration:\n  DATABASE_URL: required, expected a postgres:// URL');
  }
  await migrate(config.database.url, { logger, caFile: config.database.caFile });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    const code = err instanceof FmReimportError ? err.code : 'MIGRATION_FAILED';
    process.stderr.write(`migrate failed (${code}): ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
