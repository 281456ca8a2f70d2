/**
 * The reconnecting, resuming stream engine: one instance holds at most one HTTP stream at a
 * time. It knows nothing about listeners or tabs; it reports messages, positions and state.
 */
import { backoffDelay, type BackoffOptions } from './backoff.js';
import { tokenExpiry } from './jwt.js';
import { SseBufferLimitError, SseParser, type SseMessage } from './parser.js';
import { HeraldError, MISSED_EVENT, type ConnectionState } from './types.js';

/** The subset of `EventSource` the fallback transport uses. */
export interface EventSourceLike {
  onopen: ((this: EventSourceLike, ev: Event) => unknown) | null;
  onmessage: ((this: EventSourceLike, ev: MessageEvent) => unknown) | null;
  onerror: ((this: EventSourceLike, ev: Event) => unknown) | null;
  addEventListener(type: string, listener: (ev: MessageEvent) => void): void;
  close(): void;
}

export type EventSourceConstructor = new (url: string, init?: { withCredentials?: boolean }) => EventSourceLike;

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export type TokenProvider = () => string | null | undefined | Promise<string | null | undefined>;

export interface ConnectionOptions {
  /** The hub's stream URL, e.g. `https://hub.example.com/events`. */
  url: string;
  token?: string;
  getToken?: TokenProvider;
  topics?: readonly string[];
  lastEventId?: string;
  /** `auto` (default): fetch streaming when available, else `EventSource`. */
  transport?: 'auto' | 'fetch' | 'eventsource';
  /**
   * Send cookies cross-origin: fetch `credentials: 'include'`, `EventSource` `withCredentials`.
   * With the hub's session hook (`--auth-url`) and no `token`/`getToken`, this is how the app's
   * session cookie reaches the hub (which needs `--cors-origin` for the page's origin).
   */
  withCredentials?: boolean;
  backoff?: BackoffOptions;
  /** Refresh the token this long before its `exp`. Default 30 000 ms. */
  refreshLeewayMs?: number;
  /**
   * Fetch transport: reconnect when nothing (not even a heartbeat comment) arrived for this long,
   * which catches half-open connections. Default 45 000 ms (three of the hub's default 15 s
   * heartbeats); 0 disables.
   */
  idleTimeoutMs?: number;
  /** Parser bound on one event's size. Default 1 MiB. */
  maxEventBytes?: number;
  fetch?: FetchLike;
  EventSource?: EventSourceConstructor;
  /** Source of randomness for jitter (tests). */
  random?: () => number;
}

export interface ConnectionStatus {
  state: ConnectionState;
  error: HeraldError | undefined;
  attempt: number;
  retryInMs: number | undefined;
}

export interface ConnectionCallbacks {
  message(msg: SseMessage): void;
  position(lastEventId: string): void;
  status(status: ConnectionStatus): void;
  /** The id to resume from, asked right before each request is sent. Default: the stream's own. */
  resumeFrom?(): string;
}

type Outcome =
  | { kind: 'ended'; opened: boolean }
  | { kind: 'aborted' }
  | { kind: 'http'; status: number; retryAfterMs: number | undefined; message: string }
  | { kind: 'failed'; opened: boolean; error: HeraldError };

export class Connection {
  private parser: SseParser;
  private token: string | undefined;
  /** The token the current (or last) stream request was sent with. */
  private streamToken: string | undefined;
  /** A getToken call under way: every caller shares it (one refresh at a time). */
  private pendingToken: Promise<void> | undefined;
  private running = false;
  private abort: AbortController | undefined;
  private sleepWake: (() => void) | undefined;
  /** Bumped by start() and stop(): a loop from an earlier start() notices and exits. */
  private generation = 0;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private retryHintMs: number | undefined;
  private attempt = 0;
  private everOpened = false;
  /** Set when the current stream is dropped on purpose (token refresh, reconnect()). */
  private immediate = false;
  private readonly watched = new Set<string>();
  private watchOnSource: ((name: string) => void) | undefined;

