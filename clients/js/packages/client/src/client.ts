import { Connection, type ConnectionOptions, type ConnectionStatus } from './connection.js';
import {
  CrossTab,
  type CrossTabOptions,
  type TabMessage,
  type WireError,
  type WirePlace,
  type WireStatus,
} from './crosstab.js';
import { snapshotLatest } from './latest.js';
import type { SseMessage } from './parser.js';
import { TabSequence, type EventStep, type LatestEntry, type StreamStep } from './sequence.js';
import {
  HeraldError,
  MISSED_EVENT,
  type ConnectionSnapshot,
  type EventMeta,
  type EventName,
  type HeraldErrorCode,
  type Listener,
  type MissedInfo,
  type Unsubscribe,
} from './types.js';

export interface ClientOptions extends ConnectionOptions {
  /** Open the stream right away (default). With `false`, call `connect()`. */
  autoConnect?: boolean;
  /** Turns `data` into the payload. Default: `JSON.parse`, or the raw string if that fails. */
  parse?: (data: string, event: string) => unknown;
  /** The hub could not replay what this client missed: refetch your state. */
  onMissed?: (info: MissedInfo) => void;
  /** Every error, fatal (`error.fatal`) or not. */
  onError?: (error: HeraldError) => void;
  /** Share one stream between the tabs of this origin (see README, "Cross-tab"). */
  crossTab?: boolean | CrossTabOptions;
}

/** The typed client. `E` maps event names to payload types. */
export interface HeraldClient<E extends { [K in keyof E]: unknown } = Record<string, unknown>> {
  /** Listens to one event name; returns the unsubscribe function. Never opens another stream. */
  on<K extends EventName<E>>(event: K, listener: Listener<E[K], K>): Unsubscribe;
  /** Listens to every event. */
  onAny(listener: (event: EventName<E>, payload: E[EventName<E>], meta: EventMeta<EventName<E>>) => void): Unsubscribe;
  /** The hub's `herald.missed`: this client lost events and should refetch its state. */
  onMissed(listener: (info: MissedInfo) => void): Unsubscribe;
  /**
   * The latest event of this name this client received (from its own stream or, with cross-tab
   * sharing, relayed by the leader), with its meta; `undefined` before the first one. A fresh
   * stream starts with the hub's retained values, so right after the stream opens this is the
   * retained value (the counter, score or last state) without any new event or extra fetch.
   * The same payload object listeners got. Kept for the most recent 256 event names. A
   * cross-tab follower that joins an open stream starts from the leader's latest events.
   */
  latest<K extends EventName<E>>(event: K): LatestEvent<E[K], K> | undefined;
  /**
   * Calls `listener` whenever `latest(event)` changes: an event of that name arrived, or a
   * cross-tab follower joining the leader's stream took the leader's latest event as its state
   * (which `on` listeners do not hear: it is not news). For stores such as `useSSE`'s `data`.
   */
  onLatest<K extends EventName<E>>(event: K, listener: () => void): Unsubscribe;
  /** Connection-state changes; the listener gets the new snapshot. */
  onStateChange(listener: (snapshot: ConnectionSnapshot) => void): Unsubscribe;
  /** Errors, fatal or retried. */
  onError(listener: (error: HeraldError) => void): Unsubscribe;
  /** The current snapshot (a new object on each change: suitable for `useSyncExternalStore`). */
  getSnapshot(): ConnectionSnapshot;
  readonly state: ConnectionSnapshot['state'];
  /** Where a reconnect resumes from. */
  readonly lastEventId: string;
  /** Starts (or restarts after `close()` or a fatal error). */
  connect(): void;
  /** Drops the stream and reconnects now, resuming with `Last-Event-ID`. */
  reconnect(): void;
  /** Stops for good; a cross-tab leader hands the stream over to another tab. */
  close(): void;
}

/** An event kept by {@link HeraldClient.latest}. */
export interface LatestEvent<P, K extends string = string> {
  readonly data: P;
  readonly meta: EventMeta<K>;
}

type AnyListener = (event: string, payload: unknown, meta: EventMeta) => void;

/** Most event names whose latest event a client keeps (the oldest name leaves first). */
const MAX_LATEST = 256;

/** Not state: the leader does not pass these on to a tab that joins (see `seedLatest`). */
const NOT_STATE: ReadonlySet<string> = new Set([MISSED_EVENT]);

