// Container bytes, generated on the fly. Nothing is stored, so a data set of many gigabytes costs no memory; the
// SHA-256 for the ground truth streams the same generator.
//
// - JPEG and PNG are real images that decoders (libjpeg, libpng, so sharp/libvips) decode: a small picture of a few
//   colour blocks, encoded here per container, plus padding that decoders skip to reach the exact size — JPEG APP15
//   segments between the JFIF header and the frame, PNG private ancillary `fmPd` chunks (with valid CRCs) between
//   PLTE and IDAT. The pixel data comes last, so a truncated download never decodes.
// - PDF, DOCX and HEIC are a valid magic-number header, deterministic padding and a trailer; HEIC does not decode.
import { createHash } from 'node:crypto';
import { crc32, deflateSync } from 'node:zlib';
import type { ContainerInfo, ContainerKind } from './dataset';
import { fillRandom, hash32 } from './prng';

export const CONTENT_TYPES: Record<ContainerKind, string> = {
  pdf: 'application/pdf',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  jpg: 'image/jpeg',
  png: 'image/png',
  heic: 'image/heic',
};

/** The content type FileMaker serves the container with: its declared kind's, which may not be its bytes'. */
export function servedContentType(info: ContainerInfo): string {
  return CONTENT_TYPES[info.declaredKind ?? info.kind];
}

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

// ---------------------------------------------------------------------------------------------------------------
// PDF, DOCX, HEIC: header + padding + trailer.

type PlainKind = Exclude<ContainerKind, 'jpg' | 'png'>;

