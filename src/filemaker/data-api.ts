/**
 * The Data API: product and database information, layout metadata, records by id, finds and writes. Every call but
 * the first two goes through the session's token (`Session.dataApi`).
 */
import {
  type FileMakerRecord,
  errorForFmCode,
  errorForStatus,
  exactFindValue,
  isObject,
  parseDataInfo,
  parseEnvelope,
  parseRecords,
  pathSegment,
} from './responses';
import type { Session } from './session';
import type { Transport } from './transport';

export interface LayoutField {
  readonly name: string;
  /** `normal`, `calculation`, `summary`, ... as FileMaker reports it. */
  readonly type: string | undefined;
  /** `text`, `number`, `date`, `time`, `timeStamp`, `container`. */
  readonly result: string | undefined;
}

export interface LayoutMetadata {
  readonly fields: readonly LayoutField[];
  /** Portal object name → field names (`Table::Field`). */
  readonly portals: Readonly<Record<string, readonly string[]>>;
}

export interface FindOptions {
  /** Ids per `_find` (at most FIND_MAX_IDS, the default). */
  chunkSize?: number;
  /**
   * Portals to return with their row limit (the Data API returns 50 portal rows unless told otherwise). None when
   * absent: without a `portal` list the Data API returns every portal of the layout, and the engine maps no portal
   * (a patient's contact details are read from their own table): the clinic's API_Contacts layout would send about
   * four contact detail rows with every patient.
   */
  portals?: Readonly<Record<string, number>>;
  /** 0 US (default), 1 file locale, 2 ISO 8601. */
  dateFormats?: 0 | 1 | 2;
  signal?: AbortSignal;
  /** Every record the find returns, also those whose id was not asked for (the caller matches by record id). */
  keepUnrequested?: boolean;
}

/**
 * Ids per `_find`: one find request per id, sent in the POST body (no URL length limit applies), and the found set
 * asked for in one page (`limit`, which has no documented maximum). A core chunk's records (500 by default) come in
 * one request instead of five at 100 ids each: at seed counts 31 finds for the 15,149 appointments instead of 155,
 * each 40 ms of latency the chunk no longer waits for in turn. Capped so that one answer stays a few MB (about 700
 * bytes a record) and one find's request list stays within what a FileMaker host is asked for in practice.
 */
const FIND_MAX_IDS = 1000;

export class DataApi {
  constructor(
    private readonly t: Transport,
    private readonly s: Session,
  ) {}

  async productInfo(): Promise<Record<string, unknown>> {
    const what = 'productInfo';
    const res = await this.t.send('productInfo', what, {
      method: 'GET',
      url: `${this.t.dataBase}/productInfo`,
      headers: { accept: 'application/json' },
      idempotent: true,
    });
    const env = parseEnvelope(this.t.jsonOf(res, what));
    if (env === undefined) throw this.t.fail(errorForStatus(res.status, what, 'no Data API envelope'), what);
    if (env.fmCode !== '0') throw this.t.fail(errorForFmCode(env.fmCode, res.status, what), what);
    const info = env.response['productInfo'];
    return isObject(info) ? info : env.response;
  }

  async databaseNames(): Promise<string[]> {
    const what = 'databaseNames';
    const res = await this.s.authorized(what, async (authorization) => {
      const r = await this.t.send('databaseNames', what, {
        method: 'GET',
        url: `${this.t.dataBase}/databases`,
        headers: { authorization, accept: 'application/json' },
        idempotent: true,
      });
      return { res: r, refused: r.status === 401 };
    });
    const env = parseEnvelope(this.t.jsonOf(res, what));
    if (env === undefined) throw this.t.fail(errorForStatus(res.status, what, 'no Data API envelope'), what);
    if (env.fmCode !== '0') throw this.t.fail(errorForFmCode(env.fmCode, res.status, what), what);
    const dbs = env.response['databases'];
    if (!Array.isArray(dbs)) throw this.t.fail(errorForStatus(res.status, what, 'no databases list'), what);
    return dbs.flatMap((d) => (isObject(d) && typeof d['name'] === 'string' ? [d['name']] : []));
  }

