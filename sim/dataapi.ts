// FileMaker Data API: /fmi/data/{v1|v2|vLatest}/... Envelope `{response, messages:[{code, message}]}` with string
// codes; HTTP 500 for FileMaker errors, 400 for bad parameters, 401 for authentication.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SimContext } from './context';
import { indexAt, indexListLength, type FieldValue, type IndexList, type SimRecord, type SimTable } from './dataset';
import { criterion, sortRows, type Criterion } from './find';
import {
  nowTimestamp,
  parseDateInput,
  parseTimestampInput,
  renderDate,
  renderTimestamp,
  type DateFormats,
} from './format';
import { readBody, sendJson } from './http';
import type { FieldDef, PortalDef } from './schema';
import { containerUrl } from './streaming';

const MESSAGES: Record<string, string> = {
  '0': 'OK',
  '3': 'Command is unavailable',
  '10': 'HTTP Authorization header is missing',
  '101': 'Record is missing',
  '102': 'Field is missing',
  '105': 'Layout is missing',
  '201': 'Field cannot be modified',
  '212': 'Invalid user account and/or password; please try again',
  '306': 'Record modification ID does not match',
  '401': 'No records match the request',
  '500': 'Date value does not meet validation entry options',
  '802': 'Unable to open file',
  '812': "Exceeded host's capacity",
  '952': 'Invalid FileMaker Data API token (*)',
  '953': 'Exceeded limit on data the FileMaker Data API can transmit (*)',
  '956': 'Maximum number of database sessions exceeded (*)',
  '958': 'Parameter missing',
  '960': 'Parameter is invalid',
};

class FmError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    detail?: string,
  ) {
    super(detail ? `${MESSAGES[code] ?? 'Error'}: ${detail}` : (MESSAGES[code] ?? 'Error'));
  }
}

const bad = (detail: string) => new FmError('960', 400, detail);

function scalar(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

function envelope(response: object, code = '0', message?: string) {
  return { response, messages: [{ code, message: message ?? MESSAGES[code] ?? 'Error' }] };
}

function parseDf(v: unknown): DateFormats {
  if (v === undefined || v === null || v === '') return 0;
  const n = Number(v);
  if (n === 0 || n === 1 || n === 2) return n;
  throw bad('dateformats');
}

function parsePositive(v: unknown, name: string, dflt: number): number {
  if (v === undefined || v === null || v === '') return dflt;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 1) throw bad(name);
  return n;
}

function parseJson(text: string, name: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw bad(name);
  }
}

function field(table: SimTable, name: string): FieldDef {
  const f = table.def.fields.find((x) => x.name === name);
  if (!f) throw new FmError('102', 500, name);
  return f;
}

interface Scripts {
  [key: string]: string | undefined;
}

const SCRIPT_KEYS = [
  'script',
  'script.param',
  'script.prerequest',
  'script.prerequest.param',
  'script.presort',
  'script.presort.param',
];

/** Scripts "run" by echoing their parameter, which is what tests and clients check for. */
function scriptResults(s: Scripts): Record<string, string> {
  const out: Record<string, string> = {};
  for (const phase of ['prerequest', 'presort', '']) {
    const name = s[phase ? `script.${phase}` : 'script'];
    if (name === undefined) continue;
    const suffix = phase ? `.${phase}` : '';
    out[`scriptError${suffix}`] = '0';
    out[`scriptResult${suffix}`] = s[phase ? `script.${phase}.param` : 'script.param'] ?? '';
  }
  return out;
}

interface RenderOpts {
  df: DateFormats;
  origin: string;
  portals: Map<string, { offset: number; limit: number }>;
  portalFilter: string[] | null;
}

export class DataApi {
  constructor(private readonly ctx: SimContext) {}

  private render(table: SimTable, rec: SimRecord, o: RenderOpts): object {
    const fieldData: Record<string, FieldValue> = {};
    for (const f of table.def.fields) fieldData[f.name] = this.renderValue(table, rec, f, o);
    const portalData: Record<string, object[]> = {};
    const portalDataInfo: object[] = [];
    for (const p of table.def.portals) {
      if (o.portalFilter && !o.portalFilter.includes(p.name)) continue;
      const related = this.ctx.ds.table(p.table)!;
      const rows = this.ctx.related(related, p.foreignKey, String(rec.fields.id));
      const range = o.portals.get(p.name) ?? { offset: 1, limit: 50 };
      const slice = rows.slice(range.offset - 1, range.offset - 1 + range.limit);
      portalData[p.name] = slice.map((r) => {
        const row: Record<string, FieldValue> = { recordId: String(r.recordId) };
        for (const f of related.def.fields) row[`${p.table}::${f.name}`] = this.renderValue(related, r, f, o);
        row.modId = String(r.modId);
        return row;
      });
      portalDataInfo.push({
        portalObjectName: p.name,
        database: this.ctx.config.database,
        table: p.table,
        foundCount: rows.length,
        returnedCount: slice.length,
      });
    }
    const out: Record<string, unknown> = {
      fieldData,
      portalData,
      recordId: String(rec.recordId),
      modId: String(rec.modId),
    };
    if (portalDataInfo.length) out.portalDataInfo = portalDataInfo;
    return out;
  }

