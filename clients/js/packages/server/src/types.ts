/**
 * Maps event names to data types, e.g.
 * `type Events = { order_update: { orderId: string; status: 'paid' | 'shipped' } }`.
 * The same map `@herald/client`'s `createClient<Events>()` takes, so one type describes both
 * ends. Interfaces work too.
 */
export type EventMap = { [K in string]: unknown };

/** The constraint every event map satisfies (type aliases and interfaces alike). */
export type EventsOf<E> = { [K in keyof E]: unknown };

/** Event names of a map, as strings. */
export type EventName<E> = keyof E & string;

/**
 * Who receives an event. No users and no topics is a broadcast; users and topics together
 * reach the union, each stream once.
 */
export interface Targets {
  user?: string;
  users?: readonly string[];
  topic?: string;
  /** Concrete topics (no `*`/`**` wildcards). */
  topics?: readonly string[];
}

/**
 * One item of `POST /publish`: an event of `E` with its data and its targets. A union over the
 * event names, so `data` is checked against the type of the `event` beside it.
 *
 * `retain: true` makes the event the retained value of each of its targets (each user, each
 * topic, or everyone for a broadcast) and its event name: a stream that opens later, without a
 * resume point, receives it first (the counter, score or last state a page shows at once).
 * `retain: 'clear'` forgets those values instead: the item reaches no stream and needs no `data`.
 */
export type PublishItem<E extends EventsOf<E> = EventMap> = {
  [K in EventName<E>]:
    | (Targets & {
        event: K;
        data: E[K];
        /** Reconnection delay in milliseconds that clients should use from this event on (`retry:`). */
        retry?: number;
        /** `true`: this event becomes its targets' retained value for its event name. */
        retain?: boolean;
      })
    | (Targets & {
        event: K;
        /** Forgets the retained value of these targets and this event name (sent to no stream). */
        retain: 'clear';
        data?: E[K];
        retry?: number;
      });
}[EventName<E>];

/** Per-call options of every publishing method. */
export interface SendOptions {
  /**
   * Sent as `Idempotency-Key` (1–128 visible ASCII characters), the same on every retry of this
   * call: a hub that supports it answers a repeat with the first answer and delivers nothing
   * again, which makes retries after a timeout or a dropped connection safe.
   */
  idempotencyKey?: string;
  /** Aborts the call, including its retries and the waits between them. */
  signal?: AbortSignal;
}

/** Options of `sendToUser`, `sendToUsers`, `toTopic` and `broadcast`. */
export interface EventOptions extends SendOptions {
  /**
   * Make this event the retained value of its targets and event name, so that a page that opens
   * later receives it first, with no extra fetch (see `PublishItem`). Default `false`.
   */
  retain?: boolean;
}
