import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createMapContext } from '../../src/domain/context';
import { targetId } from '../../src/domain/ids';
import { mapAppointment } from '../../src/domain/mappers/appointments';
import { documentContainerUrl, documentPatientRefs, mapDocument } from '../../src/domain/mappers/documents';
import {
  imageBatchName,
  imageCandidates,
  imageCategory,
  imagePatientRefs,
  mapImage,
} from '../../src/domain/mappers/images';
import { mapNote, mapSms } from '../../src/domain/mappers/notes';
import { foldContactDetails, mapClinic, mapContactDetail, mapPatient } from '../../src/domain/mappers/patients';
import { mapCompany, mapPatientReferrer, mapReferrer, mapReferrerCompany } from '../../src/domain/mappers/referrers';
import { REASON_CODES, REASON_CODE_LIST } from '../../src/domain/reasons';
import { CONTAINER_MARKER } from '../../src/domain/record';
import { SOURCE_TABLES, type SourceTableName } from '../../src/domain/tables';
import { type FmRecord, type MapOutcome } from '../../src/domain/types';

const CLINIC = 'AAAAAAAA-0000-4000-8000-000000000001';
const CLINIC2 = 'AAAAAAAA-0000-4000-8000-000000000002';
const PATIENT = 'BBBBBBBB-0000-4000-8000-000000000001';
const PATIENT_NO_CLINIC = 'BBBBBBBB-0000-4000-8000-000000000002';
const REFERRER = 'CCCCCCCC-0000-4000-8000-000000000001';
const COMPANY = 'DDDDDDDD-0000-4000-8000-000000000001';
const UNKNOWN = 'EEEEEEEE-0000-4000-8000-000000000001';
const REC = 'FFFFFFFF-0000-4000-8000-000000000001';
const rec_id = REC.toLowerCase();

const lc = (s: string) => s.toLowerCase();
const P_ID = targetId('patients', lc(PATIENT));
const C_ID = targetId('clinics', lc(CLINIC));
const C2_ID = targetId('clinics', lc(CLINIC2));

function record(table: SourceTableName, fields: Record<string, string | number>, id: string = REC): FmRecord {
  const fieldData: Record<string, string | number> = {};
  for (const f of SOURCE_TABLES[table].requiredFields) fieldData[f] = '';
  fieldData.creationTimestamp = '';
  fieldData.modificationTimestamp = '';
  return { recordId: '7', modId: '3', fieldData: { ...fieldData, id, ...fields } };
}

function detail(id: string, owner: string, fields: Record<string, string>): FmRecord {
  return record('API_Contact_Details', { 'id.key': owner, ...fields }, id);
}

const details = [
  detail('0000000B-0000-4000-8000-000000000000', PATIENT, { type: 'Email', Name: 'Home', ph: 'jo@example.com' }),
  detail('0000000A-0000-4000-8000-000000000000', lc(PATIENT), { type: 'Mobile', Name: 'Mobile', ph: '0412 345 678' }),
  detail('0000000C-0000-4000-8000-000000000000', ` ${PATIENT} `, {
    type: 'Address',
    Name: 'Home',
    'address 1': '1 George St',
    suburb: 'Parramatta',
    state: 'NSW',
    'post code': '2150',
    country: 'Australia',
  }),
];

const ctx = createMapContext({
  timeZone: 'Australia/Sydney',
  clinics: [
    { id: CLINIC, name: 'Parramatta' },
    { id: CLINIC2, name: 'Bondi Junction' },
  ],
  patients: [
    [PATIENT, CLINIC],
    [PATIENT_NO_CLINIC, null],
  ],
  referrers: [REFERRER],
  companies: [COMPANY],
  contactDetails: details,
});

function row<R>(o: MapOutcome<R>): Extract<MapOutcome<R>, { kind: 'row' }> {
  if (o.kind !== 'row') assert.fail(`expected a row, got ${JSON.stringify(o)}`);
  return o;
}
const codes = (o: { findings: readonly { code: string; field?: string }[] }) =>
  o.findings.map((f) => `${f.code}:${f.field ?? ''}`);

describe('reason codes', () => {
  test('are upper snake case and each has a one-line doc', () => {
    for (const code of REASON_CODE_LIST) {
      assert.match(code, /^[A-Z][A-Z0-9_]*$/);
      assert.ok(REASON_CODES[code].length > 10 && !REASON_CODES[code].includes('\n'), code);
    }
  });
});

