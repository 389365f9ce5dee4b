/**
 * `Content-Disposition` for an uploaded file (RFC 6266 with RFC 8187 `filename*`). Filenames come from FileMaker
 * and are hostile until proven otherwise: CR/LF would split the header, quotes and backslashes would end the
 * quoted string, path separators and `%` mislead some browsers. The ASCII `filename` is a safe fallback for old
 * clients; `filename*=UTF-8''…` carries the real name whenever it is not plain ASCII.
 */

const MAX_NAME = 200;

const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** The filename as it will be offered: no control characters, no path, trimmed, never empty, at most 200 chars. */
export function cleanFilename(name: string): string {
  let s = name.replace(LONE_SURROGATE, '\ufffd').replace(CONTROL, '').normalize('NFC');
  s = s.replace(/[/\\]/g, '_').trim();
  s = s.replace(/^\.+/, '').trim();
  if (s === '') s = 'file';
  const chars = [...s];
  if (chars.length > MAX_NAME) {
    const dot = s.lastIndexOf('.');
    const ext = dot > 0 && s.length - dot <= 12 ? [...s.slice(dot)] : [];
    s = [...chars.slice(0, MAX_NAME - ext.length), ...ext].join('');
  }
  return s;
}

/** A printable-ASCII stand-in: accents folded, anything else `_`, no quote, backslash or percent. */
export function asciiFallback(name: string): string {
  const folded = name.normalize('NFKD').replace(/[\u0300-\u036f]/g, '');
  const ascii = [...folded].map((c) => (/^[\x20-\x7e]$/.test(c) && !/["\\%]/.test(c) ? c : '_')).join('');
  return ascii.trim() === '' ? 'file' : ascii;
}

/** RFC 8187 value-chars: attr-char stays, every other UTF-8 byte is %XX. */
export function encodeRfc8187(value: string): string {
  return encodeURIComponent(value).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`,
  );
}

export function contentDisposition(filename: string, type: 'attachment' | 'inline' = 'attachment'): string {
  const clean = cleanFilename(filename);
  const fallback = asciiFallback(clean);
  if (fallback === clean) return `${type}; filename="${fallback}"`;
  return `${type}; filename="${fallback}"; filename*=UTF-8''${encodeRfc8187(clean)}`;
}
