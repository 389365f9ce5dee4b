/**
 * Notes phase: clinical/admin notes (API_Notes) and sent SMS (API_Messages). Notes keep their ORIGINAL date (the
 * earlier scripts stamped them with the import time); SMS are read from the field names the layout really has.
 */
import { TEXT_LIMITS } from '../normalize';
import { mapRecord } from '../record';
import { type BaseRow, type FmRecord, type MapContext, type MapOutcome } from '../types';

export interface NoteRow extends BaseRow {
  readonly patient_id: string | null;
  readonly note_type: string | null;
  readonly content: string;
  /** ISO instant: `Date` at midnight in the clinic's zone (or its time when `Date` holds one), else creationTimestamp. */
  readonly note_date: string | null;
  readonly author: string | null;
}

export function mapNote(record: FmRecord, ctx: MapContext): MapOutcome<NoteRow> {
  return mapRecord(record, 'API_Notes', ctx, (r) => {
    const content = r.text('Note', TEXT_LIMITS.long);
    if (content === '') return { kind: 'skip', reason: 'EMPTY_NOTE', message: `${r.describe()} has an empty Note` };
    const { patient, unlinked } = r.patient('id_Key');

    let noteDate = r.timestamp('Date');
    if (noteDate === null) {
      noteDate = r.timestamp('creationTimestamp');
      r.flag(noteDate === null ? 'NO_NOTE_DATE' : 'NOTE_DATE_FROM_CREATION', 'Date');
    }
    const row: NoteRow = {
      ...r.base('notes'),
      patient_id: patient?.id ?? null,
      note_type: r.optText('Note Type'),
      content,
      note_date: noteDate,
      author: r.optText('creationAccountName'),
    };
    return r.outcome(row, unlinked);
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
  return mapRecord(record, 'API_Messages', ctx, (r) => {
    const message = r.text('MessageBody', TEXT_LIMITS.long);
    if (message === '') {
      return { kind: 'skip', reason: 'EMPTY_MESSAGE', message: `${r.describe()} has an empty MessageBody` };
    }
    const { patient, unlinked } = r.patient('_kf_ContactID');
    const row: SmsRow = {
      ...r.base('sms_messages'),
      patient_id: patient?.id ?? null,
      phone: r.optText('RecipientPhoneMobile'),
      message,
      status: r.optText('MessageStatus'),
      sent_at: r.timestamp('SentTimestamp'),
    };
    return r.outcome(row, unlinked);
  });
}