describe('record validation (every mapper)', () => {
  test('a record without id is an error MISSING_ID', () => {
    const o = mapNote(record('API_Notes', { Note: 'x' }, '  '), ctx);
    assert.deepEqual(o, { kind: 'error', reason: 'MISSING_ID', message: 'API_Notes recordId 7 has no id' });
  });

  test('a field of the wrong type is an error INVALID_RECORD naming the field, not the value', () => {
    const bad = { recordId: '7', modId: '1', fieldData: { id: REC, Note: { secret: 'Jane Citizen' } } };
    const o = mapNote(bad as unknown as FmRecord, ctx);
    assert.equal(o.kind, 'error');
    assert.equal(o.kind === 'error' && o.reason, 'INVALID_RECORD');
    assert.equal(o.kind === 'error' && o.message, 'API_Notes record has invalid fieldData.Note');
    assert.ok(!JSON.stringify(o).includes('Jane'));
  });

  test('a record of another shape is INVALID_RECORD naming where, whatever part is wrong', () => {
    const ok = { recordId: '7', modId: '1', fieldData: { id: REC, Note: 'x' } };
    const cases: [unknown, string][] = [
      [{ ...ok, recordId: { n: 1 } }, 'recordId'],
      [{ ...ok, modId: [1] }, 'modId'],
      [{ ...ok, fieldData: [REC] }, 'fieldData'],
      [{ ...ok, portalData: { Portal: { row: 1 } } }, 'portalData.Portal'],
      [{ ...ok, portalData: [] }, 'portalData'],
    ];
    for (const [bad, where] of cases) {
      const o = mapNote(bad as FmRecord, ctx);
      assert.equal(o.kind === 'error' && o.message, `API_Notes record has invalid ${where}`, where);
    }
    // The same record with portal rows, as parsed JSON gives it, maps.
    const parsed = JSON.parse(JSON.stringify({ ...ok, portalData: { Portal: [{ a: 1 }] } })) as FmRecord;
    assert.equal(mapNote(record('API_Notes', { Note: 'x' }), ctx).kind, 'row');
    assert.equal(mapNote({ ...record('API_Notes', { Note: 'x' }), portalData: parsed.portalData }, ctx).kind, 'row');
  });

  test('a non-object is INVALID_RECORD', () => {
    assert.equal(mapPatient(null as unknown as FmRecord, ctx).kind, 'error');
    assert.equal((mapPatient('x' as unknown as FmRecord, ctx) as { reason: string }).reason, 'INVALID_RECORD');
  });

  test('a missing field is an error MISSING_FIELD rather than silently empty', () => {
    const r = record('API_Messages', { MessageBody: 'hi' });
    const { MessageBody: _drop, ...rest } = r.fieldData;
    const o = mapSms({ ...r, fieldData: rest }, ctx);
    assert.deepEqual(o, {
      kind: 'error',
      reason: 'MISSING_FIELD',
      message: `API_Messages ${rec_id} lacks field(s) MessageBody`,
    });
  });

  test('OData nulls are read as empty', () => {
    const r = record('API_Company', { Name: 'Acme' });
    const o = row(mapCompany({ ...r, fieldData: { ...r.fieldData, ABN: null } } as unknown as FmRecord, ctx));
    assert.equal(o.row.abn, null);
  });

  test('filemaker_metadata keeps raw values, sanitises NUL and lone surrogates, and marks containers', () => {
    const o = mapDocument(
      record('API_Docs', {
        id_Contact: PATIENT,
        Type: 'letter',
        Doc: 'https://fm/x.pdf?t=1',
        num: 3,
        Date: ' a\u0000\ud800 ',
      }),
      ctx,
    );
    const r = row(o);
    assert.equal(r.row.filemaker_metadata.Doc, CONTAINER_MARKER);
    assert.equal(r.row.filemaker_metadata.num, 3);
    assert.equal(r.row.filemaker_metadata.Date, ' a\ufffd ');
    assert.equal(r.row.filemaker_metadata.id_Contact, PATIENT);
  });

  test('a non-UUID id is kept lower-case and flagged', () => {
    const o = row(mapClinic(record('API_Clinic_Name', { Name: 'X' }, ' LEGACY-7 '), ctx));
    assert.equal(o.row.filemaker_id, 'legacy-7');
    assert.equal(o.row.id, targetId('clinics', 'legacy-7'));
    assert.deepEqual(codes(o), ['NON_UUID_ID:id']);
  });
});

