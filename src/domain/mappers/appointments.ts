/**
 * Appointments phase (API_event). Start and end are assembled from separate date and time fields as wall-clock time
 * in the clinic's zone; the clinic comes from the event's own key, else from its patient.
 */
import { TEXT_LIMITS, addDays, cleanText, isInvalidTime, parseTime, zonedDateTime } from '../normalize';
import { mapRecord, type RecordReader } from '../record';
import { type BaseRow, type FmFieldValue, type FmRecord, type MapContext, type MapOutcome } from '../types';

export type AppointmentStatus = 'scheduled' | 'checked_in' | 'completed' | 'cancelled' | 'no_show';

const STATUS: Record<string, AppointmentStatus> = {
  '': 'scheduled',
  booked: 'scheduled',
  scheduled: 'scheduled',
  arrived: 'checked_in',
  'checked in': 'checked_in',
  completed: 'completed',
  cancelled: 'cancelled',
  canceled: 'cancelled',
  dna: 'no_show',
  'no show': 'no_show',
  'no-show': 'no_show',
};

/** FileMaker `Status` → target status; undefined for an unknown value (the mapper uses scheduled + UNKNOWN_STATUS). */
export function mapAppointmentStatus(raw: FmFieldValue): AppointmentStatus | undefined {
  return STATUS[cleanText(raw).value.toLowerCase().replace(/\s+/g, ' ')];
}

export interface AppointmentRow extends BaseRow {
  readonly patient_id: string | null;
  readonly clinic_id: string | null;
  readonly clinician_filemaker_id: string | null;
  readonly start_at: string | null;
  readonly end_at: string | null;
  readonly all_day: boolean;
  readonly status: AppointmentStatus;
  readonly type: string | null;
  readonly notes: string | null;
}

/**
 * start/end rules:
 * - timed: `startDate` + `startTime` (and `endDate`, defaulting to `startDate`, + `endTime`) in the clinic's zone;
 *   `24:00:00` is midnight ending the day, `1 day, 09:30:00` carries into the next day;
 * - all-day: start = midnight starting `startDate`, end = midnight after `endDate` (or `startDate`); times ignored;
 * - no start date, or a start date without a start time → start_at null (START_TIME_MISSING when the date is set);
 *   the source fields stay in filemaker_metadata. A missing end time gives end_at null.
 */
function schedule(r: RecordReader): { start: string | null; end: string | null; allDay: boolean } {
  const tz = r.ctx.timeZone;
  const allDay = r.bool('allDay');
  const startDate = r.date('startDate');
  const endDateRaw = cleanText(r.raw('endDate')).value;
  const endDate = endDateRaw === '' ? startDate : r.date('endDate');
  if (allDay) {
    return {
      start: startDate === null ? null : zonedDateTime(startDate, 0, tz),
      end: endDate === null ? null : zonedDateTime(addDays(endDate, 1), 0, tz),
      allDay,
    };
  }
  const startTime = parseTime(r.raw('startTime'));
  const endTime = parseTime(r.raw('endTime'));
  if (isInvalidTime(r.raw('startTime'))) r.flag('TIME_INVALID', 'startTime');
  if (isInvalidTime(r.raw('endTime'))) r.flag('TIME_INVALID', 'endTime');
  let start: string | null = null;
  if (startDate !== null) {
    if (startTime !== null) start = zonedDateTime(startDate, startTime, tz);
    else if (!isInvalidTime(r.raw('startTime'))) r.flag('START_TIME_MISSING', 'startTime');
  }
  const end = endDate !== null && endTime !== null ? zonedDateTime(endDate, endTime, tz) : null;
  if (start !== null && end !== null && end < start) r.flag('END_BEFORE_START', 'endTime');
  return { start, end, allDay };
}

export function mapAppointment(record: FmRecord, ctx: MapContext): MapOutcome<AppointmentRow> {
  return mapRecord(record, 'API_event', ctx, (r) => {
    const { patient, unlinked: noPatient } = r.patient('id_Contact');
    let unlinked = noPatient;

    // Clinic: id_Clinic, then idCal (the clinic calendar the event sits in), then the patient's clinic.
    let clinicId: string | null = null;
    let unresolvedClinicKey = false;
    for (const field of ['id_Clinic', 'idCal'] as const) {
      const fk = r.fk(field);
      if (fk === null) continue;
      const found = ctx.clinicId(fk);
      if (found !== undefined) {
        clinicId = found;
        break;
      }
      unresolvedClinicKey = true;
    }
    if (clinicId === null) {
      if (patient?.clinicId) {
        clinicId = patient.clinicId;
        r.flag('CLINIC_FROM_PATIENT', 'id_Clinic');
      } else if (unresolvedClinicKey) {
        unlinked ??= 'CLINIC_NOT_FOUND';
      } else {
        r.flag('NO_CLINIC', 'id_Clinic');
      }
    }

    let status = mapAppointmentStatus(r.raw('Status'));
    if (status === undefined) {
      r.flag('UNKNOWN_STATUS', 'Status');
      status = 'scheduled';
    }
    const { start, end, allDay } = schedule(r);
    const row: AppointmentRow = {
      ...r.base('appointments'),
      patient_id: patient?.id ?? null,
      clinic_id: clinicId,
      clinician_filemaker_id: r.fk('id_Clinician'),
      start_at: start,
      end_at: end,
      all_day: allDay,
      status,
      type: r.optText('Type'),
      notes: r.optText('note', TEXT_LIMITS.long),
    };
    return r.outcome(row, unlinked);
  });
}
