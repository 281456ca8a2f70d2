import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SseBufferLimitError, SseParser, type SseItem } from '../src/parser.js';

type Chunk = string | { hex: string };
type Expected =
  | { event: { type: string; data: string; lastEventId: string } }
  | { retry: number }
  | { comment: string };
interface Vector {
  name: string;
  rule: string;
  chunks: Chunk[];
  expect: Expected[];
  maxBuffer?: number;
  expectError?: 'buffer_limit';
  finalLastEventId?: string;
}

const vectorsPath = fileURLToPath(new URL('../../../../../spec/sse-vectors.json', import.meta.url));
const { vectors } = JSON.parse(readFileSync(vectorsPath, 'utf8')) as { vectors: Vector[] };

function chunkBytes(chunk: Chunk): Uint8Array {
  if (typeof chunk === 'string') return new TextEncoder().encode(chunk);
  const out = new Uint8Array(chunk.hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(chunk.hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

function toExpected(item: SseItem): Expected {
  switch (item.kind) {
    case 'event':
      return { event: { type: item.event.type, data: item.event.data, lastEventId: item.event.lastEventId } };
    case 'retry':
      return { retry: item.retry };
    case 'comment':
      return { comment: item.comment };
  }
}

interface Outcome {
  items: Expected[];
  error: string | undefined;
  lastEventId: string;
}

function run(vector: Vector, chunks: Uint8Array[]): Outcome {
  const parser = new SseParser(vector.maxBuffer === undefined ? {} : { maxBuffer: vector.maxBuffer });
  const items: Expected[] = [];
  let error: string | undefined;
  for (const chunk of chunks) {
    try {
      items.push(...parser.feed(chunk).map(toExpected));
    } catch (e) {
      if (!(e instanceof SseBufferLimitError)) throw e;
      items.push(...parser.take().map(toExpected));
      // Every later feed fails too.
      if (error !== undefined) expect(e.code).toBe(error);
      error = e.code;
    }
  }
  return { items, error, lastEventId: parser.lastEventId };
}

function check(vector: Vector, outcome: Outcome): void {
  expect(outcome.items).toEqual(vector.expect);
  expect(outcome.error).toBe(vector.expectError);
  if (vector.finalLastEventId !== undefined) expect(outcome.lastEventId).toBe(vector.finalLastEventId);
}

describe('spec/sse-vectors.json', () => {
  it('has vectors', () => {
    expect(vectors.length).toBeGreaterThan(50);
  });

  for (const vector of vectors) {
    describe(vector.name, () => {
      const chunks = vector.chunks.map(chunkBytes);
      const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let offset = 0;
      for (const c of chunks) {
        all.set(c, offset);
        offset += c.length;
      }

      it('as chunked', () => check(vector, run(vector, chunks)));
      it('one byte at a time', () => {
        const bytes = Array.from(all, (b) => Uint8Array.of(b));
        check(vector, run(vector, bytes));
      });
      it('whole and every two-piece split', () => {
        check(vector, run(vector, [all]));
        for (let cut = 1; cut < all.length; cut++) {
          check(vector, run(vector, [all.slice(0, cut), all.slice(cut)]));
        }
      });
    });
  }
});

describe('SseParser across connections', () => {
  it('finish() drops the pending block and keeps the last event id', () => {
    const parser = new SseParser();
    const enc = new TextEncoder();
    parser.feed(enc.encode('id: 7\n\nid: 8\ndata: lost'));
    parser.finish();
    expect(parser.lastEventId).toBe('7');
    const items = parser.feed(enc.encode('\ufeffdata: x\n\n'));
    expect(items).toEqual([{ kind: 'event', event: { type: 'message', data: 'x', lastEventId: '7' } }]);
  });
});