describe('patients phase', () => {
  test('maps a clinic with its SMS toggle', () => {
    const o = row(mapClinic(record('API_Clinic_Name', { Name: ' Parramatta ', 'SMS Toggle': 1 }, CLINIC), ctx));
    assert.deepEqual(
      { ...o.row, filemaker_metadata: undefined },
      {
        id: C_ID,
        filemaker_id: lc(CLINIC),
        filemaker_metadata: undefined,
        name: 'Parramatta',
        sms_enabled: true,
      },
    );
    assert.equal(o.state, 'imported');
  });

  test('maps a patient with normalised values and folded contact details', () => {
    const o = row(
      mapPatient(
        record(
          'API_Contacts',
          {
            nameFirst: ' Zoe\u0308 ',
            nameLast: "O'Brien\u0000",
            nameMiddle: '',
            title: 'Ms',
            DOB: '05/06/1980',
            gender: 'Female',
            id_Clinic: ` ${lc(CLINIC)} `,
            Funding: 'NDIS',
            'Health Number': 1234567890,
            NDIS_PlanStart: '2024-07-01',
            NDIS_PlanEnd: '30/06/2025',
            NDIS_CoordinatorName: 'Sam Lee',
            NDIS_CoordinatorEmail: 'sam@example.com',
          },
          PATIENT,
        ),
        ctx,
      ),
    );
    const { filemaker_metadata: _m, ...rest } = o.row;
    assert.deepEqual(rest, {
      id: P_ID,
      filemaker_id: lc(PATIENT),
      first_name: 'Zoë',
      last_name: "O'Brien",
      middle_name: null,
      title: 'Ms',
      dob: '1980-05-06',
      sex: 'F',
      health_number: '1234567890',
      funding: 'NDIS',
      clinic_id: C_ID,
      ndis_plan_start: '2024-07-01',
      ndis_plan_end: '2025-06-30',
      ndis_coordinator_name: 'Sam Lee',
      ndis_coordinator_email: 'sam@example.com',
      contact_json: {
        phones: [{ label: 'Mobile', number: '0412 345 678', kind: 'mobile' }],
        emails: [{ label: 'Home', address: 'jo@example.com' }],
      },
      address_json: [
        {
          label: 'Home',
          line1: '1 George St',
          line2: '',
          suburb: 'Parramatta',
          state: 'NSW',
          postcode: '2150',
          country: 'Australia',
        },
      ],
    });
    assert.equal(o.state, 'imported');
    assert.deepEqual(codes(o), ['TEXT_SANITIZED:nameLast', 'DATE_AMBIGUOUS:DOB']);
  });

  test('maps genders to M/F/O/U and flags unknown ones', () => {
    const sexOf = (gender: string) => row(mapPatient(record('API_Contacts', { gender, id_Clinic: CLINIC }), ctx));
    assert.equal(sexOf('M').row.sex, 'M');
    assert.equal(sexOf('male').row.sex, 'M');
    assert.equal(sexOf('Other').row.sex, 'O');
    assert.equal(sexOf('Unknown').row.sex, 'U');
    assert.equal(sexOf('').row.sex, 'U');
    const odd = sexOf('zzz');
    assert.equal(odd.row.sex, 'U');
    assert.deepEqual(codes(odd), ['UNKNOWN_GENDER:gender']);
  });

  test('an unknown clinic id leaves the patient unlinked CLINIC_NOT_FOUND', () => {
    const o = row(mapPatient(record('API_Contacts', { id_Clinic: UNKNOWN }), ctx));
    assert.equal(o.row.clinic_id, null);
    assert.equal(o.state, 'unlinked');
    assert.equal(o.reason, 'CLINIC_NOT_FOUND');
  });

  test('an empty clinic id falls back to the clinic name, else NO_CLINIC', () => {
    const byName = row(mapPatient(record('API_Contacts', { Clinic_Name: 'bondi junction' }), ctx));
    assert.equal(byName.row.clinic_id, C2_ID);
    assert.equal(byName.state, 'imported');
    const none = row(mapPatient(record('API_Contacts', {}), ctx));
    assert.equal(none.row.clinic_id, null);
    assert.equal(none.state, 'imported');
    assert.deepEqual(codes(none), ['NO_CLINIC:id_Clinic']);
  });

  test('impossible and unparseable dates become null with findings', () => {
    const o = row(
      mapPatient(record('API_Contacts', { id_Clinic: CLINIC, DOB: '02/30/2019', NDIS_PlanEnd: 'soon' }), ctx),
    );
    assert.equal(o.row.dob, null);
    assert.equal(o.row.ndis_plan_end, null);
    assert.deepEqual(codes(o), ['DATE_IMPOSSIBLE:DOB', 'DATE_UNPARSEABLE:NDIS_PlanEnd']);
  });

  test('over-long names are truncated and flagged; metadata keeps them whole', () => {
    const long = 'x'.repeat(5000);
    const o = row(mapPatient(record('API_Contacts', { id_Clinic: CLINIC, nameLast: long }), ctx));
    assert.equal(o.row.last_name?.length, 1000);
    assert.equal(o.row.filemaker_metadata.nameLast, long);
    assert.deepEqual(codes(o), ['TEXT_TRUNCATED:nameLast']);
  });

  test('foldContactDetails orders by FileMaker id and classifies untyped details by value', () => {
    const folded = foldContactDetails([
      detail('00000002-0000-4000-8000-000000000000', PATIENT, { type: '', Name: 'Work', ph: 'w@example.com' }),
      detail('00000001-0000-4000-8000-000000000000', PATIENT, { type: 'Phone', Name: 'Home', ph: '02 9999 0000' }),
      detail('00000003-0000-4000-8000-000000000000', PATIENT, { type: 'Fax', Name: 'Fax', ph: '02 9999 0001' }),
      detail('00000004-0000-4000-8000-000000000000', PATIENT, { type: 'Mobile', Name: 'Old', ph: '' }),
      detail('00000005-0000-4000-8000-000000000000', PATIENT, {
        type: 'Address',
        Name: 'Postal',
        ph: 'PO Box 1, Bondi NSW',
      }),
    ]);
    assert.deepEqual(folded.contact_json, {
      phones: [
        { label: 'Home', number: '02 9999 0000', kind: 'phone' },
        { label: 'Fax', number: '02 9999 0001', kind: 'phone' },
      ],
      emails: [{ label: 'Work', address: 'w@example.com' }],
    });
    assert.deepEqual(folded.address_json, [
      { label: 'Postal', line1: 'PO Box 1, Bondi NSW', line2: '', suburb: '', state: '', postcode: '', country: '' },
    ]);
    assert.deepEqual(
      folded.findings.map((f) => f.code),
      ['UNKNOWN_DETAIL_TYPE', 'UNKNOWN_DETAIL_TYPE'],
    );
  });

  test('foldContactDetails of nothing is empty JSON', () => {
    assert.deepEqual(foldContactDetails([]), {
      contact_json: { phones: [], emails: [] },
      address_json: [],
      findings: [],
    });
  });

  test('a contact detail is imported into its owner, patient, referrer or company', () => {
    const p = row(mapContactDetail(detail(REC, lc(PATIENT), { type: 'Mobile', ph: '0400' }), ctx));
    assert.equal(p.row.owner_table, 'patients');
    assert.equal(p.row.owner_id, P_ID);
    const r = row(mapContactDetail(detail(REC, REFERRER, { type: 'Email', ph: 'dr@example.com' }), ctx));
    assert.equal(r.row.owner_table, 'referrers');
    assert.equal(r.row.owner_id, targetId('referrers', lc(REFERRER)));
    const c = row(mapContactDetail(detail(REC, COMPANY, { type: 'Phone', ph: '02' }), ctx));
    assert.equal(c.row.owner_table, 'companies');
  });

  test('a contact detail without owner, with an unknown owner, or empty is skipped with its rule', () => {
    assert.equal(
      (mapContactDetail(detail(REC, '', { type: 'Mobile', ph: '0400' }), ctx) as { reason: string }).reason,
      'NO_OWNER',
    );
    assert.equal(
      (mapContactDetail(detail(REC, UNKNOWN, { type: 'Mobile', ph: '0400' }), ctx) as { reason: string }).reason,
      'OWNER_NOT_FOUND',
    );
    const empty = mapContactDetail(detail(REC, PATIENT, { type: 'Mobile', ph: '' }), ctx);
    assert.deepEqual(empty, {
      kind: 'skip',
      reason: 'EMPTY_CONTACT_DETAIL',
      message: `API_Contact_Details ${rec_id} has no ph or address fields`,
    });
  });
});

