/**
 * An incremental `text/event-stream` parser following the WHATWG HTML rules ("Parsing an event
 * stream" and "Interpreting an event stream") exactly, byte for byte. It is the TypeScript twin
 * of `crates/herald-proto/src/parse` and runs the same vectors (`spec/sse-vectors.json`).
 *
 * Bytes arrive in arbitrary chunks, so the parser gives the same result however the stream is
 * cut: a BOM, a multi-byte character or a CRLF may straddle two chunks. Lines are split on raw
 * CR/LF bytes (UTF-8 continuation bytes never collide with them) and each field value is decoded
 * with the WHATWG "UTF-8 decode" (invalid sequences become U+FFFD; a BOM inside a value is kept).
 *
 * Memory is bounded: the current incomplete line plus the pending data buffer may not exceed
 * `maxBuffer` bytes. The first violation poisons the parser until {@link SseParser.finish}.
 */

/** A dispatched event, as `EventSource` would fire it. */
export interface SseMessage {
  /** The event type: the `event:` field, or `"message"` when the block set none. */
  readonly type: string;
  readonly data: string;
  /** The last event ID string at dispatch time. */
  readonly lastEventId: string;
}

/** What the parser produces, in stream order. */
export type SseItem =
  | { readonly kind: 'event'; readonly event: SseMessage }
  | { readonly kind: 'retry'; readonly retry: number }
  | { readonly kind: 'comment'; readonly comment: string };

/** Raised when the buffered bytes would exceed the configured limit. */
export class SseBufferLimitError extends Error {
  readonly code = 'buffer_limit';
  constructor(readonly limit: number) {
    super(`SSE parser buffer limit of ${limit} bytes exceeded`);
    this.name = 'SseBufferLimitError';
  }
}

/** Default bound on buffered bytes: 1 MiB, as the Rust parser. */
export const DEFAULT_MAX_BUFFER = 1 << 20;

const CR = 0x0d;
const LF = 0x0a;
const COLON = 0x3a;
const SPACE = 0x20;
const BOM = [0xef, 0xbb, 0xbf] as const;

const FIELD_DATA = bytesOf('data');
const FIELD_EVENT = bytesOf('event');
const FIELD_ID = bytesOf('id');
const FIELD_RETRY = bytesOf('retry');

