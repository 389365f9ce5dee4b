import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FileMakerError } from '../../src/errors';
import { createTokenCache, jwtExpiry, tokenFromCommand } from '../../src/filemaker/claris-id';
import { FM_ERRORS } from '../../src/filemaker/responses';

/** A JWT-shaped token (unsigned) expiring at `exp` seconds since the epoch. */
const jwt = (exp: number, sub = 'clinic') =>
  ['{"alg":"RS256"}', JSON.stringify({ sub, exp })].map((p) => Buffer.from(p).toString('base64url')).join('.') + '.sig';

test('the expiry of a Claris ID token is read from its JWT exp; anything else has none', () => {
  assert.equal(jwtExpiry(jwt(1_800_000_000)), 1_800_000_000_000);
  assert.equal(jwtExpiry('opaque-token'), undefined);
  assert.equal(jwtExpiry('a.b.c'), undefined);
  assert.equal(jwtExpiry(`x.${Buffer.from('{"exp":"soon"}').toString('base64url')}.y`), undefined);
});

test('a token is fetched once, shared, and fetched again five minutes before its exp', async () => {
  let now = 1_000_000_000_000;
  const issued: string[] = [];
  const cache = createTokenCache(
    async () => {
      const t = jwt(now / 1000 + 3600, `t${issued.length}`);
      issued.push(t);
      return t;
    },
    { now: () => now },
  );
  const [a, b] = await Promise.all([cache.token(), cache.token()]);
  assert.equal(a, b);
  assert.equal(issued.length, 1, 'concurrent callers share one fetch');
  now += 54 * 60_000;
  assert.equal(await cache.token(), a, 'six minutes left: kept');
  now += 2 * 60_000;
  const c = await cache.token();
  assert.notEqual(c, a, 'four minutes left: replaced');
  assert.equal(issued.length, 2);
});

test('a refused token is replaced once; a refusal of an older token keeps the fresher one', async () => {
  let n = 0;
  const cache = createTokenCache(async () => `opaque-${++n}`);
  const first = await cache.token();
  const second = await cache.refresh(first);
  assert.equal(second, 'opaque-2');
  assert.equal(await cache.refresh(first), 'opaque-2', 'a late 401 for the old token fetches nothing');
  assert.equal(n, 2);
});

test('a token without exp lives the default hour', async () => {
  let now = 0;
  let n = 0;
  const cache = createTokenCache(async () => `opaque-${++n}`, { now: () => now });
  await cache.token();
  now = 54 * 60_000;
  assert.equal(await cache.token(), 'opaque-1');
  now = 56 * 60_000;
  assert.equal(await cache.token(), 'opaque-2');
});

test('the token command prints the token; a failure names its exit code, never its output', async () => {
  assert.equal(await tokenFromCommand("printf 'FMID abc.def.ghi\\n'")(), 'abc.def.ghi');
  assert.equal(await tokenFromCommand('echo plain-token')(), 'plain-token');
  await assert.rejects(tokenFromCommand('echo secret-token-value; exit 3')(), (err: unknown) => {
    assert.ok(err instanceof FileMakerError);
    assert.equal(err.code, FM_ERRORS.AUTH_FAILED);
    assert.match(err.message, /exit 3/);
    assert.doesNotMatch(err.message, /secret-token-value/);
    return true;
  });
  await assert.rejects(tokenFromCommand("printf 'two words'")(), /no single token/);
});

test('a token that lives less than twice the margin is kept for half of its life, not fetched on every call', async () => {
  let now = 1_000_000_000_000;
  let n = 0;
  const cache = createTokenCache(async () => jwt(now / 1000 + 20, `t${++n}`), { now: () => now });
  const first = await cache.token();
  now += 9_000;
  assert.equal(await cache.token(), first, '11 of 20 seconds left: kept');
  now += 2_000;
  assert.notEqual(await cache.token(), first, '9 of 20 seconds left: replaced');
  assert.equal(n, 2);
});
