/**
 * Content-Disposition parsing (RFC 6266 with RFC 8187 `filename*`). FileMaker's container URLs do not carry the
 * original filename, so this header is the only place it comes from. The parser is lenient because servers are:
 * unquoted names with spaces, raw UTF-8 bytes in `filename`, and `filename*` next to an ASCII fallback are all seen.
 */
import { cleanFilename as baseFilename } from '../domain/keys';

export interface ContentDisposition {
  /** `attachment`, `inline`, ... lower-cased; '' when the header is empty. */
  readonly type: string;
  /** Parameters by lower-cased name, values unquoted (the `filename*` value is kept raw). */
  readonly params: Readonly<Record<string, string>>;
  /** The best filename: `filename*` when it decodes, else `filename`; directory parts and control characters removed. */
  readonly filename: string | undefined;
}

export function parseContentDisposition(header: string | string[] | undefined | null): ContentDisposition {
  const raw = Array.isArray(header) ? header[0] : header;
  if (raw === undefined || raw === null || raw.trim() === '') return { type: '', params: {}, filename: undefined };
  const s = raw.trim();
  let i = s.indexOf(';');
  const type = (i < 0 ? s : s.slice(0, i)).trim().toLowerCase();
  const params: Record<string, string> = {};
  if (i < 0) i = s.length;
  while (i < s.length) {
    while (i < s.length && (s[i] === ';' || s[i] === ' ' || s[i] === '\t')) i++;
    const eq = s.indexOf('=', i);
    const semi = s.indexOf(';', i);
    if (eq < 0 || (semi >= 0 && semi < eq)) {
      // A parameter without a value: skip it.
      i = semi < 0 ? s.length : semi;
      continue;
    }
    const name = s.slice(i, eq).trim().toLowerCase();
    i = eq + 1;
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
    let value: string;
    if (s[i] === '"') {
      i++;
      let v = '';
      while (i < s.length && s[i] !== '"') {
        if (s[i] === '\\' && i + 1 < s.length) i++;
        v += s[i];
        i++;
      }
      i++; // the closing quote (or past the end when it is missing)
      value = v;
      const next = s.indexOf(';', i);
      i = next < 0 ? s.length : next;
    } else {
      // Token, or a non-compliant unquoted value with spaces: everything up to the next ';'.
      const next = s.indexOf(';', i);
      value = (next < 0 ? s.slice(i) : s.slice(i, next)).trim();
      i = next < 0 ? s.length : next;
    }
    // The first occurrence wins, as RFC 6266 asks for duplicate parameters.
    if (name !== '' && !(name in params)) params[name] = value;
  }
  const extended = params['filename*'] !== undefined ? decodeExtValue(params['filename*']) : undefined;
  const plain = params['filename'] !== undefined ? repairLatin1Utf8(params['filename']) : undefined;
  return { type, params, filename: cleanFilename(extended) ?? cleanFilename(plain) };
}

/** RFC 8187 ext-value: `charset'[language]'percent-encoded`. Returns undefined when it cannot be decoded. */
export function decodeExtValue(value: string): string | undefined {
  const m = /^([A-Za-z0-9!#$%&+^_`{}~-]+)'([^']*)'(.*)$/s.exec(value.trim());
  if (!m) return undefined;
  const charset = (m[1] ?? '').toLowerCase();
  const encoded = m[3] ?? '';
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; i++) {
    const ch = encoded.charCodeAt(i);
    if (encoded[i] === '%') {
      const hex = encoded.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (ch < 0x80) {
      bytes.push(ch);
    } else {
      return undefined; // ext-value is ASCII only
    }
  }
  try {
    if (charset === 'utf-8') return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
    if (charset === 'iso-8859-1') return new TextDecoder('latin1').decode(Uint8Array.from(bytes));
  } catch {
    return undefined;
  }
  return undefined;
}

/**
 * HTTP header values reach us as latin1-decoded bytes. Servers that put raw UTF-8 into `filename` ("Befund_ä.pdf")
 * therefore arrive as mojibake; when the bytes are valid UTF-8, decode them as such.
 */
function repairLatin1Utf8(value: string): string {
  if (!/[\u0080-\u00ff]/.test(value) || /[^\u0000-\u00ff]/.test(value)) return value;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(value, 'latin1'));
  } catch {
    return value;
  }
}

/** A filename is a name, not a path (RFC 6266 section 4.3): the base name rule every original name follows. */
function cleanFilename(name: string | undefined): string | undefined {
  if (name === undefined) return undefined;
  return baseFilename(name) || undefined;
}