  async layoutMetadata(layout: string): Promise<LayoutMetadata> {
    const what = `metadata of layout "${layout}"`;
    const env = await this.s.dataApi('layoutMetadata', what, {
      method: 'GET',
      path: `/layouts/${pathSegment(layout)}`,
      idempotent: true,
    });
    const meta = env.response['fieldMetaData'];
    if (!Array.isArray(meta)) throw this.t.fail(errorForStatus(200, what, 'no fieldMetaData'), what);
    const fields: LayoutField[] = meta.flatMap((f) =>
      isObject(f) && typeof f['name'] === 'string'
        ? [{ name: f['name'], type: str(f['type']), result: str(f['result']) }]
        : [],
    );
    const portals: Record<string, string[]> = {};
    const pm = env.response['portalMetaData'];
    if (isObject(pm)) {
      for (const [name, list] of Object.entries(pm)) {
        portals[name] = Array.isArray(list)
          ? list.flatMap((f) => (isObject(f) && typeof f['name'] === 'string' ? [f['name']] : []))
          : [];
      }
    }
    return { fields, portals };
  }

  async layoutFields(layout: string): Promise<string[]> {
    return (await this.layoutMetadata(layout)).fields.map((f) => f.name);
  }

  async layoutTotalCount(layout: string): Promise<number> {
    const what = `record count of layout "${layout}"`;
    const env = await this.s.dataApi('records', what, {
      method: 'GET',
      path: `/layouts/${pathSegment(layout)}/records?_limit=1`,
      idempotent: true,
      // An empty table answers "record is missing" or "no records" rather than an empty list.
      accept: ['101', '401'],
    });
    if (env.fmCode !== '0') return 0;
    const total = parseDataInfo(env.response).totalRecordCount;
    if (total === undefined) throw this.t.fail(errorForStatus(200, what, 'no dataInfo.totalRecordCount'), what);
    return total;
  }

  async getRecord(layout: string, recordId: string, opts?: { signal?: AbortSignal }): Promise<FileMakerRecord>;
  /** With `missingIsAbsent`, a record FileMaker answers 101 (record is missing) for is undefined, not an error. */
  async getRecord(
    layout: string,
    recordId: string,
    opts: { signal?: AbortSignal; missingIsAbsent: true },
  ): Promise<FileMakerRecord | undefined>;
  async getRecord(
    layout: string,
    recordId: string,
    opts: { signal?: AbortSignal; missingIsAbsent?: boolean } = {},
  ): Promise<FileMakerRecord | undefined> {
    const what = `record ${recordId} on layout "${layout}"`;
    const env = await this.s.dataApi('getRecord', what, {
      method: 'GET',
      // No portal, as for a find (FindOptions.portals): the engine maps none.
      path: `/layouts/${pathSegment(layout)}/records/${pathSegment(recordId)}?portal=${encodeURIComponent('[]')}`,
      idempotent: true,
      signal: opts.signal,
      ...(opts.missingIsAbsent ? { accept: ['101'] } : {}),
    });
    if (env.fmCode === '101') return undefined;
    const recs = parseRecords(env.response);
    const rec = recs?.[0];
    if (rec === undefined) throw this.t.fail(errorForStatus(200, what, 'no record in the answer'), what);
    return rec;
  }

  /**
   * The records with these record ids, by record id. They are read as one batch, by a find on their ids; each record
   * the find does not return (an id a find cannot match, or one changed since the manifest) is then read alone by its
   * record id. A record is absent from the result only when FileMaker answers that record id with 101 (record is
   * missing): it is gone. The id decides nothing: records the find returns for other record ids are not taken.
   */
  async recordsById(
    layout: string,
    idField: string,
    wanted: readonly { recordId: string; id: string }[],
    opts: FindOptions = {},
  ): Promise<Map<string, FileMakerRecord>> {
    const want = new Set(wanted.map((w) => w.recordId));
    const out = new Map<string, FileMakerRecord>();
    const found = await this.findByIds(
      layout,
      idField,
      wanted.map((w) => w.id),
      { ...opts, keepUnrequested: true },
    );
    for (const r of found) if (want.has(r.recordId)) out.set(r.recordId, r);
    for (const w of wanted) {
      if (out.has(w.recordId)) continue;
      if (!/^\d+$/.test(w.recordId)) {
        // A manifest from a server that lists no record ids: there, an id is one record.
        const byId = found.find((r) => {
          const v = r.fieldData[idField];
          return (typeof v === 'string' || typeof v === 'number') && String(v).trim().toLowerCase() === w.id;
        });
        if (byId) out.set(w.recordId, byId);
        continue;
      }
      const r = await this.getRecord(layout, w.recordId, { signal: opts.signal, missingIsAbsent: true });
      if (r !== undefined) out.set(w.recordId, r);
    }
    return out;
  }

