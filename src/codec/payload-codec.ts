/**
 * Payload encryption for everything Temporal stores: workflow inputs and results, activity arguments, signals,
 * memos, and (with `dataConverterFor`) failure messages and stack traces. AES-256-GCM, one random 12-byte IV per
 * payload, the key id in the payload metadata so keys can rotate: the active key encrypts, every listed key decrypts.
 *
 * Wire format of an encrypted payload:
 *   metadata.encoding          = "binary/encrypted"
 *   metadata.encryption-key-id = key id (plain ASCII)
 *   data                       = IV (12 bytes) || ciphertext || GCM tag (16 bytes)
 * The plaintext is the whole original Payload protobuf, so its own metadata (encoding, messageType) stays secret too
 * and comes back unchanged on decode.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { ConfigError, FmReimportError } from '../errors';
import { ERROR_CODES } from '../error-codes';

export const ENCODING_ENCRYPTED = 'binary/encrypted';
export const METADATA_ENCODING_KEY = 'encoding';
export const METADATA_KEY_ID_KEY = 'encryption-key-id';

const CIPHER = 'aes-256-gcm';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
// Key ids travel in clear metadata and in error messages, so keep them to a boring alphabet.
const KEY_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/** Thrown on decode when a payload names a key id that the configured key set does not hold. */
export class PayloadKeyUnknownError extends FmReimportError {
  override readonly name = 'PayloadKeyUnknownError';
  readonly code = ERROR_CODES.PAYLOAD_KEY_UNKNOWN;
  constructor(readonly keyId: string) {
    super(`payload was encrypted with key id "${keyId}", which is not in PAYLOAD_KEYS`);
  }
}

/** Thrown on decode when an encrypted payload is malformed or fails GCM authentication (tampered or wrong key). */
export class PayloadDecryptError extends FmReimportError {
  override readonly name = 'PayloadDecryptError';
  readonly code = ERROR_CODES.PAYLOAD_DECRYPT_FAILED;
  constructor(reason: string) {
    super(`payload could not be decrypted: ${reason}`);
  }
}

export interface PayloadKey {
  readonly id: string;
  readonly key: Buffer;
}

/**
 * Parses `kid1:base64key1,kid2:base64key2` (commas or newlines between entries, so a key file can hold one per line).
 * Errors name the entry position or key id, never key material.
 */
export function parseKeySpec(spec: string): PayloadKey[] {
  const entries = spec
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter((s) => s !== '' && !s.startsWith('#'));
  if (entries.length === 0) throw new ConfigError('PAYLOAD_KEYS: expected at least one entry "keyId:base64Key"');
  const keys: PayloadKey[] = [];
  entries.forEach((entry, i) => {
    const sep = entry.indexOf(':');
    const id = sep > 0 ? entry.slice(0, sep).trim() : '';
    const b64 = sep > 0 ? entry.slice(sep + 1).trim() : '';
    if (!KEY_ID_PATTERN.test(id)) {
      throw new ConfigError(`PAYLOAD_KEYS: entry ${i + 1}: expected "keyId:base64Key" with a key id of [A-Za-z0-9._-]`);
    }
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) {
      throw new ConfigError(`PAYLOAD_KEYS: key "${id}": expected a base64 value`);
    }
    const key = Buffer.from(b64, 'base64');
    if (key.length !== KEY_BYTES) {
      throw new ConfigError(`PAYLOAD_KEYS: key "${id}": expected ${KEY_BYTES} bytes (AES-256), got ${key.length}`);
    }
    if (keys.some((k) => k.id === id)) throw new ConfigError(`PAYLOAD_KEYS: key id "${id}" is listed twice`);
    keys.push({ id, key });
  });
  return keys;
}

/** A fresh key entry for local development, in the PAYLOAD_KEYS format. */
export function generateKeySpec(keyId = `dev-${new Date().toISOString().slice(0, 10).replace(/-/g, '')}`): string {
  if (!KEY_ID_PATTERN.test(keyId)) throw new ConfigError('generateKeySpec: key id must match [A-Za-z0-9._-]{1,64}');
  return `${keyId}:${randomBytes(KEY_BYTES).toString('base64')}`;
}

// The key id is bound as associated data so a payload cannot be relabelled to another key id undetected.
const aadFor = (keyId: string) => Buffer.from(`fm-reimport/payload/v1/${keyId}`, 'utf8');

function metadataString(payload: Payload, key: string): string | undefined {
  const v = payload.metadata?.[key];
  return v ? Buffer.from(v).toString('utf8') : undefined;
}

export class AesGcmPayloadCodec implements PayloadCodec {
  private readonly keys: ReadonlyMap<string, Buffer>;
  readonly activeKeyId: string;