describe('appointments phase', () => {
  const event = (fields: Record<string, string | number>) => record('API_event', { id_Contact: PATIENT, ...fields });

  test('assembles start and end from date and time in Sydney time', () => {
    const o = row(
      mapAppointment(
        event({
          id_Clinic: CLINIC,
          startDate: '06/20/2024',
          startTime: '09:30:00',
          endTime: '10:00:00',
          Status: 'Booked',
          Type: 'Review',
          note: 'bring shoes',
          id_Clinician: ' ABC-1 ',
        }),
        ctx,
      ),
    );
    const { filemaker_metadata: _m, ...rest } = o.row;
    assert.deepEqual(rest, {
      id: targetId('appointments', rec_id),
      filemaker_id: rec_id,
      patient_id: P_ID,
      clinic_id: C_ID,
      clinician_filemaker_id: 'abc-1',
      start_at: '2024-06-19T23:30:00.000Z',
      end_at: '2024-06-20T00:00:00.000Z',
      all_day: false,
      status: 'scheduled',
      type: 'Review',
      notes: 'bring shoes',
    });
    assert.equal(o.state, 'imported');
    assert.deepEqual(codes(o), ['NON_UUID_ID:id_Clinician']);
  });

  test('24:00:00 ends at midnight and 1 day, hh:mm carries into the next day', () => {
    const o = row(
      mapAppointment(
        event({ id_Clinic: CLINIC, startDate: '06/20/2024', startTime: '22:00', endTime: '24:00:00' }),
        ctx,
      ),
    );
    assert.equal(o.row.end_at, '2024-06-20T14:00:00.000Z');
    const carried = row(
      mapAppointment(
        event({ id_Clinic: CLINIC, startDate: '06/20/2024', startTime: '23:00', endTime: '1 day, 01:30:00' }),
        ctx,
      ),
    );
    assert.equal(carried.row.end_at, '2024-06-20T15:30:00.000Z');
    assert.deepEqual(codes(carried), []);
  });

  test('an appointment in the October DST gap moves forward an hour', () => {
    const o = row(
      mapAppointment(event({ id_Clinic: CLINIC, startDate: '10/06/2024', startTime: '02:30', endTime: '03:30' }), ctx),
    );
    assert.equal(o.row.start_at, '2024-10-05T16:30:00.000Z');
    assert.equal(o.row.end_at, '2024-10-05T16:30:00.000Z');
  });

  test('all-day appointments run midnight to midnight after the end date', () => {
    const o = row(
      mapAppointment(event({ id_Clinic: CLINIC, startDate: '2024-06-20', startTime: '09:00', allDay: 1 }), ctx),
    );
    assert.equal(o.row.all_day, true);
    assert.equal(o.row.start_at, '2024-06-19T14:00:00.000Z');
    assert.equal(o.row.end_at, '2024-06-20T14:00:00.000Z');
  });

  test('a start date without a time leaves start_at null and flags it', () => {
    const o = row(mapAppointment(event({ id_Clinic: CLINIC, startDate: '06/20/2024' }), ctx));
    assert.equal(o.row.start_at, null);
    assert.equal(o.row.end_at, null);
    assert.deepEqual(codes(o), ['START_TIME_MISSING:startTime']);
  });

  test('an unreadable time is flagged TIME_INVALID', () => {
    const o = row(mapAppointment(event({ id_Clinic: CLINIC, startDate: '06/20/2024', startTime: 'lunch' }), ctx));
    assert.equal(o.row.start_at, null);
    assert.deepEqual(codes(o), ['TIME_INVALID:startTime']);
  });

  test('an end before the start is kept and flagged', () => {
    const o = row(
      mapAppointment(event({ id_Clinic: CLINIC, startDate: '06/20/2024', startTime: '10:00', endTime: '09:00' }), ctx),
    );
    assert.deepEqual(codes(o), ['END_BEFORE_START:endTime']);
  });

  test('maps every known status and flags an unknown one as scheduled', () => {
    const status = (s: string) => row(mapAppointment(event({ id_Clinic: CLINIC, Status: s }), ctx));
    assert.equal(status('').row.status, 'scheduled');
    assert.equal(status('Booked').row.status, 'scheduled');
    assert.equal(status('Arrived').row.status, 'checked_in');
    assert.equal(status('Completed').row.status, 'completed');
    assert.equal(status('Cancelled').row.status, 'cancelled');
    assert.equal(status('DNA').row.status, 'no_show');
    assert.equal(status('No Show').row.status, 'no_show');
    const odd = status('Rescheduled');
    assert.equal(odd.row.status, 'scheduled');
    assert.deepEqual(codes(odd), ['UNKNOWN_STATUS:Status']);
  });

  test('clinic comes from idCal when id_Clinic is empty', () => {
    const o = row(mapAppointment(event({ idCal: lc(CLINIC2) }), ctx));
    assert.equal(o.row.clinic_id, C2_ID);
  });

  test("clinic falls back to the patient's clinic", () => {
    const o = row(mapAppointment(event({ id_Clinic: UNKNOWN }), ctx));
    assert.equal(o.row.clinic_id, C_ID);
    assert.equal(o.state, 'imported');
    assert.deepEqual(codes(o), ['CLINIC_FROM_PATIENT:id_Clinic']);
  });

  test('an empty patient is unlinked NO_PATIENT and an unknown one PATIENT_NOT_FOUND', () => {
    const none = row(mapAppointment(record('API_event', { id_Clinic: CLINIC }), ctx));
    assert.equal(none.row.patient_id, null);
    assert.equal(none.state, 'unlinked');
    assert.equal(none.reason, 'NO_PATIENT');
    const lost = row(mapAppointment(record('API_event', { id_Contact: UNKNOWN, id_Clinic: CLINIC }), ctx));
    assert.equal(lost.state, 'unlinked');
    assert.equal(lost.reason, 'PATIENT_NOT_FOUND');
  });

  test('an unknown clinic with no patient clinic to fall back on is unlinked CLINIC_NOT_FOUND', () => {
    const o = row(mapAppointment(record('API_event', { id_Contact: PATIENT_NO_CLINIC, id_Clinic: UNKNOWN }), ctx));
    assert.equal(o.row.clinic_id, null);
    assert.equal(o.state, 'unlinked');
    assert.equal(o.reason, 'CLINIC_NOT_FOUND');
  });
});