function bytesOf(ascii: string): Uint8Array {
  const out = new Uint8Array(ascii.length);
  for (let i = 0; i < ascii.length; i++) out[i] = ascii.charCodeAt(i);
  return out;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// `ignoreBOM: true`: the leading BOM is handled by the parser; a BOM inside a value is content.
const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

function decode(bytes: Uint8Array): string {
  return bytes.length === 0 ? '' : decoder.decode(bytes);
}

/** A growable byte buffer. */
class Bytes {
  private buf = new Uint8Array(64);
  length = 0;

  push(chunk: Uint8Array, start = 0, end = chunk.length): void {
    const n = end - start;
    if (n <= 0) return;
    this.reserve(n);
    this.buf.set(chunk.subarray(start, end), this.length);
    this.length += n;
  }

  pushByte(byte: number): void {
    this.reserve(1);
    this.buf[this.length++] = byte;
  }

  view(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  clear(): void {
    this.length = 0;
    if (this.buf.length > 1 << 16) this.buf = new Uint8Array(64);
  }

  private reserve(extra: number): void {
    const need = this.length + extra;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
}

export interface SseParserOptions {
  /** Most bytes held at once (incomplete line plus pending data). Default 1 MiB. */
  maxBuffer?: number;
}

export class SseParser {
  private readonly maxBuffer: number;
  /** BOM bytes matched at the stream start so far, or -1 once the decision is made. */
  private bomMatched = 0;
  private readonly line = new Bytes();
  private afterCr = false;
  private readonly data = new Bytes();
  private eventType = '';
  private idBuffer = '';
  private lastId = '';
  private retryMs: number | undefined;
  private poisoned: SseBufferLimitError | undefined;
  private items: SseItem[] = [];

  constructor(options: SseParserOptions = {}) {
    this.maxBuffer = options.maxBuffer ?? DEFAULT_MAX_BUFFER;
  }

  /** The last event ID string: what a reconnecting client sends as `Last-Event-ID`. */
  get lastEventId(): string {
    return this.lastId;
  }

  /** The latest accepted `retry:` value in milliseconds. */
  get retry(): number | undefined {
    return this.retryMs;
  }

  /** Bytes currently buffered (incomplete line plus pending data). */
  get bufferedLength(): number {
    return this.line.length + this.data.length;
  }

  /**
   * Feeds a chunk and returns the items it completed. On a buffer-limit error, items completed
   * before the offending line are still available through {@link SseParser.take} and every later
   * call throws the same error.
   */
  feed(chunk: Uint8Array): SseItem[] {
    if (this.poisoned) throw this.poisoned;
    try {
      this.feedBytes(chunk);
    } catch (error) {
      if (error instanceof SseBufferLimitError) this.poison(error);
      throw error;
    }
    return this.take();
  }

  /** Items completed so far and not yet returned. */
  take(): SseItem[] {
    const out = this.items;
    this.items = [];
    return out;
  }

  /**
   * Ends the current stream (the connection closed): the incomplete line and undispatched block
   * are dropped, as the spec requires; the last event ID and retry value are kept, and the next
   * stream may start with its own BOM.
   */
  finish(): void {
    this.bomMatched = 0;
    this.line.clear();
    this.afterCr = false;
    this.discardBlock();
    this.poisoned = undefined;
  }

  /** Sets the last event ID, e.g. when resuming from a stored position. */
  setLastEventId(id: string): void {
    this.lastId = id;
    this.idBuffer = id;
  }

  private poison(error: SseBufferLimitError): void {
    this.poisoned = error;
    this.line.clear();
    this.discardBlock();
  }

  private discardBlock(): void {
    this.data.clear();
    this.eventType = '';
    this.idBuffer = this.lastId;
  }

  private feedBytes(chunk: Uint8Array): void {
    let start = 0;
    if (this.bomMatched >= 0) {
      while (this.bomMatched < 3 && start < chunk.length) {
        if (chunk[start] === BOM[this.bomMatched]) {
          this.bomMatched++;
          start++;
        } else {
          // Mismatch: the held-back bytes were content after all.
          const held = Uint8Array.from(BOM.slice(0, this.bomMatched));
          this.bomMatched = -1;
          this.feedLines(held, 0);
          break;
        }
      }
      if (this.bomMatched === 3) this.bomMatched = -1;
      if (this.bomMatched >= 0) return; // chunk exhausted while matching
    }
    this.feedLines(chunk, start);
  }

  private feedLines(bytes: Uint8Array, start: number): void {
    let i = start;
    const n = bytes.length;
    while (i < n) {
      if (this.afterCr) {
        this.afterCr = false;
        if (bytes[i] === LF) {
          i++;
          continue;
        }
      }
      let end = i;
      while (end < n && bytes[end] !== LF && bytes[end] !== CR) end++;
      if (end === n) {
        this.checkLineFits(n - i);
        this.line.push(bytes, i, n);
        return;
      }
      this.afterCr = bytes[end] === CR;
      this.checkLineFits(end - i);
      if (this.line.length === 0) {
        this.interpretLine(bytes.subarray(i, end));
      } else {
        this.line.push(bytes, i, end);
        const whole = this.line.view().slice();
        this.line.clear();
        this.interpretLine(whole);
      }
      i = end + 1;
    }
  }

  private checkLineFits(extra: number): void {
    if (this.line.length + this.data.length + extra > this.maxBuffer) {
      throw new SseBufferLimitError(this.maxBuffer);
    }
  }

  private interpretLine(line: Uint8Array): void {
    if (line.length === 0) {
      this.dispatch();
      return;
    }
    if (line[0] === COLON) {
      this.items.push({ kind: 'comment', comment: decode(stripOneSpace(line.subarray(1))) });
      return;
    }
    const colon = line.indexOf(COLON);
    const name = colon < 0 ? line : line.subarray(0, colon);
    const value = colon < 0 ? new Uint8Array(0) : stripOneSpace(line.subarray(colon + 1));
    if (equalBytes(name, FIELD_DATA)) {
      if (this.data.length + value.length + 1 > this.maxBuffer) {
        throw new SseBufferLimitError(this.maxBuffer);
      }
      this.data.push(value);
      this.data.pushByte(LF);
    } else if (equalBytes(name, FIELD_EVENT)) {
      this.eventType = decode(value);
    } else if (equalBytes(name, FIELD_ID)) {
      // An id containing NUL is ignored entirely.
      if (value.indexOf(0) < 0) this.idBuffer = decode(value);
    } else if (equalBytes(name, FIELD_RETRY)) {
      const ms = parseRetry(value);
      if (ms !== undefined) {
        this.retryMs = ms;
        this.items.push({ kind: 'retry', retry: ms });
      }
    }
  }

  private dispatch(): void {
    this.lastId = this.idBuffer;
    if (this.data.length === 0) {
      this.eventType = '';
      return;
    }
    // Every data field appended an LF; drop the last one.
    const bytes = this.data.view().subarray(0, this.data.length - 1);
    const data = decode(bytes);
    this.data.clear();
    const type = this.eventType === '' ? 'message' : this.eventType;
    this.eventType = '';
    this.items.push({ kind: 'event', event: { type, data, lastEventId: this.lastId } });
  }
}

function stripOneSpace(value: Uint8Array): Uint8Array {
  return value[0] === SPACE ? value.subarray(1) : value;
}

/** `retry:` is honoured only for a non-empty run of ASCII digits that is a safe integer. */
function parseRetry(value: Uint8Array): number | undefined {
  if (value.length === 0) return undefined;
  let ms = 0;
  for (const byte of value) {
    if (byte < 0x30 || byte > 0x39) return undefined;
    ms = ms * 10 + (byte - 0x30);
    if (ms > Number.MAX_SAFE_INTEGER) return undefined;
  }
  return ms;
}
