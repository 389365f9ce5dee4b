// Date handling for the Data API's `dateformats` switch and OData's ISO rendering. Internally dates are
// `YYYY-MM-DD` and timestamps `YYYY-MM-DDTHH:mm:ss` (no zone, as FileMaker stores them).

export type DateFormats = 0 | 1 | 2;

export function renderDate(iso: string, df: DateFormats): string {
  if (!iso) return '';
  const [y, m, d] = [iso.slice(0, 4), iso.slice(5, 7), iso.slice(8, 10)];
  if (df === 2) return `${y}-${m}-${d}`;
  // dateformats=1 is the file's locale; the clinic's file is en_AU, day first.
  return df === 1 ? `${d}/${m}/${y}` : `${m}/${d}/${y}`;
}

export function renderTimestamp(iso: string, df: DateFormats): string {
  if (!iso) return '';
  const time = iso.slice(11, 19);
  return df === 2 ? `${iso.slice(0, 10)}T${time}` : `${renderDate(iso, df)} ${time}`;
}

const pad = (v: number) => String(v).padStart(2, '0');

function valid(y: number, m: number, d: number): boolean {
  if (m < 1 || m > 12 || d < 1) return false;
  return d <= new Date(Date.UTC(y, m, 0)).getUTCDate();
}

/** Parses a date as a Data API client would send it under the given `dateformats`; ISO is always accepted. */
export function parseDateInput(s: string, df: DateFormats): string | null {
  const t = s.trim();
  let m = /^(\d{4})-(\d{1,2})-(\d{1,2})$/.exec(t);
  if (m) {
    const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
    return valid(y, mo, d) ? `${y}-${pad(mo)}-${pad(d)}` : null;
  }
  m = /^(\d{1,2})\/(\d{1,2})\/(\d{4})$/.exec(t);
  if (m) {
    const a = Number(m[1]);
    const b = Number(m[2]);
    const y = Number(m[3]);
    const [mo, d] = df === 1 ? [b, a] : [a, b];
    return valid(y, mo, d) ? `${y}-${pad(mo)}-${pad(d)}` : null;
  }
  return null;
}

export function parseTimestampInput(s: string, df: DateFormats): string | null {
  const t = s.trim();
  const m = /^(.+?)[ T](\d{1,2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?$/.exec(t);
  if (!m) {
    const d = parseDateInput(t, df);
    return d ? `${d}T00:00:00` : null;
  }
  const d = parseDateInput(m[1] ?? '', df);
  const h = Number(m[2]);
  const mi = Number(m[3]);
  const se = Number(m[4] ?? 0);
  if (!d || h > 23 || mi > 59 || se > 59) return null;
  return `${d}T${pad(h)}:${pad(mi)}:${pad(se)}`;
}

export function nowTimestamp(): string {
  return new Date().toISOString().slice(0, 19);
}
