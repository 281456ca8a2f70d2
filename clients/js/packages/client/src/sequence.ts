/**
 * Cross-tab ordering: every tab, the leader included, passes each block of a leader's stream
 * through one `TabSequence`, which dispatches every event once and in the hub's order, whichever
 * stream the block came from and whenever it arrives.
 *
 * Why: around a hand-over a tab hears two streams. The old leader's relays may still be in
 * flight on the BroadcastChannel while the new leader's stream replays from the position the new
 * leader had when it sent its request, so the same event comes twice; and BroadcastChannel keeps
 * each sender's order but not the order between senders, so the new leader's relays can overtake
 * the old leader's late ones.
 *
 * How: hub ids are opaque (never compared), so every step names the event before it in the
 * stream that produced it (`after`). Every stream of one subscription carries the same events in
 * the same order, so an event has one predecessor whichever stream delivers it. A step is taken
 * when it follows the newest event taken (`head`); an event whose id was taken already is a
 * duplicate; a step that follows an event not seen yet waits for it. A bounded window of the
 * ids taken recently is enough: the streams overlap only by the few events in flight during a
 * hand-over.
 */

/** A block with data, as a leader's stream delivered it. */
export interface EventStep {
  kind: 'event';
  /**
   * Id of the event before this one in the same stream; `''` when there was none, e.g. in a
   * stream that started without a resume id (from the present, so its place is unknown).
   */
  after: string;
  /** The stream's last event id after this block: listeners' `meta.id`. */
  id: string;
  /** Whether the block carried its own id; `herald.missed`, for one, does not. */
  hasId: boolean;
  type: string;
  data: string;
}

/** An id-only block: the hub's position, with no event between `after` and it. */
export interface PositionStep {
  kind: 'position';
  after: string;
  id: string;
}

export type StreamStep = EventStep | PositionStep;

/** A leader's place, as its status or goodbye announces it (see `WirePlace` in `crosstab.ts`). */
export interface Place {
  head: string;
  id: string;
  /** The ids it took most recently, oldest first. */
  recent: readonly string[];
  /** The leader it took over from, if any. */
  prev?: string;
  /**
   * The leader's latest event of each name at this place (its `latest()` state), oldest first:
   * a tab that joins here starts from it (see `TabSequenceOptions.seed`).
   */
  latest?: readonly LatestEntry[];
}

/** One name's latest event, as a leader tells a tab that joins (see `Place.latest`). */
export interface LatestEntry {
  type: string;
  data: string;
  /** Its `meta.id`. */
  id: string;
  /** Its `meta.receivedAt` in the leader. */
  at: number;
}

/** What a tab that has not joined yet knows of a leader. */
interface KnownLeader {
  /** Its first announcement (the earliest place it told this tab). */
  place: Place | undefined;
  /** It said goodbye: nothing more comes from it. */
  gone: boolean;
  /** This tab heard from it (not only of it, as someone's `prev`). */
  heard: boolean;
}

export interface TabSequenceOptions {
  /** Ids of recently taken events kept to recognise duplicates. Default 1024. */
  window?: number;
  /** Steps that may wait for a missing predecessor; beyond this the gap is given up. Default 1024. */
  maxWaiting?: number;
  /** How long a step waits for a predecessor that does not come before it is taken anyway. Default 1000 ms. */
  gapTimeoutMs?: number;
  /**
   * Called when this tab joins at a place that carries the leader's latest state, before the
   * steps heard earlier are taken: state to keep, not events to dispatch.
   */
  seed?: (latest: readonly LatestEntry[]) => void;
}

/** A set of the last `capacity` ids added: memory stays bounded however long the stream runs. */
export class RecentIds {
  private readonly ids = new Set<string>();

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.ids.size;
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  add(id: string): void {
    if (this.ids.has(id)) return;
    this.ids.add(id);
    // A Set iterates in insertion order: the first one is the oldest.
    if (this.ids.size > this.capacity) this.ids.delete(this.ids.values().next().value as string);
  }

  clear(): void {
    this.ids.clear();
  }

