// A page on the real `@microsoft/fetch-event-source` (bundled by esbuild), driven by
// fetch-event-source.e2e.test.ts through `window.__fes`.
//
// The library is used as published; the only thing added is its documented `fetch` option, with a
// fetch that passes every response body through unchanged while keeping a copy of its text (so the
// test can count the heartbeats the library was fed) and that holds the library's retries until
// the test releases them (so events can be published while the stream is down, deterministically).
import { fetchEventSource, type EventSourceMessage } from '@microsoft/fetch-event-source';

/** One `onmessage` call. */
export interface FesMessage {
  /** Index into `requests` of the response that was being read. */
  request: number;
  event: string;
  id: string;
  data: string;
}

/** One request the library made: the first of a stream, or a retry. */
export interface FesRequest {
  stream: number;
  /** The `last-event-id` header the library sent, if any. */
  lastEventId: string | null;
  /** Whether the Authorization header was sent. */
  authorized: boolean;
}

export interface FesState {
  requests: FesRequest[];
  /** The body text of each request's response, as the library received it. */
  raw: string[];
  messages: FesMessage[];
  /** The errors `onerror` was called with, per stream. */
  errors: Array<{ stream: number; message: string }>;
}

export interface FesOpen {
  url: string;
  token: string;
  /** Sent as the `Last-Event-ID` header of the first request. */
  lastEventId?: string;
}

export interface FesApi {
  state: FesState;
  /** Opens a stream with `fetchEventSource`; returns its number. */
  open(options: FesOpen): number;
  /** Aborts a stream (no retry). */
  close(stream: number): void;
  /** Lets the library's held retries (and later ones) go ahead. */
  releaseRetries(): void;
}

export interface FesWindow {
  __fes: FesApi;
}

const state: FesState = { requests: [], raw: [], messages: [], errors: [] };
const controllers: AbortController[] = [];
let releaseRetries: () => void = () => undefined;
const retriesReleased = new Promise<void>((resolve) => (releaseRetries = resolve));

function open({ url, token, lastEventId }: FesOpen): number {
  const stream = controllers.length;
  const controller = new AbortController();
  controllers.push(controller);
  let current = -1; // the request whose body the library is reading
  let attempts = 0;

  const tappedFetch: typeof fetch = async (input, init) => {
    const headers = new Headers(init?.headers);
    const request = state.requests.length;
    state.requests.push({ stream, lastEventId: headers.get('last-event-id'), authorized: headers.has('authorization') });
    state.raw.push('');
    if (attempts++ > 0) await retriesReleased;
    const response = await fetch(input, init);
    current = request;
    if (!response.body) return response;
    const decoder = new TextDecoder();
    const tap = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, out) {
        state.raw[request] += decoder.decode(chunk, { stream: true });
        out.enqueue(chunk);
      },
    });
    return new Response(response.body.pipeThrough(tap), {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };

  void fetchEventSource(url, {
    headers: { Authorization: `Bearer ${token}`, ...(lastEventId === undefined ? {} : { 'Last-Event-ID': lastEventId }) },
    openWhenHidden: true,
    signal: controller.signal,
    fetch: tappedFetch,
    onmessage: (m: EventSourceMessage) => state.messages.push({ request: current, event: m.event, id: m.id, data: m.data }),
    onerror: (err: unknown) => {
      state.errors.push({ stream, message: err instanceof Error ? err.message : String(err) });
      // undefined: the library retries after the hub's `retry:` delay.
    },
  });
  return stream;
}

const api: FesApi = {
  state,
  open,
  close: (stream) => controllers[stream]?.abort(),
  releaseRetries: () => releaseRetries(),
};
(window as unknown as FesWindow).__fes = api;