describe('notes phase', () => {
  test('keeps the ORIGINAL note date from Date', () => {
    const o = row(
      mapNote(
        record('API_Notes', {
          id_Key: PATIENT,
          Note: 'Plantar fascia improved',
          Date: '03/15/2019',
          'Note Type': 'Clinical',
          creationAccountName: 'dr.lee',
          creationTimestamp: '06/20/2024 09:30:00',
        }),
        ctx,
      ),
    );
    const { filemaker_metadata: _m, ...rest } = o.row;
    assert.deepEqual(rest, {
      id: targetId('notes', rec_id),
      filemaker_id: rec_id,
      patient_id: P_ID,
      note_type: 'Clinical',
      content: 'Plantar fascia improved',
      note_date: '2019-03-14T13:00:00.000Z',
      author: 'dr.lee',
    });
    assert.equal(o.state, 'imported');
  });

  test('falls back to creationTimestamp when Date is empty, flagged', () => {
    const o = row(
      mapNote(record('API_Notes', { id_Key: PATIENT, Note: 'x', creationTimestamp: '06/20/2024 09:30:00' }), ctx),
    );
    assert.equal(o.row.note_date, '2024-06-19T23:30:00.000Z');
    assert.deepEqual(codes(o), ['NOTE_DATE_FROM_CREATION:Date']);
  });

  test('no date at all is null and flagged', () => {
    const o = row(mapNote(record('API_Notes', { id_Key: PATIENT, Note: 'x', Date: '02/30/2019' }), ctx));
    assert.equal(o.row.note_date, null);
    assert.deepEqual(codes(o), ['DATE_IMPOSSIBLE:Date', 'NO_NOTE_DATE:Date']);
  });

  test('an empty note is skipped EMPTY_NOTE', () => {
    assert.deepEqual(mapNote(record('API_Notes', { id_Key: PATIENT, Note: ' \u0000 ' }), ctx), {
      kind: 'skip',
      reason: 'EMPTY_NOTE',
      message: `API_Notes ${rec_id} has an empty Note`,
    });
  });

  test('an orphaned note is imported unlinked', () => {
    const o = row(mapNote(record('API_Notes', { id_Key: UNKNOWN, Note: 'x' }), ctx));
    assert.equal(o.row.patient_id, null);
    assert.equal(o.reason, 'PATIENT_NOT_FOUND');
    assert.equal(row(mapNote(record('API_Notes', { Note: 'x' }), ctx)).reason, 'NO_PATIENT');
  });

  test('a note over 100 KB is kept whole', () => {
    const big = `${'é'.repeat(120_000)}😊`;
    const o = row(mapNote(record('API_Notes', { id_Key: PATIENT, Note: big, Date: '2024-01-01' }), ctx));
    assert.equal(o.row.content, big);
    assert.deepEqual(codes(o), []);
  });

  test('maps an SMS from its real field names', () => {
    const o = row(
      mapSms(
        record('API_Messages', {
          _kf_ContactID: lc(PATIENT),
          MessageBody: 'Reminder: appointment tomorrow 9:30',
          RecipientPhoneMobile: '0412 345 678',
          SentTimestamp: '01/15/2024 08:00:00',
          MessageStatus: 'Delivered',
        }),
        ctx,
      ),
    );
    const { filemaker_metadata: _m, ...rest } = o.row;
    assert.deepEqual(rest, {
      id: targetId('sms_messages', rec_id),
      filemaker_id: rec_id,
      patient_id: P_ID,
      phone: '0412 345 678',
      message: 'Reminder: appointment tomorrow 9:30',
      status: 'Delivered',
      sent_at: '2024-01-14T21:00:00.000Z',
    });
    assert.equal(o.state, 'imported');
  });

  test('an empty SMS is skipped EMPTY_MESSAGE and one without patient is unlinked', () => {
    assert.equal(
      (mapSms(record('API_Messages', { _kf_ContactID: PATIENT }), ctx) as { reason: string }).reason,
      'EMPTY_MESSAGE',
    );
    const o = row(mapSms(record('API_Messages', { MessageBody: 'hi' }), ctx));
    assert.equal(o.state, 'unlinked');
    assert.equal(o.reason, 'NO_PATIENT');
  });
});

