/**
 * Tolerant JSON for FileMaker answers. FileMaker's OData (and occasionally the Data API) emits two known defects:
 * raw control characters or NULs inside strings (text fields pasted from other programs), and a bare `?` where a
 * broken calculation has no value. Strict JSON.parse rejects the whole page for one bad record, which would stall a
 * manifest forever, so a failed parse is retried once on a repaired copy: control characters inside strings are
 * escaped and a bare `?` value becomes null. Nothing else is rewritten, so a body that is not JSON (an HTML error
 * page) still fails.
 */

export interface ParsedJson {
  readonly value: unknown;
  /** True when the body only parsed after repair (counted in the client's stats, logged without content). */
  readonly repaired: boolean;
}

export function parseJsonTolerant(text: string): ParsedJson | undefined {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  try {
    return { value: JSON.parse(body) as unknown, repaired: false };
  } catch {
    // fall through to the repair below
  }
  const fixed = repairJson(body);
  if (fixed === body) return undefined;
  try {
    return { value: JSON.parse(fixed) as unknown, repaired: true };
  } catch {
    return undefined;
  }
}

/** Escapes control characters inside strings and turns a bare `?` value into `null`; exported for the unit tests. */
export function repairJson(text: string): string {
  let out = '';
  let inString = false;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] ?? '';
    const code = text.charCodeAt(i);
    if (inString) {
      if (escaped) {
        escaped = false;
        out += ch;
      } else if (ch === '\\') {
        escaped = true;
        out += ch;
      } else if (ch === '"') {
        inString = false;
        out += ch;
      } else if (code < 0x20) {
        out += '\\u' + code.toString(16).padStart(4, '0');
      } else {
        out += ch;
      }
    } else if (ch === '"') {
      inString = true;
      out += ch;
    } else if (ch === '?') {
      out += 'null';
    } else if (code === 0) {
      // A NUL between tokens is not whitespace in JSON: drop it.
    } else {
      out += ch;
    }
  }
  return out;
}
