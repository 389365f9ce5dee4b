/**
 * S3 keys, file extensions, Content-Disposition and content sniffing for the files phases. Keys are deterministic
 * (patient target id + FileMaker id), so a re-import finds the object it uploaded before and re-links it instead of
 * spending the FileMaker transfer quota again. A file downloaded again because its record changed (a replaced
 * container) gets a revision marker from the record's modId (`{filemaker_id}.m{modId}.{ext}`): it never overwrites
 * the object the tables referred to before the run, so a rollback that deletes the run's new objects is exact.
 *
 * Pure: no Node built-ins.
 */

export const KEY_PREFIX = 'patients/filemaker-import';
const SAFE_SEGMENT = /^[A-Za-z0-9_-]+$/;

/**
 * One key segment. UUIDs, slugs and ISO dates pass unchanged; anything else (a non-UUID FileMaker id could hold
 * `/` or `..`) is percent-encoded byte by byte, which keeps distinct ids distinct and the key free of traversal.
 */
export function keySegment(value: string): string {
  if (value === '') throw new RangeError('empty S3 key segment');
  // The common case, a UUID or a slug: nothing to encode (the loop below would rebuild it character by character).
  if (SAFE_SEGMENT.test(value)) return value;
  let out = '';
  for (const byte of new TextEncoder().encode(value)) {
    const c = String.fromCharCode(byte);
    out += SAFE_SEGMENT.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function ext(extension: string): string {
  return keySegment(extension.replace(/^\.+/, '').toLowerCase() || 'bin');
}

/**
 * Marks a revision in a key's file name, after a `.`: no encoded segment holds a `.` (see keySegment), so no
 * FileMaker id can look like a revision, and `.` is one of S3's safe key characters.
 */
const REVISION_TAG = 'm';

/**
 * `{filemaker_id}` or, for a revision (the record's modId when its container was replaced),
 * `{filemaker_id}.m{revision}`: the file name before the extension.
 */
function fileStem(filemakerId: string, revision: string | undefined): string {
  const stem = keySegment(filemakerId);
  return revision === undefined ? stem : `${stem}.${REVISION_TAG}${keySegment(revision)}`;
}

/**
 * The revision of a key made here (see fileStem), undefined for a key without one: a relinked or moved object keeps
 * its revision, and an image's thumbnail takes its image's.
 */
export function keyRevision(key: string): string | undefined {
  const parts = key.slice(key.lastIndexOf('/') + 1).split('.');
  const marked = parts.length === 3 ? parts[1] : undefined;
  if (marked === undefined || marked.length <= REVISION_TAG.length || !marked.startsWith(REVISION_TAG)) {
    return undefined;
  }
  try {
    return decodeURIComponent(marked.slice(REVISION_TAG.length));
  } catch {
    return undefined;
  }
}

/**
 * `patients/filemaker-import/documents/{patient_id|unlinked}/{type-slug}/{filemaker_id}[.m{revision}].{ext}`
 * (a revision only for a replaced container, see fileStem).
 */
export function documentKey(
  patientId: string | null,
  typeSlug: string,
  filemakerId: string,
  extension: string,
  revision?: string,
): string {
  return `${KEY_PREFIX}/documents/${keySegment(patientId ?? 'unlinked')}/${keySegment(typeSlug)}/${fileStem(filemakerId, revision)}.${ext(extension)}`;
}

/** `patients/filemaker-import/images/{patient_id|unlinked}/{yyyy-mm-dd|undated}/{filemaker_id}[.m{revision}].{ext}` */
export function imageKey(
  patientId: string | null,
  dateISO: string | null,
  filemakerId: string,
  extension: string,
  revision?: string,
): string {
  return `${imageFolder(patientId, dateISO)}/${fileStem(filemakerId, revision)}.${ext(extension)}`;
}

/**
 * `patients/filemaker-import/images/{patient_id|unlinked}/{yyyy-mm-dd|undated}/thumbnails/{filemaker_id}[.m{revision}].webp`
 * — next to its image, so listing or deleting a batch's folder covers both; with its image's revision.
 */
export function thumbnailKey(
  patientId: string | null,
  dateISO: string | null,
  filemakerId: string,
  revision?: string,
): string {
  return `${imageFolder(patientId, dateISO)}/thumbnails/${fileStem(filemakerId, revision)}.webp`;
}

function imageFolder(patientId: string | null, dateISO: string | null): string {
  return `${KEY_PREFIX}/images/${keySegment(patientId ?? 'unlinked')}/${keySegment(dateISO ?? 'undated')}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Content types and extensions

const EXT_BY_TYPE: Readonly<Record<string, string>> = {
  'application/pdf': 'pdf',
  'image/jpeg': 'jpg',
  'image/pjpeg': 'jpg',
  'image/png': 'png',
  'image/gif': 'gif',
  'image/webp': 'webp',
  'image/heic': 'heic',
  'image/heif': 'heif',
  'image/tiff': 'tif',
  'image/bmp': 'bmp',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'docx',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 'xlsx',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation': 'pptx',
  'application/msword': 'doc',
  'application/vnd.ms-excel': 'xls',
  'application/rtf': 'rtf',
  'text/rtf': 'rtf',
  'text/plain': 'txt',
  'text/csv': 'csv',
  'application/zip': 'zip',
};

/** Types that say nothing about the content: the filename, URL or the bytes decide instead. */
const GENERIC_TYPES = new Set([
  '',
  'application/octet-stream',
  'binary/octet-stream',
  'application/binary',
  'application/unknown',
  'application/download',
  'application/force-download',
  'application/x-download',
]);

/** The media type without parameters, lower-cased (`Image/JPEG; charset=x` → `image/jpeg`). */
export function mediaType(contentType: string | null | undefined): string {
  return (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

export function isGenericContentType(contentType: string | null | undefined): boolean {
  return GENERIC_TYPES.has(mediaType(contentType));
}

function extensionOf(name: string | null | undefined): string | undefined {
  if (!name) return undefined;
  const base = name.split(/[?#]/)[0]?.split(/[/\\]/).pop() ?? '';
  const m = /\.([A-Za-z0-9]{1,8})$/.exec(base);
  if (!m?.[1]) return undefined;
  const e = m[1].toLowerCase();
  return e === 'jpeg' || e === 'jpe' ? 'jpg' : e === 'tiff' ? 'tif' : e;
}

/**
 * The extension for an object key, without the dot: from a specific content type first (it comes from the response
 * or from sniffing the bytes); else from the original filename; else from the container URL's path (FileMaker
 * container URLs end in `.<ext>` but not always); else `bin`. A zip type defers to a filename ending in docx/xlsx/pptx.
 */
export function extensionFor(
  contentType: string | null | undefined,
  filename?: string | null,
  urlPath?: string | null,
): string {
  const type = mediaType(contentType);
  const fromName = extensionOf(filename);
  const fromUrl = extensionOf(urlPath);
  if (type === 'application/zip' && ['docx', 'xlsx', 'pptx'].includes(fromName ?? fromUrl ?? '')) {
    return (fromName ?? fromUrl) as string;
  }
  const fromType = GENERIC_TYPES.has(type) ? undefined : EXT_BY_TYPE[type];
  return fromType ?? fromName ?? fromUrl ?? 'bin';
}

/** The Office Open XML types: a zip whose entry names the sniffer may not see in the first bytes. */
const OOXML_TYPES = new Set([
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation',
]);

/**
 * Whether a specific declared type is one the bytes' signature cannot tell from `sniffed`, so it stands: a zip-based
 * format (Office Open XML, OpenDocument, `+zip`) over a zip signature — which Office format a zip is, the sniffer
 * only guesses from entry names — and an image type we do not sniff over a TIFF signature (camera raw formats are
 * TIFF inside).
 */
function refinesSniffed(declared: string, sniffed: string): boolean {
  if (sniffed === 'application/zip' || OOXML_TYPES.has(sniffed)) {
    return (
      OOXML_TYPES.has(declared) ||
      declared.endsWith('+zip') ||
      declared.startsWith('application/vnd.oasis.opendocument.')
    );
  }
  if (sniffed === 'image/tiff') return declared.startsWith('image/') && !SNIFFED_TYPES.has(declared);
  return false;
}

/**
 * The content type to store. The bytes decide when their signature is one sniffContentType knows and the declared
 * type is generic or contradicts it (a PDF served as `image/jpeg` is a PDF); a declared type the signature cannot
 * tell apart stands (see refinesSniffed). Without a known signature: the declared type when specific, else
 * octet-stream.
 */
export function effectiveContentType(contentType: string | null | undefined, firstBytes: Uint8Array): string {
  const declared = mediaType(contentType);
  const sniffed = sniffContentType(firstBytes);
  if (sniffed === undefined) return GENERIC_TYPES.has(declared) ? 'application/octet-stream' : declared;
  return GENERIC_TYPES.has(declared) || !refinesSniffed(declared, sniffed) ? sniffed : declared;
}

/** Whether two types name the same kind of file (their key extension agrees: `image/pjpeg` is `image/jpeg`). */
function sameKind(a: string, b: string): boolean {
  return a === b || (EXT_BY_TYPE[a] !== undefined && EXT_BY_TYPE[a] === EXT_BY_TYPE[b]);
}

/** How a declared type and the bytes' own type relate (see effectiveContentType). */
export type ContentTypeSource = 'declared' | 'sniffed' | 'corrected';

/**
 * Where effectiveContentType's answer came from: the declared type (or the same kind), sniffed because the declared
 * one was generic, or corrected because the bytes contradicted it.
 */
export function contentTypeSource(contentType: string | null | undefined, decided: string): ContentTypeSource {
  const declared = mediaType(contentType);
  if (GENERIC_TYPES.has(declared)) return 'sniffed';
  return sameKind(declared, decided) ? 'declared' : 'corrected';
}

function startsWith(bytes: Uint8Array, sig: readonly number[], offset = 0): boolean {
  if (bytes.length < offset + sig.length) return false;
  return sig.every((b, i) => bytes[offset + i] === b);
}

function ascii(bytes: Uint8Array, from: number, to: number): string {
  return String.fromCharCode(...bytes.subarray(from, Math.min(to, bytes.length)));
}

/** Every type sniffContentType answers. */
const SNIFFED_TYPES = new Set([
  'application/pdf',
  'image/jpeg',
  'image/png',
  'image/gif',
  'image/webp',
  'image/heic',
  'image/heif',
  'image/tiff',
  'application/rtf',
  'application/zip',
  ...OOXML_TYPES,
]);

const HEIC_BRANDS = new Set(['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'hevm', 'hevs']);
const HEIF_BRANDS = new Set(['mif1', 'msf1', 'heif']);

/**
 * Detect the type from the first bytes (give at least 4 KB for DOCX): PDF, JPEG, PNG, GIF, WEBP, HEIC/HEIF (ISO BMFF
 * `ftyp` brand), TIFF, RTF, and ZIP — reported as DOCX/XLSX/PPTX when an entry name under `word/`, `xl/` or `ppt/`
 * appears in the bytes given (Office writes those entries near the start), else `application/zip`. Undefined when
 * nothing matches.
 */
export function sniffContentType(firstBytes: Uint8Array): string | undefined {
  const b = firstBytes;
  if (startsWith(b, [0x25, 0x50, 0x44, 0x46, 0x2d])) return 'application/pdf';
  if (startsWith(b, [0xff, 0xd8, 0xff])) return 'image/jpeg';
  if (startsWith(b, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'image/png';
  if (ascii(b, 0, 6) === 'GIF87a' || ascii(b, 0, 6) === 'GIF89a') return 'image/gif';
  if (ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WEBP') return 'image/webp';
  if (ascii(b, 4, 8) === 'ftyp') {
    const brand = ascii(b, 8, 12).toLowerCase();
    if (HEIC_BRANDS.has(brand)) return 'image/heic';
    if (HEIF_BRANDS.has(brand)) return 'image/heif';
  }
  if (startsWith(b, [0x49, 0x49, 0x2a, 0x00]) || startsWith(b, [0x4d, 0x4d, 0x00, 0x2a])) return 'image/tiff';
  if (ascii(b, 0, 5) === '{\\rtf') return 'application/rtf';
  if (startsWith(b, [0x50, 0x4b, 0x03, 0x04])) {
    const text = ascii(b, 0, 64 * 1024);
    if (text.includes('word/')) return 'application/vnd.openxmlformats-officedocument.wordprocessingml.document';
    if (text.includes('xl/')) return 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';
    if (text.includes('ppt/')) return 'application/vnd.openxmlformats-officedocument.presentationml.presentation';
    return 'application/zip';
  }
  return undefined;
}

/**
 * An original filename as we keep and offer it: its base name only (RFC 6266 section 4.3: a name, not a path), no
 * control characters (C0, C1, line and paragraph separators), lone surrogates replaced, NFC, at most `maxChars` code
 * points keeping the extension. '' when nothing is left.
 */
export function cleanFilename(raw: string, maxChars = 255): string {
  let s = raw.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, '');
  s = s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
  s = (s.split(/[/\\]/).pop() ?? '').normalize('NFC').trim();
  if (s === '.' || s === '..') return '';
  const chars = Array.from(s);
  if (chars.length <= maxChars) return s;
  const dot = s.lastIndexOf('.');
  const extension = dot > 0 && s.length - dot <= 9 ? s.slice(dot) : '';
  return (
    Array.from(s.slice(0, s.length - extension.length))
      .slice(0, maxChars - extension.length)
      .join('') + extension
  );
}
