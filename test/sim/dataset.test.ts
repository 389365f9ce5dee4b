import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { containerChunks, containerSha256 } from '../../sim/containers';
import { Dataset } from '../../sim/dataset';
import { TABLES, presetCount } from '../../sim/schema';
import { truthContainers, truthTable } from '../../sim/truth';

const tiny = (seed: number) => new Dataset({ preset: 'tiny', scale: 1, seed, sizeScale: 0.01 });

describe('data set', () => {
  test('same seed gives the same records, container bytes and hashes; a different seed differs', () => {
    const a = tiny(7);
    const b = tiny(7);
    const c = tiny(8);
    for (const t of TABLES) assert.deepEqual(truthTable(a, t.name), truthTable(b, t.name));
    assert.deepEqual(truthContainers(a, 'API_Images'), truthContainers(b, 'API_Images'));
    assert.notDeepEqual(truthTable(a, 'API_Contacts'), truthTable(c, 'API_Contacts'));
    assert.notDeepEqual(
      truthContainers(a, 'API_Docs')!.map((x) => x.sha256),
      truthContainers(c, 'API_Docs')!.map((x) => x.sha256),
    );
  });

  test('seed preset has the clinic counts; demo about a tenth', () => {
    const seedCounts = Object.fromEntries(TABLES.map((t) => [t.name, presetCount(t, 'seed', 1)]));
    assert.equal(seedCounts.API_Clinic_Name, 16);
    assert.equal(seedCounts.API_Contacts, 2845);
    assert.equal(seedCounts.API_event, 15149);
    assert.equal(seedCounts.API_Docs, 11269);
    assert.equal(seedCounts.API_Images, 6664);
    assert.equal(
      presetCount(
        TABLES.find((t) => t.name === 'API_Docs')!,
        'demo',
        1,
      ),
      1127,
    );
  });

  test('the tiny preset holds every data-quality case at least once', () => {
    const ds = tiny(1);
    const tags = new Set<string>();
    for (const t of ds.tableList) for (const r of t.records) for (const q of r.quality) tags.add(`${t.def.name}:${q}`);
    const required = [
      'API_Contacts:unicode_name',
      'API_Contacts:hostile_string',
      'API_Contacts:nul_chars',
      'API_Contacts:ambiguous_date',
      'API_Contacts:impossible_date',
      'API_Contacts:iso_date',
      'API_Contacts:dayfirst_date',
      'API_Contacts:fk_lowercase',
      'API_Contact_Details:owner_referrer',
      'API_Contact_Details:owner_company',
      'API_Contact_Details:orphan_owner',
      'API_event:no_patient',
      'API_event:orphan_patient',
      'API_event:no_start',
      'API_event:odd_time',
      'API_event:fk_whitespace',
      'API_Notes:empty_note',
      'API_Notes:long_text',
      'API_Notes:orphan_patient',
      'API_Referrer:archived',
      'API_Docs:empty_container',
      'API_Docs:broken_container',
      'API_Docs:already_exported',
      'API_Images:not_found_image',
      'API_Images:empty_container',
      'API_Images:best_broken_fallback',
      'API_Images:no_usable_container',
      'API_Images:partial_containers',
    ];
    for (const r of required) assert.ok(tags.has(r), `missing ${r}`);
    const times = ds.table('API_event')!.records.map((r) => String(r.fields.startTime));
    assert.ok(times.includes('24:00:00'));
    assert.ok(times.some((t) => t.startsWith('1 day, ')));
    assert.ok(times.some((t) => / (AM|PM)$/.test(t)));
    const note = ds.table('API_Notes')!.records.find((r) => r.quality.includes('long_text'))!;
    assert.ok(String(note.fields.Note).length > 100_000);
    const statuses = new Set(ds.table('API_event')!.records.map((r) => r.fields.Status));
    for (const s of ['Booked', 'Arrived', 'Completed', 'Cancelled', 'DNA', '']) assert.ok(statuses.has(s));
  });

  test('ids are uppercase UUIDs; container bytes start with real magic numbers', () => {
    const ds = tiny(1);
    for (const r of ds.table('API_Contacts')!.records)
      assert.match(String(r.fields.id), /^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$/);
    const magic: Record<string, number[]> = {
      pdf: [0x25, 0x50, 0x44, 0x46],
      jpg: [0xff, 0xd8, 0xff],
      png: [0x89, 0x50, 0x4e, 0x47],
      docx: [0x50, 0x4b, 0x03, 0x04],
      heic: [0, 0, 0, 24, 0x66, 0x74, 0x79, 0x70],
    };
    const seen = new Set<string>();
    for (const r of ds.table('API_Docs')!.records) {
      const info = r.containers.Doc!;
      if (info.state !== 'ok') continue;
      const key = { seed: 1, table: 'API_Docs', recordIndex: r.index, field: 'Doc' };
      const first = containerChunks(key, info).next().value as Buffer;
      assert.deepEqual([...first.subarray(0, magic[info.kind]!.length)], magic[info.kind], info.kind);
      seen.add(info.kind);
    }
    assert.equal(seen.size, 5);
  });

  test('container sizes follow the distribution: documents ~0.5 MB mean, full images several MB', () => {
    const ds = new Dataset({ preset: 'demo', scale: 1, seed: 3, sizeScale: 1 });
    const docs = ds
      .table('API_Docs')!
      .records.map((r) => r.containers.Doc!)
      .filter((c) => c.state !== 'empty');
    const mean = docs.reduce((s, c) => s + c.size, 0) / docs.length;
    assert.ok(mean > 350_000 && mean < 700_000, `doc mean ${mean}`);
    const full = ds
      .table('API_Images')!
      .records.map((r) => r.containers.image_Full!)
      .filter((c) => c.state !== 'empty');
    const fmean = full.reduce((s, c) => s + c.size, 0) / full.length;
    assert.ok(fmean > 2_500_000 && fmean < 6_000_000, `image mean ${fmean}`);
  });

  test('streaming a large container costs no memory and hashes the same as its bytes', () => {
    const ds = tiny(1);
    const rec = ds.table('API_Images')!.records.find((r) => r.containers.image_Full?.state === 'ok')!;
    const big = { ...rec.containers.image_Full!, size: 512 * 1024 * 1024 };
    const key = { seed: 1, table: 'API_Images', recordIndex: rec.index, field: 'image_Full' };
    const before = process.memoryUsage().rss;
    const h = createHash('sha256');
    let n = 0;
    for (const c of containerChunks(key, big)) {
      h.update(c);
      n += c.length;
    }
    const grown = process.memoryUsage().rss - before;
    assert.equal(n, big.size);
    assert.ok(grown < 64 * 1024 * 1024, `rss grew ${grown}`);
    assert.equal(h.digest('hex'), containerSha256(key, big));
  });
});
