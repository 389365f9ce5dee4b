/**
 * Value normalisations applied to FileMaker field values. Each one is listed, with examples, in
 * docs/normalisations.md; tests and operators rely on that table, so change both together.
 *
 * Pure: no I/O and no Node built-ins (Intl is part of the language), so any layer may use it.
 */

// ---------------------------------------------------------------------------------------------------------------
// Text

/** Length limits in characters (code points). Columns are `text`; the limits only stop hostile values. */
export const TEXT_LIMITS = {
  /** Names, labels, statuses, phone numbers. */
  short: 1_000,
  /** Free text that is not clinical (reasons, positions). */
  medium: 10_000,
  /** Note and SMS bodies: clinical content, never cut in practice (notes over 100 KB exist). */
  long: 10_000_000,
} as const;

export interface CleanTextOptions {
  /** Maximum length in code points; longer values are cut and `truncated` is set. */
  readonly maxLength?: number;
}

export interface CleanTextResult {
  readonly value: string;
  /** The value was cut to `maxLength`. */
  readonly truncated: boolean;
  /** NUL/control characters were removed or lone surrogates replaced. */
  readonly sanitized: boolean;
}

// C0 controls except TAB, LF, CR, plus DEL. PostgreSQL rejects NUL in text; the rest are invisible garbage.
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const HAS_CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
const HAS_LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Lone surrogates (invalid UTF-16, cannot be encoded as UTF-8) → U+FFFD. Leaves valid pairs alone. */
export function replaceLoneSurrogates(s: string): string {
  return HAS_LONE_SURROGATE.test(s) ? s.replace(LONE_SURROGATE, '\ufffd') : s;
}

/**
 * Clean a text value: numbers become their decimal text, null/undefined become ''; control characters other than
 * TAB/LF/CR are removed; lone surrogates become U+FFFD; Unicode NFC; trimmed; cut to `maxLength` code points
 * (never splitting a surrogate pair).
 */
export function cleanText(value: unknown, opts: CleanTextOptions = {}): CleanTextResult {
  let s: string;
  if (typeof value === 'string') s = value;
  else if (typeof value === 'number' && Number.isFinite(value)) s = String(value);
  else s = '';
  let sanitized = false;
  if (HAS_CONTROL.test(s)) {
    s = s.replace(CONTROL, '');
    sanitized = true;
  }
  if (HAS_LONE_SURROGATE.test(s)) {
    s = s.replace(LONE_SURROGATE, '\ufffd');
    sanitized = true;
  }
  s = s.normalize('NFC').trim();
  let truncated = false;
  const max = opts.maxLength;
  // `length` counts UTF-16 units ≥ code points, so only values that may be too long pay for the code-point walk.
  if (max !== undefined && s.length > max) {
    const cut = truncateCodePoints(s, max);
    if (cut.length !== s.length) {
      s = cut.trimEnd();
      truncated = true;
    }
  }
  return { value: s, truncated, sanitized };
}

function truncateCodePoints(s: string, max: number): string {
  let count = 0;
  let i = 0;
  while (i < s.length) {
    if (count === max) return s.slice(0, i);
    const c = s.charCodeAt(i);
    i += c >= 0xd800 && c <= 0xdbff && i + 1 < s.length ? 2 : 1;
    count++;
  }
  return s;
}

/**
 * Sanitise a raw value for `filemaker_metadata` (jsonb): only what PostgreSQL cannot store is changed — NUL removed,
 * lone surrogates replaced — so the metadata stays as close to the source as possible. Numbers pass through.
 */
export function sanitizeRaw(value: string | number, maxLength: number): { value: string | number; truncated: boolean } {
  if (typeof value === 'number') return { value, truncated: false };
  let s = value.includes('\u0000') ? value.split('\u0000').join('') : value;
  s = replaceLoneSurrogates(s);
  if (s.length > maxLength) {
    const cut = truncateCodePoints(s, maxLength);
    if (cut.length !== s.length) return { value: cut, truncated: true };
  }
  return { value: s, truncated: false };
}

// ---------------------------------------------------------------------------------------------------------------
// Dates

export type DateIssue = 'ambiguous' | 'impossible' | 'unparseable';

export interface ParsedDate {
  /** `YYYY-MM-DD`, or null when empty or not usable. */
  readonly value: string | null;
  readonly issue?: DateIssue;
  /** Which reading produced `value`. */
  readonly format?: 'iso' | 'us' | 'day-first';
}