/** A kept event; the payload is parsed when first asked for (no listener may have needed it). */
interface Kept {
  readonly meta: EventMeta;
  /** The same object on every call, so that it is a stable snapshot (`useSyncExternalStore`). */
  result: LatestEvent<unknown> | undefined;
}

const INITIAL: ConnectionSnapshot = Object.freeze({
  state: 'idle',
  error: undefined,
  attempt: 0,
  retryInMs: undefined,
  lastEventId: '',
  isLeader: true,
});

class Client {
  private readonly listeners = new Map<string, Set<Listener<unknown>>>();
  private readonly anyListeners = new Set<AnyListener>();
  private readonly missedListeners = new Set<(info: MissedInfo) => void>();
  private readonly stateListeners = new Set<(snapshot: ConnectionSnapshot) => void>();
  private readonly errorListeners = new Set<(error: HeraldError) => void>();
  /** The latest event of each name, least recently received first. */
  private readonly kept = new Map<string, Kept>();
  private readonly latestListeners = new Map<string, Set<() => void>>();
  /** Cross-tab: this leader's next status goes to every tab with its latest state (see `announce`). */
  private firstStatus = false;
  private snapshot: ConnectionSnapshot;
  /** Where a reconnect resumes from (without cross-tab sharing; with it, `sequence` knows). */
  private position: string;
  private readonly connection: Connection;
  private readonly crossTab: CrossTab | undefined = undefined;
  /** Cross-tab: orders and de-duplicates what this tab hears from its own and other tabs' streams. */
  private readonly sequence: TabSequence | undefined = undefined;
  /** Cross-tab, this tab's own stream: the id of its last event (the next step's `after`)… */
  private streamAfter = '';
  /** …and its last event id, which a block without an id field leaves as it is. */
  private streamPosition = '';
  private started = false;
  /**
   * State changes made while the client is being created, delivered a microtask later so that
   * listeners added right after `createClient` see the first `connecting` too.
   */
  private heldChanges: ConnectionSnapshot[] | undefined = [];

  constructor(private readonly options: ClientOptions) {
    this.position = options.lastEventId ?? '';
    this.snapshot = { ...INITIAL, lastEventId: this.position, isLeader: true };
    this.connection = new Connection(options, {
      message: (msg) => this.fromStream(msg),
      position: (id) => this.fromStreamPosition(id),
      status: (status) => this.fromStreamStatus(status),
      resumeFrom: () => this.streamStarts(),
    });
    const crossOptions = options.crossTab === true ? {} : options.crossTab || undefined;
    const hasChannel =
      crossOptions?.BroadcastChannel !== undefined ||
      typeof (globalThis as { BroadcastChannel?: unknown }).BroadcastChannel === 'function';
    // Without BroadcastChannel (old browsers, some runtimes) every tab simply holds its own stream.
    if (crossOptions && hasChannel) {
      const key = crossOptions.key ?? `${options.url}|${[...(options.topics ?? [])].sort().join(',')}`;
      this.crossTab = new CrossTab(key, crossOptions, {
        lead: () => this.lead(),
        follow: () => this.follow(),
        receive: (message) => this.fromTab(message),
        joined: (from) => this.announce(from),
        place: () => this.place(true),
        placed: () => this.sequence?.hasJoined ?? true,
      });
      this.sequence = new TabSequence(this.position, (step) => this.dispatch(step.type, step.data, step.id), {
        seed: (latest) => this.seedLatest(latest),
      });
    }
    if (this.crossTab) this.snapshot = { ...this.snapshot, isLeader: false };
    if (options.onMissed) this.missedListeners.add(options.onMissed);
    if (options.onError) this.errorListeners.add(options.onError);
    if (options.autoConnect !== false) this.connect();
    queueMicrotask(() => {
      const held = this.heldChanges ?? [];
      this.heldChanges = undefined;
      for (const snapshot of held) this.notifyState(snapshot);
    });
  }

  get state(): ConnectionSnapshot['state'] {
    return this.snapshot.state;
  }

  get lastEventId(): string {
    return this.sequence ? this.sequence.position : this.position;
  }

  getSnapshot = (): ConnectionSnapshot => this.snapshot;

  on(event: string, listener: Listener<unknown>): Unsubscribe {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    // Wrap so the same function can be added twice and removed independently.
    const entry: Listener<unknown> = (payload, meta) => listener(payload, meta);
    set.add(entry);
    this.connection.watch(event);
    return () => {
      set.delete(entry);
    };
  }

