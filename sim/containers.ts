// Container bytes, generated on the fly: a valid magic-number header, deterministic padding and a trailer. Nothing is
// stored, so a data set of many gigabytes costs no memory; the SHA-256 for the ground truth streams the same generator.
import { createHash } from 'node:crypto';
import type { ContainerInfo, ContainerKind } from './dataset';
import { fillRandom, hash32 } from './prng';

export const CONTENT_TYPES: Record<ContainerKind, string> = {
  pdf: 'application/pdf',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  jpg: 'image/jpeg',
  png: 'image/png',
  heic: 'image/heic',
};

// Padding is cut from one shared random block at offsets derived from the container and chunk number: sending a
// slice is zero-copy, which is what lets one core serve hundreds of MB/s.
const BLOCK_LEN = 4 * 1024 * 1024;
const CHUNK = 256 * 1024;
const blocks = new Map<number, Buffer>();

function block(seed: number): Buffer {
  let b = blocks.get(seed);
  if (!b) {
    b = Buffer.allocUnsafeSlow(BLOCK_LEN + CHUNK);
    fillRandom(b, 'container-block', seed);
    blocks.set(seed, b);
  }
  return b;
}

export interface ContainerKey {
  seed: number;
  table: string;
  recordIndex: number;
  field: string;
}

function u32be(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}
function u16be(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v & 0xffff);
  return b;
}

/** Plausible pixel dimensions for an image of this many bytes, so header readers report something sensible. */
function dims(size: number, salt: number): [number, number] {
  const px = Math.max(64, Math.round(Math.sqrt(size * 4)));
  const w = Math.min(8000, px + (salt % 64));
  return [w, Math.max(48, Math.round((w * 3) / 4))];
}

function header(kind: ContainerKind, size: number, salt: number): Buffer {
  const id = Buffer.from(salt.toString(16).padStart(8, '0'));
  switch (kind) {
    case 'pdf':
      return Buffer.concat([Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n% sim ', 'latin1'), id, Buffer.from('\n')]);
    case 'docx':
      // A zip local-file header naming the part Word looks for first.
      return Buffer.concat([
        Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x06, 0x00, 0x08, 0x00, 0x00, 0x00, 0x21, 0x00]),
        id.subarray(0, 4),
        Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0x13, 0x00, 0x00, 0x00]),
        Buffer.from('[Content_Types].xml'),
      ]);
    case 'jpg': {
      const [w, h] = dims(size, salt);
      const sof = Buffer.concat([
        Buffer.from([0xff, 0xc0, 0x00, 0x11, 0x08]),
        u16be(h),
        u16be(w),
        Buffer.from([0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01]),
      ]);
      const sos = Buffer.from([0xff, 0xda, 0x00, 0x0c, 0x03, 0x01, 0x00, 0x02, 0x11, 0x03, 0x11, 0x00, 0x3f, 0x00]);
      return Buffer.concat([
        Buffer.from([
          0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x48, 0x00, 0x48,
          0x00, 0x00,
        ]),
        Buffer.from([0xff, 0xfe, 0x00, 0x0a]),
        id,
        sof,
        sos,
      ]);
    }
    case 'png': {
      const [w, h] = dims(size, salt);
      const ihdr = Buffer.concat([u32be(w), u32be(h), Buffer.from([8, 2, 0, 0, 0])]);
      const typeAndData = Buffer.concat([Buffer.from('IHDR'), ihdr]);
      return Buffer.concat([
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
        u32be(13),
        typeAndData,
        u32be(crc32(typeAndData)),
        // Padding follows inside an IDAT chunk whose length covers the rest up to IEND.
        u32be(Math.max(0, size - 8 - 25 - 12 - 12)),
        Buffer.from('IDAT'),
      ]);
    }
    case 'heic':
      return Buffer.concat([
        u32be(24),
        Buffer.from('ftypheic'),
        u32be(0),
        Buffer.from('mif1heic'),
        u32be(Math.max(8, size - 24)),
        Buffer.from('mdat'),
      ]);
  }
}

function trailer(kind: ContainerKind): Buffer {
  switch (kind) {
    case 'pdf':
      return Buffer.from('\n%%EOF\n');
    case 'jpg':
      return Buffer.from([0xff, 0xd9]);
    case 'png':
      return Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);
    default:
      return Buffer.alloc(0);
  }
}

let crcTable: Uint32Array | undefined;
function crc32(buf: Buffer): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const byte of buf) crc = crcTable[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

export function containerSalt(key: ContainerKey): number {
  return hash32(key.seed, key.table, key.recordIndex, key.field);
}

/**
 * Yields the container's bytes in order, `info.size` bytes in total. Buffers may be slices of a shared block: callers
 * must not modify them.
 */
export function* containerChunks(key: ContainerKey, info: ContainerInfo): Generator<Buffer> {
  const size = info.size;
  if (size <= 0) return;
  const salt = containerSalt(key);
  const head = header(info.kind, size, salt);
  const tail = trailer(info.kind);
  if (head.length + tail.length >= size) {
    yield Buffer.concat([head, tail]).subarray(0, size);
    return;
  }
  yield head;
  const base = block(key.seed);
  let remaining = size - head.length - tail.length;
  let k = 0;
  while (remaining > 0) {
    const n = Math.min(CHUNK, remaining);
    const off = hash32(salt, k++) % BLOCK_LEN;
    yield base.subarray(off, off + n);
    remaining -= n;
  }
  if (tail.length) yield tail;
}

const shaCache = new Map<string, string>();

export function containerSha256(key: ContainerKey, info: ContainerInfo): string {
  const k = `${key.seed}|${key.table}|${key.recordIndex}|${key.field}|${info.size}|${info.kind}`;
  let sha = shaCache.get(k);
  if (!sha) {
    const h = createHash('sha256');
    for (const chunk of containerChunks(key, info)) h.update(chunk);
    sha = h.digest('hex');
    shaCache.set(k, sha);
  }
  return sha;
}

export function containerBytes(key: ContainerKey, info: ContainerInfo): Buffer {
  return Buffer.concat([...containerChunks(key, info)]);
}

/** `Content-Disposition` with an ASCII fallback and the UTF-8 original, as browsers and S3 expect. */
export function contentDisposition(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename)}`;
}