describe('referrers phase', () => {
  test('maps a company with its contact details', () => {
    const o = row(
      mapCompany(
        record('API_Company', { Name: 'Harbour GP', ABN: '12 345 678 901', Type: 'Medical Practice' }, COMPANY),
        ctx,
      ),
    );
    assert.equal(o.row.id, targetId('companies', lc(COMPANY)));
    assert.equal(o.row.name, 'Harbour GP');
    assert.equal(o.row.abn, '12 345 678 901');
    assert.equal(o.row.type, 'Medical Practice');
    assert.deepEqual(o.row.contact_json, { phones: [], emails: [] });
  });

  test('a company without a name is imported with an empty name and flagged', () => {
    const o = row(mapCompany(record('API_Company', {}), ctx));
    assert.equal(o.row.name, '');
    assert.deepEqual(codes(o), ['EMPTY_NAME:Name']);
  });

  test('an archived referrer is imported inactive, nothing dropped', () => {
    const o = row(
      mapReferrer(
        record('API_Referrer', { nameFirst: 'Ann', nameLast: 'Lee', title: 'Dr', RECORD_ACTIVE_INDICATOR: 'Archived' }),
        ctx,
      ),
    );
    assert.equal(o.kind, 'row');
    assert.equal(o.state, 'imported');
    assert.equal(o.row.is_active, false);
    assert.equal(o.row.first_name, 'Ann');
  });

  test('active and empty indicators are active; an unknown one is active and flagged', () => {
    assert.equal(
      row(mapReferrer(record('API_Referrer', { RECORD_ACTIVE_INDICATOR: 'Active' }), ctx)).row.is_active,
      true,
    );
    assert.equal(row(mapReferrer(record('API_Referrer', {}), ctx)).row.is_active, true);
    const odd = row(mapReferrer(record('API_Referrer', { RECORD_ACTIVE_INDICATOR: 'Retired' }), ctx));
    assert.equal(odd.row.is_active, true);
    assert.deepEqual(codes(odd), ['UNKNOWN_ACTIVE_INDICATOR:RECORD_ACTIVE_INDICATOR']);
  });

  test('a patient-referrer link resolves both ends', () => {
    const o = row(
      mapPatientReferrer(
        record('API_ContactToReferrer', {
          id_Contact: PATIENT,
          id_Perscriber: lc(REFERRER),
          date: '20/06/2024',
          Reason: 'Heel pain',
          Status: 'Open',
        }),
        ctx,
      ),
    );
    const { filemaker_metadata: _m, ...rest } = o.row;
    assert.deepEqual(rest, {
      id: targetId('patient_referrers', rec_id),
      filemaker_id: rec_id,
      patient_id: P_ID,
      referrer_id: targetId('referrers', lc(REFERRER)),
      referral_date: '2024-06-20',
      reason: 'Heel pain',
      status: 'Open',
    });
  });

  test('a link with a missing patient or referrer is skipped with its rule', () => {
    const noPatient = mapPatientReferrer(
      record('API_ContactToReferrer', { id_Contact: UNKNOWN, id_Perscriber: REFERRER }),
      ctx,
    );
    assert.deepEqual(noPatient, {
      kind: 'skip',
      reason: 'MISSING_PATIENT',
      message: `API_ContactToReferrer ${rec_id}: id_Contact is not a known patient`,
    });
    const noReferrer = mapPatientReferrer(record('API_ContactToReferrer', { id_Contact: PATIENT }), ctx);
    assert.deepEqual(noReferrer, {
      kind: 'skip',
      reason: 'MISSING_REFERRER',
      message: `API_ContactToReferrer ${rec_id}: id_Perscriber is empty`,
    });
  });

  test('a referrer-company link resolves both ends and reads Primary', () => {
    const o = row(
      mapReferrerCompany(
        record('API_ReferrerToCompany_Join', {
          id_Referrer: REFERRER,
          id_Company: COMPANY,
          Position: 'GP',
          Primary: 1,
        }),
        ctx,
      ),
    );
    assert.equal(o.row.referrer_id, targetId('referrers', lc(REFERRER)));
    assert.equal(o.row.company_id, targetId('companies', lc(COMPANY)));
    assert.equal(o.row.position, 'GP');
    assert.equal(o.row.is_primary, true);
    assert.equal(
      (
        mapReferrerCompany(
          record('API_ReferrerToCompany_Join', { id_Referrer: REFERRER, id_Company: UNKNOWN }),
          ctx,
        ) as { reason: string }
      ).reason,
      'MISSING_COMPANY',
    );
    assert.equal(
      (
        mapReferrerCompany(
          record('API_ReferrerToCompany_Join', { id_Referrer: UNKNOWN, id_Company: COMPANY }),
          ctx,
        ) as { reason: string }
      ).reason,
      'MISSING_REFERRER',
    );
  });
});

