/**
 * Every request the simulator received, with its arrival time and the table it named, so requests can be charged to
 * a phase exactly: the phases of a run follow one another, each phase's requests arrive between its child workflow's
 * start and close, and nothing else asks FileMaker anything meanwhile. (The sampled StatsTimeline can charge a
 * request that arrived in the last sampling interval before a phase closed to the next phase.)
 */
import type { RunningSimulator } from '../../sim/server';

/** The table (layout or OData entity set) a request names; `containers` for streaming URLs, `other` for the rest. */
export function requestTable(path: string): string {
  const data = /^\/fmi\/data\/[^/]+\/databases\/[^/]+\/layouts\/([^/]+)/.exec(path);
  if (data) return decodeURIComponent(data[1]!);
  const odata = /^\/fmi\/odata\/v4\/[^/]+\/([^/(?$]+)/.exec(path);
  if (odata && !odata[1]!.startsWith('$')) return decodeURIComponent(odata[1]!);
  if (path.startsWith('/Streaming_SSL/')) return 'containers';
  return 'other';
}

/** Whether a request reads a container's bytes: an OData `$value` or a streaming URL. */
export function readsContainer(path: string): boolean {
  return path.startsWith('/Streaming_SSL/') || /\/\$value(?:\?|$)/.test(path);
}

export class RequestLog {
  private readonly times: number[] = [];
  private readonly tables: string[] = [];
  private readonly containers: boolean[] = [];
  private readonly remove: () => void;

  constructor(sim: Pick<RunningSimulator, 'onRequest'>) {
    this.remove = sim.onRequest((_api, path) => {
      this.times.push(Date.now());
      this.tables.push(requestTable(path));
      this.containers.push(readsContainer(path));
    });
  }

  /** Requests that arrived in [fromMs, toMs]: in total, per table, and those that read a container's bytes. */
  between(fromMs: number, toMs: number): { total: number; byTable: Record<string, number>; containers: number } {
    const byTable: Record<string, number> = {};
    let total = 0;
    let containers = 0;
    for (let i = 0; i < this.times.length; i++) {
      const t = this.times[i]!;
      if (t < fromMs || t > toMs) continue;
      total++;
      if (this.containers[i]) containers++;
      const table = this.tables[i]!;
      byTable[table] = (byTable[table] ?? 0) + 1;
    }
    return { total, byTable, containers };
  }

  stop(): void {
    this.remove();
  }
}
