/**
 * Cross-tab sharing: the tabs of one origin elect a leader, which alone holds the hub stream and
 * relays everything it receives over a `BroadcastChannel`; the others listen. This keeps an app
 * open in many tabs inside HTTP/1.1's six-connections-per-origin limit.
 *
 * Election uses the Web Locks API when present (`navigator.locks`): every tab queues for one
 * exclusive lock; the holder is the leader and holds it until it closes, when the browser
 * grants it to the next tab. Without Web Locks, a heartbeat election: the leader posts `hb`
 * every `heartbeatMs`; a tab that hears nothing for `leaderTimeoutMs` (or hears `bye`) starts an
 * election by posting `claim`; after `electionMs` the smallest id among the claimants leads.
 */

import type { LatestEntry } from './sequence.js';

export interface BroadcastChannelLike {
  postMessage(message: unknown): void;
  onmessage: ((ev: MessageEvent) => void) | null;
  close(): void;
}

export type BroadcastChannelConstructor = new (name: string) => BroadcastChannelLike;

export interface LockManagerLike {
  request(
    name: string,
    options: { mode?: 'exclusive'; signal?: AbortSignal; ifAvailable?: boolean },
    /** Called with the lock, or with `null` when `ifAvailable` is set and it is held. */
    callback: (lock: unknown) => Promise<unknown>,
  ): Promise<unknown>;
}

export interface CrossTabOptions {
  /** Tabs with the same key share one stream. Default: derived from the URL and topics. */
  key?: string;
  /** Defaults to the global `BroadcastChannel`. */
  BroadcastChannel?: BroadcastChannelConstructor;
  /** Defaults to `navigator.locks`; `null` forces the heartbeat election. */
  locks?: LockManagerLike | null;
  /** Heartbeat election: leader heartbeat period. Default 1000 ms. */
  heartbeatMs?: number;
  /** Heartbeat election: silence after which the leader is presumed gone. Default 3000 ms. */
  leaderTimeoutMs?: number;
  /** Heartbeat election: how long claims are collected. Default 250 ms. */
  electionMs?: number;
  /**
   * Web Locks: a tab granted the lock after another tab held it waits for the previous leader's
   * goodbye (which follows all its relays) before it connects; a leader that crashed says none,
   * so the wait ends after this long. Default 1000 ms.
   */
  handOverTimeoutMs?: number;
}

export interface WireError {
  code: string;
  message: string;
  status: number | undefined;
  fatal: boolean;
}

export interface WireStatus {
  state: 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';
  error: WireError | undefined;
  attempt: number;
  retryInMs: number | undefined;
}

/** A leader's place in the sequence of its stream (see `sequence.ts`). */
export interface WirePlace {
  /** The newest event taken. */
  head: string;
  /** Where a stream resumes from. */
  id: string;
  /** The ids taken most recently, oldest first: a tab that joins here recognises their replays. */
  recent: string[];
  /**
   * The leader this one took over from (it waited for that one's goodbye); absent for a leader
   * that took over from no one. A tab that has not joined yet waits for the goodbyes of this
   * chain of leaders before it joins: their relays may still be on the way to it.
   */
  prev?: string;
  /**
   * The leader's latest event of each name (its `latest()` state), oldest first, bounded (see
   * `MAX_SEED_BYTES` in `client.ts`). Sent in the answer to a hello, in a leader's first status
   * and in its goodbye: a tab that joins at this place keeps it as its own state (retained values
   * reach only the stream that opens first), without dispatching it.
   */
  latest?: LatestEntry[];
}

/**
 * Messages on the channel. `from` is the sending tab's id. `event` and `pos` are the steps of the
 * leader's stream (see `sequence.ts`): `after` is the id of the stream's previous event, so each
 * tab can put them in order and drop the ones it has; `status` carries the leader's place in that
 * sequence for tabs that join; a leader's `bye` carries its place when it left, after its last
 * relay: the next leader resumes from there.
 */
