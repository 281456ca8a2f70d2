import { Connection, type ConnectionOptions, type ConnectionStatus } from './connection.js';
import { CrossTab, type CrossTabOptions, type TabMessage, type WireError, type WireStatus } from './crosstab.js';
import type { SseMessage } from './parser.js';
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

type AnyListener = (event: string, payload: unknown, meta: EventMeta) => void;

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
  private snapshot: ConnectionSnapshot;
  private position: string;
  private readonly connection: Connection;
  private readonly crossTab: CrossTab | undefined = undefined;
  private started = false;

  constructor(private readonly options: ClientOptions) {
    this.position = options.lastEventId ?? '';
    this.snapshot = { ...INITIAL, lastEventId: this.position, isLeader: true };
    this.connection = new Connection(options, {
      message: (msg) => this.fromStream(msg),
      position: (id) => this.fromStreamPosition(id),
      status: (status) => this.fromStreamStatus(status),
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
        joined: () => this.announce(),
      });
    }
    if (this.crossTab) this.snapshot = { ...this.snapshot, isLeader: false };
    if (options.onMissed) this.missedListeners.add(options.onMissed);
    if (options.onError) this.errorListeners.add(options.onError);
    if (options.autoConnect !== false) this.connect();
  }

  get state(): ConnectionSnapshot['state'] {
    return this.snapshot.state;
  }

  get lastEventId(): string {
    return this.position;
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
    this.setSnapshot({ state: 'closed', error: undefined, retryInMs: undefined, isLeader: !this.crossTab });
  }

  // ---- the stream (this tab is the leader, or there is no cross-tab sharing)

  private fromStream(msg: SseMessage): void {
    this.position = msg.lastEventId;
    if (this.crossTab?.isLeader) {
      this.crossTab.post({ t: 'event', from: this.crossTab.id, type: msg.type, data: msg.data, id: msg.lastEventId });
    }
    this.dispatch(msg.type, msg.data, msg.lastEventId);
  }

  private fromStreamPosition(id: string): void {
    this.position = id;
    if (this.crossTab?.isLeader) this.crossTab.post({ t: 'pos', from: this.crossTab.id, id });
  }

  private fromStreamStatus(status: ConnectionStatus): void {
    if (this.crossTab && !this.crossTab.isLeader) return; // a stale status after stepping down
    this.applyStatus(status);
    this.announce();
  }

  private announce(): void {
    if (!this.crossTab?.isLeader) return;
    const s = this.snapshot;
    const status: WireStatus = {
      state: s.state,
      error: s.error ? toWire(s.error) : undefined,
      attempt: s.attempt,
      retryInMs: s.retryInMs,
    };
    this.crossTab.post({ t: 'status', from: this.crossTab.id, status, id: this.position });
  }

  private applyStatus(status: ConnectionStatus | WireStatus): void {
    const error = status.error === undefined ? undefined : fromWire(status.error);
    const changedError = error !== undefined && error !== this.snapshot.error;
    this.setSnapshot({ state: status.state, error, attempt: status.attempt, retryInMs: status.retryInMs });
    if (changedError && error) for (const l of [...this.errorListeners]) safely(() => l(error));
  }

  // ---- cross-tab

  private lead(): void {
    this.setSnapshot({ isLeader: true });
    this.connection.setLastEventId(this.position);
    if (this.started) this.connection.start();
  }

  private follow(): void {
    this.connection.stop();
    this.setSnapshot({ isLeader: false });
  }

  private fromTab(message: TabMessage): void {
    switch (message.t) {
      case 'event':
        this.position = message.id;
        this.dispatch(message.type, message.data, message.id);
        return;
      case 'pos':
        this.position = message.id;
        return;
      case 'status':
        if (message.id) this.position = message.id;
        this.applyStatus(message.status);
        return;
      case 'bye':
        // The leader left; a new one is being chosen.
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
    const next: ConnectionSnapshot = { ...this.snapshot, ...patch, lastEventId: this.position };
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
    for (const l of [...this.stateListeners]) safely(() => l(this.snapshot));
  }

  private dispatch(type: string, data: string, id: string): void {
    const meta: EventMeta = { id, event: type, receivedAt: Date.now(), raw: data };
    if (type === MISSED_EVENT) {
      const info = parseMissed(data);
      for (const l of [...this.missedListeners]) safely(() => l(info));
    }
    const set = this.listeners.get(type);
    if (!set?.size && !this.anyListeners.size) return;
    const payload = this.parse(data, type);
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
