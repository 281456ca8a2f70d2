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

export interface BroadcastChannelLike {
  postMessage(message: unknown): void;
  onmessage: ((ev: MessageEvent) => void) | null;
  close(): void;
}

export type BroadcastChannelConstructor = new (name: string) => BroadcastChannelLike;

export interface LockManagerLike {
  request(
    name: string,
    options: { mode?: 'exclusive'; signal?: AbortSignal },
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

/** Messages on the channel. `from` is the sending tab's id. */
export type TabMessage =
  | { t: 'event'; from: string; type: string; data: string; id: string }
  | { t: 'pos'; from: string; id: string }
  | { t: 'status'; from: string; status: WireStatus; id: string }
  | { t: 'hello'; from: string }
  | { t: 'hb'; from: string }
  | { t: 'claim'; from: string }
  | { t: 'bye'; from: string }
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
    if (wasLeader) this.post({ t: 'bye', from: this.id });
    this.stopped = true;
    this.releaseLock?.();
    this.releaseLock = undefined;
    this.lockAbort?.abort();
    this.lockAbort = undefined;
    if (this.timer !== undefined) clearInterval(this.timer);
    if (this.electionTimer !== undefined) clearTimeout(this.electionTimer);
    this.timer = undefined;
    this.electionTimer = undefined;
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

  private startLocks(locks: LockManagerLike): void {
    const abort = new AbortController();
    this.lockAbort = abort;
    locks
      .request(`herald-leader:${this.key}`, { mode: 'exclusive', signal: abort.signal }, () => {
        if (this.stopped || abort.signal.aborted) return Promise.resolve();
        return new Promise<void>((resolve) => {
          this.releaseLock = resolve;
          this.becomeLeader();
        });
      })
      .catch(() => {
        // aborted while waiting: we left before our turn
      });
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
          this.hooks.joined(message.from);
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
        this.hooks.receive(message);
        return;
      case 'event':
      case 'pos':
      case 'status':
        if (heartbeatMode && !this.leader) this.sawLeader(message.from);
        this.hooks.receive(message);
        return;
      case 'reconnect':
        this.hooks.receive(message);
        return;
    }
  }
}