  constructor(keys: readonly PayloadKey[], activeKeyId?: string) {
    const first = keys[0];
    if (!first) throw new ConfigError('PAYLOAD_KEYS: expected at least one key');
    this.keys = new Map(keys.map((k) => [k.id, k.key]));
    this.activeKeyId = activeKeyId ?? first.id;
    if (!this.keys.has(this.activeKeyId)) {
      throw new ConfigError(`PAYLOAD_ACTIVE_KEY_ID: key id "${this.activeKeyId}" is not in PAYLOAD_KEYS`);
    }
  }

  /** Key ids this codec can decrypt, active first. */
  get keyIds(): string[] {
    return [this.activeKeyId, ...[...this.keys.keys()].filter((k) => k !== this.activeKeyId)];
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const keyId = this.activeKeyId;
    const key = this.keys.get(keyId);
    if (!key) throw new PayloadKeyUnknownError(keyId);
    return payloads.map((payload) => {
      const plaintext = temporal.api.common.v1.Payload.encode(payload).finish();
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv(CIPHER, key, iv, { authTagLength: TAG_BYTES });
      cipher.setAAD(aadFor(keyId));
      const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      return {
        metadata: {
          [METADATA_ENCODING_KEY]: Buffer.from(ENCODING_ENCRYPTED, 'utf8'),
          [METADATA_KEY_ID_KEY]: Buffer.from(keyId, 'utf8'),
        },
        data: Buffer.concat([iv, body, cipher.getAuthTag()]),
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      // Payloads written before encryption was switched on (or by another codec) pass through untouched.
      if (metadataString(payload, METADATA_ENCODING_KEY) !== ENCODING_ENCRYPTED) return payload;
      const keyId = metadataString(payload, METADATA_KEY_ID_KEY);
      if (keyId === undefined) throw new PayloadDecryptError(`metadata "${METADATA_KEY_ID_KEY}" is missing`);
      const key = this.keys.get(keyId);
      if (!key) throw new PayloadKeyUnknownError(keyId);
      const data = payload.data ? Buffer.from(payload.data) : Buffer.alloc(0);
      if (data.length < IV_BYTES + TAG_BYTES) throw new PayloadDecryptError('ciphertext is too short');
      const iv = data.subarray(0, IV_BYTES);
      const tag = data.subarray(data.length - TAG_BYTES);
      const body = data.subarray(IV_BYTES, data.length - TAG_BYTES);
      let plaintext: Buffer;
      try {
        const decipher = createDecipheriv(CIPHER, key, iv, { authTagLength: TAG_BYTES });
        decipher.setAAD(aadFor(keyId));
        decipher.setAuthTag(tag);
        plaintext = Buffer.concat([decipher.update(body), decipher.final()]);
      } catch {
        // node's message ("Unsupported state or unable to authenticate data") adds nothing; name the key id instead.
        throw new PayloadDecryptError(`authentication failed with key id "${keyId}" (tampered or wrong key)`);
      }
      return temporal.api.common.v1.Payload.decode(plaintext);
    });
  }
}

/** Builds the codec from a PAYLOAD_KEYS string; the active key defaults to the first entry. */
export function createPayloadCodec(keysSpec: string, activeKeyId?: string): AesGcmPayloadCodec {
  return new AesGcmPayloadCodec(parseKeySpec(keysSpec), activeKeyId);
}

/** Builds the codec from the parsed config; fails fast when no keys are configured. */
export function payloadCodecFromConfig(config: {
  readonly payloadKeys: string | undefined;
  readonly payloadActiveKeyId: string | undefined;
}): AesGcmPayloadCodec {
  if (config.payloadKeys === undefined) {
    throw new ConfigError(
      'invalid configuration:\n  PAYLOAD_KEYS: required (or PAYLOAD_KEYS_FILE), expected "keyId:base64Key"',
    );
  }
  return createPayloadCodec(config.payloadKeys, config.payloadActiveKeyId);
}

export interface DataConverterOptions {
  /**
   * Also encrypt failure messages and stack traces (default true): an error message can quote a FileMaker record,
   * and by default Temporal stores failure text in clear. Failure `type` (our error code) stays readable.
   */
  encodeFailureAttributes?: boolean;
}

/**
 * The DataConverter for `Worker.create`, `Client` and `Connection`-based clients. The failure converter is given by
 * path because the worker bundles it into the workflow sandbox.
 */
export function dataConverterFor(codec: PayloadCodec, opts: DataConverterOptions = {}): DataConverter {
  return {
    payloadCodecs: [codec],
    ...(opts.encodeFailureAttributes === false ? {} : { failureConverterPath: require.resolve('./failure-converter') }),
  };
}
