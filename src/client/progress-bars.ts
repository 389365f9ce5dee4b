/** `status`: live per-phase progress bars in the terminal (cli-progress), from the run's `progress` query. */
import { setTimeout as delay } from 'node:timers/promises';
import cliProgress from 'cli-progress';
import type { Client } from '@temporalio/client';
import type { RunProgress } from '../workflows/messages';
import { formatProgress } from './operations';

const FINAL = new Set(['completed', 'failed', 'rolled_back']);

export async function watchProgress(
  client: Client,
  runId: string,
  opts: { once?: boolean; intervalMs?: number; signal?: AbortSignal } = {},
): Promise<RunProgress | undefined> {
  const handle = client.workflow.getHandle(runId);
  const query = () => handle.query<RunProgress>('progress');
  if (opts.once || !process.stdout.isTTY) {
    const p = await query();
    console.log(formatProgress(p));
    if (opts.once) return p;
  }
  const multi = new cliProgress.MultiBar(
    {
      format: ' {phase} |{bar}| {value}/{total} {status} {extra}',
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  let last: RunProgress | undefined;
  try {
    while (!opts.signal?.aborted) {
      try {
        last = await query();
      } catch {
        break; // the run has closed; its result is printed by the caller
      }
      for (const ph of last.phases) {
        let bar = bars.get(ph.phase);
        const payload = {
          phase: ph.phase.padEnd(12),
          status: ph.status,
          extra: [
            ph.cooldownUntil ? `cooldown until ${ph.cooldownUntil.slice(11, 19)}` : '',
            ph.etaSeconds !== undefined ? `ETA ${ph.etaSeconds}s` : '',
            ph.paused ? 'paused' : '',
            ph.pausedForQuota ? 'paused: transfer budget' : '',
          ]
            .filter(Boolean)
            .join(' '),
        };
        const total = Math.max(1, ph.total);
        if (!bar) {
          bar = multi.create(total, ph.done, payload);
          bars.set(ph.phase, bar);
        }
        bar.setTotal(total);
        bar.update(ph.status === 'completed' && ph.total === 0 ? 1 : ph.done, payload);
      }
      if (FINAL.has(last.status)) break;
      await delay(opts.intervalMs ?? 1000);
    }
  } finally {
    multi.stop();
  }
  return last;
}
