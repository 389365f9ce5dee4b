/** The activities' dependencies, built once per worker process. Tests build the same shape with their own values. */
import type { S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../s3';
import type { Config } from '../config';
import type { Logger } from '../logger';
import { createFileMakerClient, createTokenCache, tokenFromCommand, type FileMakerClient } from '../filemaker';
import { createPool, type Pool } from '../store/db';
import { createNotifier } from '../notify';
import { createFileResources, type FileResources } from './files/resources';
import type { RunEvent } from './types';

export interface ActivityDeps {
  config: Config;
  logger: Logger;
  pool: Pool;
  s3: S3Client;
  fm: FileMakerClient;
  /** The files phases' per-process resources (upload buffers, group-committed writes, exports, decodes). */
  files: FileResources;
  notify(event: RunEvent): Promise<void>;
  close(): Promise<void>;
}

/** The FileMaker client as the configuration describes it (the worker's, and the operator's `doctor`). */
export function fileMakerClientFor(config: Config, logger: Logger): FileMakerClient {
  return createFileMakerClient({
    url: config.filemaker.url,
    database: config.filemaker.database,
    username: config.filemaker.username,
    password: config.filemaker.password,
    clarisId:
      config.filemaker.auth === 'claris-id' && config.filemaker.clarisIdTokenCommand !== undefined
        ? createTokenCache(tokenFromCommand(config.filemaker.clarisIdTokenCommand))
        : undefined,
    caFile: config.filemaker.caFile,
    maxConcurrency: config.filemaker.maxConcurrency,
    overloadRetries: config.filemaker.overloadRetries,
    overloadBackoffMs: config.filemaker.overloadBackoffMs,
    logger: logger.child({ component: 'filemaker' }),
  });
}

export async function createDeps(config: Config, logger: Logger): Promise<ActivityDeps> {
  const pool = createPool(config.database);
  const s3 = createS3Client(config.s3);
  const fm = fileMakerClientFor(config, logger);
  const notifier = createNotifier({
    webhookUrl: config.notify.webhookUrl,
    smtpUrl: config.notify.smtpUrl,
    emailFrom: config.notify.emailFrom,
    emailTo: [...config.notify.emailTo],
    logger: logger.child({ component: 'notify' }),
    retry: { attempts: 4, baseDelayMs: 500 },
    cooldownThresholdSeconds: config.notify.cooldownThresholdSeconds,
  });
  return {
    config,
    logger,
    pool,
    s3,
    fm,
    files: createFileResources(pool),
    notify: async (event) => {
      // A message that did not arrive fails the attempt, so the notify activity's retry policy sends it again.
      await notifier.deliver(event);
    },
    close: async () => {
      await fm.close();
      await pool.end();
      s3.destroy();
      await notifier.close();
    },
  };
}