describe('documents phase', () => {
  test('maps a linked document with its category slug and date', () => {
    const r = record('API_Docs', {
      id_Contact: PATIENT,
      Type: 'NDIS Report',
      Date: '06/20/2024',
      Doc: 'https://fm/Streaming_SSL/MainDB/AB.pdf?RCType=x',
    });
    const o = row(mapDocument(r, ctx));
    const { filemaker_metadata: _m, ...rest } = o.row;
    assert.deepEqual(rest, {
      id: targetId('documents', rec_id),
      filemaker_id: rec_id,
      content_type: 'patient',
      object_id: P_ID,
      category: 'ndis-report',
      document_date: '2024-06-20',
      import_status: 'imported',
      import_error: null,
    });
    assert.equal(documentContainerUrl(r), 'https://fm/Streaming_SSL/MainDB/AB.pdf?RCType=x');
  });

  test('a document without a known patient is unlinked with a null owner', () => {
    const o = row(mapDocument(record('API_Docs', { id_Contact: UNKNOWN, Doc: 'https://fm/x' }), ctx));
    assert.equal(o.state, 'unlinked');
    assert.equal(o.reason, 'PATIENT_NOT_FOUND');
    assert.equal(o.row.content_type, null);
    assert.equal(o.row.object_id, null);
    assert.equal(o.row.category, 'other');
    assert.equal(o.row.import_status, 'unlinked');
    assert.equal(row(mapDocument(record('API_Docs', { Doc: 'https://fm/x' }), ctx)).reason, 'NO_PATIENT');
  });

  test('an empty container is skipped EMPTY_CONTAINER but keeps its row', () => {
    const o = mapDocument(record('API_Docs', { id_Contact: PATIENT, Type: 'letter' }), ctx);
    assert.equal(o.kind, 'skip');
    assert.equal(o.kind === 'skip' && o.reason, 'EMPTY_CONTAINER');
    assert.equal(o.kind === 'skip' && o.row?.import_status, 'skipped');
    assert.equal(o.kind === 'skip' && o.row?.object_id, P_ID);
  });
});

describe('images phase', () => {
  const img = (fields: Record<string, string | number>) => record('API_Images', { id_Contact: PATIENT, ...fields });

  test('the waterfall lists non-empty containers from Full to small', () => {
    const r = img({
      image_small: 'https://fm/s.jpg',
      image_Full: '',
      image_large: 'https://fm/l.jpg',
      image_Ex_large: ' https://fm/xl.jpg ',
    });
    assert.deepEqual(imageCandidates(r), [
      { field: 'image_Ex_large', url: 'https://fm/xl.jpg' },
      { field: 'image_large', url: 'https://fm/l.jpg' },
      { field: 'image_small', url: 'https://fm/s.jpg' },
    ]);
    assert.deepEqual(imageCandidates(img({})), []);
  });

  test('maps an image into its patient-day batch', () => {
    const o = row(
      mapImage(
        img({
          Type: 'Left Dorsal',
          date: '06/20/2024',
          'Name of file': 'IMG_0001.JPG',
          image_Full: 'https://fm/f.jpg',
        }),
        ctx,
      ),
    );
    const { filemaker_metadata, ...image } = o.row.image;
    const batchKey = `${P_ID}/2024-06-20`;
    assert.deepEqual(image, {
      id: targetId('images', rec_id),
      filemaker_id: rec_id,
      batch_id: targetId('image_batches', batchKey),
      original_name: 'IMG_0001.JPG',
      category: 'left_dorsal',
      caption: 'Left Dorsal',
      date_taken: '2024-06-20',
    });
    assert.equal(filemaker_metadata.image_Full, CONTAINER_MARKER);
    assert.equal(filemaker_metadata.image_small, '');
    for (const [name, base] of [
      ['../../etc/passwd', 'passwd'],
      ['C:\\Photos\\2024\\IMG_0002.JPG', 'IMG_0002.JPG'],
      ['..', null],
    ] as const) {
      const named = row(mapImage(img({ 'Name of file': name, image_Full: 'https://fm/f.jpg' }), ctx));
      assert.equal(named.row.image.original_name, base, 'the base name, as documents keep it');
      assert.equal(named.row.image.filemaker_metadata['Name of file'], name, 'the name as FileMaker has it');
    }
    assert.deepEqual(o.row.batch, {
      id: targetId('image_batches', batchKey),
      filemaker_id: batchKey,
      filemaker_metadata: { batch_key: batchKey },
      patient_id: P_ID,
      batch_date: '2024-06-20',
      name: '20 Jun 2024 (FileMaker Import)',
    });
    assert.deepEqual(o.row.candidates, [{ field: 'image_Full', url: 'https://fm/f.jpg' }]);
  });

  test('an image without a patient goes into the unlinked, undated batch', () => {
    const o = row(mapImage(record('API_Images', { image_small: 'https://fm/s.jpg' }), ctx));
    assert.equal(o.state, 'unlinked');
    assert.equal(o.reason, 'NO_PATIENT');
    assert.equal(o.row.batch.filemaker_id, 'unlinked/undated');
    assert.equal(o.row.batch.name, 'Undated (FileMaker Import)');
  });

  test('the patient is taken from ID.KEY when id_Contact is empty', () => {
    const o = row(mapImage(record('API_Images', { 'ID.KEY': PATIENT, image_small: 'https://fm/s.jpg' }), ctx));
    assert.equal(o.state, 'imported');
    assert.equal(o.row.batch.patient_id, P_ID);
    assert.deepEqual(codes(o), ['PATIENT_FROM_ALT_KEY:ID.KEY']);
  });

  test('Not found with no containers is skipped NOT_FOUND_IMAGE; otherwise EMPTY_CONTAINER', () => {
    assert.deepEqual(mapImage(img({ result: 'Not found' }), ctx), {
      kind: 'skip',
      reason: 'NOT_FOUND_IMAGE',
      message: `API_Images ${rec_id} is marked Not found and has no container`,
    });
    assert.equal((mapImage(img({}), ctx) as { reason: string }).reason, 'EMPTY_CONTAINER');
    // A container wins over the Not found marker: nothing is skipped that can be downloaded.
    assert.equal(mapImage(img({ result: 'Not found', image_medium: 'https://fm/m.jpg' }), ctx).kind, 'row');
  });

  test('category mapping covers the clinic types and falls back to other', () => {
    const cat = (t: string) => imageCategory(t);
    assert.deepEqual(cat('Left Dorsal'), { category: 'left_dorsal', known: true });
    assert.deepEqual(cat('Right Plantar'), { category: 'right_plantar', known: true });
    assert.deepEqual(cat('Left Medial'), { category: 'left_medial', known: true });
    assert.deepEqual(cat('Right Lateral'), { category: 'right_lateral', known: true });
    assert.deepEqual(cat('L-Brannock'), { category: 'brannock_left', known: true });
    assert.deepEqual(cat('R-Brannock'), { category: 'brannock_right', known: true });
    assert.deepEqual(cat('dorsal rt'), { category: 'right_dorsal', known: true });
    assert.deepEqual(cat('Both Plantar'), { category: 'bilateral_plantar', known: true });
    assert.deepEqual(cat('Gait'), { category: 'gait', known: true });
    assert.deepEqual(cat('X-Ray'), { category: 'xray', known: true });
    assert.deepEqual(cat('Other'), { category: 'other', known: true });
    assert.deepEqual(cat(''), { category: 'other', known: true });
    assert.deepEqual(cat('Selfie'), { category: 'other', known: false });
    assert.deepEqual(cat('Left'), { category: 'other', known: false });
    assert.deepEqual(cat('Dorsal Plantar'), { category: 'other', known: false });
  });

  test('an unknown image type is flagged and keeps its text as caption', () => {
    const o = row(mapImage(img({ Type: 'Selfie', image_small: 'https://fm/s.jpg' }), ctx));
    assert.equal(o.row.image.category, 'other');
    assert.equal(o.row.image.caption, 'Selfie');
    assert.deepEqual(codes(o), ['UNKNOWN_IMAGE_TYPE:Type']);
  });

  test('batch names use a two-digit day and the short month', () => {
    assert.equal(imageBatchName('2024-06-20'), '20 Jun 2024 (FileMaker Import)');
    assert.equal(imageBatchName('2023-01-05'), '05 Jan 2023 (FileMaker Import)');
    assert.equal(imageBatchName(null), 'Undated (FileMaker Import)');
  });
});