  latest(event: string): LatestEvent<unknown> | undefined {
    const kept = this.kept.get(event);
    if (!kept) return undefined;
    if (!kept.result) kept.result = { data: this.parse(kept.meta.raw, event), meta: kept.meta };
    return kept.result;
  }

  onLatest(event: string, listener: () => void): Unsubscribe {
    let set = this.latestListeners.get(event);
    if (!set) {
      set = new Set();
      this.latestListeners.set(event, set);
    }
    const entry = (): void => listener();
    set.add(entry);
    this.connection.watch(event);
    return () => {
      set.delete(entry);
    };
  }

  onAny(listener: AnyListener): Unsubscribe {
    const entry: AnyListener = (e, p, m) => listener(e, p, m);
    this.anyListeners.add(entry);
    return () => this.anyListeners.delete(entry);
  }

  onMissed(listener: (info: MissedInfo) => void): Unsubscribe {
    const entry = (info: MissedInfo): void => listener(info);
    this.missedListeners.add(entry);
    return () => this.missedListeners.delete(entry);
  }

  onStateChange(listener: (snapshot: ConnectionSnapshot) => void): Unsubscribe {
    const entry = (s: ConnectionSnapshot): void => listener(s);
    this.stateListeners.add(entry);
    return () => this.stateListeners.delete(entry);
  }

  onError(listener: (error: HeraldError) => void): Unsubscribe {
    const entry = (e: HeraldError): void => listener(e);
    this.errorListeners.add(entry);
    return () => this.errorListeners.delete(entry);
  }

  connect(): void {
    if (this.started && this.snapshot.state !== 'closed') return;
    this.started = true;
    this.setSnapshot({ state: 'connecting', error: undefined, attempt: 0, retryInMs: undefined });
    if (this.crossTab) {
      this.crossTab.start();
      // With locks the grant is asynchronous; until then we are a follower.
    } else {
      this.connection.start();
    }
  }

  reconnect(): void {
    if (this.crossTab && !this.crossTab.isLeader) {
      this.crossTab.post({ t: 'reconnect', from: this.crossTab.id });
      return;
    }
    this.connection.reconnectNow();
  }

  close(): void {
    this.started = false;
    this.connection.stop();
    this.crossTab?.stop();
    this.sequence?.dispose();
    this.setSnapshot({ state: 'closed', error: undefined, retryInMs: undefined, isLeader: !this.crossTab });
  }

  // ---- the stream (this tab is the leader, or there is no cross-tab sharing)

  /**
   * A request is about to be sent: the resume id is read now, not when this tab won the lead,
   * because another tab's late relays may have moved this tab on since.
   */
  private streamStarts(): string {
    if (!this.sequence) return this.position;
    this.streamAfter = this.sequence.head;
    this.streamPosition = this.sequence.position;
    return this.streamPosition;
  }

  private fromStream(msg: SseMessage): void {
    if (!this.sequence) {
      this.position = msg.lastEventId;
      this.dispatch(msg.type, msg.data, msg.lastEventId);
      return;
    }
    // A block without an id field leaves the last event id as it was.
    const hasId = msg.lastEventId !== '' && msg.lastEventId !== this.streamPosition;
    const { type, data, lastEventId: id } = msg;
    const step: EventStep = { kind: 'event', after: this.streamAfter, id, hasId, type, data };
    this.streamPosition = msg.lastEventId;
    if (hasId) this.streamAfter = msg.lastEventId;
    this.relayAndOffer(step);
  }

  private fromStreamPosition(id: string): void {
    if (!this.sequence) {
      this.position = id;
      return;
    }
    // Reported after every chunk; only an id-only block is news (an event's id is in its step).
    if (id === '' || id === this.streamPosition) return;
    this.streamPosition = id;
    this.relayAndOffer({ kind: 'position', after: this.streamAfter, id });
  }

  /** Every step of the leader's stream goes to the other tabs as it is: they order it themselves. */
  private relayAndOffer(step: StreamStep): void {
    const tab = this.crossTab;
    if (tab?.isLeader) {
      tab.post(
        step.kind === 'event'
          ? { t: 'event', from: tab.id, type: step.type, data: step.data, id: step.id, after: step.after, hasId: step.hasId }
          : { t: 'pos', from: tab.id, id: step.id, after: step.after },
      );
    }
    this.sequence?.offer(step);
  }

  private fromStreamStatus(status: ConnectionStatus): void {
    if (this.crossTab && !this.crossTab.isLeader) return; // a stale status after stepping down
    this.applyStatus(status);
    this.announce();
  }

