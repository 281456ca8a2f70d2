/**
 * Cross-tab: the leader's `latest()` state, for a tab that joins its stream. Retained values
 * reach only a stream that opens without a resume point, i.e. the leader's; a tab that joins
 * later takes them (and every other latest event) from the leader instead, as state: they are
 * not dispatched to its listeners.
 */
import type { LatestEntry } from './sequence.js';
import type { EventMeta } from './types.js';

/**
 * Most bytes of a snapshot: the UTF-8 length of the names, ids and data of its events. The
 * newest events come first; one that does not fit is left out (that tab gets the name's next
 * event as usual).
 */
export const MAX_SEED_BYTES = 256 * 1024;

/** UTF-8 length of `s` (without encoding it). */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/**
 * The latest events (`metas`, least recently received first) as a snapshot, oldest first,
 * at most `maxBytes` of them (see `MAX_SEED_BYTES`); names in `skip` are left out.
 */
export function snapshotLatest(
  metas: readonly EventMeta[],
  skip: ReadonlySet<string>,
  maxBytes = MAX_SEED_BYTES,
): LatestEntry[] {
  const out: LatestEntry[] = [];
  let bytes = 0;
  for (let i = metas.length - 1; i >= 0; i--) {
    const meta = metas[i];
    if (!meta || skip.has(meta.event)) continue;
    const size = utf8Length(meta.event) + utf8Length(meta.id) + utf8Length(meta.raw);
    if (bytes + size > maxBytes) continue;
    bytes += size;
    out.push({ type: meta.event, data: meta.raw, id: meta.id, at: meta.receivedAt });
  }
  return out.reverse();
}
