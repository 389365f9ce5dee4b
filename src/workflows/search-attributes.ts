/**
 * The run's search attributes: what an operator filters the Web UI's run list by (`FmReimportStatus="rolled_back"`,
 * `FmReimportPhase="images"`, `FmReimportDryRun=true`). Search attributes are indexed as plain text, never encoded by
 * the payload codec: they carry the run's status, phase name and dry-run flag only, never a record's data.
 *
 * A server must know an attribute before a workflow sets it: an upsert of an unregistered one fails every workflow
 * task, which would leave the run stuck. So the run upserts them only when it was started with `FmReimportStatus`
 * (see `runSearchAttributes`): the server refuses such a start, with the attribute's name, when they are not
 * registered, and a run started without them (an older client, a bare `temporal workflow start`) never sets them.
 */
import {
  defineSearchAttributeKey,
  SearchAttributeType,
  type SearchAttributePair,
  type SearchAttributeUpdatePair,
} from '@temporalio/common';
import { patched, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { PhaseName } from '../domain/tables';
import type { RunProgress } from './messages';
import { selectPhases, type ReimportOptions } from './options';

/** The run's status as the `progress` query reports it (`running`, `paused`, `completed`, `rolled_back`, …). */
export const STATUS_ATTRIBUTE = defineSearchAttributeKey('FmReimportStatus', SearchAttributeType.KEYWORD);
/** The phase running now, or the last one the run reached (the one that failed, when it rolled back). */
export const PHASE_ATTRIBUTE = defineSearchAttributeKey('FmReimportPhase', SearchAttributeType.KEYWORD);
/** Whether the run is a dry run. */
export const DRY_RUN_ATTRIBUTE = defineSearchAttributeKey('FmReimportDryRun', SearchAttributeType.BOOL);

/** Every attribute the run sets, with its type's name as `temporal operator search-attribute create` spells it. */
export const SEARCH_ATTRIBUTES = [
  { name: STATUS_ATTRIBUTE.name, type: 'Keyword' },
  { name: PHASE_ATTRIBUTE.name, type: 'Keyword' },
  { name: DRY_RUN_ATTRIBUTE.name, type: 'Bool' },
] as const;

/** The attributes a run is started with (`typedSearchAttributes` of the start call): running, and its dry-run flag. */
export function runSearchAttributes(input: { dryRun?: boolean }): SearchAttributePair[] {
  return [
    { key: STATUS_ATTRIBUTE, value: 'running' },
    { key: DRY_RUN_ATTRIBUTE, value: input.dryRun ?? false },
  ];
}

/**
 * What a client adds to the start of a run (`client.workflow.start('reimport', { ...runStartMetadata(options), … })`):
 * the search attributes, and the one-line summary the Web UI shows for the run (its phases, and whether it is a dry run).
 */
export function runStartMetadata(options: ReimportOptions): {
  typedSearchAttributes: SearchAttributePair[];
  staticSummary: string;
} {
  return {
    typedSearchAttributes: runSearchAttributes(options),
    staticSummary: `Reimport${options.dryRun ? ' (dry run)' : ''}: ${selectPhases(options).join(', ')}`,
  };
}

/**
 * What a client adds to the start of a cut-over: its dry-run flag (false). A server without the run attributes refuses
 * that start, naming them, as it refuses a run's; a cut-over started with it gives its final import the run's
 * attributes (`finalImportSearchAttributes`).
 */
export function cutoverSearchAttributes(): SearchAttributePair[] {
  return [{ key: DRY_RUN_ATTRIBUTE, value: false }];
}

/** A cut-over's final import has search attributes only in cut-overs recorded after it got them. */
const FINAL_IMPORT_SEARCH_ATTRIBUTES = 'cutover-final-import-search-attributes';

/**
 * In a cut-over workflow: the attributes its final import starts with, a run's (so the Web UI's run list filters it
 * like any other), when the cut-over was started with `cutoverSearchAttributes`; else none.
 */
export function finalImportSearchAttributes(): SearchAttributePair[] | undefined {
  const started = workflowInfo().typedSearchAttributes.get(DRY_RUN_ATTRIBUTE) !== undefined;
  return started && patched(FINAL_IMPORT_SEARCH_ATTRIBUTES) ? runSearchAttributes({ dryRun: false }) : undefined;
}

/** Upserting the attributes adds commands: a run recorded before them replays without. */
const UPSERT_SEARCH_ATTRIBUTES = 'run-upserts-search-attributes';

/** Keeps the run's search attributes in step with its progress, when the run was started with them. */
export class RunSearchAttributes {
  private readonly enabled: boolean;
  private status: string | undefined;
  private phase: PhaseName | undefined;

  constructor() {
    const started = workflowInfo().typedSearchAttributes.get(STATUS_ATTRIBUTE);
    // Decided once, from the start event: the same on every replay.
    this.enabled = started !== undefined && patched(UPSERT_SEARCH_ATTRIBUTES);
    this.status = started;
  }

  /** Sets the status and phase the progress shows now, if either changed (a phase that ended stays until the next). */
  update(progress: Pick<RunProgress, 'status' | 'currentPhase'>): void {
    if (!this.enabled) return;
    const pairs: SearchAttributeUpdatePair[] = [];
    if (progress.status !== this.status) pairs.push({ key: STATUS_ATTRIBUTE, value: progress.status });
    if (progress.currentPhase !== undefined && progress.currentPhase !== this.phase) {
      pairs.push({ key: PHASE_ATTRIBUTE, value: progress.currentPhase });
    }
    if (pairs.length === 0) return;
    this.status = progress.status;
    this.phase = progress.currentPhase ?? this.phase;
    upsertSearchAttributes(pairs);
  }
}
