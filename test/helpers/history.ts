/** Reading a Temporal history the way a leak check must: every payload, and every string and byte field as text. */
import type { Payload } from '@temporalio/common';

/** Every Payload in a history (inputs, results, failures' encoded attributes, memos, headers, search attributes). */
export function payloadsIn(value: unknown, path = '', out: { path: string; payload: Payload }[] = []) {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return out;
  const v = value as Record<string, unknown>;
  const meta = v.metadata;
  if (
    meta &&
    typeof meta === 'object' &&
    'encoding' in meta &&
    Object.values(meta).every((x) => x instanceof Uint8Array)
  ) {
    out.push({ path, payload: v });
    return out;
  }
  for (const [k, x] of Object.entries(v)) payloadsIn(x, `${path}.${k}`, out);
  return out;
}

/**
 * Every string and every byte field (read as UTF-8) of a history, walked by hand: JSON.stringify would call the
 * protobuf messages' toJSON, which turns bytes into base64 and hides the very plaintext this looks for.
 */
export function historyText(value: unknown, out: string[] = []): string {
  if (typeof value === 'string') out.push(value);
  else if (value instanceof Uint8Array) out.push(Buffer.from(value).toString('utf8'));
  else if (value !== null && typeof value === 'object') for (const x of Object.values(value)) historyText(x, out);
  return out.join('\n');
}
