/**
 * Sets `key` on a plain object built from source data. An assignment to `__proto__` would set the object's prototype
 * (and the field would vanish from its JSON), so that one key is defined as an own property; every other key is
 * assigned, which keeps the object in V8's fast mode.
 */
export function setOwnKey(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__')
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}