export type TabMessage =
  | { t: 'event'; from: string; type: string; data: string; id: string; after: string; hasId: boolean }
  | { t: 'pos'; from: string; id: string; after: string }
  | ({
      t: 'status';
      from: string;
      status: WireStatus;
      /**
       * An answer to these tabs' hello, heard while leading: they may join here at once (its
       * `prev` is left out). Absent: for every tab.
       */
      to?: string[];
    } & WirePlace)
  | { t: 'hello'; from: string }
  | { t: 'hb'; from: string }
  | { t: 'claim'; from: string }
  | ({ t: 'bye'; from: string } & Partial<WirePlace>)
  | { t: 'reconnect'; from: string };

export interface CrossTabHooks {
  /** This tab became the leader: open the stream. */
  lead(): void;
  /** This tab stopped leading (heartbeat split-brain resolution): close the stream. */
  follow(): void;
  /** A message from another tab. */
  receive(message: TabMessage): void;
  /** A tab joined: the leader should tell it the status and position. */
  joined(from: string): void;
  /** This leader leaves: its place, for the goodbye. */
  place?(): WirePlace;
  /** Whether this tab knows its place in the leader's sequence (see `TabSequence.hasJoined`). */
  placed?(): boolean;
}

function randomId(): string {
  const rand = Math.random().toString(36).slice(2, 10);
  return `${Date.now().toString(36)}-${rand}`;
}

export class CrossTab {
  readonly id = randomId();
  private leader = false;
  private stopped = true;
  private channel: BroadcastChannelLike | undefined;
  private readonly locks: LockManagerLike | null;
  // lock mode
  private lockAbort: AbortController | undefined;
  private releaseLock: (() => void) | undefined;
  // heartbeat mode
  private timer: ReturnType<typeof setInterval> | undefined;
  private electionTimer: ReturnType<typeof setTimeout> | undefined;
  private lastLeaderSeen = 0;
  private leaderId: string | undefined;
  private candidates: Set<string> | undefined;
  private leaderSeenDuringElection = false;
  // Web Locks hand-over
  /** Tabs heard leading (they relayed) that have not said goodbye yet. */
  private readonly leaders = new Set<string>();
  /** A goodbye of a leader was heard since this tab started. */
  private goodbyeHeard = false;
  /** Holding the lock, waiting for the previous leader's goodbye before leading. */
  private handOverTimer: ReturnType<typeof setTimeout> | undefined;
  private awaitingHandOver = false;
  /** The last leader whose goodbye this tab heard: when it leads, the one it took over from. */
  private lastGoodbyeFrom: string | undefined;
  private prevLeader: string | undefined;
  /** Tabs whose hello a leader answered (a new leader does not answer them again). */
  private readonly answered = new Set<string>();
  private readonly onPageHide = (): void => this.stop();

  constructor(
    private readonly key: string,
    private readonly options: CrossTabOptions,
    private readonly hooks: CrossTabHooks,
  ) {
    const nav = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator;
    this.locks = options.locks === undefined ? nav?.locks ?? null : options.locks;
  }

  get isLeader(): boolean {
    return this.leader;
  }

  get mode(): 'locks' | 'heartbeat' {
    return this.locks ? 'locks' : 'heartbeat';
  }

  /** While leading: the leader this tab took over from (see `WirePlace.prev`). */
  get previousLeader(): string | undefined {
    return this.prevLeader;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const Ctor =
      this.options.BroadcastChannel ??
      (globalThis as { BroadcastChannel?: BroadcastChannelConstructor }).BroadcastChannel;
    if (!Ctor) throw new Error('cross-tab sharing needs BroadcastChannel');
    this.channel = new Ctor(`herald:${this.key}`);
    this.channel.onmessage = (ev) => this.onMessage(ev.data as TabMessage);
    const win = globalThis as { addEventListener?: (type: string, fn: () => void) => void };
    win.addEventListener?.('pagehide', this.onPageHide);
    this.post({ t: 'hello', from: this.id });
    if (this.locks) this.startLocks(this.locks);
    else this.startHeartbeat();
  }

