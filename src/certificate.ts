/**
 * The reconciliation certificate of a run (`npm run client -- certificate R --out page.html [--pdf page.pdf]`): one
 * static HTML page a practice manager can read and sign off. It states the run's options and timings; per source
 * table the records FileMaker listed and what became of them, with reasons; what changed since the last run; the
 * records that failed, by FileMaker id; a sample of patients chosen by the run id, each shown field by field as
 * FileMaker holds it, as the documented normalisations make it, and as Nexus holds it, with their appointments,
 * notes, documents and images; the sign-off; and a digest of the run's whole ledger, which ties the page to exactly
 * one outcome.
 *
 * The page holds patient data: it is written only where the operator says (mode 0600), or by a cut-over beside the
 * run's report in Nexus's bucket (src/activities/cutover.ts), never logged, never sent to Temporal. The PDF is the same page printed by headless Chromium.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { createMapContext } from './domain/context';
import { mapPatient } from './domain/mappers/patients';
import type { FmRecord } from './domain/types';
import { FileMakerError } from './errors';
import { FM_ERRORS } from './error-codes';
import type { FileMakerClient } from './filemaker/client';
import { certificateFacts, samplePatients, type CertificateFacts, type SampledPatient } from './store/certificate';
import type { Pool } from './store/db';
import { clinicNames } from './store/lookups';

/** Nexus patient columns set against the FileMaker field they come from (docs/normalisations.md). */
export const COMPARED_FIELDS: readonly (readonly [column: string, field: string])[] = [
  ['title', 'title'],
  ['first_name', 'nameFirst'],
  ['middle_name', 'nameMiddle'],
  ['last_name', 'nameLast'],
  ['dob', 'DOB'],
  ['sex', 'gender'],
  ['health_number', 'Health Number'],
  ['funding', 'Funding'],
  ['clinic_id', 'id_Clinic'],
  ['ndis_plan_start', 'NDIS_PlanStart'],
  ['ndis_plan_end', 'NDIS_PlanEnd'],
  ['ndis_coordinator_name', 'NDIS_CoordinatorName'],
  ['ndis_coordinator_email', 'NDIS_CoordinatorEmail'],
];

export interface FieldComparison {
  column: string;
  field: string;
  filemaker: string;
  expected: string;
  nexus: string;
  matches: boolean;
}

export interface PatientSample {
  recordId: string;
  filemakerId: string;
  /** Why the fields could not be compared (the record is gone from FileMaker, or has no row in Nexus). */
  note?: string;
  fields: FieldComparison[];
  related: SampledPatient['related'];
}

export interface Certificate {
  facts: CertificateFacts;
  samples: PatientSample[];
  generatedAt: string;
}

const text = (v: unknown): string => {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return JSON.stringify(v);
};

