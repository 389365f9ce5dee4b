/**
 * An incremental RFC 4180 tokenizer for the export's metadata CSV. Pure: text in, records out, no Node built-ins.
 *
 * Why not csv-parse: its `info.lines` counts a CRLF inside a quoted cell as two lines (so every line number after
 * a multi-line cell is off), and after a quoting error it cannot resume at the next line. Here a record's `line` is
 * the line it starts on, CRLF/LF/CR each end one line, and a broken record costs that record only.
 *
 * Leniency, on purpose: a `"` inside an unquoted cell is kept as a character (`5" wide`); empty lines are skipped.
 * Strict where it matters: text after a closing quote, or a quote never closed, makes the record an error record.
 */
import { ExportSourceError } from './errors';

export interface CsvRecord {
  /** 1-based line the record starts on (the header is line 1 unless empty lines precede it). */
  line: number;
  cells: string[];
  /** Why the record cannot be trusted; its cells are then partial. */
  error?: string;
}

export interface CsvTokenizerOptions {
  /** Longest record in characters (quotes and line breaks inside cells count); longer throws CSV_ROW_TOO_LONG. */
  maxRecordChars: number;
}

type State = 'cellStart' | 'plain' | 'quoted' | 'quoteInQuoted' | 'skip';

export class CsvTokenizer {
  private line = 1;
  private recordLine = 1;
  private recordChars = 0;
  private cells: string[] = [];
  private cell = '';
  private state: State = 'cellStart';
  private error: string | undefined;
  private prevCR = false;
  private first = true;

  constructor(private readonly opts: CsvTokenizerOptions) {}

  /** Feeds the next piece of text (any split, even inside a CRLF); returns the records it completed. */
  push(text: string): CsvRecord[] {
    const out: CsvRecord[] = [];
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      if (this.first) {
        this.first = false;
        if (c === '\ufeff') continue;
      }
      const lfOfCrlf = c === '\n' && this.prevCR;
      this.prevCR = c === '\r';
      if (lfOfCrlf) {
        // The CR already ended the line (and the record, outside quotes); inside quotes the cell keeps the pair.
        if (this.state === 'quoted') this.take(c);
        continue;
      }
      const isBreak = c === '\r' || c === '\n';
      if (this.recordChars === 0 && this.cells.length === 0 && !isBreak) this.recordLine = this.line;
      switch (this.state) {
        case 'cellStart':
          if (c === '"') {
            this.count();
            this.state = 'quoted';
          } else if (c === ',') {
            this.count();
            this.endCell();
          } else if (isBreak) {
            if (this.recordChars > 0 || this.cells.length > 0) out.push(this.endRecord());
          } else {
            this.take(c);
            this.state = 'plain';
          }
          break;
        case 'plain':
          if (c === ',') {
            this.count();
            this.endCell();
          } else if (isBreak) out.push(this.endRecord());
          else this.take(c);
          break;
        case 'quoted':
          if (c === '"') {
            this.count();
            this.state = 'quoteInQuoted';
          } else this.take(c);
          break;
        case 'quoteInQuoted':
          if (c === '"') {
            this.take(c);
            this.state = 'quoted';
          } else if (c === ',') {
            this.count();
            this.endCell();
          } else if (isBreak) out.push(this.endRecord());
          else {
            this.count();
            this.error = `text after a closing quote in cell ${this.cells.length + 1}`;
            this.state = 'skip';
          }
          break;
        case 'skip':
          if (isBreak) out.push(this.endRecord());
          else this.count();
          break;
      }
      if (isBreak) this.line++;
    }
    return out;
  }

  /** Ends the input: returns the last record (one without a final line break, or an unterminated one). */
  end(): CsvRecord[] {
    if (this.state === 'quoted') {
      this.error = `quoted cell ${this.cells.length + 1} is never closed`;
      return [this.endRecord()];
    }
    if (this.recordChars > 0 || this.cells.length > 0 || this.state === 'skip') return [this.endRecord()];
    return [];
  }

  private count(): void {
    if (++this.recordChars > this.opts.maxRecordChars) {
      throw new ExportSourceError(
        'CSV_ROW_TOO_LONG',
        `the export CSV row starting at line ${this.recordLine} is longer than ${this.opts.maxRecordChars} characters` +
          (this.state === 'quoted' ? ' (a quoted cell that is never closed?)' : ''),
      );
    }
  }

  private take(c: string): void {
    this.count();
    this.cell += c;
  }

  private endCell(): void {
    this.cells.push(this.cell);
    this.cell = '';
    this.state = 'cellStart';
  }

  private endRecord(): CsvRecord {
    this.cells.push(this.cell);
    const record: CsvRecord = { line: this.recordLine, cells: this.cells };
    if (this.error !== undefined) record.error = this.error;
    this.cells = [];
    this.cell = '';
    this.state = 'cellStart';
    this.error = undefined;
    this.recordChars = 0;
    return record;
  }
}