  /** The last `limit` ids added, oldest first. */
  last(limit: number): string[] {
    const all = [...this.ids];
    return all.slice(Math.max(0, all.length - limit));
  }
}

interface Waiting {
  step: StreamStep;
  since: number;
  done: boolean;
}

export class TabSequence {
  /** The newest event taken in order (`''`: none yet). */
  private headId = '';
  /** Where a stream resumes from: `head`, or an id-only position reported right after it. */
  private positionId: string;
  /** A follower has not joined a leader's sequence until it hears from one. */
  private joined = false;
  /** Steps heard before joining, in arrival order. */
  private early: StreamStep[] = [];
  /** Before joining: the leaders heard from or named. */
  private readonly known = new Map<string, KnownLeader>();
  private joinTimer: ReturnType<typeof setTimeout> | undefined;
  /** Before joining: the last latest state a leader announced (see `Place.latest`). */
  private heardLatest: readonly LatestEntry[] | undefined;
  private readonly taken: RecentIds;
  /** Steps waiting for their predecessor, by the id they follow. */
  private readonly waitingFor = new Map<string, Waiting[]>();
  /** The same, in arrival order (entries already taken are marked `done`). */
  private arrivals: Waiting[] = [];
  private waitingCount = 0;
  private gapTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly maxWaiting: number;
  private readonly gapTimeoutMs: number;
  private readonly seed: ((latest: readonly LatestEntry[]) => void) | undefined;
  /** This tab took a leader's latest state (it does so once). */
  private seeded = false;

  constructor(
    position: string,
    private readonly take: (step: EventStep) => void,
    options: TabSequenceOptions = {},
  ) {
    this.positionId = position;
    this.taken = new RecentIds(options.window ?? 1024);
    this.maxWaiting = options.maxWaiting ?? 1024;
    this.gapTimeoutMs = options.gapTimeoutMs ?? 1000;
    this.seed = options.seed;
  }

  get head(): string {
    return this.headId;
  }

  get position(): string {
    return this.positionId;
  }

  /** Steps currently waiting for a predecessor. */
  get waiting(): number {
    return this.waitingCount;
  }

  /**
   * This tab leads: its own stream continues from its own head and position. (One that never
   * heard a leader's place, only relays, starts where the first of them does.)
   */
  lead(): void {
    if (this.joined) return;
    if (!this.joinAtOldest()) this.joined = true;
  }

  /** Whether this tab has a place in a leader's sequence (it leads, or heard from a leader). */
  get hasJoined(): boolean {
    return this.joined;
  }

  /** The ids taken most recently, oldest first (for a tab that joins here). */
  recent(limit = 256): string[] {
    return this.taken.last(limit);
  }

  /**
   * The leader's announcement (a status, or its goodbye): a tab that has not joined yet starts
   * where the leader is. `recent`, the leader's last ids, lets it recognise their replays by a
   * stream that resumes from an earlier place, instead of waiting for their predecessors.
   */
  join(head: string, position: string, recent: readonly string[] = [], latest?: readonly LatestEntry[]): void {
    if (this.joined) return;
    this.joined = true;
    // A leader's state first: the newest one heard (a leader announces it at its place, after
    // its relays before that place, which are among the steps below if they are newer than
    // where this tab joins: taken in order, they end at the same state), else this place's.
    const seed = this.heardLatest ?? latest;
    this.heardLatest = undefined;
    if (seed?.length) {
      this.seeded = true;
      this.seed?.(seed);
    }
    if (this.joinTimer !== undefined) clearTimeout(this.joinTimer);
    this.joinTimer = undefined;
    this.known.clear();
    const early = this.early;
    this.early = [];
    // Relays heard before the announcement that are part of the leader's recent past: start at
    // the oldest of them instead, so they are taken (in order) and not lost.
    let start: number | undefined;
    for (const step of early) {
      const at = step.after === '' ? (recent.includes(step.id) ? -1 : undefined) : recent.indexOf(step.after);
      if (at !== undefined && (step.after === '' || at >= 0) && (start === undefined || at < start)) start = at;
    }
    if (start !== undefined) {
      for (const id of recent.slice(0, start + 1)) this.taken.add(id);
      this.headId = start >= 0 ? (recent[start] ?? '') : '';
      this.positionId = this.headId;
    } else {
      this.headId = head;
      this.positionId = position || head;
      for (const id of recent) this.taken.add(id);
      if (head) this.taken.add(head);
    }
    for (const step of early) this.run(step, false);
  }