  /**
   * The leader's status and place, for every tab, or (`to`) the answer to a tab's hello heard
   * while leading: that tab may join here at once, so the answer names no previous leader. The
   * answer, and a leader's first status (for tabs whose hello came while no one led), carry its
   * latest state.
   */
  private announce(to?: string): void {
    if (!this.crossTab?.isLeader) return;
    const s = this.snapshot;
    const status: WireStatus = {
      state: s.state,
      error: s.error ? toWire(s.error) : undefined,
      attempt: s.attempt,
      retryInMs: s.retryInMs,
    };
    const { prev, ...place } = this.place(to !== undefined || this.firstStatus);
    if (to === undefined) this.firstStatus = false;
    this.crossTab.post(
      to === undefined
        ? { t: 'status', from: this.crossTab.id, status, ...place, ...(prev === undefined ? {} : { prev }) }
        : { t: 'status', from: this.crossTab.id, status, ...place, to: [to] },
    );
  }

  /** This tab's place in the leader's sequence, for a status or the leader's goodbye. */
  private place(withLatest = false): WirePlace {
    const sequence = this.sequence;
    const place: WirePlace = { head: sequence?.head ?? '', id: sequence?.position ?? '', recent: sequence?.recent() ?? [] };
    if (withLatest) {
      const latest = snapshotLatest([...this.kept.values()].map((k) => k.meta), NOT_STATE);
      if (latest.length) place.latest = latest;
    }
    const prev = this.crossTab?.previousLeader;
    return prev === undefined ? place : { ...place, prev };
  }

  /**
   * Joining a leader's stream: its latest events become this tab's (names it has no event of
   * yet; as older than those it has), without dispatching them; `onLatest` listeners hear it.
   */
  private seedLatest(latest: readonly LatestEntry[]): void {
    const added = new Map<string, Kept>();
    for (const e of latest) {
      if (this.kept.has(e.type) || NOT_STATE.has(e.type)) continue;
      added.delete(e.type);
      added.set(e.type, { meta: { id: e.id, event: e.type, receivedAt: e.at, raw: e.data }, result: undefined });
    }
    if (!added.size) return;
    const all = [...added, ...this.kept];
    this.kept.clear();
    for (const [name, kept] of all.slice(Math.max(0, all.length - MAX_LATEST))) this.kept.set(name, kept);
    for (const name of added.keys()) if (this.kept.has(name)) this.notifyLatest(name);
  }

  private notifyLatest(name: string): void {
    const set = this.latestListeners.get(name);
    if (set) for (const l of [...set]) safely(l);
  }

  private applyStatus(status: ConnectionStatus | WireStatus): void {
    const error = status.error === undefined ? undefined : fromWire(status.error);
    const changedError = error !== undefined && error !== this.snapshot.error;
    this.setSnapshot({ state: status.state, error, attempt: status.attempt, retryInMs: status.retryInMs });
    if (changedError && error) for (const l of [...this.errorListeners]) safely(() => l(error));
  }

  // ---- cross-tab

  private lead(): void {
    this.firstStatus = true;
    this.setSnapshot({ isLeader: true });
    this.sequence?.lead();
    if (this.started) this.connection.start();
  }

  private follow(): void {
    this.connection.stop();
    this.setSnapshot({ isLeader: false });
  }

  private fromTab(message: TabMessage): void {
    switch (message.t) {
      case 'event':
        // Even the leader takes these: an old leader's relays can arrive after this tab took over.
        this.sequence?.offer({
          kind: 'event',
          after: message.after,
          id: message.id,
          hasId: message.hasId,
          type: message.type,
          data: message.data,
        }, message.from);
        return;
      case 'pos':
        this.sequence?.offer({ kind: 'position', after: message.after, id: message.id }, message.from);
        return;
      case 'status':
        // Only a tab that has not heard from a leader yet takes its position from a status.
        // An answer to other tabs' hello is not for this one.
        if (!message.to || (this.crossTab && message.to.includes(this.crossTab.id))) {
          const { head, id, recent, prev, latest } = message;
          const place = { head, id, recent, ...(prev === undefined ? {} : { prev }), ...(latest ? { latest } : {}) };
          this.sequence?.announce(message.from, place, false, message.to !== undefined);
        }
        this.applyStatus(message.status);
        return;
      case 'bye':
        // The leader left, after its last relay; a tab that never heard it joins where it was.
        if (message.head !== undefined && message.id !== undefined && message.recent !== undefined) {
          const { head, id, recent, prev, latest } = message;
          const place = { head, id, recent, ...(prev === undefined ? {} : { prev }), ...(latest ? { latest } : {}) };
          this.sequence?.announce(message.from, place, true);
        }
        // A new leader is being chosen.
        if (this.snapshot.state === 'open') this.setSnapshot({ state: 'reconnecting', retryInMs: undefined });
        return;
      case 'reconnect':
        if (this.crossTab?.isLeader) this.connection.reconnectNow();
        return;
      default:
        return;
    }
  }

