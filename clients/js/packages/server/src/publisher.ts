import { HeraldError } from './errors.js';
import { backoffDelay, parseRetryAfter, sleep, type RetryOptions } from './retry.js';
import type { EventMap, EventName, EventOptions, EventsOf, PublishItem, SendOptions, Targets } from './types.js';

export interface PublisherOptions extends RetryOptions {
  /**
   * The hub's base URL, e.g. `https://hub.example.com` (or one behind a path prefix,
   * `https://example.com/herald`); `/publish` is appended unless the URL already ends with it.
   */
  url: string;
  /** A publish key (`--publish-key`) or a publisher JWT (see `mintToken({ publish })`). */
  key: string;
  /** Bound on each attempt, from sending the request to reading the whole answer. Default 10 000 ms. */
  timeoutMs?: number;
  /** Source of randomness for the backoff jitter (tests). Default `Math.random`. */
  random?: () => number;
}

const USER_AGENT = 'herald-server-js/0.1.0';
// The hub's limit on Idempotency-Key; visible ASCII keeps the header valid everywhere.
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

/**
 * Publishes events to a Herald hub over `POST /publish`. `E` maps event names to data types
 * (the `Events` map of `@herald/client`), so names and data are checked at compile time.
 *
 * ```ts
 * const herald = new HeraldPublisher<Events>({ url: process.env.HERALD_URL, key: process.env.HERALD_KEY });
 * await herald.sendToUser('user_123', 'payment_completed', { amount: 5000 });
 * await herald.broadcast('maintenance', { at: '22:00' });
 * ```
 *
 * Every method resolves to the id(s) the hub assigned and rejects with a {@link HeraldError}.
 * 429, 503, network errors and timeouts are retried (`retries`, default 3) with exponential
 * backoff and jitter, waiting at least the hub's `Retry-After`.
 */
export class HeraldPublisher<E extends EventsOf<E> = EventMap> {
  private readonly endpoint: string;
  private readonly key: string;
  private readonly retries: number;
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly timeoutMs: number;
  private readonly random: () => number;

  constructor(options: PublisherOptions) {
    if (!options.key) throw new TypeError('HeraldPublisher: key is required');
    this.endpoint = publishEndpoint(options.url);
    this.key = options.key;
    this.retries = nonNegative('retries', options.retries ?? 3);
    this.initialDelayMs = nonNegative('initialDelayMs', options.initialDelayMs ?? 250);
    this.maxDelayMs = nonNegative('maxDelayMs', options.maxDelayMs ?? 30_000);
    this.timeoutMs = nonNegative('timeoutMs', options.timeoutMs ?? 10_000);
    this.random = options.random ?? Math.random;
  }

  /** Sends an event to every stream of one user (all their tabs and devices). */
  sendToUser<K extends EventName<E>>(user: string, event: K, data: E[K], options?: EventOptions): Promise<string> {
    return this.publish(item(event, data, { user }, options), options);
  }

  /** Sends one event to several users (one id; each stream receives it once). */
  sendToUsers<K extends EventName<E>>(
    users: readonly string[],
    event: K,
    data: E[K],
    options?: EventOptions,
  ): Promise<string> {
    return this.publish(item(event, data, { users }, options), options);
  }

  /** Sends an event to the subscribers of a topic (a concrete topic such as `orders/42`). */
  toTopic<K extends EventName<E>>(topic: string, event: K, data: E[K], options?: EventOptions): Promise<string> {
    return this.publish(item(event, data, { topic }, options), options);
  }

  /** Sends an event to every stream. */
  broadcast<K extends EventName<E>>(event: K, data: E[K], options?: EventOptions): Promise<string> {
    return this.publish(item(event, data, {}, options), options);
  }

  /**
   * Forgets the retained value of `event` for these targets (`{}`: the broadcast one), so that
   * streams opening from now on no longer receive it. Reaches no stream; resolves to its id.
   */
  clearRetained<K extends EventName<E>>(targets: Targets, event: K, options?: SendOptions): Promise<string> {
    return this.publish({ ...targets, event, retain: 'clear' } as PublishItem<E>, options);
  }

  /** Publishes one item with any targets (users and topics together, a `retry` hint). */
  async publish(item: PublishItem<E>, options?: SendOptions): Promise<string> {
    const answer = await this.post(JSON.stringify(item), options);
    if (typeof answer === 'object' && answer !== null && 'id' in answer && typeof answer.id === 'string') {
      return answer.id;
    }
    throw invalidAnswer(answer);
  }

  /**
   * Publishes several items in one request, all or nothing: one bad item and nothing is sent.
   * Resolves to their ids, in order. An empty list resolves to `[]` without a request.
   */
  async publishBatch(items: readonly PublishItem<E>[], options?: SendOptions): Promise<string[]> {
    if (items.length === 0) return [];
    const answer = await this.post(JSON.stringify(items), options);
    if (
      typeof answer === 'object' &&
      answer !== null &&
      'ids' in answer &&
      Array.isArray(answer.ids) &&
      answer.ids.length === items.length &&
      answer.ids.every((id): id is string => typeof id === 'string')
    ) {
      return answer.ids;
    }
    throw invalidAnswer(answer);
  }