  private renderValue(table: SimTable, rec: SimRecord, f: FieldDef, o: RenderOpts): FieldValue {
    const v = rec.fields[f.name] ?? '';
    switch (f.type) {
      case 'date':
        return renderDate(String(v), o.df);
      case 'timestamp':
        return renderTimestamp(String(v), o.df);
      case 'container':
        return containerUrl(this.ctx, o.origin, table, rec, f.name);
      default:
        return v;
    }
  }

  private dataInfo(table: SimTable, found: number, returned: number) {
    return {
      database: this.ctx.config.database,
      layout: table.def.name,
      table: table.def.name,
      totalRecordCount: table.count,
      foundCount: found,
      returnedCount: returned,
    };
  }

  private sortSpec(table: SimTable, raw: unknown): { field: FieldDef; descending: boolean }[] {
    if (raw === undefined || raw === null || raw === '') return [];
    const list = typeof raw === 'string' ? parseJson(raw, '_sort') : raw;
    if (!Array.isArray(list)) throw bad('sort');
    return list.map((s: unknown) => {
      if (typeof s !== 'object' || s === null || typeof (s as { fieldName?: unknown }).fieldName !== 'string')
        throw bad('sort');
      const { fieldName, sortOrder } = s as { fieldName: string; sortOrder?: string };
      if (sortOrder !== undefined && !['ascend', 'descend'].includes(sortOrder)) throw bad('sortOrder');
      return { field: field(table, fieldName), descending: sortOrder === 'descend' };
    });
  }

  private sorted(
    table: SimTable,
    rows: IndexList,
    spec: { field: FieldDef; descending: boolean }[],
    all: boolean,
  ): IndexList {
    if (!spec.length) return rows;
    if (!all) return sortRows(table, rows, spec);
    const key = spec.map((s) => `${s.field.name}:${s.descending ? 'd' : 'a'}`).join(',');
    return this.ctx.sorted(table, key, () => sortRows(table, table.rows(), spec));
  }

  /** The records at positions [from, to) of a row list. */
  private page(table: SimTable, rows: IndexList, from: number, to: number): SimRecord[] {
    const out: SimRecord[] = [];
    for (let j = Math.max(0, from); j < Math.min(to, indexListLength(rows)); j++) out.push(table.at(indexAt(rows, j))!);
    return out;
  }

  private portalRanges(
    table: SimTable,
    get: (k: string) => unknown,
    prefix: '_' | '',
  ): Map<string, { offset: number; limit: number }> {
    const out = new Map<string, { offset: number; limit: number }>();
    for (const p of table.def.portals) {
      const offset = parsePositive(get(`${prefix}offset.${p.name}`), `offset.${p.name}`, 1);
      const limit = parsePositive(get(`${prefix}limit.${p.name}`), `limit.${p.name}`, 50);
      out.set(p.name, { offset, limit });
    }
    return out;
  }