  // ---- listeners

  private setSnapshot(patch: Partial<ConnectionSnapshot>): void {
    const next: ConnectionSnapshot = { ...this.snapshot, ...patch, lastEventId: this.lastEventId };
    const prev = this.snapshot;
    if (
      next.state === prev.state &&
      next.error === prev.error &&
      next.attempt === prev.attempt &&
      next.retryInMs === prev.retryInMs &&
      next.isLeader === prev.isLeader
    ) {
      return;
    }
    this.snapshot = Object.freeze(next);
    if (this.heldChanges) this.heldChanges.push(this.snapshot);
    else this.notifyState(this.snapshot);
  }

  private notifyState(snapshot: ConnectionSnapshot): void {
    for (const l of [...this.stateListeners]) safely(() => l(snapshot));
  }

  private dispatch(type: string, data: string, id: string): void {
    const meta: EventMeta = { id, event: type, receivedAt: Date.now(), raw: data };
    if (type === MISSED_EVENT) {
      const info = parseMissed(data);
      for (const l of [...this.missedListeners]) safely(() => l(info));
    }
    const set = this.listeners.get(type);
    const kept: Kept = { meta, result: undefined };
    this.kept.delete(type);
    this.kept.set(type, kept);
    if (this.kept.size > MAX_LATEST) {
      const oldest = this.kept.keys().next().value;
      if (oldest !== undefined) this.kept.delete(oldest);
    }
    if (!set?.size && !this.anyListeners.size) return this.notifyLatest(type);
    const payload = this.parse(data, type);
    kept.result = { data: payload, meta };
    this.notifyLatest(type);
    if (set) for (const l of [...set]) safely(() => l(payload, meta));
    for (const l of [...this.anyListeners]) safely(() => l(type, payload, meta));
  }

  private parse(data: string, type: string): unknown {
    if (this.options.parse) return this.options.parse(data, type);
    try {
      return JSON.parse(data) as unknown;
    } catch {
      return data;
    }
  }
}

function parseMissed(data: string): MissedInfo {
  try {
    const value: unknown = JSON.parse(data);
    if (typeof value === 'object' && value !== null) {
      const v = value as { reason?: unknown; lastEventId?: unknown };
      return {
        reason: typeof v.reason === 'string' ? v.reason : 'unknown',
        lastEventId: typeof v.lastEventId === 'string' ? v.lastEventId : '',
      };
    }
  } catch {
    // fall through
  }
  return { reason: 'unknown', lastEventId: '' };
}

const wireCache = new WeakMap<WireError, HeraldError>();

function toWire(error: HeraldError): WireError {
  return { code: error.code, message: error.message, status: error.status, fatal: error.fatal };
}

function fromWire(error: WireError | HeraldError): HeraldError {
  if (error instanceof HeraldError) return error;
  const cached = wireCache.get(error);
  if (cached) return cached;
  const made = new HeraldError(error.code as HeraldErrorCode, error.message, error.status, error.fatal);
  wireCache.set(error, made);
  return made;
}

function safely(fn: () => void): void {
  try {
    fn();
  } catch (error) {
    // A throwing listener must not break the stream or the other listeners.
    const report = (globalThis as { reportError?: (e: unknown) => void }).reportError;
    if (report) report(error);
    else console.error(error);
  }
}

/**
 * Creates a client: one stream (or one per origin with `crossTab`) shared by every listener.
 *
 * ```ts
 * type Events = { order_update: { orderId: string; status: string } };
 * const client = createClient<Events>({ url: 'https://hub.example.com/events', getToken });
 * const off = client.on('order_update', (order, meta) => console.log(order.status, meta.id));
 * ```
 */
export function createClient<E extends { [K in keyof E]: unknown } = Record<string, unknown>>(
  options: ClientOptions,
): HeraldClient<E> {
  return new Client(options) as unknown as HeraldClient<E>;
}