/** Reads what the certificate of `runId` states; `sample` patients are read again from FileMaker. */
export async function buildCertificate(opts: {
  pool: Pool;
  fm: FileMakerClient;
  runId: string;
  sample: number;
  timeZone: string;
}): Promise<Certificate> {
  const { pool, fm, runId } = opts;
  const facts = await certificateFacts(pool, runId);
  if (!facts) throw new Error(`no run ${runId} in the database`);
  const ctx = createMapContext({ timeZone: opts.timeZone, clinics: await clinicNames(pool) });
  const samples: PatientSample[] = [];
  for (const p of await samplePatients(pool, runId, opts.sample)) {
    const base = { recordId: p.recordId, filemakerId: p.filemakerId, related: p.related };
    let record: FmRecord | undefined;
    try {
      record = (await fm.getRecord('API_Contacts', p.recordId)) as FmRecord;
    } catch (err) {
      if (!(err instanceof FileMakerError && err.code === FM_ERRORS.RECORD_MISSING)) throw err;
    }
    if (!record) {
      samples.push({ ...base, note: 'no longer in FileMaker', fields: [] });
      continue;
    }
    const mapped = mapPatient(record, ctx);
    const expected = mapped.kind === 'row' ? (mapped.row as unknown as Record<string, unknown>) : undefined;
    const fields = COMPARED_FIELDS.map(([column, field]) => {
      const e = text(expected?.[column]);
      const n = text(p.row?.[column]);
      return { column, field, filemaker: text(record.fieldData[field]), expected: e, nexus: n, matches: e === n };
    });
    const note = !p.row ? 'no row in Nexus' : expected ? undefined : `not mapped: ${mapped.kind}`;
    samples.push({ ...base, fields, ...(note ? { note } : {}) });
  }
  return { facts, samples, generatedAt: new Date().toISOString() };
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const esc = (v: unknown) => text(v).replace(/[&<>"']/g, (c) => ESCAPES[c]!);
const num = (n: number | undefined) => (n ?? 0).toLocaleString('en-AU');
const cells = (tag: 'td' | 'th', values: unknown[], attrs = '') =>
  `<tr${attrs}>${values.map((v) => `<${tag}>${esc(v)}</${tag}>`).join('')}</tr>`;

/** The certificate as one self-contained HTML page (no script, no remote resource). */
export function renderCertificate(c: Certificate): string {
  const { run, tables, failed } = c.facts;
  const states = ['imported', 'unlinked', 'skipped', 'failed'];
  const tableRows = tables.map((t) =>
    cells('td', [
      t.table,
      num(t.source),
      ...states.map((s) => num(t.byState[s])),
      Object.entries(t.byReason)
        .map(([k, n]) => `${k} ${n}`)
        .join(', '),
    ]),
  );
  const deltaRows = tables
    .filter((t) => t.delta?.previousRunId)
    .map((t) =>
      cells('td', [
        t.table,
        t.delta!.previousRunId,
        t.delta!.added,
        t.delta!.changed,
        t.delta!.unchanged,
        t.delta!.vanished,
      ]),
    );
  const samples = c.samples.map((s) => {
    const fields = s.fields.map((f) =>
      cells(
        'td',
        [f.column, f.field, f.filemaker, f.expected, f.nexus, f.matches ? 'yes' : 'NO'],
        ` data-column="${esc(f.column)}" class="${f.matches ? 'ok' : 'bad'}"`,
      ),
    );
    const related = s.related.map(
      (r) =>
        `<h4>${esc(r.table)} (${r.rows.length})</h4>` +
        (r.rows.length
          ? `<table>${cells('th', Object.keys(r.rows[0]!))}${r.rows.map((x) => cells('td', Object.values(x))).join('')}</table>`
          : ''),
    );
    return `<section class="patient" data-record-id="${esc(s.recordId)}"><h3>Patient ${esc(s.filemakerId)} (record ${esc(s.recordId)})</h3>
${s.note ? `<p class="note">${esc(s.note)}</p>` : ''}
<table>${cells('th', ['Nexus column', 'FileMaker field', 'FileMaker value', 'after normalisation', 'Nexus value', 'equal'])}${fields.join('')}</table>
${related.join('\n')}</section>`;
  });
  const signed = run.signedOffAt
    ? `Signed off by <b>${esc(run.signedOffBy)}</b> at ${esc(run.signedOffAt)}.`
    : `Not signed off. To accept this run: <code>npm run client -- signoff ${esc(run.runId)} --by "&lt;name&gt;"</code>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Reconciliation certificate ${esc(run.runId)}</title>
<style>
body { font: 11pt system-ui, sans-serif; margin: 2em; color: #111; }
table { border-collapse: collapse; margin: .5em 0 1em; }
td, th { border: 1px solid #999; padding: .2em .5em; text-align: left; vertical-align: top; }
tr.bad td { background: #fdd; }
code, .digest { font-family: ui-monospace, monospace; word-break: break-all; }
.patient { page-break-inside: avoid; }
</style></head><body>
<h1>Reconciliation certificate</h1>
<p>Run <b>${esc(run.runId)}</b>: ${esc(run.status)}, started ${esc(run.startedAt)}, finished ${esc(run.finishedAt ?? '—')}. Generated ${esc(c.generatedAt)}.</p>
<p>Ledger digest (SHA-256 over ${num(c.facts.ledgerRows)} ledger rows): <span class="digest" id="digest">${esc(c.facts.digest)}</span></p>
<p id="signoff">${signed}</p>
<h2>Options</h2><pre>${esc(JSON.stringify(run.options, null, 2))}</pre>
<h2>Records per source table</h2>
<table id="tables">${cells('th', ['source table', 'in FileMaker', ...states, 'reasons'])}${tableRows.join('')}</table>
<h2>Since the last completed run</h2>
${deltaRows.length ? `<table id="delta">${cells('th', ['source table', 'compared with', 'added', 'changed', 'unchanged', 'vanished'])}${deltaRows.join('')}</table>` : '<p>First run: nothing to compare with.</p>'}
<h2>Failed records</h2>
${failed.length ? `<table id="failed">${cells('th', ['source table', 'FileMaker id', 'record id', 'reason'])}${failed.map((f) => cells('td', [f.table, f.filemakerId ?? '(none)', f.recordId, f.reason])).join('')}</table>` : '<p>None.</p>'}
${c.facts.failedNotListed ? `<p>…and ${num(c.facts.failedNotListed)} more (the ledger holds them all).</p>` : ''}
<h2>Sample of patients, chosen by the run id</h2>
<p>Each value as FileMaker holds it now, after the normalisations of docs/normalisations.md, and as Nexus holds it.</p>
${samples.join('\n') || '<p>No imported patients.</p>'}
</body></html>
`;
}

/** Writes the page where the operator said, readable by its owner only. */
export async function writeCertificate(path: string, html: string): Promise<void> {
  await writeFile(path, html, { mode: 0o600 });
}

/** Prints the page to PDF with headless Chromium (`chromium`, or CHROMIUM_PATH). */
export async function printCertificate(htmlPath: string, pdfPath: string, chromium = 'chromium'): Promise<void> {
  await promisify(execFile)(
    chromium,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-pdf-header-footer',
      `--print-to-pdf=${resolve(pdfPath)}`,
      pathToFileURL(resolve(htmlPath)).href,
    ],
    { timeout: 120_000 },
  );
}
