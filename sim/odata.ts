// FileMaker OData v4: /fmi/odata/v4[/{db}[/{table}[(key)][/{field}[/$value]]]]. Basic (or FMID) auth on every
// request; errors as {"error":{"code","message"}}; containers only through /$value.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SimContext } from './context';
import { base64Chunks, base64Length, containerChunks, contentDisposition, servedContentType } from './containers';
import { indexAt, indexListLength, type IndexList, type SimRecord, type SimTable } from './dataset';
import { sortRows } from './find';
import { htmlError, send, sendJson, writeBody } from './http';
import { FilterError, parseFilter, readName, splitList } from './odata-filter';
import type { FieldDef } from './schema';

class ODataError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const EDM: Record<FieldDef['type'], string> = {
  text: 'Edm.String',
  number: 'Edm.Decimal',
  date: 'Edm.Date',
  timestamp: 'Edm.DateTimeOffset',
  container: 'Edm.Binary',
};

const SYSTEM_FIELDS = ['ROWID', 'ROWMODID'];
const TEXT = 'text/plain; charset=utf-8';
const OPTIONS = new Set(['$top', '$skip', '$select', '$filter', '$orderby', '$count', '$expand', '$format']);

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export class OData {
  constructor(private readonly ctx: SimContext) {}

  private ann(name: 'context' | 'count' | 'nextLink' | 'id' | 'editLink'): string {
    return this.ctx.settings.odataAnnotations === 'odata' ? `@odata.${name}` : `@${name}`;
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      await this.route(req, res, url);
    } catch (e) {
      if (e instanceof ODataError) {
        const scheme = this.ctx.config.auth === 'fmid' ? 'FMID' : 'Basic';
        const headers: Record<string, string> =
          e.status === 401 ? { 'WWW-Authenticate': `${scheme} realm="FileMaker"` } : {};
        await sendJson(this.ctx, res, 'odata', e.status, { error: { code: e.code, message: e.message } }, headers);
        return;
      }
      if (e instanceof FilterError) {
        await sendJson(this.ctx, res, 'odata', 400, { error: { code: e.code, message: e.message } });
        return;
      }
      throw e;
    }
  }

  /** Every request signs in: Basic with the account, or on a Claris ID host a live FMID token. */
  private authenticate(req: IncomingMessage): void {
    const c = this.ctx.credentials(req.headers.authorization);
    if (c === 'expired') throw new ODataError(401, '952', 'The Claris ID token has expired or is not valid');
    if (c !== 'ok') throw new ODataError(401, '212', 'Invalid user account and/or password; please try again');
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    this.authenticate(req);
    if (this.ctx.quotaExceeded()) {
      this.ctx.faults.count('quota_953');
      throw new ODataError(500, '953', 'Exceeded limit on data the FileMaker Data API can transmit');
    }
    if (req.method !== 'GET') throw new ODataError(403, '-1002', 'The simulator serves OData read-only');
    const rawPath = url.pathname.slice('/fmi/odata/v4'.length);
    const segs = rawPath
      .split('/')
      .filter(Boolean)
      .map((s) => {
        try {
          return decodeURIComponent(s);
        } catch {
          throw new ODataError(400, '-1002', 'Malformed URL');
        }
      });
    for (const k of url.searchParams.keys()) {
      if (k.startsWith('$') && !OPTIONS.has(k)) throw new ODataError(400, '-1002', `Unsupported query option ${k}`);
    }
    const base = `http://${req.headers.host ?? 'localhost'}/fmi/odata/v4`;
    const db = this.ctx.config.database;
    if (segs.length === 0) {
      return this.json(res, {
        [this.ann('context')]: `${base}/$metadata`,
        value: [{ name: db, kind: 'EntityContainer', url: db }],
      });
    }
    if (segs[0] !== db) throw new ODataError(404, '802', `Unable to open file ${segs[0]}`);
    const dbBase = `${base}/${encodeURIComponent(db)}`;
    if (segs.length === 1) {
      const value = this.ctx.ds.tableList.map((t) => ({ name: t.def.name, kind: 'EntitySet', url: t.def.name }));
      return this.json(res, { [this.ann('context')]: `${dbBase}/$metadata`, value });
    }
    if (segs[1] === '$metadata' && segs.length === 2) return this.metadata(req, res, url);
    const m = /^([^()]+)(?:\((.*)\))?$/.exec(segs[1]!);
    if (!m) throw new ODataError(400, '-1002', 'Malformed resource path');
    const table = this.ctx.ds.table(m[1]!);
    if (!table) throw new ODataError(404, '-1002', `Table '${m[1]}' not defined in database`);
    const keyRaw = m[2];
    if (keyRaw === undefined) {
      if (segs[2] === '$count' && segs.length === 3) {
        const rows = this.filtered(table, url);
        return send(this.ctx, res, 'odata', 200, 'text/plain; charset=utf-8', String(indexListLength(rows)));
      }
      if (segs.length !== 2) throw new ODataError(400, '-1002', 'Malformed resource path');
      return this.collection(res, url, table, dbBase);
    }
    const rec = this.byKey(table, keyRaw);
    if (segs.length === 2) return this.entity(res, url, table, rec, dbBase);
    const f = this.field(table, segs[2]!);
    if (segs.length === 3) {
      if (f.type === 'container')
        throw new ODataError(400, '-1002', `Container field ${f.name} is only readable via /$value`);
      return this.json(res, {
        [this.ann('context')]: `${dbBase}/$metadata#${table.def.name}(${keyRaw})/${f.name}`,
        value: this.value(f, rec),
      });
    }
    if (segs[3] === '$value' && segs.length === 4) return this.rawValue(res, table, rec, f);
    throw new ODataError(400, '-1002', 'Malformed resource path');
  }

  private byKey(table: SimTable, keyRaw: string): SimRecord {
    let rec: SimRecord | undefined;
    const str = /^'((?:[^']|'')*)'$/.exec(keyRaw);
    // `ROWID=n`: the alternate key FileMaker accepts on every table, primary key designated or not.
    const rowId = /^ROWID=(\d+)$/.exec(keyRaw);
    if (rowId) {
      rec = table.byRecordId(Number(rowId[1]));
    } else if (str) {
      const id = str[1]!.replace(/''/g, "'");
      rec = table.byId(id);
    } else if (/^\d+$/.test(keyRaw)) {
      rec = table.byRecordId(Number(keyRaw));
    } else {
      throw new ODataError(400, '-1002', `Malformed key (${keyRaw})`);
    }
    if (!rec) throw new ODataError(404, '-1023', 'No record with that key');
    return rec;
  }

  private field(table: SimTable, name: string): FieldDef {
    const f = table.def.fields.find((x) => x.name === name);
    if (!f) throw new ODataError(400, '8309', `Field '${name}' not found in table '${table.def.name}'`);
    return f;
  }

  private value(f: FieldDef, rec: SimRecord): string | number | null {
    const v = rec.fields[f.name];
    if (v === undefined || v === '') return null;
    if (f.type === 'timestamp') return `${String(v)}Z`;
    return v;
  }

  /** Positions of the records `$filter` keeps, in record order (all of them without a filter). */
  private filtered(table: SimTable, url: URL): IndexList {
    const filter = url.searchParams.get('$filter');
    if (!filter) return table.rows();
    // Key paging (`ROWID gt <last seen>`) generates no record to find its page: positions follow record ids.
    const after = /^\s*(?:ROWID|"ROWID")\s+(gt|ge)\s+(\d+)\s*$/.exec(filter);
    if (after) return table.rowsAfter(Number(after[2]) - (after[1] === 'ge' ? 1 : 0));
    const pred = parseFilter(
      filter,
      [...table.def.fields, ...SYSTEM_FIELDS.map((n) => ({ name: n, type: 'number' as const }))],
      { strictNames: this.ctx.settings.odataStrictNames },
    );
    const hits: number[] = [];
    for (const r of table.scan()) if (pred(this.withSystem(r))) hits.push(r.index);
    return Int32Array.from(hits);
  }

  private withSystem(r: SimRecord): SimRecord {
    // ROWID/ROWMODID are filterable and sortable like fields; build a view only when someone asks for them.
    return { ...r, fields: { ...r.fields, ROWID: r.recordId, ROWMODID: r.modId } };
  }

  private parseInt(url: URL, name: string): number | undefined {
    const v = url.searchParams.get(name);
    if (v === null) return undefined;
    if (!/^\d+$/.test(v)) throw new ODataError(400, '-1002', `Invalid ${name}`);
    return Number(v);
  }

  private select(table: SimTable, url: URL): FieldDef[] {
    const raw = url.searchParams.get('$select');
    const plain = table.def.fields.filter((f) => f.type !== 'container');
    if (!raw) return plain;
    return splitList(raw).map((n) => {
      const name = readName(n, this.ctx.settings.odataStrictNames);
      if (SYSTEM_FIELDS.includes(name)) return { name, type: 'number' as const };
      const f = this.field(table, name);
      if (f.type === 'container') throw new ODataError(400, '-1002', `Container field ${name} cannot be selected`);
      return f;
    });
  }

  private orderBy(table: SimTable, url: URL): { field: FieldDef; descending: boolean }[] {
    const raw = url.searchParams.get('$orderby');
    if (!raw) return [];
    return splitList(raw).map((item) => {
      const m = /^("(?:[^"]|"")*"|\S+)(?:\s+(asc|desc))?$/i.exec(item.trim());
      if (!m) throw new ODataError(400, '-1002', `Invalid $orderby ${item}`);
      const name = readName(m[1]!, this.ctx.settings.odataStrictNames);
      const f = SYSTEM_FIELDS.includes(name) ? { name, type: 'number' as const } : this.field(table, name);
      return { field: f, descending: (m[2] ?? '').toLowerCase() === 'desc' };
    });
  }

  private row(table: SimTable, rec: SimRecord, fields: FieldDef[], dbBase: string): Record<string, unknown> {
    const key = `${table.def.name}(${rec.recordId})`;
    const out: Record<string, unknown> = {
      [this.ann('id')]: `${dbBase}/${encodeURIComponent(table.def.name)}(${rec.recordId})`,
      [this.ann('editLink')]: key,
    };
    for (const f of fields) {
      if (f.name === 'ROWID') out.ROWID = rec.recordId;
      else if (f.name === 'ROWMODID') out.ROWMODID = rec.modId;
      else out[f.name] = this.value(f, rec);
    }
    return out;
  }

  private collection(res: ServerResponse, url: URL, table: SimTable, dbBase: string): void | Promise<void> {
    const fields = this.select(table, url);
    const order = this.orderBy(table, url);
    const top = this.parseInt(url, '$top');
    const skip = this.parseInt(url, '$skip') ?? 0;
    const countParam = url.searchParams.get('$count');
    if (countParam !== null && countParam !== 'true' && countParam !== 'false')
      throw new ODataError(400, '-1002', 'Invalid $count');
    let rows = this.filtered(table, url);
    // Record order is ROWID order already.
    const byRowId = order.length === 1 && order[0]!.field.name === 'ROWID' && !order[0]!.descending;
    if (order.length && !byRowId) {
      const needsSystem = order.some((o) => SYSTEM_FIELDS.includes(o.field.name));
      const filteredRows = rows;
      rows = needsSystem
        ? sortRows(table, rows, order, (r) => this.withSystem(r))
        : url.searchParams.has('$filter')
          ? sortRows(table, rows, order)
          : this.ctx.sorted(table, `odata:${url.searchParams.get('$orderby')}`, () =>
              sortRows(table, filteredRows, order),
            );
    }
    const total = indexListLength(rows);
    const cap = this.ctx.settings.odataPageCap;
    const want = top === undefined ? total - skip : Math.min(top, total - skip);
    const take = Math.max(0, Math.min(want, cap));
    const body: Record<string, unknown> = { [this.ann('context')]: `${dbBase}/$metadata#${table.def.name}` };
    if (countParam === 'true') body[this.ann('count')] = total;
    const value: Record<string, unknown>[] = [];
    // Pages can be 10,000 records: read past the record cache so a big page does not flush it.
    for (let j = skip; j < skip + take; j++) value.push(this.row(table, table.peek(indexAt(rows, j)), fields, dbBase));
    body.value = value;
    if (want > cap) {
      const next = new URL(url.toString());
      next.searchParams.set('$skip', String(skip + cap));
      if (top !== undefined) next.searchParams.set('$top', String(top - cap));
      body[this.ann('nextLink')] = `${dbBase}/${encodeURIComponent(table.def.name)}?${next.searchParams.toString()}`;
    }
    return this.json(res, body);
  }

  private entity(res: ServerResponse, url: URL, table: SimTable, rec: SimRecord, dbBase: string): void | Promise<void> {
    const body = {
      [this.ann('context')]: `${dbBase}/$metadata#${table.def.name}/$entity`,
      ...this.row(table, rec, this.select(table, url), dbBase),
    };
    return this.json(res, body);
  }

  private async rawValue(res: ServerResponse, table: SimTable, rec: SimRecord, f: FieldDef): Promise<void> {
    if (f.type !== 'container') {
      const v = this.value(f, rec);
      return send(this.ctx, res, 'odata', v === null ? 204 : 200, TEXT, v === null ? '' : String(v));
    }
    const info = rec.containers[f.name]!;
    if (info.state === 'empty') return send(this.ctx, res, 'odata', 204, 'text/plain', '');
    const variant = this.ctx.settings.odataValueVariant;
    const disposition: Record<string, string> = this.ctx.settings.odataValueDisposition
      ? { 'Content-Disposition': contentDisposition(info.filename) }
      : {};
    if (variant !== 'bytes') this.ctx.faults.count('container_variant');
    // Neither answer reads the file, so a damaged file does not show in them.
    if (variant === 'filename') return send(this.ctx, res, 'odata', 200, TEXT, info.filename, disposition);
    if (variant === 'empty') return send(this.ctx, res, 'odata', 200, servedContentType(info), '', disposition);
    const key = { seed: this.ctx.config.seed, table: table.def.name, recordIndex: rec.index, field: f.name };
    if (info.state === 'broken' && info.brokenMode === 'http500') {
      this.ctx.faults.count('container_broken');
      return send(this.ctx, res, 'odata', 500, 'text/html; charset=utf-8', htmlError(500));
    }
    const base64 = variant === 'base64';
    const length = base64 ? base64Length(info.size) : info.size;
    res.writeHead(200, {
      'Content-Type': base64 ? TEXT : servedContentType(info),
      'Content-Length': String(length),
      ...disposition,
    });
    this.ctx.containerInFlight++;
    try {
      if (info.state === 'broken') this.ctx.faults.count('container_broken');
      const limit = info.state === 'broken' ? Math.floor(length * 0.6) : Infinity;
      const chunks = containerChunks(key, info);
      await writeBody(this.ctx, res, 'odata', base64 ? base64Chunks(chunks) : chunks, limit);
    } finally {
      this.ctx.containerInFlight--;
    }
  }

  /** Serialises, and with `brokenJsonRate` reproduces FileMaker's JSON defects: raw control characters, bare `?`. */
  private json(res: ServerResponse, body: Record<string, unknown>): void | Promise<void> {
    let text = JSON.stringify(body);
    const s = this.ctx.settings;
    if (s.brokenJsonRate > 0 && this.ctx.faults.rng.chance(s.brokenJsonRate)) {
      const m = /"([^"@][^"]*)":"([^"\\]*)"/.exec(text);
      if (m) {
        this.ctx.faults.count('broken_json');
        const bare = this.ctx.faults.rng.chance(0.5);
        const replacement = bare ? `"${m[1]}":?` : `"${m[1]}":"${m[2]}\n\u0001"`;
        text = text.slice(0, m.index) + replacement + text.slice(m.index + m[0].length);
      }
    }
    return send(this.ctx, res, 'odata', 200, 'application/json; charset=utf-8', text, { 'OData-Version': '4.0' });
  }

  private metadata(req: IncomingMessage, res: ServerResponse, url: URL): void | Promise<void> {
    const db = this.ctx.config.database;
    const tables = this.ctx.ds.tableList;
    const accept = req.headers.accept ?? '';
    const wantsJson =
      url.searchParams.get('$format') === 'json' || (accept.includes('application/json') && !accept.includes('xml'));
    if (wantsJson) {
      const schema: Record<string, unknown> = {};
      const container: Record<string, unknown> = { $Kind: 'EntityContainer' };
      for (const t of tables) {
        const type: Record<string, unknown> = { $Kind: 'EntityType', $Key: ['id'] };
        for (const f of t.def.fields) type[f.name] = { $Type: EDM[f.type], $Nullable: f.name !== 'id' };
        type.ROWID = { $Type: 'Edm.Decimal' };
        type.ROWMODID = { $Type: 'Edm.Decimal' };
        schema[t.def.name] = type;
        container[t.def.name] = { $Collection: true, $Type: `${db}.${t.def.name}` };
      }
      schema[db] = container;
      return this.json(res, { $Version: '4.01', $EntityContainer: `${db}.${db}`, [db]: schema });
    }
    const types = tables.map((t) => {
      const props = t.def.fields
        .map((f) => {
          const nullable = f.name === 'id' ? ' Nullable="false"' : '';
          const ext =
            f.type === 'container' ? '<Annotation Term="com.filemaker.odata.ExternalSecurePath" Bool="false"/>' : '';
          return `<Property Name="${xmlEscape(f.name)}" Type="${EDM[f.type]}"${nullable}>${ext}</Property>`;
        })
        .join('');
      return `<EntityType Name="${xmlEscape(t.def.name)}"><Key><PropertyRef Name="id"/></Key>${props}<Property Name="ROWID" Type="Edm.Decimal"/><Property Name="ROWMODID" Type="Edm.Decimal"/></EntityType>`;
    });
    const sets = tables.map(
      (t) => `<EntitySet Name="${xmlEscape(t.def.name)}" EntityType="${xmlEscape(db)}.${xmlEscape(t.def.name)}"/>`,
    );
    const xml =
      '<?xml version="1.0" encoding="utf-8"?>' +
      '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>' +
      `<Schema Namespace="${xmlEscape(db)}" xmlns="http://docs.oasis-open.org/odata/ns/edm">${types.join('')}` +
      `<EntityContainer Name="${xmlEscape(db)}">${sets.join('')}</EntityContainer></Schema>` +
      '</edmx:DataServices></edmx:Edmx>';
    return send(this.ctx, res, 'odata', 200, 'application/xml; charset=utf-8', xml, { 'OData-Version': '4.0' });
  }
}
