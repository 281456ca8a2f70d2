/**
 * Maps event names to payload types, e.g.
 * `type Events = { order_update: { orderId: string; status: 'paid' | 'shipped' } }`.
 * Interfaces work too.
 */
export type EventMap = { [K in string]: unknown };

/** Event names of a map, as strings. */
export type EventName<E> = keyof E & string;

/** What every listener receives beside the payload. */
export interface EventMeta<K extends string = string> {
  /** The event's id as assigned by the hub (opaque), `""` if it had none. */
  readonly id: string;
  /** The event name (`"message"` for unnamed events). */
  readonly event: K;
  /** `Date.now()` when this tab received it (taken from the leader tab: when the leader did). */
  readonly receivedAt: number;
  /** The `data` exactly as it arrived, before parsing. */
  readonly raw: string;
}

export type Listener<P, K extends string = string> = (payload: P, meta: EventMeta<K>) => void;

export type Unsubscribe = () => void;

/**
 * - `idle`: not started (`autoConnect: false` and no `connect()` yet);
 * - `connecting`: opening the first stream;
 * - `open`: a stream is open (in a follower tab: the leader's stream is open);
 * - `reconnecting`: the stream dropped; waiting out the backoff or reopening;
 * - `closed`: stopped for good, by `close()` or a fatal error (see `error`).
 */
export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Why the client stopped or is retrying. */
export type HeraldErrorCode =
  | 'unauthorized' // 401 and refreshing the token did not help (or no getToken)
  | 'forbidden' // 403: a topic the token does not allow
  | 'bad_request' // 400: e.g. a malformed topic pattern
  | 'no_content' // 204: the server asked us not to reconnect
  | 'http_error' // another unexpected status
  | 'rate_limited' // 429/503, retried after Retry-After
  | 'network' // connection failed or dropped
  | 'token' // getToken threw or returned nothing
  | 'protocol'; // not text/event-stream, or the parser's buffer limit

export class HeraldError extends Error {
  constructor(
    readonly code: HeraldErrorCode,
    message: string,
    /** HTTP status when the error came from a response. */
    readonly status?: number,
    /** Whether the client gave up (`true`) or keeps retrying (`false`). */
    readonly fatal = false,
  ) {
    super(message);
    this.name = 'HeraldError';
  }
}

/** An immutable picture of the connection; a new object on every change. */
export interface ConnectionSnapshot {
  readonly state: ConnectionState;
  /** The last error: the fatal one when `closed`, else the one that caused the reconnect. */
  readonly error: HeraldError | undefined;
  /** Reconnection attempts since the last successful open. */
  readonly attempt: number;
  /** Delay before the next attempt, while `reconnecting`. */
  readonly retryInMs: number | undefined;
  /** The position a reconnect resumes from (the SSE last event ID). */
  readonly lastEventId: string;
  /** Cross-tab: whether this tab holds the stream. `true` when cross-tab sharing is off. */
  readonly isLeader: boolean;
}

/** Payload of the hub's reserved `herald.missed` event. */
export interface MissedInfo {
  /** `history_expired`: the id is older than the hub's history; `unknown_id`: never seen (e.g. the hub restarted). */
  readonly reason: 'history_expired' | 'unknown_id' | (string & {});
  /** The id the client resumed from, as the hub echoed it. */
  readonly lastEventId: string;
}

/** The reserved event name the hub sends when it cannot replay what a client missed. */
export const MISSED_EVENT = 'herald.missed';