  constructor(
    private readonly options: ConnectionOptions,
    private readonly callbacks: ConnectionCallbacks,
  ) {
    this.parser = new SseParser({ maxBuffer: options.maxEventBytes ?? 1 << 20 });
    if (options.lastEventId) this.parser.setLastEventId(options.lastEventId);
    this.token = options.token;
  }

  get lastEventId(): string {
    return this.parser.lastEventId;
  }

  /** EventSource fallback only: it must subscribe to every event name by name. */
  watch(name: string): void {
    if (this.watched.has(name)) return;
    this.watched.add(name);
    this.watchOnSource?.(name);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.attempt = 0;
    globalEvents()?.addEventListener('online', this.onOnline);
    void this.loop(++this.generation);
  }

  stop(): void {
    this.running = false;
    this.generation++;
    globalEvents()?.removeEventListener('online', this.onOnline);
    this.clearRefresh();
    this.abort?.abort();
    this.sleepWake?.();
  }

  /** Drops the current stream (if any) and reconnects at once, resuming. */
  reconnectNow(): void {
    if (!this.running) return;
    this.immediate = true;
    this.abort?.abort();
    this.sleepWake?.();
  }

  /** The browser is back online: skip the rest of the backoff wait. */
  private readonly onOnline = (): void => {
    this.sleepWake?.();
  };

  private status(state: ConnectionState, error?: HeraldError, retryInMs?: number): void {
    this.callbacks.status({ state, error, attempt: this.attempt, retryInMs });
  }

  private live(generation: number): boolean {
    return this.running && this.generation === generation;
  }

  private async loop(gen: number): Promise<void> {
    let refreshedFor401 = false;
    this.status(this.everOpened ? 'reconnecting' : 'connecting');
    while (this.live(gen)) {
      // 1. A usable token.
      try {
        await this.ensureToken(false);
      } catch (error) {
        if (!this.live(gen)) break;
        const err = asHeraldError(error, 'token');
        if (err.fatal) return this.fail(err);
        await this.backoff(err, undefined);
        continue;
      }
      if (!this.live(gen)) break;

      // 2. One stream, until it ends.
      const controller = new AbortController();
      this.abort = controller;
      // A fresh stream: drop any half-received block of the previous one (keeps the position).
      this.parser.finish();
      // A reconnectNow() that woke us from a backoff wait is served by this very attempt.
      this.immediate = false;
      const outcome = await this.connectOnce(controller.signal);
      if (this.abort === controller) this.abort = undefined;
      if (!this.live(gen)) break;
      this.clearRefresh();

      if (this.immediate) {
        this.immediate = false;
        this.attempt = 0;
        this.status('reconnecting', undefined, 0);
        continue;
      }

      switch (outcome.kind) {
        case 'aborted':
          continue;
        case 'ended':
          if (outcome.opened) refreshedFor401 = false;
          await this.backoff(new HeraldError('network', 'the stream ended'), undefined);
          continue;
        case 'failed':
          if (outcome.opened) refreshedFor401 = false;
          if (outcome.error.fatal) return this.fail(outcome.error);
          await this.backoff(outcome.error, undefined);
          continue;
        case 'http': {
          const { status, message } = outcome;
          if (status === 401) {
            if (this.options.getToken && !refreshedFor401) {
              refreshedFor401 = true;
              try {
                await this.ensureToken(true);
              } catch (error) {
                return this.fail(
                  new HeraldError('unauthorized', `401 from the hub, and refreshing the token failed: ${describe(error)}`, 401, true),
                );
              }
              continue;
            }
            return this.fail(
              new HeraldError(
                'unauthorized',
                this.options.getToken
                  ? `401 from the hub even with a freshly refreshed token: ${message}`
                  : this.streamToken === undefined
                    ? `401 from the hub to a request without a token: ${message}`
                    : `401 from the hub and no getToken to refresh the token: ${message}`,
                401,
                true,
              ),
            );
          }
          if (status === 204) {
            return this.fail(new HeraldError('no_content', 'the hub answered 204 No Content: not reconnecting', 204, true));
          }
          if (status === 403) return this.fail(new HeraldError('forbidden', `403 from the hub: ${message}`, 403, true));
          if (status === 400) return this.fail(new HeraldError('bad_request', `400 from the hub: ${message}`, 400, true));
          if (status === 429 || status === 503) {
            await this.backoff(new HeraldError('rate_limited', `${status} from the hub: ${message}`, status), outcome.retryAfterMs);
            continue;
          }
          if (status >= 500 || status === 408) {
            await this.backoff(new HeraldError('http_error', `${status} from the hub: ${message}`, status), outcome.retryAfterMs);
            continue;
          }
          return this.fail(new HeraldError('http_error', `unexpected ${status} from the hub: ${message}`, status, true));
        }
      }
    }
  }

