/**
 * The input of a reimport, validated before anything runs. Shared by the workflow (which validates again: the
 * input may come from `temporal workflow start --input`) and the client. Pure: zod only.
 */
import { z } from 'zod';
import { PHASES, type PhaseName } from '../domain/tables';
import { exportLocationSchema } from '../export/location';

export const settingsSchema = z
  .object({
    /** Chunks (core records) or batches (files) in flight at once per phase. */
    concurrency: z.number().int().min(1).max(64).default(4),
    /**
     * Records per chunk of a core-record phase. 1,000 rather than 500: a chunk's records come in one FileMaker find
     * (up to 1,000 ids, src/filemaker/data-api.ts), and half the chunks halve their fixed costs (the activity's
     * Temporal round trips, the manifest slice, lookup and ledger statements): at seed counts 16 chunks for the
     * 15,149 appointments instead of 31.
     */
    chunkSize: z.number().int().min(1).max(5000).default(1000),
    /**
     * Files per batch activity of a files phase. 40 rather than 20: per file, half the batches' Temporal and
     * PostgreSQL overhead (the bench's worker CPU per file fell by about 1.5 ms, Temporal's by 0.6 ms).
     */
    fileBatchSize: z.number().int().min(1).max(500).default(40),
    /** First cooldown after an overload answer; doubles on each further one, reset after a success. */
    // Short first: a 502 burst is usually over in a second, and consecutive overloads double it (1, 2, 4 … 300 s).
    cooldownBaseSeconds: z.number().min(0.01).max(3600).default(1),
    /** Longest cooldown. */
    cooldownMaxSeconds: z.number().min(0.01).max(86_400).default(300),
  })
  .strict();

export type Settings = z.infer<typeof settingsSchema>;

export const reimportInputSchema = z
  .object({
    /** Phases to run (default all, in run order). Backup always runs when a phase writes. */
    phases: z.array(z.enum(PHASES)).min(1).optional(),
    /** Skip the phases before this one (they completed in an earlier run). */
    resumeFrom: z.enum(PHASES).optional(),
    /**
     * `full` (the default): delete the imported data and import every record again. `incremental`: no delete phase;
     * only records added or changed since the last completed run (and those whose links changed) are read, mapped and
     * written, the rows of vanished ones deleted; refused when no completed run exists or the schema changed since.
     */
    mode: z.enum(['full', 'incremental']).default('full'),
    /** Metadata only: nothing is written to PostgreSQL, S3 or FileMaker, no container bytes are read. */
    dryRun: z.boolean().default(false),
    /**
     * Images from the FileMaker Pro bulk export instead of container downloads: `{ kind: 'folder', path }` (on the
     * workers' machine) or `{ kind: 's3', bucket, prefix }`. The manifest still comes from FileMaker (OData).
     */
    imagesFrom: exportLocationSchema.optional(),
    /** PATCH `NexusExportDate` on FileMaker records after their file is safely stored. */
    writeBack: z.boolean().default(false),
    settings: settingsSchema.default(settingsSchema.parse({})),
    /**
     * Share of a table's records (0–1) that may have vanished from FileMaker since the last completed run before
     * the run stops ahead of the delete phase and waits for `confirmVanished` (or a cancel).
     */
    vanishedThreshold: z.number().min(0).max(1).default(0.02),
    /** Annual FileMaker transfer budget in bytes for this run (default: the worker's FM_TRANSFER_BUDGET). */
    transferBudgetBytes: z.number().int().min(0).optional(),
    /** Extra notification targets for this run, by name of a configured channel. */
    notify: z
      .object({ webhook: z.boolean().default(true), email: z.boolean().default(true) })
      .strict()
      .default({ webhook: true, email: true }),
  })
  .strict();

export type ReimportInput = z.input<typeof reimportInputSchema>;
export type ReimportOptions = z.infer<typeof reimportInputSchema>;

/** Which phases this run executes, in run order. */
export function selectPhases(o: ReimportOptions): PhaseName[] {
  const wanted = new Set<PhaseName>(o.phases ?? PHASES);
  const start = o.resumeFrom ? PHASES.indexOf(o.resumeFrom) : 0;
  return PHASES.filter((p, i) => wanted.has(p) && i >= start);
}

/** Readable one-line summary of zod issues; never echoes input values. */
export function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`).join('; ');
}
