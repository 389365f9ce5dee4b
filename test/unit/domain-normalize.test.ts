import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEXT_LIMITS,
  addDays,
  cleanText,
  isInvalidTime,
  parseBoolean,
  parseDate,
  parseFmTimestamp,
  parseTime,
  sanitizeRaw,
  slugify,
  zonedDateTime,
  zoneOffsetMs,
} from '../../src/domain/normalize';

const SYD = 'Australia/Sydney';

describe('cleanText', () => {
  test('removes NUL and C0 control characters but keeps tab, newline and carriage return', () => {
    assert.deepEqual(cleanText('a\u0000b\u0001c\u0007d\u000be\u001bf\u001fg\u007fh\ti\nj\rk'), {
      value: 'abcdefgh\ti\nj\rk',
      truncated: false,
      sanitized: true,
    });
  });

  test('replaces lone surrogates with U+FFFD and keeps valid pairs', () => {
    assert.deepEqual(cleanText('x\ud800y\udc00z😊'), { value: 'x\ufffdy\ufffdz😊', truncated: false, sanitized: true });
    assert.equal(cleanText('end\ud83d').value, 'end\ufffd');
  });

  test('normalises to NFC and trims', () => {
    const decomposed = 'Rene\u0301e';
    assert.equal(cleanText(`  ${decomposed}\n`).value, 'Ren\u00e9e');
    assert.equal(cleanText('  \u00a0 ').value, '');
  });

  test('clean text reports not sanitised', () => {
    assert.deepEqual(cleanText("O'Brien"), { value: "O'Brien", truncated: false, sanitized: false });
  });

  test('turns numbers into text and null or undefined into empty', () => {
    assert.equal(cleanText(1234567890).value, '1234567890');
    assert.equal(cleanText(0).value, '0');
    assert.equal(cleanText(null).value, '');
    assert.equal(cleanText(undefined).value, '');
  });

  test('truncates by code points without splitting a surrogate pair and flags it', () => {
    assert.deepEqual(cleanText('abcdef', { maxLength: 4 }), { value: 'abcd', truncated: true, sanitized: false });
    assert.deepEqual(cleanText('😊😊😊', { maxLength: 2 }), { value: '😊😊', truncated: true, sanitized: false });
    // Three emoji are six UTF-16 units but only three characters: no cut at a limit of 3.
    assert.deepEqual(cleanText('😊😊😊', { maxLength: 3 }), { value: '😊😊😊', truncated: false, sanitized: false });
  });

  test('keeps a 150 KB note whole under the long limit', () => {
    const note = 'x'.repeat(150_000);
    const r = cleanText(note, { maxLength: TEXT_LIMITS.long });
    assert.equal(r.value.length, 150_000);
    assert.equal(r.truncated, false);
  });

  test('leaves hostile strings as text', () => {
    assert.equal(cleanText("Robert'); DROP TABLE patients;--").value, "Robert'); DROP TABLE patients;--");
    assert.equal(cleanText('${process.env.SECRET}').value, '${process.env.SECRET}');
  });
});

describe('sanitizeRaw', () => {
  test('removes only NUL and lone surrogates, keeps other characters and whitespace', () => {
    assert.deepEqual(sanitizeRaw(' a\u0000\u0007\ud800 ', 100), { value: ' a\u0007\ufffd ', truncated: false });
    assert.deepEqual(sanitizeRaw(42, 100), { value: 42, truncated: false });
    assert.deepEqual(sanitizeRaw('abcdef', 3), { value: 'abc', truncated: true });
  });
});

