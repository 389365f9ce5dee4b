/**
 * Notes phase: clinical/admin notes (API_Notes) and sent SMS (API_Messages). Notes keep their ORIGINAL date (the
 * earlier scripts stamped them with the import time); SMS are read from the field names the layout really has.
 */
import { targetId } from '../ids';
import { TEXT_LIMITS } from '../normalize';
import { readRecord, type RecordReader } from '../record';
import { type ReasonCode } from '../reasons';
import { type BaseRow, type FmRecord, type MapContext, type MapOutcome, type PatientRef } from '../types';

function resolvePatient(r: RecordReader, field: string): { patient?: PatientRef; unlinked?: ReasonCode } {
  const fk = r.fk(field);
  if (fk === null) return { unlinked: 'NO_PATIENT' };
  const patient = r.ctx.patientId(fk);
  return patient ? { patient } : { unlinked: 'PATIENT_NOT_FOUND' };
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
  const read = readRecord(record, 'API_Notes', ctx);
  if (!read.ok) return read.outcome;
  const r = read.reader;
  const content = r.text('Note', TEXT_LIMITS.long);
  if (content === '') return { kind: 'skip', reason: 'EMPTY_NOTE', message: `${r.describe()} has an empty Note` };
  const { patient, unlinked } = resolvePatient(r, 'id_Key');

  let noteDate = r.timestamp('Date');
  if (noteDate === null) {
    noteDate = r.timestamp('creationTimestamp');
    r.flag(noteDate === null ? 'NO_NOTE_DATE' : 'NOTE_DATE_FROM_CREATION', 'Date');
  }
  const row: NoteRow = {
    id: targetId('notes', r.filemakerId),
    filemaker_id: r.filemakerId,
    filemaker_metadata: r.metadata(),
    patient_id: patient?.id ?? null,
    note_type: r.optText('Note Type'),
    content,
    note_date: noteDate,
    author: r.optText('creationAccountName'),
  };
  return unlinked
    ? { kind: 'row', row, state: 'unlinked', reason: unlinked, findings: r.findings }
    : { kind: 'row', row, state: 'imported', findings: r.findings };
}

export interface SmsRow extends BaseRow {
  readonly patient_id: string | null;
  readonly phone: string | null;
  readonly message: string;
  readonly status: string | null;
  readonly sent_at: string | null;
}

export function mapSms(record: FmRecord, ctx: MapContext): MapOutcome<SmsRow> {
  const read = readRecord(record, 'API_Messages', ctx);
  if (!read.ok) return read.outcome;
  const r = read.reader;
  const message = r.text('MessageBody', TEXT_LIMITS.long);
  if (message === '') {
    return { kind: 'skip', reason: 'EMPTY_MESSAGE', message: `${r.describe()} has an empty MessageBody` };
  }
  const { patient, unlinked } = resolvePatient(r, '_kf_ContactID');
  const row: SmsRow = {
    id: targetId('sms_messages', r.filemakerId),
    filemaker_id: r.filemakerId,
    filemaker_metadata: r.metadata(),
    patient_id: patient?.id ?? null,
    phone: r.optText('RecipientPhoneMobile'),
    message,
    status: r.optText('MessageStatus'),
    sent_at: r.timestamp('SentTimestamp'),
  };
  return unlinked
    ? { kind: 'row', row, state: 'unlinked', reason: unlinked, findings: r.findings }
    : { kind: 'row', row, state: 'imported', findings: r.findings };
}