  async findByIds(
    layout: string,
    idField: string,
    ids: readonly string[],
    opts: FindOptions = {},
  ): Promise<FileMakerRecord[]> {
    const chunkSize = Math.max(1, Math.min(opts.chunkSize ?? FIND_MAX_IDS, FIND_MAX_IDS));
    const unique = [...new Set(ids.filter((id) => typeof id === 'string' && id !== ''))];
    const out: FileMakerRecord[] = [];
    for (let i = 0; i < unique.length; i += chunkSize) {
      out.push(...(await this.findChunk(layout, idField, unique.slice(i, i + chunkSize), opts)));
    }
    return out;
  }

  private async findChunk(
    layout: string,
    idField: string,
    ids: readonly string[],
    opts: FindOptions,
  ): Promise<FileMakerRecord[]> {
    const what = `find of ${ids.length} ids on layout "${layout}"`;
    const found = new Map<string, FileMakerRecord>();
    let offset = 1;
    // The found set is defined by the ids alone, so paging it is stable. More hits than ids happen only when the
    // source has duplicate ids; they are all fetched (and left for the caller to flag) rather than cut off by `limit`.
    for (;;) {
      const body: Record<string, unknown> = {
        query: ids.map((id) => ({ [idField]: exactFindValue(id) })),
        limit: ids.length,
        offset,
      };
      // An empty list asks for no portal at all.
      const portals = opts.portals ?? {};
      body['portal'] = Object.keys(portals);
      for (const [name, limit] of Object.entries(portals)) body[`limit.${name}`] = limit;
      if (opts.dateFormats !== undefined) body['dateformats'] = opts.dateFormats;
      const env = await this.s.dataApi('find', what, {
        method: 'POST',
        path: `/layouts/${pathSegment(layout)}/_find`,
        body,
        // A find changes nothing, so a broken connection may resend it.
        idempotent: true,
        accept: ['401'],
        signal: opts.signal,
      });
      if (env.fmCode === '401') break; // no hits: an empty result, not a failure
      const recs = parseRecords(env.response);
      if (recs === undefined) throw this.t.fail(errorForStatus(200, what, 'records missing or malformed'), what);
      for (const r of recs) found.set(r.recordId, r);
      const foundCount = parseDataInfo(env.response).foundCount;
      if (recs.length === 0 || foundCount === undefined || found.size >= foundCount) break;
      offset += recs.length;
    }
    if (opts.keepUnrequested) return [...found.values()];
    const wanted = new Set(ids.map((id) => id.toLowerCase()));
    const result: FileMakerRecord[] = [];
    let stray = 0;
    for (const r of found.values()) {
      const v = r.fieldData[idField];
      if ((typeof v === 'string' || typeof v === 'number') && wanted.has(String(v).toLowerCase())) result.push(r);
      else stray++;
    }
    if (stray > 0) this.t.log.warn({ layout, stray }, 'find returned records whose id was not requested; dropped');
    return result;
  }

  async patchRecord(
    layout: string,
    recordId: string,
    fieldData: Record<string, unknown>,
    modId?: string,
  ): Promise<string> {
    const what = `update of record ${recordId} on layout "${layout}"`;
    const body: Record<string, unknown> = { fieldData };
    if (modId !== undefined) body['modId'] = modId;
    const env = await this.s.dataApi('patch', what, {
      method: 'PATCH',
      path: `/layouts/${pathSegment(layout)}/records/${pathSegment(recordId)}`,
      body,
      idempotent: false,
    });
    const newModId = env.response['modId'];
    if (typeof newModId !== 'string' && typeof newModId !== 'number') {
      throw this.t.fail(errorForStatus(200, what, 'no modId in the answer'), what);
    }
    return String(newModId);
  }
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