describe('parseDate', () => {
  test('reads ISO dates first', () => {
    assert.deepEqual(parseDate('2020-06-05'), { value: '2020-06-05', format: 'iso' });
    assert.deepEqual(parseDate('2020/6/5'), { value: '2020-06-05', format: 'iso' });
    assert.deepEqual(parseDate('2020-06-05T10:00:00Z'), { value: '2020-06-05', format: 'iso' });
  });

  test('reads US MM/DD/YYYY as FileMaker default', () => {
    assert.deepEqual(parseDate('06/20/2024'), { value: '2024-06-20', format: 'us' });
    assert.deepEqual(parseDate('6/20/2024'), { value: '2024-06-20', format: 'us' });
    assert.deepEqual(parseDate('12-31-1999'), { value: '1999-12-31', format: 'us' });
  });

  test('reads day-first when the first number is over 12', () => {
    assert.deepEqual(parseDate('20/06/2024'), { value: '2024-06-20', format: 'day-first' });
    assert.deepEqual(parseDate('31.12.1999'), { value: '1999-12-31', format: 'day-first' });
  });

  test('flags an ambiguous date and takes the US reading', () => {
    assert.deepEqual(parseDate('05/06/2020'), { value: '2020-05-06', issue: 'ambiguous', format: 'us' });
  });

  test('takes the day-first reading of an ambiguous date when asked, still flagged', () => {
    assert.deepEqual(parseDate('05/06/2020', { preferDayFirst: true }), {
      value: '2020-06-05',
      issue: 'ambiguous',
      format: 'day-first',
    });
  });

  test('a date whose two readings are the same is not ambiguous', () => {
    assert.deepEqual(parseDate('05/05/2020'), { value: '2020-05-05', format: 'us' });
  });

  test('reports impossible dates as null', () => {
    assert.deepEqual(parseDate('02/30/2019'), { value: null, issue: 'impossible' });
    assert.deepEqual(parseDate('13/13/2020'), { value: null, issue: 'impossible' });
    assert.deepEqual(parseDate('2019-02-29'), { value: null, issue: 'impossible' });
    assert.deepEqual(parseDate('00/10/2020'), { value: null, issue: 'impossible' });
    assert.deepEqual(parseDate('01/01/0219'), { value: null, issue: 'impossible' });
  });

  test('accepts 29 February in a leap year', () => {
    assert.deepEqual(parseDate('02/29/2020'), { value: '2020-02-29', format: 'us' });
  });

  test('reports unparseable values as null', () => {
    for (const raw of ['yesterday', '5/6/20', '2020', '06/20/2024 garbage', '?']) {
      assert.deepEqual(parseDate(raw), { value: null, issue: 'unparseable' }, raw);
    }
    assert.deepEqual(parseDate(20200605), { value: null, issue: 'unparseable' });
  });

  test('empty is null without an issue', () => {
    assert.deepEqual(parseDate(''), { value: null });
    assert.deepEqual(parseDate('   '), { value: null });
    assert.deepEqual(parseDate(null), { value: null });
  });

  test('ignores a time after the date', () => {
    assert.deepEqual(parseDate('06/20/2024 09:30:00'), { value: '2024-06-20', format: 'us' });
    assert.deepEqual(parseDate('06/20/2024 9:30 PM'), { value: '2024-06-20', format: 'us' });
  });

  test('survives NUL characters inside the value', () => {
    assert.deepEqual(parseDate('06/20/\u00002024'), { value: '2024-06-20', format: 'us' });
  });
});

describe('parseTime', () => {
  test('reads 24-hour times with and without seconds', () => {
    assert.equal(parseTime('09:30:00'), 570);
    assert.equal(parseTime('09:30'), 570);
    assert.equal(parseTime('9:05'), 545);
    assert.equal(parseTime('00:00:00'), 0);
    assert.equal(parseTime('23:59:59'), 23 * 60 + 59 + 59 / 60);
  });

  test('keeps seconds as a fraction of a minute', () => {
    assert.equal(parseTime('09:30:30'), 570.5);
  });

  test('reads 12-hour times with AM/PM', () => {
    assert.equal(parseTime('9:30 AM'), 570);
    assert.equal(parseTime('9:30pm'), 1290);
    assert.equal(parseTime('12:00 AM'), 0);
    assert.equal(parseTime('12:15 PM'), 735);
    assert.equal(parseTime('12:15 p.m.'), 735);
  });

  test('24:00:00 is the end of the day', () => {
    assert.equal(parseTime('24:00:00'), 1440);
    assert.equal(parseTime('24:00'), 1440);
  });

  test('1 day, 09:30:00 carries a day', () => {
    assert.equal(parseTime('1 day, 09:30:00'), 1440 + 570);
    assert.equal(parseTime('2 days, 00:15:00'), 2 * 1440 + 15);
  });

  test('rejects what is not a time', () => {
    for (const raw of ['24:30', '25:00:00', '9:60', '13:00 PM', '0:30 AM', 'noon', '930']) {
      assert.equal(parseTime(raw), null, raw);
    }
    assert.equal(parseTime(570), null);
  });

  test('empty is null and not invalid', () => {
    assert.equal(parseTime(''), null);
    assert.equal(isInvalidTime(''), false);
    assert.equal(isInvalidTime('noon'), true);
    assert.equal(isInvalidTime('09:30'), false);
  });
});

