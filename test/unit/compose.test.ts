/**
 * docker-compose.yml held against what its services need, without a Docker engine (the project's machines have
 * none): pinned images that exist, the worker's configuration as src/config.ts reads it (secrets included), the ports
 * and addresses the services really listen on, start-up order on healthchecks and one-shots, restart policies, and
 * the Temporal image's uid over its volume. What this cannot show is that the images start: see README, "Docker".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config';
import { generateKeySpec, payloadCodecFromConfig } from '../../src/codec';
import { TEMPORAL_CLI_MODULE } from '../../scripts/stack';

interface Service {
  image?: string;
  build?: unknown;
  user?: string;
  entrypoint?: string[];
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  secrets?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  restart?: string;
}
interface Compose {
  services: Record<string, Service>;
  secrets?: Record<string, { file?: string }>;
  volumes?: Record<string, unknown>;
}

const root = join(__dirname, '..', '..');
const compose = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8'), { merge: true }) as Compose;
const services = compose.services;

function service(name: string): Service {
  const s = services[name];
  assert.ok(s, `compose has a ${name} service`);
  return s;
}

/** The value following a flag in a command list (`--port 7233`). */
function flag(s: Service, name: string): string | undefined {
  const cmd = s.command ?? [];
  const i = cmd.indexOf(name);
  return i >= 0 ? cmd[i + 1] : undefined;
}

/** Container ports a service publishes, by container port: host port. */
function published(s: Service): Map<string, string> {
  return new Map(
    (s.ports ?? []).map((p) => {
      const parts = p.split(':');
      return [parts[parts.length - 1]!, parts[parts.length - 2]!];
    }),
  );
}

/** A service that runs once and exits: what `service_completed_successfully` can wait for. */
const oneShot = (s: Service) => s.restart === 'no' && s.healthcheck === undefined && (s.ports ?? []).length === 0;

/**
 * A service's environment as the container sees it, with each declared secret it mounts written to a local file in
 * place of /run/secrets/<name> (so the configuration reads the *_FILE variables as it would inside the container).
 */
function containerEnv(s: Service, secretsDir: string, secretValue: (name: string) => string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...s.environment };
  for (const name of s.secrets ?? []) writeFileSync(join(secretsDir, name), secretValue(name) + '\n');
  for (const [k, v] of Object.entries(env)) {
    const m = /^\/run\/secrets\/(.+)$/.exec(v ?? '');
    if (!m) continue;
    assert.ok(s.secrets?.includes(m[1]!), `${k} names secret ${m[1]}, which the service mounts`);
    env[k] = join(secretsDir, m[1]!);
  }
  return env;
}

void test('compose images exist where they are named and are pinned: no latest, Temporal at the local stack version', () => {
  const images = Object.entries(services).filter(([, s]) => s.build === undefined);
  assert.ok(images.length >= 4, 'temporal, postgres, minio and the bucket one-shot use published images');
  for (const [name, s] of images) {
    const tag = /:([^/:@]+)$/.exec(s.image ?? '')?.[1];
    assert.ok(tag && tag !== 'latest' && /\d/.test(tag), `${name}: ${s.image} has a version tag`);
    // minio/minio no longer exists on Docker Hub; Quay keeps the archived community images.
    if (/minio/.test(s.image ?? '')) assert.match(s.image!, /^quay\.io\/minio\/minio:RELEASE\./, name);
  }
  const cliVersion = TEMPORAL_CLI_MODULE.split('@v')[1];
  assert.equal(service('temporal').image, `temporalio/temporal:${cliVersion}`);
  // Services built here share one image, so the build runs once.
  const built = Object.values(services).filter((s) => s.build !== undefined);
  assert.ok(built.length >= 4);
  assert.deepEqual([...new Set(built.map((s) => s.image))], ['fm-reimport:local']);
  const from = readFileSync(join(root, 'Dockerfile'), 'utf8').match(/^FROM\s+(\S+)/gm) ?? [];
  assert.ok(from.length > 0);
  for (const line of from) assert.match(line, /:[^:]*\d[^:]*$/, `${line}: a version tag`);
});

