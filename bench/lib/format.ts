/** Number formats and table shapes the benches print with. */
export const MB = 1e6;

export const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits });

export const secs = (ms: number) => fmt(ms / 1000, 1);

/** Rows keyed by their first column, so console.table shows that instead of an index. */
export function keyed<T extends Record<string, unknown>>(rows: T[], key: keyof T): Record<string, Omit<T, typeof key>> {
  return Object.fromEntries(
    rows.map((r) => {
      const { [key]: k, ...rest } = r;
      return [String(k), rest];
    }),
  );
}