export interface ParseDateOptions {
  /** For fields known to be typed day-first: an ambiguous date takes the day-first reading (still flagged). */
  readonly preferDayFirst?: boolean;
}

/** Years outside this range are typos (0219, 2091…) rather than dates; they are reported as impossible. */
export const MIN_YEAR = 1800;
export const MAX_YEAR = 2199;

const ISO_DATE = /^(\d{4})[-/](\d{1,2})[-/](\d{1,2})$/;
const NUMERIC_DATE = /^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$/;
const ISO_TIME_SUFFIX = /^\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?$/i;

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function validYmd(y: number, m: number, d: number): boolean {
  return y >= MIN_YEAR && y <= MAX_YEAR && m >= 1 && m <= 12 && d >= 1 && d <= daysInMonth(y, m);
}

function ymd(y: number, m: number, d: number): string {
  return `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
}

/** Split `date[ T]time` into its parts; the time part must look like a time, or the whole value is unparseable. */
function splitDateTime(s: string): { date: string; time: string | undefined } | undefined {
  const m = /^(\S+?)(?:(?:T|\s+)(.+))?$/.exec(s);
  if (!m || m[1] === undefined) return undefined;
  return { date: m[1], time: m[2]?.trim() };
}

/**
 * Parse a FileMaker date. Rules, in order:
 * 1. empty → `{ value: null }` (no issue);
 * 2. ISO `YYYY-MM-DD` (also `YYYY/MM/DD`, with or without a time after it) is taken as is;
 * 3. `A/B/YYYY` (also `-` or `.` separated): US `MM/DD/YYYY` is FileMaker's default. If both the US reading and the
 *    day-first reading are calendar dates and differ, the date is **ambiguous**: the US reading is taken (day-first
 *    with `preferDayFirst`) and flagged. Day-first is used unflagged only when the US reading is impossible, i.e.
 *    the first number is > 12;
 * 4. a shape that fits but is no calendar date (02/30/2019, 13/13/2020, year outside 1800-2199) → impossible, null;
 * 5. anything else (two-digit years, words, numbers) → unparseable, null.
 * A time after the date (`06/20/2024 09:30:00`) is allowed and ignored; other trailing text is unparseable.
 */
export function parseDate(raw: unknown, opts: ParseDateOptions = {}): ParsedDate {
  if (typeof raw !== 'string') {
    return raw === null || raw === undefined || raw === '' ? { value: null } : { value: null, issue: 'unparseable' };
  }
  const s = cleanText(raw).value;
  if (s === '') return { value: null };
  const parts = splitDateTime(s);
  if (!parts) return { value: null, issue: 'unparseable' };
  if (parts.time !== undefined && parseTime(parts.time) === null && !ISO_TIME_SUFFIX.test(parts.time)) {
    return { value: null, issue: 'unparseable' };
  }
  const iso = ISO_DATE.exec(parts.date);
  if (iso) {
    const [y, m, d] = [Number(iso[1]), Number(iso[2]), Number(iso[3])];
    return validYmd(y, m, d) ? { value: ymd(y, m, d), format: 'iso' } : { value: null, issue: 'impossible' };
  }
  const num = NUMERIC_DATE.exec(parts.date);
  if (!num) return { value: null, issue: 'unparseable' };
  const [a, b, y] = [Number(num[1]), Number(num[2]), Number(num[3])];
  const usOk = validYmd(y, a, b);
  const dayFirstOk = validYmd(y, b, a);
  if (usOk && dayFirstOk && a !== b) {
    return opts.preferDayFirst
      ? { value: ymd(y, b, a), issue: 'ambiguous', format: 'day-first' }
      : { value: ymd(y, a, b), issue: 'ambiguous', format: 'us' };
  }
  if (usOk) return { value: ymd(y, a, b), format: 'us' };
  if (dayFirstOk) return { value: ymd(y, b, a), format: 'day-first' };
  return { value: null, issue: 'impossible' };
}

/** Add whole days to a `YYYY-MM-DD` date. */
export function addDays(dateISO: string, days: number): string {
  const [y, m, d] = dateISO.split('-').map(Number) as [number, number, number];
  const t = new Date(Date.UTC(y, m - 1, d + days));
  return ymd(t.getUTCFullYear(), t.getUTCMonth() + 1, t.getUTCDate());
}

// ---------------------------------------------------------------------------------------------------------------
// Times

const DAY_PREFIX = /^(\d+)\s*days?\s*,?\s*(.+)$/i;
const CLOCK = /^(\d{1,2}):(\d{2})(?::(\d{2})(\.\d+)?)?\s*(?:([ap])\.?\s*m\.?)?$/i;

/**
 * Parse a FileMaker time into minutes since midnight (fractional when there are seconds), or null when empty or
 * not a time. `HH:mm[:ss[.fff]]`, `H:mm`, `9:30 AM`/`9:30pm`; `24:00:00` = 1440 (end of the day, i.e. midnight of
 * the next one); `1 day, 09:30:00` = 1440 + 570 (FileMaker's rendering of a duration past midnight: the day
 * carries). Hours past 24 without the `N day` prefix, minutes or seconds ≥ 60, and numbers are rejected.
 */
export function parseTime(raw: unknown): number | null {
  if (typeof raw !== 'string') return null;
  const s = cleanText(raw).value;
  if (s === '') return null;
  let days = 0;
  let clock = s;
  const dm = DAY_PREFIX.exec(s);
  if (dm) {
    days = Number(dm[1]);
    clock = dm[2] ?? '';
  }
  const m = CLOCK.exec(clock);
  if (!m) return null;
  let h = Number(m[1]);
  const min = Number(m[2]);
  const sec = m[3] === undefined ? 0 : Number(m[3]) + (m[4] === undefined ? 0 : Number(m[4]));
  if (min > 59 || sec >= 60) return null;
  const meridiem = m[5]?.toLowerCase();
  if (meridiem !== undefined) {
    if (h < 1 || h > 12) return null;
    h = (h % 12) + (meridiem === 'p' ? 12 : 0);
  } else if (h > 24 || (h === 24 && (min !== 0 || sec !== 0))) {
    return null;
  }
  return days * 1440 + h * 60 + min + sec / 60;
}

/** True when the raw value is non-empty but `parseTime` rejects it (for TIME_INVALID findings). */
export function isInvalidTime(raw: unknown): boolean {
  return cleanText(raw).value !== '' && parseTime(raw) === null;
}

// ---------------------------------------------------------------------------------------------------------------
// Time zones

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/**
 * Offsets already computed, per zone and UTC day: a zone's offset changes a few times a year, so a day whose first and
 * last second have the same offset has it throughout (no zone changes its offset and back within a day), and every
 * instant in it is answered from one entry. Appointments and notes carry times to the second, nearly all distinct: a
 * cache by instant missed for almost every record and asked Intl for each (about 1 s of a worker's CPU per seed run).
 * A day with a transition in it is marked `undefined` and its instants are computed one by one.
 */
const offsets = new Map<string, Map<number, number | undefined>>();
const OFFSETS_KEPT = 100_000;
const DAY_MS = 86_400_000;

/** The zone's UTC offset in ms at a UTC instant (whole seconds). */
export function zoneOffsetMs(utcMs: number, timeZone: string): number {
  const at = Math.floor(utcMs / 1000) * 1000;
  let known = offsets.get(timeZone);
  if (!known) offsets.set(timeZone, (known = new Map<number, number | undefined>()));
  const day = Math.floor(at / DAY_MS);
  if (!known.has(day)) {
    const first = computeOffsetMs(day * DAY_MS, timeZone);
    const last = computeOffsetMs((day + 1) * DAY_MS - 1000, timeZone);
    if (known.size >= OFFSETS_KEPT) known.clear();
    known.set(day, first === last ? first : undefined);
  }
  return known.get(day) ?? computeOffsetMs(at, timeZone);
}

function computeOffsetMs(at: number, timeZone: string): number {
  const p: Record<string, number> = {};
  for (const part of formatterFor(timeZone).formatToParts(at)) {
    if (part.type !== 'literal') p[part.type] = Number(part.value);
  }
  const asUtc = Date.UTC(p.year ?? 0, (p.month ?? 1) - 1, p.day ?? 1, p.hour ?? 0, p.minute ?? 0, p.second ?? 0);
  return asUtc - at;
}

const ISO_DATE_STRICT = /^\d{4}-\d{2}-\d{2}$/;

/**
 * The UTC instant (ISO 8601, `...Z`) of a wall-clock time in a zone. `minutes` may exceed 1440 (the day carries).
 * DST, as Temporal's `compatible` disambiguation: a wall time inside the spring-forward gap (Sydney 02:00-03:00 on
 * the first Sunday of October) is moved forward by the gap (02:30 → 03:30 AEDT); a wall time that occurs twice in
 * autumn (02:00-03:00 on the first Sunday of April) takes the earlier instant (daylight time, +11:00).
 */
export function zonedDateTime(dateISO: string, minutes: number, timeZone: string): string {
  if (!ISO_DATE_STRICT.test(dateISO)) throw new RangeError('zonedDateTime: date must be YYYY-MM-DD');
  if (!Number.isFinite(minutes)) throw new RangeError('zonedDateTime: minutes must be finite');
  const [y, m, d] = dateISO.split('-').map(Number) as [number, number, number];
  const wall = Date.UTC(y, m - 1, d) + Math.round(minutes * 60_000);
  // A transition can only be within a day either side; the offsets there are the two candidates.
  const before = zoneOffsetMs(wall - DAY_MS, timeZone);
  const after = zoneOffsetMs(wall + DAY_MS, timeZone);
  // One offset either side: the only candidate, which is also what an invalid candidate falls back to below.
  if (before === after) return new Date(wall - before).toISOString();
  const valid = [...new Set([before, after])]
    .map((offset) => wall - offset)
    .filter((t) => zoneOffsetMs(t, timeZone) === wall - t);
  const instant = valid.length > 0 ? Math.min(...valid) : wall - before;
  return new Date(instant).toISOString();
}

export interface ParsedTimestamp {
  /** ISO 8601 UTC instant, or null. */
  readonly value: string | null;
  readonly issue?: DateIssue;
}

const ISO_WITH_OFFSET = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})$/i;

/**
 * Parse a FileMaker timestamp (`MM/dd/yyyy HH:mm:ss` by default; any date `parseDate` accepts, optionally followed
 * by any time `parseTime` accepts) as wall-clock time in `timeZone`. A date alone is midnight. An ISO timestamp with
 * `Z` or an offset (OData) is an exact instant and ignores the zone. An unreadable time makes the whole value
 * unparseable rather than silently midnight.
 */
export function parseFmTimestamp(raw: unknown, opts: ParseDateOptions & { timeZone: string }): ParsedTimestamp {
  if (typeof raw !== 'string') {
    return raw === null || raw === undefined || raw === '' ? { value: null } : { value: null, issue: 'unparseable' };
  }
  const s = cleanText(raw).value;
  if (s === '') return { value: null };
  if (ISO_WITH_OFFSET.test(s)) {
    const t = Date.parse(s);
    if (!Number.isNaN(t)) {
      const date = parseDate(s.slice(0, 10));
      return date.value === null ? { value: null, issue: 'impossible' } : { value: new Date(t).toISOString() };
    }
  }
  const parts = splitDateTime(s);
  if (!parts) return { value: null, issue: 'unparseable' };
  const date = parseDate(parts.date, opts);
  if (date.value === null) return { value: null, issue: date.issue ?? 'unparseable' };
  let minutes = 0;
  if (parts.time !== undefined) {
    const t = parseTime(parts.time);
    if (t === null) return { value: null, issue: 'unparseable' };
    minutes = t;
  }
  const value = zonedDateTime(date.value, minutes, opts.timeZone);
  return date.issue ? { value, issue: date.issue } : { value };
}

// ---------------------------------------------------------------------------------------------------------------
// Slugs

/**
 * A URL- and S3-safe slug of a FileMaker `Type`: NFKD with diacritics removed, lower-case, every run of other
 * characters → `-`, no leading/trailing `-`, at most 64 characters. Empty results give `fallback` ('other').
 * `File Notes` → `file-notes`, `NDIS Report` → `ndis-report`, `purchase-order` stays.
 */
export function slugify(type: unknown, fallback = 'other'): string {
  const slug = cleanText(type)
    .value.normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 64)
    .replace(/-+$/, '');
  return slug === '' ? fallback : slug;
}

// ---------------------------------------------------------------------------------------------------------------
// Flags

const TRUE_VALUES = new Set(['1', 'yes', 'y', 'true', 't', 'on', 'x', 'primary']);
const FALSE_VALUES = new Set(['', '0', 'no', 'n', 'false', 'f', 'off']);

/** A FileMaker yes/no field: 1/yes/true/on/x → true; empty/0/no/false/off → false; anything else → false, invalid. */
export function parseBoolean(raw: unknown): { value: boolean; invalid: boolean } {
  if (typeof raw === 'number') return { value: raw !== 0, invalid: false };
  const s = cleanText(raw).value.toLowerCase();
  if (TRUE_VALUES.has(s)) return { value: true, invalid: false };
  if (FALSE_VALUES.has(s)) return { value: false, invalid: false };
  return { value: false, invalid: true };
}
