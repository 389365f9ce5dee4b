/**
 * The simulator's counters as a time series, so requests, bytes and injected faults can be attributed to a phase
 * by the phase's start and close times; and the source's lower bound for a stretch of work under a fault profile.
 */
import type { FaultSettings, RunningSimulator, SimulatorStats } from '../../sim/server';

export interface StatsWindow {
  requests: number;
  dataRequests: number;
  containerRequests: number;
  odataRequests: number;
  /** Everything the source sent (both APIs and containers): what its bandwidth cap applies to. */
  bytes: number;
  containerBytes: number;
  /** 502/503 answers the source gave: bursts and over-concurrency refusals. */
  overloads: number;
  faults: Record<string, number>;
  /** Requests in flight at the source, integrated over the window (request-ms). */
  inFlightMs: number;
}

export class StatsTimeline {
  private readonly samples: { t: number; s: SimulatorStats }[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly sim: RunningSimulator,
    intervalMs = 100,
  ) {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
    this.sample();
  }

  sample(): void {
    this.samples.push({ t: Date.now(), s: this.sim.stats() });
  }

  /** The latest sample taken at or before `t` (the first sample if none). */
  private at(t: number): SimulatorStats {
    let best = this.samples[0]!.s;
    for (const x of this.samples) {
      if (x.t <= t) best = x.s;
      else break;
    }
    return best;
  }

  /** Counters between two instants (sample resolution: the interval). */
  window(fromMs: number, toMs: number): StatsWindow {
    this.sample();
    return diff(this.at(fromMs), this.at(toMs));
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

export function diff(a: SimulatorStats, b: SimulatorStats): StatsWindow {
  const faults: Record<string, number> = {};
  for (const [k, v] of Object.entries(b.faults)) {
    const d = v - (a.faults[k] ?? 0);
    if (d > 0) faults[k] = d;
  }
  return {
    requests: b.requests.total - a.requests.total,
    dataRequests: b.requests.data - a.requests.data,
    containerRequests: b.requests.container - a.requests.container,
    odataRequests: b.requests.odata - a.requests.odata,
    bytes: b.bytes.total - a.bytes.total,
    containerBytes: b.bytes.container - a.bytes.container,
    overloads: (faults.burst ?? 0) + (faults.concurrency_502 ?? 0),
    faults,
    inFlightMs: b.inFlightMs - a.inFlightMs,
  };
}

export interface LowerBound {
  /** bytes ÷ the source's total bandwidth. */
  bandwidthMs: number;
  /** requests × mean added latency ÷ requests the source serves at once. */
  latencyMs: number;
  /** The larger of the two: no client can finish this work against this source faster. */
  boundMs: number;
}

/**
 * The source's lower bound for a stretch of work: the larger of bytes ÷ bandwidth and requests × latency ÷ allowed
 * concurrency, from the profile's settings. Unlimited settings contribute nothing.
 */
export function lowerBound(w: Pick<StatsWindow, 'bytes' | 'requests'>, f: FaultSettings): LowerBound {
  const bandwidthMs = f.bandwidthTotalBps > 0 ? (w.bytes / f.bandwidthTotalBps) * 1000 : 0;
  const meanLatency = f.latencyMs + f.latencyJitterMs / 2;
  const latencyMs = f.maxConcurrentRequests > 0 ? (w.requests * meanLatency) / f.maxConcurrentRequests : 0;
  return { bandwidthMs, latencyMs, boundMs: Math.max(bandwidthMs, latencyMs) };
}
