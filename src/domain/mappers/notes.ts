/**
 * Notes phase: clinical/admin notes (API_Notes) and sent SMS (API_Messages). Notes keep their ORIGINAL date (the
 * earlier scripts stamped them with the import time); SMS are read from the field names the layout really has.
 */
import { TEXT_LIMITS } from '../normalize';
import { mapRecord, type RecordReader } from '../record';
import type { ReasonCode } from '../reasons';
import type { SourceTableName } from '../tables';
import { type BaseRow, type FmRecord, type MapContext, type MapOutcome } from '../types';

/**
 * A text about a patient (a note, an SMS): its `body` field is required, an empty one skips the record for `empty`;
 * the patient its `patient` field names is not (the row is unlinked without one). `row` builds the rest.
 */
function mapPatientText<Row>(
  record: FmRecord,
  table: SourceTableName,
  ctx: MapContext,
  fields: { body: string; empty: ReasonCode; patient: string },
  row: (r: RecordReader, body: string, patientId: string | null) => Row,
): MapOutcome<Row> {
  return mapRecord(record, table, ctx, (r) => {
    const body = r.text(fields.body, TEXT_LIMITS.long);
    if (body === '') {
      return { kind: 'skip', reason: fields.empty, message: `${r.describe()} has an empty ${fields.body}` };
    }
    const { patient, unlinked } = r.patient(fields.patient);
    return r.outcome(row(r, body, patient?.id ?? null), unlinked);
  });
}

export interface NoteRow extends BaseRow {
  readonly patient_id: string | null;
  readonly note_type: string | null;
  readonly content: string;
  /** ISO instant: `Date` at midnight in the clinic's zone (or its time when `Date` holds one), else creationTimestamp. */
  readonly note_date: string | null;
  readonly author: string | null;
}

export function mapNote(record: FmRecord, ctx: MapContext): MapOutcome<NoteRow> {
  const fields = { body: 'Note', empty: 'EMPTY_NOTE', patient: 'id_Key' } as const;
  return mapPatientText(record, 'API_Notes', ctx, fields, (r, content, patientId): NoteRow => {
    let noteDate = r.timestamp('Date');
    if (noteDate === null) {
      noteDate = r.timestamp('creationTimestamp');
      r.flag(noteDate === null ? 'NO_NOTE_DATE' : 'NOTE_DATE_FROM_CREATION', 'Date');
    }
    return {
      ...r.base('notes'),
      patient_id: patientId,
      note_type: r.optText('Note Type'),
      content,
      note_date: noteDate,
      author: r.optText('creationAccountName'),
    };
  });
}

export interface SmsRow extends BaseRow {
  readonly patient_id: string | null;
  readonly phone: string | null;
  readonly message: string;
  readonly status: string | null;
  readonly sent_at: string | null;
}

export function mapSms(record: FmRecord, ctx: MapContext): MapOutcome<SmsRow> {
  const fields = { body: 'MessageBody', empty: 'EMPTY_MESSAGE', patient: '_kf_ContactID' } as const;
  return mapPatientText(record, 'API_Messages', ctx, fields, (r, message, patientId): SmsRow => ({
    ...r.base('sms_messages'),
    patient_id: patientId,
    phone: r.optText('RecipientPhoneMobile'),
    message,
    status: r.optText('MessageStatus'),
    sent_at: r.timestamp('SentTimestamp'),
  }));
}
