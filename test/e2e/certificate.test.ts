/**
 * The reconciliation certificate, end to end on the real dev server, PostgreSQL, MinIO and the simulator (demo
 * preset): after a completed run, the page states every table's counts as the ledger has them, its sample of patients
 * (the same for the same run) shows each compared field with the source's value and the database's, the digest changes
 * when one ledger row does, the sign-off appears once recorded, Chromium prints it to a PDF that Poppler renders and
 * takes a screenshot, and the client command prints nothing of the page.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileMakerClientFor } from '../../src/activities/deps';
import {
  buildCertificate,
  COMPARED_FIELDS,
  printCertificate,
  renderCertificate,
  writeCertificate,
} from '../../src/certificate';
import { loadConfig } from '../../src/config';
import { PHASES } from '../../src/domain/tables';
import type { FileMakerClient } from '../../src/filemaker/client';
import { createLogger } from '../../src/logger';
import { ledgerDigest } from '../../src/store/certificate';
import { signOff } from '../../src/store/retention';
import { CHROMIUM_ARGS, ensureChromium, ensurePdftoppm } from '../../scripts/ensure-chromium';
import { completedRun, setup, type Setup } from '../helpers/files';

describe('reconciliation certificate', { concurrency: 1 }, () => {
  let s: Setup;
  let fm: FileMakerClient;
  let runId: string;
  const dir = mkdtempSync(join(tmpdir(), 'fm-certificate-'));
  before(async () => {
    s = await setup({ preset: 'demo', seed: 33, sizeScale: 0.02 });
    const config = loadConfig({ ...process.env, ...s.env }, 'client');
    fm = fileMakerClientFor(config, createLogger({ level: 'error', name: 'certificate-test' }));
    ({ runId } = await completedRun(s, { phases: PHASES }));
  });
  after(async () => {
    await fm?.close();
    await s?.close();
  });
  const build = () => buildCertificate({ pool: s.pool, fm, runId, sample: 4, timeZone: 'Australia/Sydney' });

  test('the page states the ledger and a reproducible sample compared with the source and the database', async () => {
    const c = await build();
    // Counts as the ledger has them.
    const ledger = await s.pool.query<{ t: string; state: string; n: number }>(
      `select source_table as t, state, count(*)::int as n from import_ledger where run_id = $1 group by 1, 2`,
      [runId],
    );
    for (const l of ledger.rows) assert.equal(c.facts.tables.find((t) => t.table === l.t)?.byState[l.state], l.n);
    assert.deepEqual(c.facts.digest, (await ledgerDigest(s.pool, runId)).digest);

    // The sample: the same patients for the same run; each field's FileMaker value is the source's, its Nexus value
    // the database's, and every compared field agrees after normalisation.
    assert.equal(c.samples.length, 4);
    assert.deepEqual(
      (await build()).samples.map((x) => x.recordId),
      c.samples.map((x) => x.recordId),
    );
    const truth = (await (await fetch(`${s.sim.adminUrl}/truth/tables/API_Contacts`)).json()) as {
      records: { recordId: number | string; fieldData: Record<string, string | number | null> }[];
    };
    for (const p of c.samples) {
      const source = truth.records.find((r) => String(r.recordId) === p.recordId)!;
      const row = (
        await s.pool.query<{ row: Record<string, unknown> }>(
          'select to_jsonb(p) as row from patients p where filemaker_id = $1',
          [p.filemakerId],
        )
      ).rows[0]!.row;
      assert.equal(p.fields.length, COMPARED_FIELDS.length);
      for (const f of p.fields) {
        assert.equal(f.filemaker, String(source.fieldData[f.field] ?? ''), `${f.field} is the source's`);
        assert.equal(f.nexus, row[f.column] === null ? '' : String(row[f.column]), `${f.column} is the database's`);
        assert.ok(f.matches, `${f.column} equals its normalised source value`);
      }
    }
    const html = renderCertificate(c);
    assert.ok(html.includes(c.facts.digest));
    assert.equal((html.match(/class="patient"/g) ?? []).length, 4);
  });

  test('the digest changes when one ledger row changes', async () => {
    const before = (await ledgerDigest(s.pool, runId)).digest;
    const one = await s.pool.query<{ record_id: string; source_table: string; state: string }>(
      `select record_id, source_table, state from import_ledger where run_id = $1 and state = 'imported' limit 1`,
      [runId],
    );
    const { record_id, source_table } = one.rows[0]!;
    const set = (state: string, reason: string | null) =>
      s.pool.query(
        `update import_ledger set state = $4, reason_code = $5
          where run_id = $1 and source_table = $2 and record_id = $3`,
        [runId, source_table, record_id, state, reason],
      );
    await set('unlinked', 'PATIENT_NOT_FOUND');
    assert.notEqual((await ledgerDigest(s.pool, runId)).digest, before);
    await set('imported', null);
    assert.equal((await ledgerDigest(s.pool, runId)).digest, before, 'the same ledger, the same digest');
  });

  test('signed off, written with owner-only access, printed to PDF and rendered by Chromium', async () => {
    await signOff(s.pool, runId, 'Practice Manager');
    const html = renderCertificate(await build());
    assert.match(html, /Signed off by <b>Practice Manager<\/b>/);
    const page = join(dir, 'certificate.html');
    await writeCertificate(page, html);
    assert.equal(statSync(page).mode & 0o777, 0o600);
    const chromium = ensureChromium();
    const pdf = join(dir, 'certificate.pdf');
    await printCertificate(page, pdf, chromium);
    const bytes = readFileSync(pdf);
    assert.equal(bytes.subarray(0, 5).toString(), '%PDF-', 'a PDF');
    assert.ok(bytes.length > 5000, `PDF of ${bytes.length} bytes`);
    // Poppler renders its first page: a real, readable PDF, not only a header.
    execFileSync(ensurePdftoppm(), ['-png', '-r', '50', '-f', '1', '-l', '1', pdf, join(dir, 'page')], {
      timeout: 60_000,
    });
    const rendered = readdirSync(dir).find((f) => f.startsWith('page') && f.endsWith('.png'));
    assert.ok(rendered && statSync(join(dir, rendered)).size > 5000, 'pdftoppm rendered the first page');
    const shot = join(dir, 'certificate.png');
    execFileSync(chromium, [...CHROMIUM_ARGS, `--screenshot=${shot}`, '--window-size=1200,1600', `file://${page}`], {
      stdio: 'ignore',
      timeout: 120_000,
    });
    assert.ok(existsSync(shot) && statSync(shot).size > 10_000, 'a screenshot of the page');
  });

  test('the client command writes the page and prints no patient data, even logging at debug', async () => {
    const page = join(dir, 'cli.html');
    // Asynchronously: the simulator answers from this process.
    const run = await promisify(execFile)(
      join('node_modules', '.bin', 'tsx'),
      ['src/client/cli.ts', 'certificate', runId, '--out', page, '--sample', '4'],
      { env: { ...process.env, ...s.env, LOG_LEVEL: 'debug' }, encoding: 'utf8' },
    );
    const out = run.stdout + run.stderr;
    const html = readFileSync(page, 'utf8');
    const values = (await build()).samples.flatMap((p) =>
      p.fields.filter((f) => f.filemaker.trim().length >= 4).map((f) => f.filemaker.trim()),
    );
    assert.ok(values.length > 10, 'the sample holds patient data to look for');
    for (const v of values) {
      assert.ok(html.includes(v.replace(/&/g, '&amp;').replace(/</g, '&lt;')), 'the page carries the sample');
      assert.ok(!out.includes(v), 'nothing of the page is printed');
    }
    assert.match(out, /ledger digest [0-9a-f]{64}/);
  });
});
