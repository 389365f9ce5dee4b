/**
 * Matching the export's `{recid}.{ext}` files to CSV rows. Pure: works on a listing (names and sizes), never on
 * file contents.
 */

export interface ExportFile {
  /** The name as listed (`10001.JPG`): what `open()` reads. */
  name: string;
  /** The extension, lower-case, without the dot (`jpg`). */
  ext: string;
  size: number;
}

export interface ListedFile {
  name: string;
  size: number;
}

/** A FileMaker serial: a positive decimal integer without leading zeros or signs, within the safe range. */
export function isRecid(value: string): boolean {
  return /^[1-9][0-9]{0,15}$/.test(value) && Number(value) <= Number.MAX_SAFE_INTEGER;
}

/** `10001.jpg` → recid `10001`, ext `jpg`; undefined for anything else (`._10001.jpg`, `0012.jpg`, `10001.jpg.part`). */
export function parseExportFileName(name: string): { recid: string; ext: string } | undefined {
  const m = /^([0-9]+)\.([A-Za-z0-9]{1,10})$/.exec(name);
  if (!m?.[1] || !m[2] || !isRecid(m[1])) return undefined;
  return { recid: m[1], ext: m[2].toLowerCase() };
}

/** Extensions FileMaker Pro writes for pictures; a file with one of these wins over, say, `10001.txt`. */
const IMAGE_EXTS = new Set(['jpg', 'jpeg', 'png', 'heic', 'heif', 'gif', 'webp', 'tif', 'tiff', 'bmp']);

/**
 * The file to import when several share a recid, whatever the listing order: an image extension first, then the
 * largest (an empty or cut-off copy loses), then the name in code-unit order.
 */
export function compareCandidates(a: ExportFile, b: ExportFile): number {
  const img = Number(IMAGE_EXTS.has(b.ext)) - Number(IMAGE_EXTS.has(a.ext));
  if (img !== 0) return img;
  if (a.size !== b.size) return b.size - a.size;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export interface FileIndex {
  /** Candidates per recid, best first. */
  byRecid: Map<string, ExportFile[]>;
  /** Names that are not `{recid}.{ext}` at all. */
  unmatched: string[];
}

export function indexFiles(listing: Iterable<ListedFile>): FileIndex {
  const byRecid = new Map<string, ExportFile[]>();
  const unmatched: string[] = [];
  for (const f of listing) {
    const parsed = parseExportFileName(f.name);
    if (!parsed) {
      unmatched.push(f.name);
      continue;
    }
    const list = byRecid.get(parsed.recid) ?? [];
    list.push({ name: f.name, ext: parsed.ext, size: f.size });
    byRecid.set(parsed.recid, list);
  }
  for (const list of byRecid.values()) list.sort(compareCandidates);
  return { byRecid, unmatched };
}