void test("the worker's configuration loads from the compose environment, with the payload keys from a declared secret", () => {
  const dir = mkdtempSync(join(tmpdir(), 'compose-secrets-'));
  try {
    const key = generateKeySpec('compose');
    const worker = service('worker');
    const env = containerEnv(worker, dir, () => key);
    // What a worker cannot start without: the variables loadConfig names on an empty environment.
    const required = (() => {
      try {
        loadConfig({}, 'worker');
      } catch (err) {
        return [...(err as Error).message.matchAll(/^\s+([A-Z0-9_]+): required/gm)].map((m) => m[1]!);
      }
      return [];
    })();
    assert.ok(required.includes('DATABASE_URL') && required.includes('FM_URL'), required.join(','));
    // And what `npm start` fills in from its local stack when unset (the defaults would point at localhost).
    const stackFilled = ['TEMPORAL_ADDRESS', 'S3_ENDPOINT', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY', 'PAYLOAD_KEYS'];
    for (const name of [...required, ...stackFilled]) {
      assert.ok(env[name] !== undefined || env[`${name}_FILE`] !== undefined, `the worker gets ${name}`);
    }
    const config = loadConfig(env, 'worker');
    assert.equal(config.payloadKeys, key);
    assert.ok(payloadCodecFromConfig(config));
    assert.equal(config.s3.secretAccessKey, service('minio').environment?.MINIO_ROOT_PASSWORD);
    assert.equal(config.s3.accessKeyId, service('minio').environment?.MINIO_ROOT_USER);

    // The codec server decrypts with the same key, from the same secret.
    const codec = service('codec-server');
    const codecConfig = loadConfig(
      containerEnv(codec, dir, () => key),
      'client',
    );
    assert.equal(codecConfig.payloadKeys, key);
    assert.equal(codecConfig.codecServerHost, '0.0.0.0', 'reachable through the published port');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void test('every secret a service mounts is declared, read from a git-ignored file', () => {
  const declared = compose.secrets ?? {};
  const mounted = Object.values(services).flatMap((s) => s.secrets ?? []);
  assert.ok(mounted.length >= 2, 'worker and codec server mount the payload keys');
  for (const name of mounted) assert.ok(declared[name]?.file, `secret ${name} is declared with a file`);
  assert.deepEqual(service('worker').secrets, service('codec-server').secrets);
  const ignored = readFileSync(join(root, '.gitignore'), 'utf8').split('\n');
  for (const { file } of Object.values(declared)) {
    const dir = file!.replace(/^\.\//, '').split('/')[0];
    assert.ok(ignored.includes(`${dir}/`), `${file} is git-ignored`);
  }
});

void test('addresses and ports match what each service listens on', () => {
  const worker = service('worker').environment ?? {};
  const temporal = service('temporal');
  const hostPort = (url: string) => {
    const u = new URL(url);
    return `${u.hostname}:${u.port}`;
  };
  assert.equal(worker.TEMPORAL_ADDRESS, `temporal:${flag(temporal, '--port')}`);
  assert.equal(flag(temporal, '--ip'), '0.0.0.0', 'Temporal listens beyond its container loopback');
  assert.ok(published(temporal).has(flag(temporal, '--port')!));
  assert.ok(published(temporal).has(flag(temporal, '--ui-port')!));

  const minio = service('minio');
  assert.equal(hostPort(worker.S3_ENDPOINT!), `minio${flag(minio, '--address')}`);
  const bucket = service('create-bucket');
  const mcHost = new URL(bucket.environment?.MC_HOST_local ?? '');
  assert.equal(`${mcHost.hostname}:${mcHost.port}`, hostPort(worker.S3_ENDPOINT!));
  assert.equal(decodeURIComponent(mcHost.username), minio.environment?.MINIO_ROOT_USER);
  assert.equal(decodeURIComponent(mcHost.password), minio.environment?.MINIO_ROOT_PASSWORD);
  assert.equal(bucket.command?.at(-1), `local/${worker.S3_BUCKET}`, 'the one-shot creates the bucket the worker uses');

  const pg = service('postgres').environment ?? {};
  const db = new URL(worker.DATABASE_URL!);
  assert.equal(`${db.hostname}:${db.port}`, 'postgres:5432');
  assert.deepEqual(
    [db.username, db.password, db.pathname.slice(1)],
    [pg.POSTGRES_USER, pg.POSTGRES_PASSWORD, pg.POSTGRES_DB],
  );
  assert.equal(service('migrate').environment?.DATABASE_URL, worker.DATABASE_URL);

  const sim = service('filemaker-sim');
  assert.equal(hostPort(worker.FM_URL!), `filemaker-sim:${flag(sim, '--port')}`);
  assert.equal(flag(sim, '--host'), '0.0.0.0');

  // The Web UI runs in the operator's browser: it reaches the codec server through the host's published port, and
  // the codec server accepts the UI's origin as the browser sees it.
  const codec = service('codec-server');
  const codecPort = codec.environment?.CODEC_SERVER_PORT ?? '';
  const codecHostPort = published(codec).get(codecPort);
  assert.ok(codecHostPort, `the codec server's port ${codecPort} is published`);
  assert.equal(flag(temporal, '--ui-codec-endpoint'), `http://localhost:${codecHostPort}`);
  const uiHostPort = published(temporal).get(flag(temporal, '--ui-port')!);
  assert.equal(codec.environment?.CODEC_CORS_ORIGINS, `http://localhost:${uiHostPort}`);
  assert.equal(worker.TEMPORAL_UI_URL, `http://localhost:${uiHostPort}`);
  // Published on the host's loopback only: the codec server decrypts anything it is given.
  for (const [name, s] of Object.entries(services)) {
    for (const p of s.ports ?? []) assert.match(p, /^127\.0\.0\.1:/, `${name} publishes ${p} on loopback`);
  }
});

void test('start-up waits on healthchecks and one-shots; long-running services restart, one-shots do not', () => {
  for (const [name, s] of Object.entries(services)) {
    for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) {
      const target = service(dep);
      if (condition === 'service_healthy') assert.ok(target.healthcheck, `${name} waits on ${dep}'s healthcheck`);
      else if (condition === 'service_completed_successfully') assert.ok(oneShot(target), `${dep} is a one-shot`);
      else assert.fail(`${name} depends on ${dep} with ${condition}: nothing says it is ready`);
    }
    if (!oneShot(s)) assert.equal(s.restart, 'unless-stopped', `${name} restarts`);
  }
  // Every long-running service says when it is ready; the worker's check is a script in the image.
  for (const [name, s] of Object.entries(services)) {
    if (!oneShot(s)) assert.ok(s.healthcheck, `${name} has a healthcheck`);
  }
  const workerCheck = service('worker').healthcheck?.test ?? [];
  assert.ok(existsSync(join(root, workerCheck.at(-1) ?? '')), `${workerCheck.join(' ')}: the script exists`);
  const workerDeps = service('worker').depends_on ?? {};
  assert.deepEqual(Object.keys(workerDeps).sort(), ['create-bucket', 'filemaker-sim', 'migrate', 'temporal']);
  assert.deepEqual(service('migrate').command, ['npm', 'run', 'migrate']);
  const scripts = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> })
    .scripts;
  for (const s of Object.values(services)) {
    if (s.command?.[0] === 'npm') assert.ok(scripts[s.command[2]!], `npm run ${s.command[2]} exists`);
  }
});

void test("Temporal's volume is handed to the image's uid 1000 before the dev server starts", () => {
  const temporal = service('temporal');
  const volume = (temporal.volumes ?? []).map((v) => v.split(':'));
  const db = flag(temporal, '--db-filename') ?? '';
  const mount = volume.find(([, path]) => db.startsWith(`${path}/`));
  assert.ok(mount, `the database ${db} is on a volume`);
  const owner = Object.entries(services).find(([, s]) =>
    (s.volumes ?? []).some((v) => v.startsWith(`${mount[0]}:`) && s !== temporal),
  );
  assert.ok(owner, 'a one-shot mounts the same volume');
  const [ownerName, ownerService] = owner;
  assert.equal(ownerService.user, 'root');
  const target = `${mount[0]}:`.length;
  const ownerPath = ownerService.volumes!.find((v) => v.startsWith(`${mount[0]}:`))!.slice(target);
  assert.deepEqual(ownerService.command, ['chown', '-R', '1000:1000', ownerPath]);
  assert.equal(temporal.depends_on?.[ownerName]?.condition, 'service_completed_successfully');
});

void test('the codec server listens on CODEC_SERVER_HOST (loopback unless set)', async () => {
  assert.equal(loadConfig({}, 'client').codecServerHost, '127.0.0.1');
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src', 'client', 'cli.ts'), 'codec-server'], {
    env: {
      ...process.env,
      PAYLOAD_KEYS: generateKeySpec('compose'),
      CODEC_SERVER_HOST: '127.0.0.2',
      CODEC_SERVER_PORT: '0',
      LOG_LEVEL: 'silent',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    let out = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /codec server: (\S+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      child.once('exit', (code) => reject(new Error(`codec server exited (${code}): ${out}`)));
    });
    assert.match(url, /^http:\/\/127\.0\.0\.2:\d+$/);
    const res = await fetch(`${url}/decode`, { method: 'POST', body: '{"payloads":[]}' });
    assert.deepEqual(await res.json(), { payloads: [] });
  } finally {
    child.kill('SIGINT');
  }
});