  /** Leaves: a leader hands over at once (releases the lock / says bye). */
  stop(): void {
    if (this.stopped) return;
    const wasLeader = this.leader;
    this.leader = false;
    // After the last relay (the stream was stopped first): in every tab's channel, it comes last.
    if (wasLeader) this.post({ t: 'bye', from: this.id, ...this.hooks.place?.() });
    this.stopped = true;
    this.releaseLock?.();
    this.releaseLock = undefined;
    this.lockAbort?.abort();
    this.lockAbort = undefined;
    if (this.timer !== undefined) clearInterval(this.timer);
    if (this.electionTimer !== undefined) clearTimeout(this.electionTimer);
    if (this.handOverTimer !== undefined) clearTimeout(this.handOverTimer);
    this.timer = undefined;
    this.electionTimer = undefined;
    this.handOverTimer = undefined;
    this.awaitingHandOver = false;
    this.lastGoodbyeFrom = undefined;
    this.prevLeader = undefined;
    this.answered.clear();
    this.leaders.clear();
    this.goodbyeHeard = false;
    const win = globalThis as { removeEventListener?: (type: string, fn: () => void) => void };
    win.removeEventListener?.('pagehide', this.onPageHide);
    this.channel?.close();
    this.channel = undefined;
  }

  post(message: TabMessage): void {
    try {
      this.channel?.postMessage(message);
    } catch {
      // channel closed
    }
  }

  private becomeLeader(): void {
    if (this.leader || this.stopped) return;
    this.leader = true;
    this.leaderId = this.id;
    this.hooks.lead();
  }

  private stepDown(): void {
    if (!this.leader) return;
    this.leader = false;
    this.hooks.follow();
  }

  /**
   * First try for the lock only if it is free: then no tab led before (or none is still
   * relaying), and this one leads at once. Otherwise queue; when the lock comes, another tab held
   * it, and this one leads once it has that tab's goodbye (see `granted`).
   */
  private startLocks(locks: LockManagerLike): void {
    const abort = new AbortController();
    this.lockAbort = abort;
    const name = `herald-leader:${this.key}`;
    const hold = (handOver: boolean): Promise<void> => {
      if (this.stopped || abort.signal.aborted) return Promise.resolve();
      return new Promise<void>((resolve) => {
        this.releaseLock = resolve;
        this.granted(handOver);
      });
    };
    const queue = (): void => {
      locks
        .request(name, { mode: 'exclusive', signal: abort.signal }, () => hold(true))
        .catch(() => {
          // aborted while waiting: we left before our turn
        });
    };
    locks
      .request(name, { mode: 'exclusive', ifAvailable: true }, (lock) => {
        if (lock === null) {
          if (!this.stopped && !abort.signal.aborted) queue();
          return Promise.resolve();
        }
        return hold(false);
      })
      .catch(() => {
        // A lock manager without `ifAvailable`: just queue.
        if (!this.stopped && !abort.signal.aborted && !this.releaseLock) queue();
      });
  }

  /**
   * The lock is ours. After another tab held it, its relays may still be on the channel: lead
   * (connect) once every tab heard leading said goodbye, and at least one did, so that this
   * tab's place is the last leader's; a crashed leader says nothing, hence the timeout.
   */
  private granted(handOver: boolean): void {
    if (!handOver) return this.becomeLeader();
    if (this.handOverDone()) {
      this.prevLeader = this.lastGoodbyeFrom;
      return this.becomeLeader();
    }
    this.awaitingHandOver = true;
    this.handOverTimer = setTimeout(() => this.finishHandOver(false), this.options.handOverTimeoutMs ?? 1000);
  }

  private handOverDone(): boolean {
    return this.goodbyeHeard && this.leaders.size === 0 && (this.hooks.placed?.() ?? true);
  }

  /** `said`: the goodbye came (else the wait timed out: a crash, no one to name). */
  private finishHandOver(said = false): void {
    if (!this.awaitingHandOver) return;
    this.awaitingHandOver = false;
    this.prevLeader = said ? this.lastGoodbyeFrom : undefined;
    if (this.handOverTimer !== undefined) clearTimeout(this.handOverTimer);
    this.handOverTimer = undefined;
    this.becomeLeader();
  }

