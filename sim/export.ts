// The clinic's one-off FileMaker Pro export of all images: `{recid}.{ext}` (best container per waterfall that
// actually holds bytes) plus a metadata CSV, UTF-8 with a byte-order mark as FileMaker Pro writes it.
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { containerChunks } from './containers';
import type { Dataset } from './dataset';
import { IMAGE_CONTAINERS } from './schema';

export interface ExportResult {
  files: number;
  bytes: number;
  rows: number;
  csvPath: string;
}

function csvCell(v: string | number | undefined): string {
  const s = v === undefined ? '' : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export async function exportImages(ds: Dataset, outDir: string): Promise<ExportResult> {
  await mkdir(outDir, { recursive: true });
  const table = ds.table('API_Images')!;
  const lines = ['recid,id_Contact,date,Type'];
  let files = 0;
  let bytes = 0;
  for (const rec of table.scan()) {
    const f = rec.fields;
    lines.push([f.recid, f.id_Contact, f.date, f.Type].map(csvCell).join(','));
    // FileMaker Pro cannot export bytes it cannot read, so a broken best container falls through to the next one.
    const field = IMAGE_CONTAINERS.find((c) => rec.containers[c]?.state === 'ok');
    if (!field) continue;
    const info = rec.containers[field]!;
    const key = { seed: ds.opts.seed, table: 'API_Images', recordIndex: rec.index, field };
    const out = createWriteStream(join(outDir, `${String(f.recid)}.${info.kind}`));
    for (const chunk of containerChunks(key, info)) {
      if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
    }
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    files++;
    bytes += info.size;
  }
  const csvPath = join(outDir, 'images_metadata.csv');
  await writeFile(csvPath, `\ufeff${lines.join('\r\n')}\r\n`, 'utf8');
  return { files, bytes, rows: table.count, csvPath };
}
