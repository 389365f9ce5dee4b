/**
 * Repeated reimports until cut-over, as Temporal Schedules: each action starts the `reimport` workflow with the input
 * `start` builds, under the id `<scheduleId>-<time>` (the server appends the time). A run never overlaps the one
 * before it (overlap SKIP: a due time while a run is going is skipped, not queued), and a run that fails (a
 * pre-flight refusal, a rollback) pauses the schedule until an operator unpauses it. Notifications are the runs'
 * own, as for any run.
 */
import {
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleDescription,
  type ScheduleSpec,
} from '@temporalio/client';
import type { Config } from '../config';
import type { ReimportInput } from '../workflows/options';
import { reimportInput } from './operations';

/** When a schedule fires: every `every` (`30m`, `12h`, `1d`), or a cron line in `timeZone`. */
export type ReimportCadence = { every: string } | { cron: string; timeZone: string };

export interface CreateScheduleOptions {
  scheduleId: string;
  cadence: ReimportCadence;
  input: ReimportInput;
  note?: string;
  /** Create it paused (start it with `unpause`). */
  paused?: boolean;
}

/** An interval the schedule accepts: a whole number of seconds, minutes, hours or days. */
export const isInterval = (every: string): boolean => /^[1-9]\d*[smhd]$/.test(every);

function specFor(cadence: ReimportCadence): ScheduleSpec {
  if ('every' in cadence) {
    if (!isInterval(cadence.every)) throw new Error(`--every: expected a duration such as 30m, 12h or 1d`);
    return { intervals: [{ every: cadence.every as `${number}s` }] };
  }
  return { cronExpressions: [cadence.cron], timezone: cadence.timeZone };
}

/** Creates the schedule; fails if one of that id exists. */
export async function createReimportSchedule(client: Client, config: Config, opts: CreateScheduleOptions) {
  const input = reimportInput(opts.input);
  return client.schedule.create({
    scheduleId: opts.scheduleId,
    spec: specFor(opts.cadence),
    action: {
      type: 'startWorkflow',
      workflowType: 'reimport',
      workflowId: opts.scheduleId,
      taskQueue: config.temporal.taskQueue,
      args: [input],
    },
    policies: {
      overlap: ScheduleOverlapPolicy.SKIP,
      pauseOnFailure: true,
      // A due time missed while the server was down is taken up to an hour late, not days later.
      catchupWindow: '1 hour',
    },
    state: { paused: Boolean(opts.paused), ...(opts.note ? { note: opts.note } : {}) },
  });
}

export interface ScheduleLine {
  scheduleId: string;
  paused: boolean;
  note: string | undefined;
  nextRuns: Date[];
  recentRuns: string[];
}

/** The reimport schedules of the namespace (others are left out). */
export async function listReimportSchedules(client: Client): Promise<ScheduleLine[]> {
  const lines: ScheduleLine[] = [];
  for await (const s of client.schedule.list()) {
    if (s.action?.type !== 'startWorkflow' || s.action.workflowType !== 'reimport') continue;
    lines.push({
      scheduleId: s.scheduleId,
      paused: s.state.paused,
      note: s.state.note,
      nextRuns: s.info.nextActionTimes.slice(0, 3),
      recentRuns: s.info.recentActions.map((a) => a.action.workflow.workflowId),
    });
  }
  return lines.sort((a, b) => a.scheduleId.localeCompare(b.scheduleId));
}

export function formatSchedules(lines: ScheduleLine[]): string {
  if (lines.length === 0) return 'no reimport schedules';
  return lines
    .map((l) =>
      [
        `${l.scheduleId}: ${l.paused ? 'paused' : 'active'}${l.note ? ` (${l.note})` : ''}`,
        `  next: ${l.paused || l.nextRuns.length === 0 ? '—' : l.nextRuns.map((d) => d.toISOString()).join(', ')}`,
        `  recent runs: ${l.recentRuns.length ? l.recentRuns.join(', ') : '—'}`,
      ].join('\n'),
    )
    .join('\n');
}

/** Describes a schedule; a clear error when there is none of that id. */
export async function describeSchedule(client: Client, scheduleId: string): Promise<ScheduleDescription> {
  try {
    return await client.schedule.getHandle(scheduleId).describe();
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) throw new Error(`no schedule ${scheduleId}`);
    throw err;
  }
}