  private startHeartbeat(): void {
    const heartbeat = this.options.heartbeatMs ?? 1000;
    const timeout = this.options.leaderTimeoutMs ?? 3000;
    // Give a current leader one election window to answer our hello before claiming.
    this.lastLeaderSeen = Date.now() - timeout + (this.options.electionMs ?? 250);
    let lastBeat = 0;
    this.timer = setInterval(() => {
      if (this.leader) {
        if (Date.now() - lastBeat >= heartbeat - 5) {
          lastBeat = Date.now();
          this.post({ t: 'hb', from: this.id });
        }
      } else if (!this.candidates && Date.now() - this.lastLeaderSeen > timeout) this.elect();
    }, Math.min(heartbeat, this.options.electionMs ?? 250));
  }

  private elect(): void {
    if (this.stopped || this.leader || this.candidates) return;
    this.candidates = new Set([this.id]);
    this.leaderSeenDuringElection = false;
    this.post({ t: 'claim', from: this.id });
    this.electionTimer = setTimeout(() => {
      this.electionTimer = undefined;
      const candidates = this.candidates ?? new Set<string>();
      this.candidates = undefined;
      if (this.stopped || this.leaderSeenDuringElection) return;
      const winner = [...candidates].sort()[0];
      if (winner === this.id) {
        this.becomeLeader();
        this.post({ t: 'hb', from: this.id });
      } else {
        // Give the winner time to start its heartbeat.
        this.lastLeaderSeen = Date.now();
      }
    }, this.options.electionMs ?? 250);
  }

  private sawLeader(from: string): void {
    this.lastLeaderSeen = Date.now();
    this.leaderId = from;
    if (this.candidates) this.leaderSeenDuringElection = true;
  }

  private onMessage(message: TabMessage): void {
    if (this.stopped || message.from === this.id) return;
    const heartbeatMode = !this.locks;
    switch (message.t) {
      case 'hello':
        if (this.leader) {
          if (heartbeatMode) this.post({ t: 'hb', from: this.id });
          if (!this.answered.has(message.from)) this.hooks.joined(message.from);
        }
        return;
      case 'hb':
        if (!heartbeatMode) return;
        if (this.leader) {
          // Two leaders (a partition healed): the smaller id keeps the job.
          if (message.from < this.id) {
            this.stepDown();
            this.sawLeader(message.from);
          } else this.post({ t: 'hb', from: this.id });
        } else this.sawLeader(message.from);
        return;
      case 'claim':
        if (!heartbeatMode) return;
        if (this.leader) this.post({ t: 'hb', from: this.id });
        else if (this.candidates) this.candidates.add(message.from);
        else {
          this.elect();
          (this.candidates as Set<string> | undefined)?.add(message.from);
        }
        return;
      case 'bye':
        if (heartbeatMode && !this.leader && (this.leaderId === undefined || this.leaderId === message.from)) {
          this.leaderId = undefined;
          this.lastLeaderSeen = 0;
          this.elect();
        }
        this.leaders.delete(message.from);
        this.goodbyeHeard = true;
        this.lastGoodbyeFrom = message.from;
        // First the place it carries (a tab that never heard this leader joins there) …
        this.hooks.receive(message);
        // … then, if this tab waited for it, it leads from there.
        if (this.awaitingHandOver && this.handOverDone()) this.finishHandOver(true);
        return;
      case 'event':
      case 'pos':
      case 'status':
        if (message.t === 'status') for (const to of message.to ?? []) this.answered.add(to);
        if (heartbeatMode && !this.leader) this.sawLeader(message.from);
        if (!heartbeatMode) this.leaders.add(message.from);
        this.hooks.receive(message);
        // A status may have given a tab that waits to lead its place.
        if (this.awaitingHandOver && this.handOverDone()) this.finishHandOver(true);
        return;
      case 'reconnect':
        this.hooks.receive(message);
        return;
    }
  }
}