describe('map context', () => {
  test('looks ids up case- and whitespace-insensitively', () => {
    assert.deepEqual(ctx.patientId(` ${lc(PATIENT)} `), { id: P_ID, clinicId: C_ID });
    assert.equal(ctx.clinicId(CLINIC), C_ID);
    assert.equal(ctx.referrerId(UNKNOWN), undefined);
    assert.equal(ctx.contactDetailsFor?.(PATIENT).length, 3);
  });

  test('a files batch loads only the patients its records name, and maps them exactly as with every patient', () => {
    const everyPatient: [string, string | null][] = [
      [PATIENT, CLINIC],
      [PATIENT_NO_CLINIC, null],
    ];
    const scoped = (refs: string[]) =>
      createMapContext({
        timeZone: 'Australia/Sydney',
        clinics: [{ id: CLINIC }, { id: CLINIC2 }],
        patients: everyPatient.filter(([p]) => refs.includes(lc(p))),
        patientsAmong: new Set(refs),
      });
    const doc = (fields: Record<string, string>) => record('API_Docs', { Doc: 'https://fm/d.pdf', ...fields });
    const image = (fields: Record<string, string>) =>
      record('API_Images', { image_small: 'https://fm/s.jpg', ...fields });
    const cases: [string, FmRecord, (r: FmRecord, c: typeof ctx) => unknown, (r: FmRecord) => string[]][] = [
      ['linked document', doc({ id_Contact: ` ${PATIENT} ` }), mapDocument, documentPatientRefs],
      ['document of an unknown patient', doc({ id_Contact: UNKNOWN }), mapDocument, documentPatientRefs],
      ['document without patient', doc({}), mapDocument, documentPatientRefs],
      ['linked image', image({ id_Contact: PATIENT_NO_CLINIC }), mapImage, imagePatientRefs],
      ['image linked by ID.KEY', image({ id_Contact: UNKNOWN, 'ID.KEY': PATIENT }), mapImage, imagePatientRefs],
      ['image of unknown patients', image({ id_Contact: UNKNOWN, 'ID.KEY': UNKNOWN }), mapImage, imagePatientRefs],
    ];
    for (const [name, r, map, refs] of cases) {
      assert.deepEqual(map(r, scoped(refs(r))), map(r, ctx), name);
    }
    assert.deepEqual(imagePatientRefs(image({ id_Contact: UNKNOWN, 'ID.KEY': PATIENT })), [lc(UNKNOWN), lc(PATIENT)]);
    // A mapper reading a patient field the refs do not name fails loudly instead of leaving the record unlinked.
    assert.throws(() => mapImage(image({ 'ID.KEY': PATIENT }), scoped([])), /not loaded for/);
  });

  test('a clinic name shared by two clinics resolves to none', () => {
    const c = createMapContext({
      timeZone: 'UTC',
      clinics: [
        { id: CLINIC, name: 'Same' },
        { id: CLINIC2, name: 'same' },
      ],
    });
    assert.equal(c.clinicIdByName?.('Same'), undefined);
  });
});

describe('hostile field names', () => {
  test('a field named __proto__ is kept as an ordinary metadata field', () => {
    const r = record('API_Company', { Name: 'Acme' });
    const fieldData = JSON.parse(`{${JSON.stringify(r.fieldData).slice(1, -1)},"__proto__":"x"}`);
    const o = row(mapCompany({ ...r, fieldData }, ctx));
    assert.equal(JSON.parse(JSON.stringify(o.row.filemaker_metadata)).__proto__, 'x');
    assert.equal(Object.getPrototypeOf(o.row.filemaker_metadata), Object.prototype);
    assert.equal(o.row.name, 'Acme');
  });
});
