// `npm run sim -- [options]` runs the simulator until SIGINT/SIGTERM; `npm run sim -- export --out DIR` writes the
// FileMaker Pro bulk export of images.
import { Command, InvalidArgumentError, Option } from 'commander';
import type { AuthMode } from './claris-id';
import { Dataset } from './dataset';
import { exportImages } from './export';
import { parseFaultPatch, type Profile } from './faults';
import { parseLiveSpec } from './mutations';
import type { Preset } from './schema';
import { startSimulator } from './server';

const num = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a non-negative number');
  return n;
};

const presetOpt = () =>
  new Option('--preset <preset>', 'data set size').choices(['tiny', 'demo', 'seed']).default('tiny');

interface RunOpts {
  preset: Preset;
  scale: number;
  seed: number;
  profile: Profile;
  sizeScale: number;
  host: string;
  port: number;
  adminPort: number;
  database?: string;
  username?: string;
  password?: string;
  auth: AuthMode;
  faults?: string;
  live?: string;
  json?: boolean;
}

const program = new Command('sim')
  .description('FileMaker Server/Cloud simulator (Data API, OData v4, containers) for fm-reimport')
  // The export subcommand has its own --preset/--size-scale; without this the parent would swallow them.
  .enablePositionalOptions()
  .addOption(presetOpt())
  .option('--scale <n>', 'multiplier on preset record counts', num, 1)
  .option('--seed <n>', 'data set seed', num, 1)
  .addOption(
    new Option('--profile <profile>', 'fault profile').choices(['clean', 'fmcloud', 'hostile']).default('clean'),
  )
  .option('--size-scale <n>', 'multiplier on container sizes', num, 1)
  .option('--host <host>', 'listen address', '127.0.0.1')
  .option('--port <n>', 'API port (0 = any free port)', num, 0)
  .option('--admin-port <n>', 'admin/ground-truth port (0 = any free port)', num, 0)
  .option('--database <name>', 'database name (case-sensitive)')
  .option('--username <name>', 'account name')
  .option('--password <password>', 'account password')
  .addOption(
    new Option('--auth <mode>', 'sign-in: basic (FileMaker Server) or fmid (FileMaker Cloud, Claris ID tokens only)')
      .choices(['basic', 'fmid'])
      .default('basic'),
  )
  .option('--faults <json>', 'fault overrides as JSON, e.g. {"latencyMs":50}')
  .option(
    '--live <rates>',
    'change the data while serving, per second: inserts=2,updates=5,deletes=1,containers=1[,seed=7][,tables=A;B]',
  )
  .option('--json', 'print connection info as one JSON line')
  .action(async (o: RunOpts) => {
    const faults = o.faults ? parseFaultPatch(JSON.parse(o.faults)) : undefined;
    const sim = await startSimulator({ ...o, faults, live: o.live ? parseLiveSpec(o.live) : undefined });
    const info = {
      url: sim.url,
      dataApi: `${sim.url}/fmi/data/vLatest/databases/${encodeURIComponent(sim.database)}`,
      odata: `${sim.url}/fmi/odata/v4/${encodeURIComponent(sim.database)}`,
      adminUrl: sim.adminUrl,
      ...(o.auth === 'fmid' ? { fmidTokens: `POST ${sim.adminUrl}/fmid/tokens` } : {}),
      database: sim.database,
      preset: o.preset,
      profile: o.profile,
    };
    if (o.json) console.log(JSON.stringify(info));
    else {
      console.log(`FileMaker simulator (${o.preset}, ${o.profile}) listening`);
      for (const [k, v] of Object.entries(info)) console.log(`  ${k.padEnd(10)} ${v}`);
      console.log(
        o.auth === 'fmid'
          ? '  (Claris ID only: Authorization: FMID <token from fmidTokens>)'
          : '  (account and password as configured; see --username/--password)',
      );
    }
    const stop = (signal: string) => {
      console.error(`${signal}: shutting down`);
      sim.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });

program
  .command('export')
  .description('write the FileMaker Pro bulk export of images: {recid}.{ext} files and a metadata CSV with a BOM')
  .addOption(presetOpt())
  .option('--scale <n>', 'multiplier on preset record counts', num, 1)
  .option('--seed <n>', 'data set seed', num, 1)
  .option('--size-scale <n>', 'multiplier on container sizes', num, 1)
  .requiredOption('--out <dir>', 'output folder')
  .action(async (o: { preset: Preset; scale: number; seed: number; sizeScale: number; out: string }) => {
    const ds = new Dataset({ preset: o.preset, scale: o.scale, seed: o.seed, sizeScale: o.sizeScale });
    const r = await exportImages(ds, o.out);
    console.log(
      `exported ${r.files} image files (${(r.bytes / 1e6).toFixed(1)} MB), ${r.rows} CSV rows -> ${r.csvPath}`,
    );
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