  private fail(error: HeraldError): void {
    this.running = false;
    globalEvents()?.removeEventListener('online', this.onOnline);
    this.clearRefresh();
    this.status('closed', error);
  }

  private async backoff(error: HeraldError, minDelayMs: number | undefined): Promise<void> {
    const base = this.retryHintMs ?? this.options.backoff?.initialDelayMs ?? 1000;
    let delay = backoffDelay(this.attempt, base, this.options.backoff ?? {}, this.options.random ?? Math.random);
    if (minDelayMs !== undefined) delay = Math.max(delay, minDelayMs);
    this.attempt++;
    this.status('reconnecting', error, delay);
    await this.sleep(delay);
  }

  private sleep(ms: number): Promise<void> {
    let wakeRef: (() => void) | undefined;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      const wake = (): void => {
        clearTimeout(timer);
        done();
      };
      wakeRef = wake;
      this.sleepWake = wake;
      function done(): void {
        resolve();
      }
    }).then(() => {
      if (this.sleepWake === wakeRef) this.sleepWake = undefined;
    });
  }

  /**
   * Gets a token from getToken when there is none, it is about to expire, or `force`. A call
   * already under way (e.g. the refresh ahead of expiry, when the stream drops meanwhile) is
   * shared: it is as fresh as a new one would be.
   */
  private ensureToken(force: boolean): Promise<void> {
    const getToken = this.options.getToken;
    if (!getToken) return Promise.resolve();
    if (this.pendingToken) return this.pendingToken;
    const leeway = this.options.refreshLeewayMs ?? 30_000;
    const exp = this.token === undefined ? undefined : tokenExpiry(this.token);
    const stale = this.token === undefined || (exp !== undefined && exp * 1000 - Date.now() <= leeway);
    if (!force && !stale) return Promise.resolve();
    const pending = this.fetchToken(getToken).finally(() => {
      if (this.pendingToken === pending) this.pendingToken = undefined;
    });
    this.pendingToken = pending;
    return pending;
  }

  private async fetchToken(getToken: TokenProvider): Promise<void> {
    let next: string | null | undefined;
    try {
      next = await getToken();
    } catch (error) {
      throw new HeraldError('token', `getToken failed: ${describe(error)}`);
    }
    if (!next) throw new HeraldError('token', 'getToken returned no token', undefined, true);
    this.token = next;
  }

  /** After a stream opens: refresh the token ahead of its expiry, then reconnect with it. */
  private scheduleRefresh(): void {
    this.clearRefresh();
    if (!this.options.getToken || this.token === undefined) return;
    const exp = tokenExpiry(this.token);
    if (exp === undefined) return;
    const remaining = exp * 1000 - Date.now();
    const leeway = Math.min(this.options.refreshLeewayMs ?? 30_000, remaining / 2);
    const delay = Math.max(0, remaining - leeway);
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined;
      this.ensureToken(true).then(
        () => {
          // Not if the stream already reconnected with the new token (it dropped meanwhile).
          if (this.running && this.token !== this.streamToken) this.reconnectNow();
        },
        () => {
          // Keep streaming; the reconnect at expiry retries getToken.
        },
      );
    }, delay);
  }

  private clearRefresh(): void {
    if (this.refreshTimer !== undefined) clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
  }

  private onOpen(): void {
    this.attempt = 0;
    this.everOpened = true;
    this.status('open');
    this.scheduleRefresh();
  }

  private useFetch(): boolean {
    const mode = this.options.transport ?? 'auto';
    if (mode === 'fetch') return true;
    if (mode === 'eventsource') return false;
    if (this.options.fetch) return true;
    return (
      typeof globalThis.fetch === 'function' &&
      typeof ReadableStream !== 'undefined' &&
      typeof Response !== 'undefined' &&
      'body' in Response.prototype
    );
  }

  private streamUrl(query: Record<string, string>): string {
    const url = new URL(this.options.url, typeof location === 'undefined' ? undefined : location.href);
    for (const topic of this.options.topics ?? []) url.searchParams.append('topic', topic);
    for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
    return url.toString();
  }

  private connectOnce(signal: AbortSignal): Promise<Outcome> {
    return this.useFetch() ? this.connectFetch(signal) : this.connectEventSource(signal);
  }

  private async connectFetch(signal: AbortSignal): Promise<Outcome> {
    const fetchImpl = this.options.fetch ?? ((input: string, init: RequestInit) => globalThis.fetch(input, init));
    const headers: Record<string, string> = { Accept: 'text/event-stream' };
    this.streamToken = this.token;
    if (this.token) headers['Authorization'] = `Bearer ${this.token}`;
    const lastEventId = this.resumePosition();
    if (lastEventId) headers['Last-Event-ID'] = lastEventId;
    let response: Response;
    try {
      response = await fetchImpl(this.streamUrl({}), {
        headers,
        signal,
        cache: 'no-store',
        credentials: this.options.withCredentials ? 'include' : 'same-origin',
      });
    } catch (error) {
      if (signal.aborted) return { kind: 'aborted' };
      return { kind: 'failed', opened: false, error: new HeraldError('network', `connection failed: ${describe(error)}`) };
    }
    if (response.status !== 200) {
      const message = await errorMessage(response);
      return { kind: 'http', status: response.status, retryAfterMs: retryAfter(response), message };
    }
    const type = response.headers.get('content-type') ?? '';
    if (!/^text\/event-stream/i.test(type) || !response.body) {
      await response.body?.cancel().catch(() => undefined);
      return {
        kind: 'failed',
        opened: false,
        error: new HeraldError('protocol', `expected text/event-stream, got "${type}"`, 200),
      };
    }
    const reader = response.body.getReader();
    const onAbort = (): void => {
      reader.cancel().catch(() => undefined);
    };
    signal.addEventListener('abort', onAbort);
    const idleMs = this.options.idleTimeoutMs ?? 45_000;
    let idleTimer: ReturnType<typeof setTimeout> | undefined;
    let idle = false;
    const arm = (): void => {
      if (idleTimer !== undefined) clearTimeout(idleTimer);
      if (idleMs <= 0) return;
      idleTimer = setTimeout(() => {
        idle = true;
        reader.cancel().catch(() => undefined);
      }, idleMs);
    };
    const idleError = (): Outcome => ({
      kind: 'failed',
      opened: true,
      error: new HeraldError('network', `no data (not even a heartbeat) for ${idleMs} ms`),
    });
    this.onOpen();
    arm();
    try {
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (error) {
          if (signal.aborted) return { kind: 'aborted' };
          if (idle) return idleError();
          return { kind: 'failed', opened: true, error: new HeraldError('network', `stream broke: ${describe(error)}`) };
        }
        if (signal.aborted) return { kind: 'aborted' };
        if (idle) return idleError();
        if (chunk.done) return { kind: 'ended', opened: true };
        arm();
        try {
          this.feed(chunk.value);
        } catch (error) {
          if (error instanceof SseBufferLimitError) {
            reader.cancel().catch(() => undefined);
            return { kind: 'failed', opened: true, error: new HeraldError('protocol', error.message) };
          }
          throw error;
        }
      }
    } finally {
      if (idleTimer !== undefined) clearTimeout(idleTimer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Read as the request is sent (cross-tab: other tabs' relays may have moved us on until now). */
  private resumePosition(): string {
    const id = this.callbacks.resumeFrom?.() ?? this.parser.lastEventId;
    this.parser.setLastEventId(id);
    return id;
  }

  private feed(bytes: Uint8Array): void {
    const before = this.parser.lastEventId;
    let items;
    try {
      items = this.parser.feed(bytes);
    } catch (error) {
      // Deliver what completed before the offending line, then fail.
      this.deliver(this.parser.take(), before);
      throw error;
    }
    this.deliver(items, before);
  }

  private deliver(items: ReturnType<SseParser['take']>, before: string): void {
    for (const item of items) {
      if (item.kind === 'retry') this.retryHintMs = item.retry;
      else if (item.kind === 'event') this.callbacks.message(item.event);
    }
    // Also covers id-only blocks, which move the position without an event.
    if (this.parser.lastEventId !== before) this.callbacks.position(this.parser.lastEventId);
  }

  private connectEventSource(signal: AbortSignal): Promise<Outcome> {
    const Impl =
      this.options.EventSource ?? (globalThis as { EventSource?: EventSourceConstructor }).EventSource;
    if (!Impl) {
      return Promise.resolve({
        kind: 'failed',
        opened: false,
        error: new HeraldError('protocol', 'neither streaming fetch nor EventSource is available', undefined, true),
      });
    }
    const query: Record<string, string> = {};
    this.streamToken = this.token;
    if (this.token) query['access_token'] = this.token;
    const lastEventId = this.resumePosition();
    if (lastEventId) query['lastEventId'] = lastEventId;
    const source = new Impl(this.streamUrl(query), { withCredentials: this.options.withCredentials ?? false });
    return new Promise<Outcome>((resolve) => {
      let opened = false;
      let settled = false;
      const finish = (outcome: Outcome): void => {
        if (settled) return;
        settled = true;
        source.close();
        this.watchOnSource = undefined;
        signal.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      const onAbort = (): void => finish({ kind: 'aborted' });
      signal.addEventListener('abort', onAbort);
      const handle = (ev: MessageEvent): void => {
        const id = ev.lastEventId ?? '';
        const msg: SseMessage = { type: ev.type, data: typeof ev.data === 'string' ? ev.data : String(ev.data), lastEventId: id };
        const before = this.parser.lastEventId;
        this.parser.setLastEventId(id);
        this.callbacks.message(msg);
        if (id !== before) this.callbacks.position(id);
      };
      source.onopen = () => {
        opened = true;
        this.onOpen();
      };
      source.onmessage = handle;
      source.onerror = () => {
        // Take reconnection over from the browser: our backoff, our token, our Last-Event-ID.
        finish(
          opened
            ? { kind: 'ended', opened: true }
            : { kind: 'failed', opened: false, error: new HeraldError('network', 'EventSource could not connect') },
        );
      };
      const watch = (name: string): void => {
        if (name !== 'message') source.addEventListener(name, handle);
      };
      watch(MISSED_EVENT);
      for (const name of this.watched) watch(name);
      this.watchOnSource = watch;
    });
  }
}

function globalEvents():
  | { addEventListener(type: string, fn: () => void): void; removeEventListener(type: string, fn: () => void): void }
  | undefined {
  const g = globalThis as {
    addEventListener?: (type: string, fn: () => void) => void;
    removeEventListener?: (type: string, fn: () => void) => void;
  };
  return typeof g.addEventListener === 'function' && typeof g.removeEventListener === 'function'
    ? (g as { addEventListener(type: string, fn: () => void): void; removeEventListener(type: string, fn: () => void): void })
    : undefined;
}

function asHeraldError(error: unknown, code: 'token'): HeraldError {
  return error instanceof HeraldError ? error : new HeraldError(code, describe(error));
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

async function errorMessage(response: Response): Promise<string> {
  try {
    const text = await response.text();
    try {
      const body: unknown = JSON.parse(text);
      if (typeof body === 'object' && body !== null && 'message' in body) {
        return String((body as { message: unknown }).message);
      }
    } catch {
      // not JSON
    }
    return text.slice(0, 200) || response.statusText;
  } catch {
    return response.statusText;
  }
}

function retryAfter(response: Response): number | undefined {
  const value = response.headers.get('retry-after');
  if (value === null) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}
