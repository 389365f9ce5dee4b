/**
 * Memory of another process, read from /proc (Linux): the kernel's own high-water mark (VmHWM) and a sampled
 * series of the resident set (VmRSS) so a peak can be attributed to a stretch of the run.
 */
import { readFileSync, writeFileSync } from 'node:fs';

export interface ProcMemory {
  /** Resident set now. */
  rssBytes: number;
  /** Largest resident set since the process started or since the mark was last reset. */
  hwmBytes: number;
}

function field(status: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+)\\s+kB$`, 'm').exec(status);
  if (!m) throw new Error(`/proc status has no ${name}`);
  return Number(m[1]) * 1024;
}

export function readMemory(pid: number): ProcMemory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { rssBytes: field(status, 'VmRSS'), hwmBytes: field(status, 'VmHWM') };
}

/**
 * Resets the process's VmHWM to its current RSS (writing 5 to clear_refs, Linux ≥ 4.0), so what follows is measured
 * without the start-up peak (loading the workflow code and connecting). Returns false where the kernel or
 * permissions do not allow it.
 */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Samples VmRSS every `intervalMs`; `peakBetween` answers the largest sample in a time window. */
export class RssSampler {
  private readonly samples: { t: number; rss: number }[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pid: number,
    intervalMs = 100,
  ) {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
    this.sample();
  }

  private sample(): void {
    try {
      this.samples.push({ t: Date.now(), rss: readMemory(this.pid).rssBytes });
    } catch {
      // The process has exited; the samples so far stand.
    }
  }

  peakBetween(fromMs: number, toMs: number): number {
    let peak = 0;
    for (const s of this.samples) if (s.t >= fromMs && s.t <= toMs && s.rss > peak) peak = s.rss;
    return peak;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
