/**
 * CPU time per part of the bench (the worker, Temporal, PostgreSQL, MinIO, and this process with the simulator),
 * sampled from /proc (Linux) so a stretch of the run — a files phase — can be charged to each. Every process counts
 * toward the nearest of the given roots among its ancestors (PostgreSQL's backends toward the postmaster, and so
 * on). On a machine where all of them share a few cores, this says where the cores went.
 */
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100;
// New processes (PostgreSQL backends as the pool grows) are picked up within this many samples.
const RESCAN_EVERY = 8;

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

  /** pid → group, for the processes of the roots' trees; rebuilt from all of /proc every RESCAN_EVERY samples. */
  private members = new Map<number, string>();
  private sinceScan = Number.POSITIVE_INFINITY;

  /** Walks all of /proc (a few hundred small reads): only now and then, so the simulator's event loop stays free. */
  private rescan(): void {
    const parent = new Map<number, number>();
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      const st = readStat(name);
      if (st) parent.set(Number(name), st.ppid);
    }
    const groupOf = new Map<number, string>();
    for (const [group, pids] of Object.entries(this.roots)) for (const pid of pids) groupOf.set(pid, group);
    this.members = new Map();
    for (const pid of parent.keys()) {
      for (let p: number | undefined = pid, hops = 0; p !== undefined && p > 1 && hops < 64; hops++) {
        const group = groupOf.get(p);
        if (group !== undefined) {
          this.members.set(pid, group);
          break;
        }
        p = parent.get(p);
      }
    }
    this.sinceScan = 0;
  }

  sample(): void {
    if (this.sinceScan++ >= RESCAN_EVERY) this.rescan();
    const seconds: Record<string, number> = {};
    for (const group of Object.keys(this.roots)) seconds[group] = 0;
    for (const [pid, group] of this.members) {
      const st = readStat(String(pid));
      if (st) seconds[group] = (seconds[group] ?? 0) + st.ticks / TICKS_PER_SECOND;
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