function header(kind: PlainKind, size: number, salt: number): Buffer {
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

function trailer(kind: PlainKind): Buffer {
  return kind === 'pdf' ? Buffer.from('\n%%EOF\n') : Buffer.alloc(0);
}

function* plainChunks(kind: PlainKind, seed: number, salt: number, size: number): Generator<Buffer> {
  const head = header(kind, size, salt);
  const tail = trailer(kind);
  if (head.length + tail.length >= size) {
    yield Buffer.concat([head, tail]).subarray(0, size);
    return;
  }
  yield head;
  const base = block(seed);
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

// ---------------------------------------------------------------------------------------------------------------
// JPEG and PNG: a real picture, plus padding segments decoders skip.

/**
 * How one image format pads: `overhead` bytes of framing per segment around at most `maxData` bytes of payload.
 * Full segments are pre-built per seed in a block of `count` consecutive segments (so serving them is zero-copy);
 * the one or two shorter segments at the end are framed on the fly.
 */
interface PadFormat {
  name: string;
  overhead: number;
  maxData: number;
  count: number;
  /** Full segments per yielded slice, about CHUNK bytes. */
  perYield: number;
  frame(data: Buffer): Buffer[];
}

// JPEG APP15: a marker, a 16-bit length that counts itself, at most 65,533 payload bytes. libjpeg skips APPn markers
// nobody asked to keep; libvips keeps APP1/2/13/14 and COM, so padding stays clear of those.
const JPEG_PAD: PadFormat = {
  name: 'jpeg-pad',
  overhead: 4,
  maxData: 65_533,
  count: 64,
  perYield: 4,
  frame(data) {
    return [Buffer.from([0xff, 0xef, (data.length + 2) >> 8, (data.length + 2) & 0xff]), data];
  },
};

// PNG `fmPd`: ancillary (lower-case first letter), private, safe-to-copy; decoders skip it after checking its CRC.
// 256 KiB chunks keep a 40 MB image to ~160 chunks, far below any decoder's limits on chunk size.
const PNG_PAD_TYPE = Buffer.from('fmPd');
const PNG_PAD: PadFormat = {
  name: 'png-pad',
  overhead: 12,
  maxData: CHUNK - 12,
  count: 16,
  perYield: 1,
  frame(data) {
    const head = Buffer.concat([u32be(data.length), PNG_PAD_TYPE]);
    return [head, data, u32be(crc32(data, crc32(PNG_PAD_TYPE)))];
  },
};

const padBlocks = new Map<string, Buffer>();

function padBlock(fmt: PadFormat, seed: number): Buffer {
  const k = `${fmt.name}|${seed}`;
  let b = padBlocks.get(k);
  if (!b) {
    const full = fmt.maxData + fmt.overhead;
    b = Buffer.allocUnsafeSlow(fmt.count * full);
    fillRandom(b, fmt.name, seed);
    for (let i = 0; i < fmt.count; i++) {
      const data = b.subarray(i * full, (i + 1) * full - fmt.overhead);
      let off = i * full;
      // Frame around a copy of the random payload (framing shifts it by the header length).
      for (const part of fmt.frame(Buffer.from(data))) off += part.copy(b, off);
    }
    padBlocks.set(k, b);
  }
  return b;
}

/** Exactly `total` bytes of padding segments; `total` is 0 or at least `fmt.overhead`. */
function* padding(fmt: PadFormat, seed: number, salt: number, total: number): Generator<Buffer> {
  const full = fmt.maxData + fmt.overhead;
  let nFull = Math.floor(total / full);
  let rest = total - nFull * full;
  const tails: number[] = [];
  if (rest > 0 && rest < fmt.overhead) {
    // Too little for a segment of its own: split the last full segment plus the rest into two shorter ones.
    nFull--;
    rest += full;
    const a = Math.floor((rest - 2 * fmt.overhead) / 2);
    tails.push(a, rest - 2 * fmt.overhead - a);
  } else if (rest > 0) tails.push(rest - fmt.overhead);
  const pads = padBlock(fmt, seed);
  let k = 0;
  while (nFull > 0) {
    const m = Math.min(fmt.perYield, nFull);
    const j = hash32(salt, k++) % (fmt.count - m + 1);
    yield pads.subarray(j * full, (j + m) * full);
    nFull -= m;
  }
  const base = block(seed);
  for (const len of tails) {
    const off = hash32(salt, k++) % BLOCK_LEN;
    yield* fmt.frame(base.subarray(off, off + len));
  }
}

type Rgb = [number, number, number];

/** Two to four colours in bands or a checkerboard of 8×8 cells, chosen by the salt. */
function palette(salt: number): {
  colours: Rgb[];
  indexAt: (cx: number, cy: number, cw: number, ch: number) => number;
} {
  const n = 2 + (salt % 3);
  const colours: Rgb[] = [];
  for (let i = 0; i < n; i++) {
    const h = hash32(salt, 'colour', i);
    colours.push([h & 0xff, (h >>> 8) & 0xff, (h >>> 16) & 0xff]);
  }
  const pattern = (salt >>> 4) % 3;
  const indexAt = (cx: number, cy: number, cw: number, ch: number) =>
    Math.min(
      n - 1,
      pattern === 0 ? Math.floor((cy * n) / ch) : pattern === 1 ? Math.floor((cx * n) / cw) : (cx + cy + (cy >> 1)) % n,
    );
  return { colours, indexAt };
}

const MAX_SIDE = 640;

/** Pixel dimensions growing with the file size, landscape 4:3 mostly; small enough to decode in a blink. */
function imageDims(size: number, salt: number, shrink: number): [number, number] {
  const long = Math.max(8, Math.max(16, Math.min(MAX_SIDE, Math.round(Math.sqrt(size) / 32) * 8)) >> shrink);
  const short = Math.max(8, Math.round((long * 3) / 4));
  return salt % 4 === 0 ? [short, long] : [long, short];
}

// Standard JPEG luminance DC table (ITU T.81 K.3), used for all three components; AC holds only EOB, coded `0`.
const DC_BITS = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const DC_VALS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const DC_CODES: [number, number][] = (() => {
  const out: [number, number][] = [];
  let code = 0;
  let v = 0;
  for (let len = 1; len <= 16; len++) {
    for (let i = 0; i < DC_BITS[len - 1]!; i++) out[DC_VALS[v++]!] = [code++, len];
    code <<= 1;
  }
  return out;
})();

function segment(marker: number, body: number[]): number[] {
  return [0xff, marker, (body.length + 2) >> 8, (body.length + 2) & 0xff, ...body];
}

const JPEG_HEAD = Buffer.from([
  0xff,
  0xd8,
  // JFIF 1.01, no density units, 1:1.
  ...segment(0xe0, [0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00]),
]);

const JPEG_TABLES = Buffer.from([
  // One quantisation table; DC step 8 makes a quantised DC coefficient equal to (level − 128).
  ...segment(0xdb, [0x00, 8, ...new Array<number>(63).fill(16)]),
  ...segment(0xc4, [0x00, ...DC_BITS, ...DC_VALS, 0x10, 1, ...new Array<number>(15).fill(0), 0x00]),
]);

/** A baseline YCbCr 4:4:4 JPEG whose 8×8 blocks are flat colours: DC coefficients only. */
function encodeJpeg(w: number, h: number, salt: number): [Buffer, Buffer] {
  const { colours, indexAt } = palette(salt);
  // Quantised DC per colour and component: (level − 128) of Y, Cb, Cr.
  const dcs = colours.map(([r, g, b]) =>
    [
      0.299 * r + 0.587 * g + 0.114 * b,
      128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
      128 + 0.5 * r - 0.418688 * g - 0.081312 * b,
    ].map((v) => Math.max(0, Math.min(255, Math.round(v))) - 128),
  );
  const bw = Math.ceil(w / 8);
  const bh = Math.ceil(h / 8);
  const frame = segment(0xc0, [8, h >> 8, h & 0xff, w >> 8, w & 0xff, 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0]);
  const scan = segment(0xda, [3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0]);
  // At most 18 bits a block, doubled for byte stuffing.
  const out = Buffer.allocUnsafe(JPEG_TABLES.length + frame.length + scan.length + Math.ceil(bw * bh * 3 * 4.5) + 4);
  let n = JPEG_TABLES.copy(out, 0);
  out.set(frame, n);
  n += frame.length;
  out.set(scan, n);
  n += scan.length;
  let acc = 0;
  let nbits = 0;
  const put = (code: number, len: number) => {
    acc = (acc << len) | code;
    nbits += len;
    while (nbits >= 8) {
      const byte = (acc >>> (nbits - 8)) & 0xff;
      out[n++] = byte;
      if (byte === 0xff) out[n++] = 0;
      nbits -= 8;
    }
    acc &= (1 << nbits) - 1;
  };
  const pred = [0, 0, 0];
  for (let by = 0; by < bh; by++) {
    for (let bx = 0; bx < bw; bx++) {
      const dc = dcs[indexAt(bx, by, bw, bh)]!;
      for (let c = 0; c < 3; c++) {
        const diff = dc[c]! - pred[c]!;
        pred[c] = dc[c]!;
        const mag = Math.abs(diff);
        const cat = mag === 0 ? 0 : 32 - Math.clz32(mag);
        const [code, len] = DC_CODES[cat]!;
        put(code, len);
        if (cat) put(diff > 0 ? diff : diff + (1 << cat) - 1, cat);
        put(0, 1); // EOB
      }
    }
  }
  if (nbits) put((1 << (8 - nbits)) - 1, 8 - nbits);
  out[n++] = 0xff;
  out[n++] = 0xd9;
  return [JPEG_HEAD, Buffer.from(out.subarray(0, n))];
}

const PNG_SIG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const PNG_IEND = Buffer.from([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);

function pngChunk(type: string, data: Buffer): Buffer {
  const typed = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  return Buffer.concat([u32be(data.length), typed, u32be(crc32(typed))]);
}

/**
 * An indexed PNG (2-bit palette) of the same blocks; a pixel row repeating the one above uses the Up filter, so it
 * deflates to almost nothing.
 */
function encodePng(w: number, h: number, salt: number): [Buffer, Buffer] {
  const { colours, indexAt } = palette(salt);
  const bw = Math.ceil(w / 8);
  const bh = Math.ceil(h / 8);
  const stride = 1 + Math.ceil(w / 4);
  const raw = Buffer.alloc(stride * h);
  for (let y = 0; y < h; y++) {
    const row = y * stride;
    if (y % 8 !== 0) {
      raw[row] = 2;
      continue;
    }
    for (let x = 0; x < w; x++) raw[row + 1 + (x >> 2)]! |= indexAt(x >> 3, y >> 3, bw, bh) << (6 - 2 * (x & 3));
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([2, 3, 0, 0, 0], 8);
  const head = Buffer.concat([PNG_SIG, pngChunk('IHDR', ihdr), pngChunk('PLTE', Buffer.from(colours.flat()))]);
  return [head, Buffer.concat([pngChunk('IDAT', deflateSync(raw, { level: 6 })), PNG_IEND])];
}

// Pictures are a few hundred bytes to a few KB; keeping the recent ones saves re-encoding on repeated downloads.
const pictures = new Map<string, [Buffer, Buffer]>();
const PICTURE_CACHE = 256;

function picture(kind: 'jpg' | 'png', w: number, h: number, salt: number): [Buffer, Buffer] {
  const k = `${kind}|${w}|${h}|${salt}`;
  let p = pictures.get(k);
  if (!p) {
    p = kind === 'jpg' ? encodeJpeg(w, h, salt) : encodePng(w, h, salt);
    if (pictures.size >= PICTURE_CACHE) pictures.delete(pictures.keys().next().value!);
    pictures.set(k, p);
  }
  return p;
}

function* imageChunks(kind: 'jpg' | 'png', seed: number, salt: number, size: number): Generator<Buffer> {
  const fmt = kind === 'jpg' ? JPEG_PAD : PNG_PAD;
  for (let shrink = 0; shrink < 8; shrink++) {
    const [w, h] = imageDims(size, salt, shrink);
    const [head, tail] = picture(kind, w, h, salt);
    const pad = size - head.length - tail.length;
    if (pad !== 0 && pad < fmt.overhead) {
      if (w === 8 && h === 8) break;
      continue;
    }
    yield head;
    yield* padding(fmt, seed, salt, pad);
    yield tail;
    return;
  }
  // Smaller than the smallest picture (the data set never asks for less than 512 bytes): a cut-off image.
  const [head, tail] = picture(kind, 8, 8, salt);
  const all = Buffer.concat([head, tail]);
  yield all.length >= size ? all.subarray(0, size) : Buffer.concat([all, Buffer.alloc(size - all.length)]);
}

/** A replaced container (`rev` > 0) has other bytes than its record's original ones. */
export function containerSalt(key: ContainerKey, rev = 0): number {
  return rev > 0
    ? hash32(key.seed, key.table, key.recordIndex, key.field, rev)
    : hash32(key.seed, key.table, key.recordIndex, key.field);
}

/**
 * Yields the container's bytes in order, `info.size` bytes in total. Buffers may be slices of a shared block: callers
 * must not modify them.
 */
export function* containerChunks(key: ContainerKey, info: ContainerInfo): Generator<Buffer> {
  const size = info.size;
  if (size <= 0) return;
  const salt = containerSalt(key, info.rev);
  if (info.kind === 'jpg' || info.kind === 'png') yield* imageChunks(info.kind, key.seed, salt, size);
  else yield* plainChunks(info.kind, key.seed, salt, size);
}

const shaCache = new Map<string, string>();

export function containerSha256(key: ContainerKey, info: ContainerInfo): string {
  const k = `${key.seed}|${key.table}|${key.recordIndex}|${key.field}|${info.size}|${info.kind}|${info.rev ?? 0}`;
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

/** The length of `size` bytes as base64 text. */
export function base64Length(size: number): number {
  return 4 * Math.ceil(size / 3);
}

/** Streams chunks as base64 text, carrying the bytes that do not fill a 3-byte group over to the next chunk. */
export function* base64Chunks(chunks: Iterable<Buffer>): Generator<Buffer> {
  let carry = Buffer.alloc(0);
  for (const chunk of chunks) {
    const buf = carry.length ? Buffer.concat([carry, chunk]) : chunk;
    const whole = buf.length - (buf.length % 3);
    if (whole) yield Buffer.from(buf.subarray(0, whole).toString('base64'));
    carry = Buffer.from(buf.subarray(whole));
  }
  if (carry.length) yield Buffer.from(carry.toString('base64'));
}
