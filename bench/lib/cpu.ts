/**
 * CPU time per part of the bench (the worker, Temporal, PostgreSQL, MinIO, and this process with the simulator),
 * sampled from /proc (Linux) so a stretch of the run — a files phase — can be charged to each. Every process counts
 * toward the nearest of the given roots among its ancestors (PostgreSQL's backends toward the postmaster, and so
 * on). On a machine where all of them share a few cores, this says where the cores went.
 */
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100;

interface Sample {
  t: number;
  /** CPU seconds per group, cumulative (over the processes alive at the sample). */
  seconds: Record<string, number>;
}

function readStat(pid: string): { ppid: number; ticks: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) can hold spaces and parentheses: the rest starts after its last ')'.
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) };
  } catch {
    return undefined;
  }
}

export class CpuTimeline {
  private readonly samples: Sample[] = [];
  private readonly timer: NodeJS.Timeout;

  /** `roots`: group name → the pids whose trees it covers. */
  constructor(
    private readonly roots: Record<string, number[]>,
    intervalMs = 250,
  ) {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
    this.sample();
  }

  static available(): boolean {
    return readStat(String(process.pid)) !== undefined;
  }

  sample(): void {
    const procs = new Map<number, { ppid: number; ticks: number }>();
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      const st = readStat(name);
      if (st) procs.set(Number(name), st);
    }
    const groupOf = new Map<number, string>();
    for (const [group, pids] of Object.entries(this.roots)) for (const pid of pids) groupOf.set(pid, group);
    const seconds: Record<string, number> = {};
    for (const group of Object.keys(this.roots)) seconds[group] = 0;
    for (const [pid, st] of procs) {
      let group: string | undefined;
      for (let p: number | undefined = pid, hops = 0; p !== undefined && p > 1 && hops < 64; hops++) {
        group = groupOf.get(p);
        if (group !== undefined) break;
        p = procs.get(p)?.ppid;
      }
      if (group !== undefined) seconds[group] = (seconds[group] ?? 0) + st.ticks / TICKS_PER_SECOND;
    }
    this.samples.push({ t: Date.now(), seconds });
  }

  private at(t: number): Sample {
    let best = this.samples[0]!;
    for (const s of this.samples) {
      if (s.t <= t) best = s;
      else break;
    }
    return best;
  }

  /** CPU seconds per group between two instants (sample resolution: the interval). */
  window(fromMs: number, toMs: number): Record<string, number> {
    this.sample();
    const a = this.at(fromMs).seconds;
    const b = this.at(toMs).seconds;
    const out: Record<string, number> = {};
    for (const g of Object.keys(this.roots)) out[g] = Math.max(0, (b[g] ?? 0) - (a[g] ?? 0));
    return out;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