describe('zoneOffsetMs', () => {
  /** The offset as Intl gives it for that one instant. */
  const intlOffset = (at: number, timeZone: string) => {
    const p = Object.fromEntries(
      new Intl.DateTimeFormat('en-US', {
        timeZone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      })
        .formatToParts(at)
        .map((x) => [x.type, Number(x.value)]),
    );
    return Date.UTC(p.year!, p.month! - 1, p.day, p.hour, p.minute, p.second) - at;
  };

  test('every second around a transition, also one that falls within a UTC hour, has the offset of its instant', () => {
    const windows: [string, string][] = [
      // Sydney: 02:00 AEST = 16:00Z; St John's (-03:30) changes at 02:00 local, half past a UTC hour; Lord Howe's
      // daylight time is half an hour.
      [SYD, '2024-10-05T15:00:00Z'],
      [SYD, '2024-04-06T15:00:00Z'],
      ['America/St_Johns', '2024-03-10T04:00:00Z'],
      ['America/St_Johns', '2024-11-03T03:00:00Z'],
      ['Australia/Lord_Howe', '2024-10-05T15:00:00Z'],
    ];
    for (const [zone, from] of windows) {
      const start = Date.parse(from);
      let changes = 0;
      for (let at = start; at < start + 3 * 3_600_000; at += 1000) {
        const want = intlOffset(at, zone);
        assert.equal(zoneOffsetMs(at + 999, zone), want, `${zone} at ${new Date(at).toISOString()}`);
        if (at > start && want !== intlOffset(at - 1000, zone)) changes++;
      }
      assert.equal(changes, 1, `${zone}: the window holds the transition`);
    }
  });
});

describe('zonedDateTime in Australia/Sydney', () => {
  test('winter wall time is UTC+10', () => {
    assert.equal(zonedDateTime('2024-06-20', 570, SYD), '2024-06-19T23:30:00.000Z');
  });

  test('summer wall time is UTC+11', () => {
    assert.equal(zonedDateTime('2024-01-15', 570, SYD), '2024-01-14T22:30:00.000Z');
  });

  test('just before the October change is still standard time', () => {
    assert.equal(zonedDateTime('2024-10-06', 119, SYD), '2024-10-05T15:59:00.000Z');
  });

  test('a wall time in the October gap moves forward by the gap', () => {
    // 02:30 does not exist on 6 Oct 2024; it becomes 03:30 AEDT = 16:30Z.
    assert.equal(zonedDateTime('2024-10-06', 150, SYD), '2024-10-05T16:30:00.000Z');
  });

  test('03:00 after the October change is daylight time', () => {
    assert.equal(zonedDateTime('2024-10-06', 180, SYD), '2024-10-05T16:00:00.000Z');
  });

  test('a wall time repeated in April takes the earlier instant', () => {
    // 02:30 happens twice on 7 Apr 2024: first at +11:00 (15:30Z), then at +10:00 (16:30Z).
    assert.equal(zonedDateTime('2024-04-07', 150, SYD), '2024-04-06T15:30:00.000Z');
  });

  test('after the April change is standard time', () => {
    assert.equal(zonedDateTime('2024-04-07', 180, SYD), '2024-04-06T17:00:00.000Z');
    assert.equal(zonedDateTime('2024-04-07', 119, SYD), '2024-04-06T14:59:00.000Z');
  });

  test('24:00 is midnight starting the next day', () => {
    assert.equal(zonedDateTime('2024-06-20', 1440, SYD), '2024-06-20T14:00:00.000Z');
    assert.equal(zonedDateTime('2024-12-31', 1440, SYD), '2024-12-31T13:00:00.000Z');
  });

  test('a carried day lands on the next day, across a month end', () => {
    assert.equal(zonedDateTime('2024-06-30', 1440 + 570, SYD), '2024-06-30T23:30:00.000Z');
  });

  test('works for UTC and rejects a malformed date', () => {
    assert.equal(zonedDateTime('2024-06-20', 570, 'UTC'), '2024-06-20T09:30:00.000Z');
    assert.throws(() => zonedDateTime('20/06/2024', 0, SYD), RangeError);
  });
});