  /** POSTs the body, retrying what may succeed later; resolves to the parsed 200 answer. */
  private async post(body: string, options: SendOptions = {}): Promise<unknown> {
    const { idempotencyKey, signal } = options;
    if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw new TypeError('idempotencyKey must be 1-128 visible ASCII characters');
    }
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.key}`,
      'content-type': 'application/json',
      accept: 'application/json',
      'user-agent': USER_AGENT,
    };
    if (idempotencyKey !== undefined) headers['idempotency-key'] = idempotencyKey;

    for (let attempt = 1; ; attempt++) {
      const failure = await this.attempt(body, headers, attempt, signal);
      if (!(failure instanceof HeraldError)) return failure.answer;
      if (!failure.retryable || attempt > this.retries) throw failure;
      const retryAfter = failure.retryAfterMs;
      if (retryAfter !== undefined && retryAfter > this.maxDelayMs) throw failure;
      const delay =
        retryAfter !== undefined
          ? retryAfter + Math.round(this.random() * this.initialDelayMs) // at least what the hub asked
          : backoffDelay(attempt - 1, this.initialDelayMs, this.maxDelayMs, this.random);
      try {
        await sleep(delay, signal);
      } catch (reason) {
        throw new HeraldError({ code: 'aborted', message: 'publish aborted', attempts: attempt, cause: reason });
      }
    }
  }

  /** One request. Failures are returned, not thrown, so the loop above decides on retries. */
  private async attempt(
    body: string,
    headers: Record<string, string>,
    attempt: number,
    signal: AbortSignal | undefined,
  ): Promise<{ answer: unknown } | HeraldError> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.timeoutMs);
    const onAbort = (): void => controller.abort();
    if (signal?.aborted) controller.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const response = await fetch(this.endpoint, { method: 'POST', headers, body, signal: controller.signal });
      const text = await response.text();
      if (response.ok) {
        try {
          return { answer: JSON.parse(text) as unknown };
        } catch {
          return new HeraldError({
            code: 'invalid_response',
            message: `the hub answered ${response.status} with a body that is not JSON`,
            status: response.status,
            attempts: attempt,
          });
        }
      }
      return hubError(response, text, attempt);
    } catch (error) {
      if (signal?.aborted) {
        return new HeraldError({ code: 'aborted', message: 'publish aborted', attempts: attempt, cause: signal.reason });
      }
      if (timedOut) {
        return new HeraldError({
          code: 'timeout',
          message: `no answer from ${this.endpoint} within ${this.timeoutMs} ms`,
          attempts: attempt,
          cause: error,
        });
      }
      return new HeraldError({
        code: 'network',
        message: `cannot reach ${this.endpoint}: ${describeNetworkError(error)}`,
        attempts: attempt,
        cause: error,
      });
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

function item<E extends EventsOf<E>, K extends EventName<E>>(
  event: K,
  data: E[K],
  targets: { user?: string; users?: readonly string[]; topic?: string },
  options: EventOptions | undefined,
): PublishItem<E> {
  // The mapped union cannot be narrowed to one K by the compiler; this is that one member.
  return (options?.retain ? { ...targets, event, data, retain: true } : { ...targets, event, data }) as PublishItem<E>;
}

/** The hub's `{"error", "message"}` answer (or whatever else a proxy in front of it said). */
function hubError(response: Response, text: string, attempt: number): HeraldError {
  let code = 'http_error';
  let message = text.trim() || `${response.status} ${response.statusText}`;
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null) {
      if ('error' in parsed && typeof parsed.error === 'string') code = parsed.error;
      if ('message' in parsed && typeof parsed.message === 'string') message = parsed.message;
    }
  } catch {
    // not JSON: keep the text as the message
  }
  const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'));
  return new HeraldError({
    code,
    message,
    status: response.status,
    attempts: attempt,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  });
}

function invalidAnswer(answer: unknown): HeraldError {
  return new HeraldError({
    code: 'invalid_response',
    message: `unexpected answer from the hub: ${JSON.stringify(answer)?.slice(0, 200)}`,
    status: 200,
  });
}

/** Node's fetch says "fetch failed"; the useful part (ECONNREFUSED, …) is in the cause. */
function describeNetworkError(error: unknown): string {
  const cause = error instanceof Error ? error.cause : undefined;
  if (typeof cause === 'object' && cause !== null) {
    if ('code' in cause && typeof cause.code === 'string') return cause.code;
    if ('message' in cause && typeof cause.message === 'string') return cause.message;
  }
  return error instanceof Error ? error.message : String(error);
}

function publishEndpoint(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`HeraldPublisher: url ${JSON.stringify(url)} is not an absolute URL`);
  }
  if (!parsed.pathname.endsWith('/publish')) {
    parsed.pathname = `${parsed.pathname.replace(/\/+$/, '')}/publish`;
  }
  return parsed.toString();
}

function nonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`HeraldPublisher: ${name} must be a number >= 0`);
  return value;
}
