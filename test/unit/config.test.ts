import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { envSchema, loadConfig, parseEnv } from '../../src/config';

const full = {
  DATABASE_URL: 'postgres://u@127.0.0.1:5432/db',
  FM_URL: 'https://fm.example.com/',
  FM_USERNAME: 'api',
  FM_PASSWORD: 'secret-value-123',
  S3_ENDPOINT: 'http://127.0.0.1:9000',
};

test('a malformed DATABASE_URL is rejected with a message naming the variable', () => {
  assert.throws(() => loadConfig({ ...full, DATABASE_URL: 'not-a-url' }), /DATABASE_URL: expected a URL/);
});

test('a worker without FileMaker credentials names each missing variable', () => {
  assert.throws(
    () => loadConfig({ DATABASE_URL: full.DATABASE_URL }),
    (err: Error) => {
      assert.match(err.message, /FM_URL: required/);
      assert.match(err.message, /FM_USERNAME: required/);
      assert.match(err.message, /FM_PASSWORD: required/);
      return true;
    },
  );
});

test('FM_AUTH=claris-id needs a token command instead of a user and password', () => {
  const cloud = { DATABASE_URL: full.DATABASE_URL, FM_URL: full.FM_URL, FM_AUTH: 'claris-id' };
  assert.throws(
    () => loadConfig(cloud),
    (err: Error) => {
      assert.match(err.message, /FM_CLARIS_ID_TOKEN_COMMAND: required/);
      assert.doesNotMatch(err.message, /FM_USERNAME|FM_PASSWORD/);
      return true;
    },
  );
  const c = loadConfig({ ...cloud, FM_CLARIS_ID_TOKEN_COMMAND: 'claris-token --profile clinic' });
  assert.equal(c.filemaker.auth, 'claris-id');
  assert.equal(c.filemaker.clarisIdTokenCommand, 'claris-token --profile clinic');
  assert.equal(c.filemaker.password, '');
  assert.equal(loadConfig(full).filemaker.auth, 'basic');
  assert.throws(() => loadConfig({ ...full, FM_AUTH: 'oauth' }), /FM_AUTH/);
});

test('errors never echo the value of a secret', () => {
  assert.throws(
    () => loadConfig({ ...full, FM_MAX_CONCURRENCY: 'lots' }),
    (err: Error) => !err.message.includes(full.FM_PASSWORD) && /FM_MAX_CONCURRENCY/.test(err.message),
  );
});

test('the parsed configuration is typed, defaulted and read-only', () => {
  const c = loadConfig({ ...full, FM_TRANSFER_BUDGET: '144GB' });
  assert.equal(c.filemaker.url, 'https://fm.example.com');
  assert.equal(c.filemaker.transferBudgetBytes, 144e9);
  assert.equal(c.temporal.taskQueue, 'fm-reimport');
  assert.equal(c.clinicTimeZone, 'Australia/Sydney');
  assert.throws(() => {
    (c.filemaker as { url: string }).url = 'x';
  }, TypeError);
});

test('empty variables count as unset', () => {
  assert.equal(parseEnv({ LOG_LEVEL: '' }).LOG_LEVEL, 'info');
});

test('an unknown time zone is rejected', () => {
  assert.throws(() => loadConfig({ ...full, CLINIC_TIME_ZONE: 'Mars/Olympus' }), /CLINIC_TIME_ZONE/);
});

test('every variable docker-compose.yml sets is one the configuration knows', () => {
  const compose = parse(readFileSync(join(__dirname, '..', '..', 'docker-compose.yml'), 'utf8')) as {
    services: Record<string, { environment?: Record<string, string> }>;
  };
  const known = new Set(Object.keys(envSchema.shape));
  const ours = ['worker', 'codec-server', 'filemaker-sim'];
  const used = ours.flatMap((s) => Object.keys(compose.services[s]?.environment ?? {}));
  assert.ok(used.length > 10, 'compose sets the worker variables');
  assert.deepEqual(
    used.filter((k) => !known.has(k)),
    [],
  );
});

test('.env.example lists every variable the configuration knows', () => {
  const example = readFileSync(join(__dirname, '..', '..', '.env.example'), 'utf8');
  const listed = new Set([...example.matchAll(/^#?\s*([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]));
  assert.deepEqual(
    Object.keys(envSchema.shape).filter((k) => !listed.has(k)),
    [],
  );
});
