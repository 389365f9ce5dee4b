/**
 * The cut-over's input, result and query, shared by the workflow (which validates its input again: it may come from
 * `temporal workflow start --input`) and the client. Pure: zod and message definitions only.
 */
import { defineQuery } from '@temporalio/workflow';
import { z } from 'zod';
import { reimportInputSchema } from './options';
import type { ReimportResult } from './reimport';

export const cutoverInputSchema = z
  .object({
    /** Seconds between the two reads of every table that must be identical, record versions included. */
    freezeIntervalSeconds: z.number().min(1).max(86_400).default(60),
    /** Patients shown field by field on the certificate, chosen by the run id. */
    certificateSample: z.number().int().min(0).max(100).default(5),
    /**
     * Options of the final import. Its mode is always incremental, and it never writes back to FileMaker: a write-back
     * changes record versions, and the cut-over would see its own writes as a source that moved.
     */
    import: reimportInputSchema
      .pick({ settings: true, transferBudgetBytes: true, vanishedThreshold: true, notify: true })
      .strict()
      .prefault({}),
  })
  .strict();

/**
 * The final import's run id: the cut-over's id with `-import`. A run id is what `reimport_runs` accepts (letters,
 * digits, `._:-`, at most 200 characters; no `/`, which names a run's phase children), so the cut-over's id must be too.
 */
export const finalImportId = (cutoverId: string) => `${cutoverId}-import`;
export const CUTOVER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,192}$/;

export type CutoverInput = z.input<typeof cutoverInputSchema>;
export type CutoverOptions = z.infer<typeof cutoverInputSchema>;

/** Where a cut-over is: reading, waiting out the freeze interval, checking, importing, certifying, or at its end. */
export type CutoverStage =
  'reading' | 'waiting' | 'checking' | 'importing' | 'rechecking' | 'certifying' | 'cutover_complete' | 'failed';

export interface CutoverProgress {
  stage: CutoverStage;
  /** When the freeze interval's timer ends (while `waiting`). */
  waitingUntil?: string;
  /** The final import's workflow id (its run id), once started. */
  importWorkflowId?: string;
}

/** The cut-over's stage (answered at any time). */
export const cutoverProgressQuery = defineQuery<CutoverProgress>('cutoverProgress');

export interface CutoverResult {
  cutoverId: string;
  status: 'cutover_complete';
  /** The final import's run id (`<cut-over id>-import`). */
  runId: string;
  freezeIntervalSeconds: number;
  /** Per source table: records FileMaker listed in every read of the cut-over. */
  tables: { table: string; records: number }[];
  /** The final import's phases with their counts. */
  phases: ReimportResult['phases'];
  /** S3 key of the run's reconciliation certificate (beside the run's report). */
  certificateKey: string;
  reportKey?: string;
  /** SHA-256 over the run's ledger, as the certificate states it. */
  ledgerDigest: string;
}