  /** Takes `step` now if it is next, drops it if it is a duplicate, else keeps it until it is. */
  offer(step: StreamStep, from?: string): void {
    if (!this.joined) {
      // Where does this tab start? A leader's announcement will say (see `announce`).
      this.early.push(step);
      if (from !== undefined) this.knownLeader(from).heard = true;
      if (this.early.length > this.maxWaiting) this.joinAtOldest();
      else this.joinSoon();
      return;
    }
    this.run(step, false);
  }

  /**
   * A leader's status or goodbye (`gone`). A tab that has not joined yet joins once it knows every
   * leader it heard from or of (`prev`), all of them but one said goodbye (so none of their
   * relays is still on its way to it), and then at the earliest place they told it: nothing that
   * reached it is skipped. If that does not happen within the gap timeout (a tab that opened
   * just after a leader said goodbye never hears it), it joins at the earliest place it knows.
   */
  announce(from: string, place: Place, gone: boolean, answer = false): void {
    if (this.joined) {
      // A leader's status that carried no state (its stream opened) can reach this tab before
      // the answer to its hello: it joined there, and takes the state from the answer that
      // follows (names it already has an event of stay as they are). A tab takes state once.
      if (answer && place.latest?.length && !this.seeded) {
        this.seeded = true;
        this.seed?.(place.latest);
      }
      return;
    }
    if (place.latest) this.heardLatest = place.latest;
    const leader = this.knownLeader(from);
    leader.heard = true;
    // The answer to this tab's hello by a tab that already led when it heard it: this tab joins
    // there at once, unless it heard from or of (as a `prev`, in a status sent before the answer)
    // another leader that may still be relaying to it (it would drop those relays).
    if (answer) {
      for (const [id, other] of this.known) if (id !== from && !other.gone) return this.joinSoon();
      return this.join(place.head, place.id, place.recent, place.latest);
    }
    leader.place ??= place;
    if (gone) leader.gone = true;
    if (place.prev !== undefined) this.knownLeader(place.prev);
    let leading = 0;
    for (const other of this.known.values()) {
      if (!other.place) return this.joinSoon();
      if (!other.gone) leading++;
    }
    if (leading > 1) return this.joinSoon();
    this.joinAtOldest();
  }

  private knownLeader(id: string): KnownLeader {
    let leader = this.known.get(id);
    if (!leader) {
      leader = { place: undefined, gone: false, heard: false };
      this.known.set(id, leader);
    }
    return leader;
  }

  private joinSoon(): void {
    this.joinTimer ??= setTimeout(() => {
      this.joinTimer = undefined;
      this.joinAtOldest();
    }, this.gapTimeoutMs);
  }

  /** Joins at the earliest place announced (the leader with the fewest known predecessors). */
  private joinAtOldest(): boolean {
    if (this.joined) return true;
    const depth = (id: string, seen: Set<string>): number => {
      const prev = this.known.get(id)?.place?.prev;
      if (prev === undefined || seen.has(prev) || !this.known.get(prev)?.place) return 0;
      seen.add(prev);
      return depth(prev, seen) + 1;
    };
    let oldest: Place | undefined;
    let least = Infinity;
    for (const [id, leader] of this.known) {
      if (!leader.place) continue;
      const d = depth(id, new Set([id]));
      if (d < least) {
        least = d;
        oldest = leader.place;
      }
    }
    if (oldest) {
      this.join(oldest.head, oldest.id, oldest.recent, oldest.latest);
      return true;
    }
    const first = this.early[0];
    if (first) {
      this.join(first.after, first.after);
      return true;
    }
    return false;
  }

  /** Drops waiting steps and the timer (the client closed). */
  dispose(): void {
    if (this.gapTimer !== undefined) clearTimeout(this.gapTimer);
    this.gapTimer = undefined;
    if (this.joinTimer !== undefined) clearTimeout(this.joinTimer);
    this.joinTimer = undefined;
    this.known.clear();
    this.heardLatest = undefined;
    this.waitingFor.clear();
    this.early = [];
    this.arrivals = [];
    this.waitingCount = 0;
  }

