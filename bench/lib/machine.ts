/**
 * How fast the machine is while the bench runs, so that runs can be compared. The same 2-vCPU VM has run the files
 * phases 10–15 % slower at some hours than at others with the same code; the bench's own CPU figures show it only
 * indirectly. Two readings: a fixed single-threaded workload timed before the stack starts (lower is faster), and
 * the CPU time the hypervisor gave to others while the machine's own work waited (steal, from /proc/stat).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

const DOC = Array.from({ length: 5_000 }, (_, i) => ({ id: i, name: `record ${i}`, tags: ['a', 'b', String(i)] }));

/** Milliseconds for a fixed piece of work (SHA-256 of 64 MiB, JSON round trips), the best of `rounds`. */
export function calibrationMs(rounds = 3): number {
  const hashed = Buffer.alloc(64 * 1024 * 1024, 0x5a);
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    createHash('sha256').update(hashed).digest();
    for (let i = 0; i < 20; i++) JSON.parse(JSON.stringify(DOC));
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return best;
}

/** CPU seconds stolen from this VM since boot, all CPUs together; undefined where /proc/stat is not readable. */
export function stealSeconds(): number | undefined {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
    // cpu user nice system idle iowait irq softirq steal …, in USER_HZ (100 per second on Linux).
    const steal = Number(cpu[8]);
    return Number.isFinite(steal) ? steal / 100 : undefined;
  } catch {
    return undefined;
  }
}