  private portalFilter(raw: unknown): string[] | null {
    if (raw === undefined || raw === null || raw === '') return null;
    const v = typeof raw === 'string' ? parseJson(raw, 'portal') : raw;
    if (!Array.isArray(v)) throw bad('portal');
    return v.map(String);
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      await this.route(req, res, url);
    } catch (e) {
      if (e instanceof FmError) {
        await sendJson(this.ctx, res, 'data', e.status, envelope({}, e.code, e.message));
        return;
      }
      throw e;
    }
  }

  private authorize(req: IncomingMessage): string {
    const auth = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(auth);
    if (!m || !this.ctx.touchSession(m[1]!)) {
      this.ctx.faults.count('token_invalid');
      throw new FmError('952', 401);
    }
    return m[1]!;
  }

  private checkQuota(): void {
    if (this.ctx.quotaExceeded()) {
      this.ctx.faults.count('quota_953');
      throw new FmError('953', 500);
    }
  }

  /** Sign-in: 10 without a header, 212 for the wrong account or scheme, 952 for a dead Claris ID token. */
  private checkCredentials(req: IncomingMessage): void {
    const c = this.ctx.credentials(req.headers.authorization);
    if (c === 'missing') throw new FmError('10', 401);
    if (c === 'refused') throw new FmError('212', 401);
    if (c === 'expired') throw new FmError('952', 401);
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const parts = url.pathname.split('/').slice(3).map(decodeURIComponent);
    const [version, ...rest] = parts;
    if (!version || !['v1', 'v2', 'vLatest'].includes(version)) throw new FmError('3', 404);
    const method = req.method ?? 'GET';
    const origin = `http://${req.headers.host ?? 'localhost'}`;
    if (rest[0] === 'productInfo' && rest.length === 1 && method === 'GET') {
      return sendJson(this.ctx, res, 'data', 200, envelope({ productInfo: PRODUCT_INFO }));
    }
    if (rest[0] === 'validateSession' && rest.length === 1 && method === 'GET') {
      this.authorize(req);
      return sendJson(this.ctx, res, 'data', 200, envelope({}));
    }
    if (rest[0] === 'databases' && rest.length === 1 && method === 'GET') {
      this.checkCredentials(req);
      return sendJson(this.ctx, res, 'data', 200, envelope({ databases: [{ name: this.ctx.config.database }] }));
    }
    if (rest[0] !== 'databases' || rest.length < 3) throw new FmError('3', 404);
    const db = rest[1]!;
    const [kind, name, sub, subId, ...more] = rest.slice(2);
    if (db !== this.ctx.config.database) {
      // Database names are case-sensitive on FileMaker Server.
      throw new FmError('802', 500);
    }
    if (kind === 'sessions') {
      if (method === 'POST' && name === undefined) return this.login(req, res);
      if (method === 'DELETE' && name !== undefined) {
        if (!this.ctx.sessions.delete(name)) throw new FmError('952', 401);
        this.ctx.sessionsLoggedOut++;
        return sendJson(this.ctx, res, 'data', 200, envelope({}));
      }
      throw new FmError('3', 405);
    }
    this.authorize(req);
    this.checkQuota();
    if (kind === 'layouts' && name === undefined && method === 'GET') {
      const layouts = this.ctx.ds.tableList.filter((t) => !t.def.odataOnly).map((t) => ({ name: t.def.name }));
      return sendJson(this.ctx, res, 'data', 200, envelope({ layouts }));
    }
    if (kind === 'scripts' && name === undefined && method === 'GET') {
      const scripts = ['Mark Exported', 'Echo'].map((n) => ({ name: n, isFolder: false }));
      return sendJson(this.ctx, res, 'data', 200, envelope({ scripts }));
    }
    if (kind !== 'layouts' || name === undefined) throw new FmError('3', 404);
    const table = this.ctx.ds.table(name);
    if (!table || table.def.odataOnly) throw new FmError('105', 500);
    const q = (k: string) => url.searchParams.get(k) ?? undefined;
    const queryScripts: Scripts = Object.fromEntries(SCRIPT_KEYS.map((k) => [k, q(k)]));
    if (sub === undefined && method === 'GET') return this.layoutMetadata(res, table);
    if (sub === 'records' && subId === undefined && method === 'GET') {
      const df = parseDf(q('dateformats'));
      const offset = parsePositive(q('_offset'), '_offset', 1);
      const limit = parsePositive(q('_limit'), '_limit', 100);
      const spec = this.sortSpec(table, q('_sort'));
      const o = { df, origin, portals: this.portalRanges(table, q, '_'), portalFilter: this.portalFilter(q('portal')) };
      const all = this.sorted(table, table.rows(), spec, true);
      const total = indexListLength(all);
      // FileMaker answers 101 both for an empty layout and for an offset past the last record.
      if (offset > total) throw new FmError('101', 500);
      const page = this.page(table, all, offset - 1, offset - 1 + limit);
      return sendJson(
        this.ctx,
        res,
        'data',
        200,
        envelope({
          ...scriptResults(queryScripts),
          dataInfo: this.dataInfo(table, total, page.length),
          data: page.map((r) => this.render(table, r, o)),
        }),
      );
    }
    if (sub === 'records' && subId !== undefined && more.length === 0) {
      if (!/^\d+$/.test(subId)) throw bad('recordId');
      const index = table.indexOfRecordId(Number(subId));
      const rec = index < 0 ? undefined : table.at(index);
      if (method === 'GET') {
        if (!rec) throw new FmError('101', 500);
        const o = {
          df: parseDf(q('dateformats')),
          origin,
          portals: this.portalRanges(table, q, '_'),
          portalFilter: this.portalFilter(q('portal')),
        };
        return sendJson(
          this.ctx,
          res,
          'data',
          200,
          envelope({
            ...scriptResults(queryScripts),
            dataInfo: this.dataInfo(table, 1, 1),
            data: [this.render(table, rec, o)],
          }),
        );
      }
      if (method === 'PATCH') return this.patch(req, res, table, index);
      if (method === 'DELETE') throw new FmError('200', 500, 'record access is denied for this account');
    }
    if (sub === 'records' && subId === undefined && method === 'POST') {
      throw new FmError('200', 500, 'record creation is denied for this account');
    }
    if (sub === '_find' && subId === undefined && method === 'POST') return this.find(req, res, table, origin);
    if (sub === 'script' && subId !== undefined && method === 'GET') {
      return sendJson(
        this.ctx,
        res,
        'data',
        200,
        envelope({ scriptError: '0', scriptResult: q('script.param') ?? '' }),
      );
    }
    throw new FmError('3', 404);
  }

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    this.checkCredentials(req);
    if (body.length && body.toString().trim()) parseJson(body.toString(), 'body');
    const s = this.ctx.settings;
    if (s.maxSessions > 0 && this.ctx.activeSessions() >= s.maxSessions) {
      this.ctx.faults.count('session_cap');
      throw new FmError(String(s.sessionCapCode), 500);
    }
    const token = this.ctx.newSession();
    return sendJson(this.ctx, res, 'data', 200, envelope(s.tokenInBody ? { token } : {}), {
      'X-FM-Data-Access-Token': token,
    });
  }

  private layoutMetadata(res: ServerResponse, table: SimTable): void | Promise<void> {
    const meta = (f: FieldDef) => ({
      name: f.name,
      type: 'normal',
      displayType: f.type === 'container' ? 'editText' : 'editText',
      result: f.type === 'timestamp' ? 'timeStamp' : f.type,
      global: false,
      autoEnter: f.name.endsWith('Timestamp') || f.name === 'id',
      fourDigitYear: false,
      maxRepeat: 1,
      maxCharacters: 0,
      notEmpty: false,
      numeric: false,
      timeOfDay: false,
    });
    const portalMetaData: Record<string, object[]> = {};
    for (const p of table.def.portals) {
      const related = this.ctx.ds.table(p.table)!;
      portalMetaData[p.name] = related.def.fields.map((f) => ({ ...meta(f), name: `${p.table}::${f.name}` }));
    }
    return sendJson(
      this.ctx,
      res,
      'data',
      200,
      envelope({
        fieldMetaData: table.def.fields.map(meta),
        portalMetaData,
        valueLists: [],
      }),
    );
  }

  private async jsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
    const raw = (await readBody(req)).toString('utf8');
    const body = raw.trim() ? parseJson(raw, 'body') : {};
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('body');
    return body as Record<string, unknown>;
  }

  private async find(req: IncomingMessage, res: ServerResponse, table: SimTable, origin: string): Promise<void> {
    const body = await this.jsonBody(req);
    const portalKeys = new Set(table.def.portals.flatMap((p: PortalDef) => [`offset.${p.name}`, `limit.${p.name}`]));
    const allowed = new Set([
      'query',
      'sort',
      'offset',
      'limit',
      'portal',
      'dateformats',
      'layout.response',
      ...SCRIPT_KEYS,
    ]);
    for (const k of Object.keys(body)) {
      // Portal ranges in a find body have no underscore; `_limit.P` here is an unknown parameter.
      if (!allowed.has(k) && !portalKeys.has(k)) throw bad(k);
    }
    const df = parseDf(body.dateformats);
    const query = body.query;
    if (query === undefined) throw new FmError('958', 400, 'query');
    if (!Array.isArray(query) || query.length === 0) throw bad('query');
    const requests = query.map((r: unknown) => {
      if (typeof r !== 'object' || r === null || Array.isArray(r)) throw bad('query');
      let omit = false;
      const crits: Criterion[] = [];
      let exactId: string | undefined;
      for (const [k, v] of Object.entries(r as Record<string, unknown>)) {
        if (k === 'omit') {
          omit = v === true || String(v).toLowerCase() === 'true';
          continue;
        }
        if (typeof v !== 'string' && typeof v !== 'number') throw bad(`query.${k}`);
        crits.push(criterion(field(table, k), v, df));
        const raw = String(v).trim();
        if (k === 'id' && raw.startsWith('==')) exactId = raw.slice(2);
      }
      return { omit, exactId, match: (rec: SimRecord) => crits.every((c) => c(rec)) };
    });
    const offset = parsePositive(body.offset, 'offset', 1);
    const limit = parsePositive(body.limit, 'limit', 100);
    const spec = this.sortSpec(table, body.sort);
    const portals = this.portalRanges(table, (k) => body[k], '');
    const portalFilter = this.portalFilter(body.portal);
    // Requests apply in order (finds add, omits take away), which for one record is a fold over the requests: so
    // each record is generated once, however many requests there are.
    const inSet = (rec: SimRecord) => {
      let found = false;
      for (const r of requests) {
        if (r.omit) {
          if (found && r.match(rec)) found = false;
        } else if (!found && r.match(rec)) found = true;
      }
      return found;
    };
    const hits: number[] = [];
    for (const i of this.findCandidates(table, requests)) if (inSet(table.peek(i))) hits.push(i);
    if (hits.length === 0) throw new FmError('401', this.ctx.settings.noRecordsStatus);
    const all = this.sorted(table, Int32Array.from(hits), spec, false);
    const page = this.page(table, all, offset - 1, offset - 1 + limit);
    const o = { df, origin, portals, portalFilter };
    return sendJson(
      this.ctx,
      res,
      'data',
      200,
      envelope({
        ...scriptResults(body as Scripts),
        dataInfo: this.dataInfo(table, indexListLength(all), page.length),
        data: page.map((r) => this.render(table, r, o)),
      }),
    );
  }

  /**
   * Positions that can be in a find's found set, in record order. Only find requests add records, so when every
   * find request asks for one exact primary key (the engine's finds by id lists), the candidates are those keys'
   * records plus any record written since (its key may have changed); otherwise every record.
   */
  private findCandidates(table: SimTable, requests: { omit: boolean; exactId?: string }[]): Iterable<number> {
    const adds = requests.filter((r) => !r.omit);
    if (adds.length === 0 || adds.some((r) => r.exactId === undefined)) return each(table.rows());
    const out = new Set<number>(table.writtenIndexes());
    for (const r of adds) {
      // `==` compares case-insensitively; generated keys are uppercase.
      const i = table.indexOfGeneratedId(r.exactId!.toUpperCase());
      if (i >= 0) out.add(i);
    }
    return [...out].sort((a, b) => a - b);
  }

  private async patch(req: IncomingMessage, res: ServerResponse, table: SimTable, index: number): Promise<void> {
    const body = await this.jsonBody(req);
    const rec = index < 0 ? undefined : table.at(index);
    if (!rec) throw new FmError('101', 500);
    const fieldData = body.fieldData;
    if (fieldData === undefined) throw new FmError('958', 400, 'fieldData');
    if (typeof fieldData !== 'object' || fieldData === null || Array.isArray(fieldData)) throw bad('fieldData');
    const df = parseDf(body.dateformats);
    if (body.modId !== undefined && scalar(body.modId) !== String(rec.modId)) throw new FmError('306', 500);
    const updates: Record<string, FieldValue> = {};
    for (const [k, v] of Object.entries(fieldData as Record<string, unknown>)) {
      const f = field(table, k);
      if (f.type === 'container') throw new FmError('201', 500, k);
      if (typeof v === 'object' && v !== null) throw bad(`fieldData.${k}`);
      const s = scalar(v);
      if (f.type === 'number') {
        updates[k] = s.trim() === '' ? '' : Number.isFinite(Number(s)) ? Number(s) : s;
      } else if (f.type === 'date') {
        const d = s.trim() === '' ? '' : parseDateInput(s, df);
        if (d === null) throw new FmError('500', 500, k);
        updates[k] = d;
      } else if (f.type === 'timestamp') {
        const t = s.trim() === '' ? '' : parseTimestampInput(s, df);
        if (t === null) throw new FmError('500', 500, k);
        updates[k] = t;
      } else {
        updates[k] = s;
      }
    }
    // Only now does the record move to the table's overlay of written records (the same object `at` returned).
    const target = table.mutable(index)!;
    Object.assign(target.fields, updates);
    target.modId++;
    target.fields.modificationTimestamp = nowTimestamp();
    table.written(target);
    this.ctx.ds.log('update', table, target, 'dataapi');
    return sendJson(
      this.ctx,
      res,
      'data',
      200,
      envelope({ ...scriptResults(body as Scripts), modId: String(target.modId) }),
    );
  }
}

function* each(rows: IndexList): Generator<number> {
  const n = indexListLength(rows);
  for (let j = 0; j < n; j++) yield indexAt(rows, j);
}

const PRODUCT_INFO = {
  name: 'FileMaker Data API Engine',
  buildDate: '03/14/2024',
  version: '21.0.1.53',
  dateFormat: 'MM/dd/yyyy',
  timeFormat: 'HH:mm:ss',
  timeStampFormat: 'MM/dd/yyyy HH:mm:ss',
};