describe('parseFmTimestamp', () => {
  test('reads the FileMaker default MM/dd/yyyy HH:mm:ss in the clinic zone', () => {
    assert.deepEqual(parseFmTimestamp('06/20/2024 09:30:00', { timeZone: SYD }), { value: '2024-06-19T23:30:00.000Z' });
  });

  test('a date alone is midnight', () => {
    assert.deepEqual(parseFmTimestamp('06/20/2024', { timeZone: SYD }), { value: '2024-06-19T14:00:00.000Z' });
  });

  test('an ISO timestamp with an offset is an exact instant', () => {
    assert.deepEqual(parseFmTimestamp('2024-06-20T09:30:00+10:00', { timeZone: 'UTC' }), {
      value: '2024-06-19T23:30:00.000Z',
    });
    assert.deepEqual(parseFmTimestamp('2024-06-20T09:30:00Z', { timeZone: SYD }), {
      value: '2024-06-20T09:30:00.000Z',
    });
  });

  test('an ISO timestamp without an offset is wall time in the zone', () => {
    assert.deepEqual(parseFmTimestamp('2024-06-20T09:30:00', { timeZone: SYD }), { value: '2024-06-19T23:30:00.000Z' });
  });

  test('keeps the ambiguity flag of its date', () => {
    assert.deepEqual(parseFmTimestamp('05/06/2020 10:00:00', { timeZone: SYD }), {
      value: '2020-05-06T00:00:00.000Z',
      issue: 'ambiguous',
    });
  });

  test('an impossible date or an unreadable time gives null with the issue', () => {
    assert.deepEqual(parseFmTimestamp('02/30/2019 10:00:00', { timeZone: SYD }), { value: null, issue: 'impossible' });
    assert.deepEqual(parseFmTimestamp('06/20/2024 25:61', { timeZone: SYD }), { value: null, issue: 'unparseable' });
    assert.deepEqual(parseFmTimestamp('', { timeZone: SYD }), { value: null });
  });
});

describe('slugify', () => {
  test('makes lower-case dash slugs', () => {
    assert.equal(slugify('NDIS Report'), 'ndis-report');
    assert.equal(slugify('purchase-order'), 'purchase-order');
    assert.equal(slugify('  File   Notes!! '), 'file-notes');
    assert.equal(slugify('Référral'), 'referral');
  });

  test('falls back to other for empty or symbol-only types', () => {
    assert.equal(slugify(''), 'other');
    assert.equal(slugify('!!!'), 'other');
    assert.equal(slugify('王芳'), 'other');
  });

  test('caps slugs at 64 characters without a trailing dash', () => {
    const s = slugify(`${'a'.repeat(63)} b`);
    assert.equal(s, 'a'.repeat(63));
  });
});

describe('parseBoolean and addDays', () => {
  test('reads FileMaker flags', () => {
    assert.deepEqual(parseBoolean(1), { value: true, invalid: false });
    assert.deepEqual(parseBoolean(0), { value: false, invalid: false });
    assert.deepEqual(parseBoolean('Yes'), { value: true, invalid: false });
    assert.deepEqual(parseBoolean(''), { value: false, invalid: false });
    assert.deepEqual(parseBoolean('maybe'), { value: false, invalid: true });
  });

  test('adds days across month and year ends', () => {
    assert.equal(addDays('2024-02-28', 1), '2024-02-29');
    assert.equal(addDays('2024-12-31', 1), '2025-01-01');
  });
});
