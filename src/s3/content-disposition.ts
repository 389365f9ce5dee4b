/**
 * `Content-Disposition` for an uploaded file (RFC 6266 with RFC 8187 `filename*`). Filenames come from FileMaker
 * and are hostile until proven otherwise: CR/LF would split the header, quotes and backslashes would end the
 * quoted string, path separators and `%` mislead some browsers. The ASCII `filename` is a safe fallback for old
 * clients; `filename*=UTF-8''…` carries the real name whenever it is not plain ASCII.
 */

import { cleanFilename } from '../domain/keys';

const MAX_NAME = 200;

/** The filename as it will be offered: the original's cleaned base name, no leading dots, never empty, ≤ 200 chars. */
export function offeredFilename(name: string): string {
  const s = cleanFilename(name, MAX_NAME).replace(/^\.+/, '').trim();
  return s === '' ? 'file' : s;
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
  const clean = offeredFilename(filename);
  const fallback = asciiFallback(clean);
  if (fallback === clean) return `${type}; filename="${fallback}"`;
  return `${type}; filename="${fallback}"; filename*=UTF-8''${encodeRfc8187(clean)}`;
}
