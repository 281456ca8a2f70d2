/**
 * The session-hook path (`herald serve --auth-url`): no `token`, no `getToken`; the browser's
 * cookies travel with the request (`withCredentials`) and the hub asks the app who it is.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createClient, type EventSourceLike, type FetchLike, type HeraldClient } from '../src/index.js';
import { SseServer, keepOpen, waitFor } from './helpers.js';

type Events = { notification: { title: string } };

let server: SseServer | undefined;
const clients: HeraldClient<Events>[] = [];

function make(options: Parameters<typeof createClient>[0]): HeraldClient<Events> {
  const client = createClient<Events>(options);
  clients.push(client);
  return client;
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await server?.stop();
  server = undefined;
});

/** The real fetch, recording what the client asked for. */
function recordingFetch(): { fetch: FetchLike; inits: RequestInit[] } {
  const inits: RequestInit[] = [];
  return {
    inits,
    fetch: (input, init) => {
      inits.push(init);
      return globalThis.fetch(input, init);
    },
  };
}

describe('no token, cookies only (the session hook)', () => {
  it('fetch: opens with credentials included and no Authorization, and delivers events', async () => {
    const s = (server = await new SseServer().start());
    s.setHandler(keepOpen(() => s));
    const rec = recordingFetch();
    const client = make({ url: s.url, topics: ['news'], withCredentials: true, fetch: rec.fetch });
    const titles: string[] = [];
    client.on('notification', (n) => titles.push(n.title));
    await waitFor(() => client.state === 'open', 3000, 'open');
    expect(rec.inits[0]?.credentials).toBe('include');
    const headers = new Headers(rec.inits[0]?.headers);
    expect(headers.has('authorization')).toBe(false);
    const req = s.requests[0]!;
    expect(req.headers.authorization).toBeUndefined();
    expect(req.url.searchParams.has('access_token')).toBe(false);
    expect(req.url.searchParams.getAll('topic')).toEqual(['news']);
    s.write('event: notification\nid: 7\ndata: {"title":"hi"}\n\n');
    await waitFor(() => titles.length === 1, 3000, 'the event');
    expect(titles).toEqual(['hi']);
  });

  it('fetch: without withCredentials, cookies stay same-origin (the browser default)', async () => {
    const s = (server = await new SseServer().start());
    s.setHandler(keepOpen(() => s));
    const rec = recordingFetch();
    const client = make({ url: s.url, fetch: rec.fetch });
    await waitFor(() => client.state === 'open', 3000, 'open');
    expect(rec.inits[0]?.credentials).toBe('same-origin');
  });

  it('fetch: when the stream ends (the hook\'s expiresIn), reconnects with credentials and resumes', async () => {
    const s = (server = await new SseServer().start());
    s.setHandler(keepOpen(() => s, 'retry: 10\nid: 5\n\n'));
    const rec = recordingFetch();
    const client = make({ url: s.url, withCredentials: true, fetch: rec.fetch, random: () => 0 });
    await waitFor(() => client.state === 'open', 3000, 'open');
    s.endAll();
    await waitFor(() => s.requests.length === 2, 3000, 'the reconnect');
    expect(rec.inits[1]?.credentials).toBe('include');
    expect(s.requests[1]!.headers['last-event-id']).toBe('5');
    expect(s.requests[1]!.headers.authorization).toBeUndefined();
  });

  it('401 to a request without a token (not signed in) is fatal, with no retry', async () => {
    const s = (server = await new SseServer().start());
    s.setHandler((_req, res) => {
      res.writeHead(401, { 'Content-Type': 'application/json' });
      res.end('{"error":"unauthorized","message":"the session hook refused the request"}');
    });
    const client = make({ url: s.url, withCredentials: true, random: () => 0 });
    await waitFor(() => client.state === 'closed', 3000, 'closed');
    const error = client.getSnapshot().error;
    expect(error?.code).toBe('unauthorized');
    expect(error?.status).toBe(401);
    expect(error?.fatal).toBe(true);
    expect(error?.message).toContain('without a token');
    expect(error?.message).toContain('the session hook refused the request');
    expect(s.requests).toHaveLength(1);
  });

  it('EventSource: withCredentials is passed on and no access_token is added', async () => {
    const made: Array<{ url: string; init: { withCredentials?: boolean } | undefined }> = [];
    class FakeEventSource implements EventSourceLike {
      onopen: EventSourceLike['onopen'] = null;
      onmessage: EventSourceLike['onmessage'] = null;
      onerror: EventSourceLike['onerror'] = null;
      constructor(url: string, init?: { withCredentials?: boolean }) {
        made.push({ url, init });
      }
      addEventListener(): void {}
      close(): void {}
    }
    make({
      url: 'http://hub.test/events',
      topics: ['news'],
      withCredentials: true,
      transport: 'eventsource',
      EventSource: FakeEventSource,
    });
    await waitFor(() => made.length === 1);
    expect(made[0]!.init).toEqual({ withCredentials: true });
    const url = new URL(made[0]!.url);
    expect(url.searchParams.has('access_token')).toBe(false);
    expect(url.searchParams.getAll('topic')).toEqual(['news']);
  });
});
