import { afterEach, describe, expect, it, vi } from 'vitest';
import { RecentIds, TabSequence, type EventStep, type PositionStep, type TabSequenceOptions } from '../src/sequence.js';

const ev = (after: string, id: string): EventStep => ({ kind: 'event', after, id, hasId: true, type: 'tick', data: id });
const pos = (after: string, id: string): PositionStep => ({ kind: 'position', after, id });

function sequence(options?: TabSequenceOptions): { seq: TabSequence; taken: string[] } {
  const taken: string[] = [];
  const seq = new TabSequence('', (step) => taken.push(step.hasId ? step.id : `${step.type}@${step.id}`), options);
  seq.lead();
  return { seq, taken };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('TabSequence', () => {
  it('takes a stream in order and drops what a second stream repeats', () => {
    const { seq, taken } = sequence();
    // The old leader's relays …
    for (const [after, id] of [['', 'a'], ['a', 'b'], ['b', 'c']] as const) seq.offer(ev(after, id));
    // … and the new leader's stream, which resumed from `a` and replays b and c.
    for (const [after, id] of [['a', 'b'], ['b', 'c'], ['c', 'd']] as const) seq.offer(ev(after, id));
    expect(taken).toEqual(['a', 'b', 'c', 'd']);
    expect(seq.head).toBe('d');
    expect(seq.waiting).toBe(0);
  });

  it('holds a step that overtook its predecessor until the predecessor arrives', () => {
    const { seq, taken } = sequence();
    seq.offer(ev('', 'a'));
    // The new leader's relays of c and d arrive before the old leader's late b.
    seq.offer(ev('b', 'c'));
    seq.offer(ev('c', 'd'));
    expect(taken).toEqual(['a']);
    expect(seq.waiting).toBe(2);
    seq.offer(ev('a', 'b'));
    expect(taken).toEqual(['a', 'b', 'c', 'd']);
    expect(seq.waiting).toBe(0);
    // The old leader's late relays of the same events change nothing.
    seq.offer(ev('b', 'c'));
    seq.offer(ev('c', 'd'));
    expect(taken).toEqual(['a', 'b', 'c', 'd']);
  });

  it('an event without an id of its own (herald.missed) is never taken for a duplicate', () => {
    const { seq, taken } = sequence();
    seq.offer(ev('', 'a'));
    // Its meta id is the stream's last event id, `a`, which was taken already.
    seq.offer({ kind: 'event', after: 'a', id: 'a', hasId: false, type: 'herald.missed', data: '{}' });
    seq.offer(ev('a', 'b'));
    expect(taken).toEqual(['a', 'herald.missed@a', 'b']);
  });

  it('an event whose predecessor the hub skipped (after herald.missed) is taken, not held', () => {
    const { seq, taken } = sequence();
    for (const [after, id] of [['', 'a'], ['a', 'b'], ['b', 'c']] as const) seq.offer(ev(after, id));
    // A stream that resumed from `a` too late: herald.missed, then live events after `a`.
    seq.offer(ev('a', 'x'));
    expect(taken).toEqual(['a', 'b', 'c', 'x']);
  });

  it('moves the resume position with id-only blocks right after its head, never back', () => {
    const { seq } = sequence();
    seq.offer(ev('', 'a'));
    seq.offer(pos('a', 'p1'));
    expect(seq.position).toBe('p1');
    seq.offer(ev('a', 'b'));
    expect(seq.position).toBe('b');
    seq.offer(pos('a', 'p1')); // a late relay of the old position
    expect(seq.position).toBe('b');
    expect(seq.head).toBe('b');
  });

  it('a tab that has not heard from a leader joins where the leader is', () => {
    const taken: string[] = [];
    const seq = new TabSequence('stored-id', (step) => taken.push(step.id));
    seq.join('h', 'p');
    expect([seq.head, seq.position]).toEqual(['h', 'p']);
    seq.join('other', 'other'); // later announcements do not move it
    seq.offer(ev('h', 'i'));
    expect(taken).toEqual(['i']);
  });

  it('keeps a bounded window of ids', () => {
    const window = new RecentIds(3);
    for (const id of ['a', 'b', 'c', 'd', 'e']) window.add(id);
    expect(window.size).toBe(3);
    expect(['a', 'b', 'c', 'd', 'e'].map((id) => window.has(id))).toEqual([false, false, true, true, true]);

    const { seq, taken } = sequence({ window: 8 });
    let after = '';
    for (let i = 0; i < 5000; i++) {
      const id = `1732460000000-${i}`;
      seq.offer(ev(after, id));
      after = id;
    }
    expect(taken).toHaveLength(5000);
    expect(seq.waiting).toBe(0);
  });

  it('gives up on a predecessor that never comes: after the gap timeout the step is taken', () => {
    vi.useFakeTimers();
    const { seq, taken } = sequence({ gapTimeoutMs: 1000 });
    seq.offer(ev('', 'a'));
    seq.offer(ev('lost', 'c'));
    seq.offer(ev('c', 'd'));
    seq.offer(pos('lost-too', 'p'));
    vi.advanceTimersByTime(999);
    expect(taken).toEqual(['a']);
    vi.advanceTimersByTime(1);
    expect(taken).toEqual(['a', 'c', 'd']);
    expect(seq.waiting).toBe(0);
    // A position after a missing event is no safe place to resume from: the head is.
    expect(seq.position).toBe('d');
  });

  it('gives up at once when too many steps wait', () => {
    const { seq, taken } = sequence({ maxWaiting: 2 });
    seq.offer(ev('', 'a'));
    seq.offer(ev('x', 'y'));
    seq.offer(ev('y', 'z'));
    expect(taken).toEqual(['a']);
    seq.offer(ev('z', 'w'));
    expect(taken).toEqual(['a', 'y', 'z', 'w']);
    expect(seq.waiting).toBe(0);
  });
});

describe('TabSequence before joining a leader', () => {
  const place = (head: string, recent: string[], prev?: string) =>
    prev === undefined ? { head, id: head, recent } : { head, id: head, recent, prev };

  function follower(options?: TabSequenceOptions): { seq: TabSequence; taken: string[] } {
    const taken: string[] = [];
    return { seq: new TabSequence('', (step) => taken.push(step.id), options), taken };
  }

  it('holds relays until a status places it, then takes those the leader took after them in order', () => {
    const { seq, taken } = follower();
    // Relays of b and c arrive before the leader's answer (which was sent after them).
    seq.offer(ev('a', 'b'), 'L1');
    seq.offer(ev('b', 'c'), 'L1');
    expect(taken).toEqual([]);
    seq.announce('L1', place('c', ['a', 'b', 'c']), false);
    expect(taken).toEqual(['b', 'c']);
    seq.offer(ev('c', 'd'), 'L1');
    expect(taken).toEqual(['b', 'c', 'd']);
  });

  it('after a hand-over, waits for the goodbye of the leader before (prev) and starts at its place', () => {
    const { seq, taken } = follower();
    // The new leader L2 took over from L1 at c; L1's relays are still on their way.
    seq.announce('L2', place('c', ['a', 'b', 'c'], 'L1'), false);
    seq.offer(ev('c', 'd'), 'L2');
    expect(seq.hasJoined).toBe(false);
    seq.announce('L1', place('', []), false); // L1's status, sent when it started
    seq.offer(ev('', 'a'), 'L1');
    seq.offer(ev('a', 'b'), 'L1');
    seq.offer(ev('b', 'c'), 'L1');
    expect(seq.hasJoined).toBe(false);
    seq.announce('L1', place('c', ['a', 'b', 'c']), true); // its goodbye
    expect(seq.hasJoined).toBe(true);
    expect(taken).toEqual(['a', 'b', 'c', 'd']);
  });

  it('joins at once on the answer to its hello from a tab that already led', () => {
    const { seq, taken } = follower();
    seq.announce('L2', place('c', ['a', 'b', 'c']), false, true); // the answer to this tab
    seq.offer(ev('c', 'd'), 'L2');
    expect(taken).toEqual(['d']);
  });

  it('but not when a status before the answer named a previous leader that has not said goodbye', () => {
    const { seq, taken } = follower();
    seq.announce('L2', place('c', ['a', 'b', 'c'], 'L1'), false); // L2's first status, for every tab
    seq.announce('L2', place('c', ['a', 'b', 'c']), false, true); // then the answer to this tab
    seq.offer(ev('c', 'd'), 'L2');
    expect(taken).toEqual([]);
    seq.announce('L1', place('', []), false);
    for (const [after, id] of [['', 'a'], ['a', 'b'], ['b', 'c']] as const) seq.offer(ev(after, id), 'L1');
    expect(taken).toEqual([]);
    seq.announce('L1', place('c', ['a', 'b', 'c']), true);
    expect(seq.hasJoined).toBe(true);
    expect(taken).toEqual(['a', 'b', 'c', 'd']);
  });

  it('a goodbye it never gets (it opened after it) is waited for no longer than the gap timeout', () => {
    vi.useFakeTimers();
    const { seq, taken } = follower({ gapTimeoutMs: 1000 });
    seq.announce('L2', place('c', ['a', 'b', 'c'], 'L1'), false);
    seq.offer(ev('c', 'd'), 'L2');
    vi.advanceTimersByTime(999);
    expect(taken).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(taken).toEqual(['d']);
  });

  it('a tab that leads before it is placed starts at the earliest place it heard', () => {
    const { seq } = follower();
    seq.announce('L2', place('c', ['a', 'b', 'c'], 'L1'), true);
    seq.lead();
    expect([seq.hasJoined, seq.head, seq.position]).toEqual([true, 'c', 'c']);
  });

  it('a tab that joins takes the leader’s latest state once, before the steps it heard earlier, and never dispatches it', () => {
    const log: string[] = [];
    const seq = new TabSequence('', (step) => log.push(`take ${step.id}`), {
      seed: (latest) => log.push(`seed ${latest.map((e) => `${e.type}=${e.data}`).join(',')}`),
    });
    // A relay that overtook the answer to this tab's hello (it follows the answer's place).
    seq.offer(ev('c', 'd'), 'L1');
    const latest = [{ type: 'unread', data: '3', id: 'b', at: 1 }, { type: 'tick', data: 'c', id: 'c', at: 2 }];
    seq.announce('L1', { head: 'c', id: 'c', recent: ['a', 'b', 'c'], latest }, false, true);
    expect(log).toEqual(['seed unread=3,tick=c', 'take d']);
    // Joined: later announcements' state is not taken again.
    seq.announce('L1', { head: 'd', id: 'd', recent: ['b', 'c', 'd'], latest }, false, true);
    seq.offer(ev('d', 'e'), 'L1');
    expect(log).toEqual(['seed unread=3,tick=c', 'take d', 'take e']);
  });

  it('a tab placed by a status without state (the leader’s stream opened) takes the state from the answer that follows', () => {
    const log: string[] = [];
    const seq = new TabSequence('', (step) => log.push(`take ${step.id}`), {
      seed: (latest) => log.push(`seed ${latest.map((e) => `${e.type}=${e.data}`).join(',')}`),
    });
    seq.announce('L1', { head: 'c', id: 'c', recent: ['a', 'b', 'c'] }, false); // "open", for every tab
    seq.offer(ev('c', 'd'), 'L1');
    expect(log).toEqual(['take d']);
    const latest = [{ type: 'unread', data: '3', id: 'b', at: 1 }];
    seq.announce('L1', { head: 'd', id: 'd', recent: ['b', 'c', 'd'], latest }, false, true);
    expect(log).toEqual(['take d', 'seed unread=3']);
    seq.announce('L1', { head: 'd', id: 'd', recent: ['b', 'c', 'd'], latest }, false, true);
    expect(log).toEqual(['take d', 'seed unread=3']);
  });
});