  /** Places `first` (`forced`: even if its predecessor is missing), then whatever it unblocks. */
  private run(first: StreamStep, forced: boolean): void {
    const queue = [first];
    for (let step = queue.shift(); step; step = queue.shift()) {
      const before = this.headId;
      this.place(step, forced && step === first);
      if (this.headId !== before) {
        // The head moved: what waited for it is next.
        const next = this.waitingFor.get(this.headId);
        if (next) {
          this.waitingFor.delete(this.headId);
          for (const entry of next) {
            entry.done = true;
            this.waitingCount--;
            queue.push(entry.step);
          }
        }
      }
    }
    if (this.waitingCount === 0) {
      this.arrivals = [];
      if (this.gapTimer !== undefined) clearTimeout(this.gapTimer);
      this.gapTimer = undefined;
    } else if (this.arrivals.length > 2 * this.waitingCount + 64) {
      this.arrivals = this.arrivals.filter((entry) => !entry.done);
    }
  }

  private place(step: StreamStep, force: boolean): void {
    if (step.kind === 'event' && step.hasId && this.taken.has(step.id)) return; // a duplicate
    if (step.after === this.headId) return this.apply(step);
    if (force) {
      // Given up waiting: the event is delivered; a position after a missing event is not a safe
      // place to resume from, so the head stays the resume point.
      if (step.kind === 'event') this.apply(step);
      return;
    }
    const passed = step.after === '' || this.taken.has(step.after);
    if (!passed) return this.wait(step);
    // It follows an event this tab is already past.
    if (step.kind === 'position') return; // an older position
    // An event not taken although this tab is past its predecessor: a block without an id that
    // comes late, or an event after a gap (a stream that resumed too late, which the hub says
    // with herald.missed, or one that started without a resume id). It is new: take it.
    this.apply(step);
  }

  private apply(step: StreamStep): void {
    if (step.kind === 'position') {
      this.positionId = step.id;
      return;
    }
    if (step.hasId) {
      this.headId = step.id;
      this.positionId = step.id;
      this.taken.add(step.id);
    }
    this.take(step);
  }

  private wait(step: StreamStep): void {
    const entry: Waiting = { step, since: Date.now(), done: false };
    const list = this.waitingFor.get(step.after);
    if (list) list.push(entry);
    else this.waitingFor.set(step.after, [entry]);
    this.arrivals.push(entry);
    this.waitingCount++;
    if (this.waitingCount > this.maxWaiting) this.giveUp(Infinity);
    else this.gapTimer ??= setTimeout(() => this.onGapTimeout(), this.gapTimeoutMs);
  }

  private onGapTimeout(): void {
    this.gapTimer = undefined;
    this.giveUp(Date.now() - this.gapTimeoutMs);
    const oldest = this.arrivals.find((entry) => !entry.done);
    if (oldest && this.gapTimer === undefined) {
      const due = oldest.since + this.gapTimeoutMs - Date.now();
      this.gapTimer = setTimeout(() => this.onGapTimeout(), Math.max(0, due));
    }
  }

  /**
   * A predecessor did not come (it should: a leader only relays what the hub sent, and the
   * BroadcastChannel loses nothing), so take what waited since `olderThan` in arrival order
   * rather than stall the tab; duplicates are still dropped.
   */
  private giveUp(olderThan: number): void {
    const due: StreamStep[] = [];
    for (const entry of this.arrivals) {
      if (entry.done || entry.since > olderThan) continue;
      entry.done = true;
      this.waitingCount--;
      const list = this.waitingFor.get(entry.step.after);
      const rest = list?.filter((other) => other !== entry);
      if (rest?.length) this.waitingFor.set(entry.step.after, rest);
      else this.waitingFor.delete(entry.step.after);
      due.push(entry.step);
    }
    this.arrivals = this.arrivals.filter((entry) => !entry.done);
    for (const step of due) this.run(step, true);
  }
}
