// Deterministic randomness for the simulator. Everything the data set contains is a pure function of
// (seed, table, record index, field), so two simulators started with the same seed serve identical bytes.

/** 32-bit FNV-1a over strings and numbers, mixed with murmur's finaliser so nearby inputs spread well. */
export function hash32(...parts: (string | number)[]): number {
  let h = 0x811c9dc5;
  for (const part of parts) {
    const s = typeof part === 'number' ? `#${part}` : part;
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    h ^= 0x1f;
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** sfc32: small, fast, and good enough statistically for synthetic data and fault dice. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(...seedParts: (string | number)[]) {
    this.a = hash32('a', ...seedParts);
    this.b = hash32('b', ...seedParts);
    this.c = hash32('c', ...seedParts);
    this.d = 1;
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A generator seeded from three 32-bit words (no string hashing: cheap enough for one per record). */
  static fromWords(a: number, b: number, c: number): Rng {
    const rng = Object.create(Rng.prototype) as Rng;
    rng.a = a;
    rng.b = b;
    rng.c = c;
    rng.d = 1;
    for (let i = 0; i < 12; i++) rng.u32();
    return rng;
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.u32() / 4294967296;
  }

  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new Error('pick from empty list');
    return item;
  }

  /** Standard normal via Box-Muller. */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  logNormal(median: number, sigma: number): number {
    return median * Math.exp(sigma * this.normal());
  }

  uuid(): string {
    const hex = (n: number) => n.toString(16).padStart(8, '0');
    const s = hex(this.u32()) + hex(this.u32()) + hex(this.u32()) + hex(this.u32());
    const variant = ((parseInt(s[16] ?? '0', 16) & 0x3) | 0x8).toString(16);
    return `${s.slice(0, 8)}-${s.slice(8, 12)}-4${s.slice(13, 16)}-${variant}${s.slice(17, 20)}-${s.slice(20, 32)}`.toUpperCase();
  }
}

/** Fills a buffer with pseudo-random bytes quickly (xorshift128 over 32-bit words). */
export function fillRandom(buf: Buffer, ...seedParts: (string | number)[]): void {
  let x = hash32('x', ...seedParts) | 1;
  let y = hash32('y', ...seedParts) | 1;
  let z = hash32('z', ...seedParts) | 1;
  let w = hash32('w', ...seedParts) | 1;
  const words = Math.floor(buf.length / 4);
  const view = new Uint32Array(buf.buffer, buf.byteOffset, words);
  for (let i = 0; i < words; i++) {
    const t = x ^ (x << 11);
    x = y;
    y = z;
    z = w;
    w = w ^ (w >>> 19) ^ (t ^ (t >>> 8));
    view[i] = w >>> 0;
  }
  for (let i = words * 4; i < buf.length; i++) buf[i] = (x >>> ((i & 3) * 8)) & 0xff;
}
