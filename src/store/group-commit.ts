/**
 * Group commit: concurrent single-item writes to PostgreSQL coalesced into one statement. The first item of an idle
 * group is written at once; items that arrive while a statement is running wait for it and then go together in the
 * next one. No item waits longer than one statement, and under load a statement carries many items: round trips per
 * item fall with concurrency instead of growing with it.
 *
 * Each item's promise settles with its own result; when a statement fails, every item it carried gets the error.
 */
interface Waiting<I, R> {
  item: I;
  resolve: (r: R) => void;
  reject: (err: unknown) => void;
}

interface Group<I, R> {
  queue: Waiting<I, R>[];
  running: boolean;
}

export class GroupCommit<I, R> {
  private readonly groups = new Map<string, Group<I, R>>();

  /**
   * @param write writes the items of one group (one statement, or a few) and returns one result per item, in order.
   */
  constructor(private readonly write: (group: string, items: I[]) => Promise<R[]>) {}

  submit(group: string, item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      let g = this.groups.get(group);
      if (!g) {
        g = { queue: [], running: false };
        this.groups.set(group, g);
      }
      g.queue.push({ item, resolve, reject });
      if (!g.running) void this.drain(group, g);
    });
  }

  private async drain(name: string, g: Group<I, R>): Promise<void> {
    g.running = true;
    try {
      while (g.queue.length > 0) {
        const batch = g.queue.splice(0, g.queue.length);
        try {
          const results = await this.write(
            name,
            batch.map((w) => w.item),
          );
          if (results.length !== batch.length)
            throw new Error(`group write returned ${results.length} results for ${batch.length} items`);
          batch.forEach((w, i) => w.resolve(results[i]!));
        } catch (err) {
          for (const w of batch) w.reject(err);
        }
      }
    } finally {
      g.running = false;
      this.groups.delete(name);
    }
  }
}
