import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  createClient,
  type ConnectionSnapshot,
  type EventSourceLike,
  type HeraldClient,
  type MissedInfo,
} from '../src/index.js';
import { SseServer, fakeBroadcastChannel, fakeJwt, fakeLocks, keepOpen, waitFor } from './helpers.js';

type Events = {
  order_update: { orderId: string; status: string };
  message: string;
};

let server: SseServer;
const clients: HeraldClient<Events>[] = [];

function make(options: Parameters<typeof createClient>[0]): HeraldClient<Events> {
  const client = createClient<Events>(options);
  clients.push(client);
  return client;
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await server?.stop();
});

describe('createClient over fetch', () => {
  it('sends the token as a header and topics as query, and delivers typed payloads', async () => {
    server = await new SseServer().start();
    server.setHandler(keepOpen(() => server));
    const client = make({ url: server.url, token: 'tok', topics: ['orders/42', 'news/**'] });
    const got: Array<[string, string, string]> = [];
    client.on('order_update', (order, meta) => got.push([order.orderId, order.status, meta.id]));
    await waitFor(() => client.state === 'open', 3000, 'open');
    const req = server.requests[0]!;
    expect(req.headers.authorization).toBe('Bearer tok');
    expect(req.headers.accept).toBe('text/event-stream');
    expect(req.url.searchParams.getAll('topic')).toEqual(['orders/42', 'news/**']);
    server.write('event: order_update\nid: 5\ndata: {"orderId":"42","status":"paid"}\n\n');
    await waitFor(() => got.length === 1);
    expect(got[0]).toEqual(['42', 'paid', '5']);
    expect(client.lastEventId).toBe('5');
  });

  it('uses one connection however many listeners, and unsubscribe stops delivery', async () => {
    server = await new SseServer().start();
    server.setHandler(keepOpen(() => server));
    const client = make({ url: server.url, token: 't' });
    const a: string[] = [];
    const b: string[] = [];
    const offA = client.on('message', (p) => a.push(p));
    client.on('message', (p) => b.push(p));
    for (let i = 0; i < 10; i++) client.on('order_update', () => undefined)();
    await waitFor(() => client.state === 'open');
    server.write('data: one\n\n');
    await waitFor(() => b.length === 1);
    offA();
    server.write('data: two\n\n');
    await waitFor(() => b.length === 2);
    expect(a).toEqual(['one']);
    expect(b).toEqual(['one', 'two']);
    expect(server.requests).toHaveLength(1);
  });

  it('passes non-JSON data through as a string, and survives a throwing listener', async () => {
    server = await new SseServer().start();
    server.setHandler(keepOpen(() => server));
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const client = make({ url: server.url });
    const got: string[] = [];
    client.on('message', () => {
      throw new Error('boom');
    });
    client.on('message', (p) => got.push(p));
    await waitFor(() => client.state === 'open');
    server.write('data: not json\n\n');
    await waitFor(() => got.length === 1);
    expect(got).toEqual(['not json']);
    expect(errors).toHaveBeenCalled();
    errors.mockRestore();
  });
});

describe('latest()', () => {
  it('keeps the latest event of each name, before any listener, as the same object', async () => {
    server = await new SseServer().start();
    // A fresh stream: the retained values come first, then the position (an id-only block).
    server.setHandler(
      keepOpen(
        () => server,
        ': hi\n\nevent: order_update\nid: 3-0\ndata: {"orderId":"7","status":"paid"}\n\ndata: plain\nid: 4-0\n\nid: 4-0\n\n',
      ),
    );
    const client = make({ url: server.url, token: 't' });
    expect(client.latest('order_update')).toBeUndefined();
    await waitFor(() => client.latest('message') !== undefined, 3000, 'retained values');
    const order = client.latest('order_update');
    const status: string | undefined = order?.data.status;
    expect(status).toBe('paid');
    expect(order?.meta).toMatchObject({ id: '3-0', event: 'order_update', raw: '{"orderId":"7","status":"paid"}' });
    expect(client.latest('order_update')).toBe(order);
    expect(client.latest('message')?.data).toBe('plain');
    const seen: unknown[] = [];
    client.on('order_update', (payload) => seen.push(payload));
    server.write('event: order_update\nid: 5-0\ndata: {"orderId":"7","status":"shipped"}\n\n');
    await waitFor(() => seen.length === 1);
    expect(client.latest('order_update')?.data).toBe(seen[0]);
    expect(client.latest('order_update')?.meta.id).toBe('5-0');
  });
});

describe('reconnection', () => {
  it('honours retry:, backs off exponentially with a cap, and resumes with Last-Event-ID', async () => {
    server = await new SseServer().start();
    server.setHandler((_req, res, index) => {
      if (index === 0) {
        SseServer.accept(res, 'retry: 40\n\nid: 1\nevent: order_update\ndata: {"orderId":"1","status":"a"}\n\nid: 2\n\n');
        res.end();
      } else if (index < 4) {
        res.writeHead(500).end('{"error":"x","message":"down"}');
      } else {
        SseServer.accept(res, 'id: 3\nevent: order_update\ndata: {"orderId":"3","status":"b"}\n\n');
        server.track(res);
      }
    });
    const delays: number[] = [];
    const client = make({
      url: server.url,
      random: () => 1, // the top of the full-jitter range: the exponential ceiling itself
      backoff: { maxDelayMs: 100 },
    });
    client.onStateChange((s) => {
      if (s.state === 'reconnecting' && s.retryInMs !== undefined) delays.push(s.retryInMs);
    });
    const ids: string[] = [];
    client.on('order_update', (p, meta) => ids.push(`${p.orderId}@${meta.id}`));
    await waitFor(() => ids.length === 2, 5000, 'resumed event');
    expect(ids).toEqual(['1@1', '3@3']);
    // retry: 40 is the base: 40 after a clean end, then 80, 160 capped to 100, ...
    expect(delays).toEqual([40, 80, 100, 100]);
    // Every reconnect resumed from the id-only block's position.
    expect(server.requests.slice(1).map((r) => r.headers['last-event-id'])).toEqual(['2', '2', '2', '2']);
    expect(client.state).toBe('open');
  });

  it('draws delays with full jitter from [0, ceiling]', async () => {
    server = await new SseServer().start();
    server.setHandler((_req, res) => res.writeHead(502).end());
    const delays: number[] = [];
    const randoms = [0.5, 0, 0.25];
    const client = make({
      url: server.url,
      random: () => randoms.shift() ?? 0.999,
      backoff: { initialDelayMs: 100, maxDelayMs: 10_000 },
    });
    client.onStateChange((s) => {
      if (s.state === 'reconnecting' && s.retryInMs !== undefined) delays.push(s.retryInMs);
    });
    await waitFor(() => delays.length >= 3);
    expect(delays.slice(0, 3)).toEqual([50, 0, 100]);
    expect(client.getSnapshot().error?.code).toBe('http_error');
  });

  it('waits at least Retry-After on 503 and 429', async () => {
    server = await new SseServer().start();
    server.setHandler((_req, res, index) => {
      if (index === 0) res.writeHead(503, { 'Retry-After': '1' }).end('{"error":"unavailable","message":"full"}');
      else keepOpen(() => server)(_req, res, index);
    });
    const delays: number[] = [];
    const client = make({ url: server.url, random: () => 0 });
    client.onStateChange((s) => {
      if (s.state === 'reconnecting' && s.retryInMs !== undefined) delays.push(s.retryInMs);
    });
    await waitFor(() => client.state === 'open', 4000);
    expect(delays).toEqual([1000]);
  });

  it('gives up on 204 with a clear error', async () => {
    server = await new SseServer().start();
    server.setHandler((_req, res) => res.writeHead(204).end());
    const errors: string[] = [];
    const client = make({ url: server.url, onError: (e) => errors.push(`${e.code}:${e.fatal}`) });
    await waitFor(() => client.state === 'closed');
    expect(client.getSnapshot().error?.code).toBe('no_content');
    expect(errors).toEqual(['no_content:true']);
    await new Promise((r) => setTimeout(r, 100));
    expect(server.requests).toHaveLength(1);
  });

  it('gives up on 403 (a topic the token does not allow)', async () => {
    server = await new SseServer().start();
    server.setHandler((_req, res) =>
      res.writeHead(403, { 'Content-Type': 'application/json' }).end('{"error":"forbidden","message":"not allowed to subscribe to topic \\"admin/x\\""}'),
    );
    const client = make({ url: server.url, topics: ['admin/x'] });
    await waitFor(() => client.state === 'closed');
    const error = client.getSnapshot().error;
    expect(error?.code).toBe('forbidden');
    expect(error?.message).toContain('admin/x');
  });

  it('reconnect() drops the stream and resumes at once', async () => {
    server = await new SseServer().start();
    server.setHandler(keepOpen(() => server, 'id: 9\n\n'));
    const client = make({ url: server.url });
    await waitFor(() => client.state === 'open' && client.lastEventId === '9');
    client.reconnect();
    await waitFor(() => server.requests.length === 2);
    expect(server.requests[1]!.headers['last-event-id']).toBe('9');
  });

  it('starts from the lastEventId option', async () => {
    server = await new SseServer().start();
    server.setHandler(keepOpen(() => server));
    make({ url: server.url, lastEventId: '1732460000000-7' });
    await waitFor(() => server.requests.length === 1);
    expect(server.requests[0]!.headers['last-event-id']).toBe('1732460000000-7');
  });
});

describe('tokens', () => {
  it('calls getToken for the first token', async () => {
    server = await new SseServer().start();
    server.setHandler(keepOpen(() => server));
    const getToken = vi.fn(async () => 'fresh');
    const client = make({ url: server.url, getToken });
    await waitFor(() => client.state === 'open');
    expect(getToken).toHaveBeenCalledTimes(1);
    expect(server.requests[0]!.headers.authorization).toBe('Bearer fresh');
  });

  it('refreshes the token on 401 and reconnects with it', async () => {
    server = await new SseServer().start();
    server.setHandler((req, res, index) => {
      if (req.headers.authorization !== 'Bearer new') res.writeHead(401).end('{"error":"unauthorized","message":"expired"}');
      else keepOpen(() => server)(req, res, index);
    });
    const getToken = vi.fn(async () => 'new');
    const client = make({ url: server.url, token: 'old', getToken });
    await waitFor(() => client.state === 'open');
    expect(getToken).toHaveBeenCalledTimes(1);
    expect(server.requests.map((r) => r.headers.authorization)).toEqual(['Bearer old', 'Bearer new']);
  });

  it('gives up with a clear error on 401 after the refresh does not help', async () => {
    server = await new SseServer().start();
    server.setHandler((_req, res) => res.writeHead(401).end('{"error":"unauthorized","message":"bad signature"}'));
    const client = make({ url: server.url, token: 'old', getToken: async () => 'still-bad' });
    await waitFor(() => client.state === 'closed');
    const error = client.getSnapshot().error;
    expect(error?.code).toBe('unauthorized');
    expect(error?.fatal).toBe(true);
    expect(error?.message).toMatch(/401.*refreshed token.*bad signature/);
    expect(server.requests).toHaveLength(2);
  });

  it('gives up on 401 when refreshing throws', async () => {
    server = await new SseServer().start();
    server.setHandler((_req, res) => res.writeHead(401).end());
    const client = make({
      url: server.url,
      token: 'old',
      getToken: async () => {
        throw new Error('session expired');
      },
    });
    await waitFor(() => client.state === 'closed');
    expect(client.getSnapshot().error?.message).toMatch(/401.*refreshing the token failed: getToken failed: session expired/);
  });

  it('gives up on 401 without getToken', async () => {
    server = await new SseServer().start();
    server.setHandler((_req, res) => res.writeHead(401).end());
    const client = make({ url: server.url, token: 'old' });
    await waitFor(() => client.state === 'closed');
    expect(client.getSnapshot().error?.code).toBe('unauthorized');
    expect(server.requests).toHaveLength(1);
  });

  it('refreshes ahead of expiry and reconnects with the new token and Last-Event-ID', async () => {
    server = await new SseServer().start();
    server.setHandler(keepOpen(() => server, 'id: 77\n\n'));
    const now = Math.floor(Date.now() / 1000);
    const first = fakeJwt('u1', now + 4); // 3–4 s left: fresh enough to connect with
    const second = fakeJwt('u1', now + 3600);
    const getToken = vi.fn(async () => second);
    const client = make({ url: server.url, token: first, getToken, refreshLeewayMs: 1500 });
    await waitFor(() => client.state === 'open');
    expect(getToken).not.toHaveBeenCalled();
    await waitFor(() => server.requests.length === 2, 5000, 'refresh reconnect');
    expect(getToken).toHaveBeenCalledTimes(1);
    expect(server.requests[1]!.headers.authorization).toBe(`Bearer ${second}`);
    expect(server.requests[1]!.headers['last-event-id']).toBe('77');
  });

  it('a reconnect while a slow refresh is under way shares that getToken call', async () => {
    server = await new SseServer().start();
    server.setHandler(keepOpen(() => server, 'retry: 10\nid: 5\n\n'));
    const now = Math.floor(Date.now() / 1000);
    const first = fakeJwt('u1', now + 3); // 2–3 s left; the refresh starts at half of it
    const second = fakeJwt('u1', now + 3600);
    let inFlight = 0;
    let mostInFlight = 0;
    // A slow login service: each call takes 300 ms.
    const getToken = vi.fn(async () => {
      mostInFlight = Math.max(mostInFlight, ++inFlight);
      await new Promise((r) => setTimeout(r, 300));
      inFlight--;
      return second;
    });
    const client = make({ url: server.url, token: first, getToken, refreshLeewayMs: 1500, random: () => 0 });
    await waitFor(() => client.state === 'open');
    await waitFor(() => getToken.mock.calls.length === 1, 3000, 'the refresh ahead of expiry');
    // The stream drops while the refresh is pending: the reconnect needs a token (the old one
    // is within the leeway) and must wait for the pending call rather than start another.
    server.endAll();
    await waitFor(() => server.requests.length === 2 && client.state === 'open', 3000, 'reconnected');
    expect(server.requests[1]!.headers.authorization).toBe(`Bearer ${second}`);
    expect(server.requests[1]!.headers['last-event-id']).toBe('5');
    expect(getToken).toHaveBeenCalledTimes(1);
    expect(mostInFlight).toBe(1);
  });

  it('refreshes an expired token before (re)connecting', async () => {
    server = await new SseServer().start();
    server.setHandler((req, res, index) => {
      if (index === 0) {
        SseServer.accept(res, 'retry: 10\nid: 1\n\n');
        res.end(); // a clean end: the next connect checks the token first
      } else keepOpen(() => server)(req, res, index);
    });
    const now = Math.floor(Date.now() / 1000);
    // The initial token is expired: getToken runs before the first connect; the fresh token is
    // still good at the reconnect, so getToken is not called again.
    const getToken = vi.fn(async () => fakeJwt('u1', now + 3600));
    const client = make({ url: server.url, token: fakeJwt('u1', now - 60), getToken, random: () => 0 });
    await waitFor(() => server.requests.length === 2 && client.state === 'open', 3000);
    const auth = server.requests.map((r) => r.headers.authorization);
    expect(auth).toEqual([`Bearer ${fakeJwt('u1', now + 3600)}`, `Bearer ${fakeJwt('u1', now + 3600)}`]);
    expect(getToken).toHaveBeenCalledTimes(1);
    expect(server.requests[1]!.headers['last-event-id']).toBe('1');
  });
});

describe('herald.missed', () => {
  it('calls onMissed (option and listener) with the reason', async () => {
    server = await new SseServer().start();
    server.setHandler(
      keepOpen(
        () => server,
        'event: herald.missed\ndata: {"reason":"unknown_id","lastEventId":"1-0"}\n\nid: 5-0\n\n',
      ),
    );
    const viaOption: MissedInfo[] = [];
    const viaListener: MissedInfo[] = [];
    const client = make({ url: server.url, lastEventId: '1-0', onMissed: (i) => viaOption.push(i) });
    client.onMissed((i) => viaListener.push(i));
    await waitFor(() => viaListener.length === 1);
    expect(viaOption).toEqual([{ reason: 'unknown_id', lastEventId: '1-0' }]);
    expect(viaListener).toEqual(viaOption);
    await waitFor(() => client.lastEventId === '5-0');
  });
});

describe('connection state', () => {
  it('a listener added right after createClient sees the first connecting', async () => {
    server = await new SseServer().start();
    server.setHandler(keepOpen(() => server));
    const client = make({ url: server.url });
    expect(client.state).toBe('connecting'); // still connecting at once
    const states: ConnectionSnapshot['state'][] = [];
    client.onStateChange((s) => states.push(s.state));
    await waitFor(() => client.state === 'open');
    expect(states).toEqual(['connecting', 'open']);
  });

  it('the same with cross-tab sharing', async () => {
    server = await new SseServer().start();
    server.setHandler(keepOpen(() => server));
    const client = make({ url: server.url, crossTab: { BroadcastChannel: fakeBroadcastChannel(), locks: fakeLocks() } });
    const states: Array<[ConnectionSnapshot['state'], boolean]> = [];
    client.onStateChange((s) => states.push([s.state, s.isLeader]));
    await waitFor(() => client.state === 'open');
    // Connecting as a follower, then as the leader once the lock is granted.
    expect(states).toEqual([
      ['connecting', false],
      ['connecting', true],
      ['open', true],
    ]);
  });

  it('goes idle → connecting → open → closed, with new snapshot objects', async () => {
    server = await new SseServer().start();
    server.setHandler(keepOpen(() => server));
    const client = make({ url: server.url, autoConnect: false });
    const states: ConnectionSnapshot['state'][] = [client.state];
    const first = client.getSnapshot();
    client.onStateChange((s) => states.push(s.state));
    client.connect();
    await waitFor(() => client.state === 'open');
    expect(client.getSnapshot()).not.toBe(first);
    client.close();
    expect(states).toEqual(['idle', 'connecting', 'open', 'closed']);
  });
});

describe('EventSource fallback', () => {
  it('puts the token, topics and position in the query and listens to named events', async () => {
    const made: FakeEventSource[] = [];
    class FakeEventSource implements EventSourceLike {
      onopen: EventSourceLike['onopen'] = null;
      onmessage: EventSourceLike['onmessage'] = null;
      onerror: EventSourceLike['onerror'] = null;
      readonly named = new Map<string, (ev: MessageEvent) => void>();
      closed = false;
      constructor(readonly url: string) {
        made.push(this);
      }
      addEventListener(type: string, listener: (ev: MessageEvent) => void): void {
        this.named.set(type, listener);
      }
      close(): void {
        this.closed = true;
      }
      emit(type: string, data: string, lastEventId: string): void {
        const ev = { type, data, lastEventId } as MessageEvent;
        if (type === 'message') this.onmessage?.call(this, ev);
        else this.named.get(type)?.(ev);
      }
    }
    const client = make({
      url: 'http://hub.test/events',
      token: 'tok',
      topics: ['orders/*'],
      lastEventId: '3',
      transport: 'eventsource',
      EventSource: FakeEventSource,
      random: () => 0,
    });
    const got: string[] = [];
    client.on('order_update', (p, meta) => got.push(`${p.status}@${meta.id}`));
    const missed: MissedInfo[] = [];
    client.onMissed((i) => missed.push(i));
    await waitFor(() => made.length === 1);
    const es = made[0]!;
    const url = new URL(es.url);
    expect(url.searchParams.get('access_token')).toBe('tok');
    expect(url.searchParams.get('lastEventId')).toBe('3');
    expect(url.searchParams.getAll('topic')).toEqual(['orders/*']);
    es.onopen?.call(es, new Event('open'));
    expect(client.state).toBe('open');
    es.emit('order_update', '{"orderId":"1","status":"paid"}', '4');
    es.emit('herald.missed', '{"reason":"history_expired","lastEventId":"3"}', '4');
    expect(got).toEqual(['paid@4']);
    expect(missed[0]?.reason).toBe('history_expired');
    // An error: our reconnect (not the browser's), resuming from 4.
    es.onerror?.call(es, new Event('error'));
    expect(es.closed).toBe(true);
    await waitFor(() => made.length === 2);
    expect(new URL(made[1]!.url).searchParams.get('lastEventId')).toBe('4');
  });
});

describe('idle timeout', () => {
  it('reconnects when not even a heartbeat arrives (half-open connection)', async () => {
    server = await new SseServer().start();
    server.setHandler(keepOpen(() => server, 'retry: 10\nid: 3\n\n'));
    const errors: string[] = [];
    const client = make({ url: server.url, idleTimeoutMs: 150, random: () => 0, onError: (e) => errors.push(e.message) });
    await waitFor(() => client.state === 'open');
    // Heartbeats keep it alive.
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 80));
      server.write(':\n\n');
    }
    expect(server.requests).toHaveLength(1);
    await waitFor(() => server.requests.length === 2, 2000, 'idle reconnect');
    expect(server.requests[1]!.headers['last-event-id']).toBe('3');
    expect(errors[0]).toMatch(/no data .* for 150 ms/);
  });
});

describe('restarting', () => {
  it('close() then connect() right away holds exactly one stream', async () => {
    server = await new SseServer().start();
    server.setHandler(keepOpen(() => server, 'id: 4\ndata: partial'));
    const client = make({ url: server.url });
    const got: string[] = [];
    client.on('message', (m) => got.push(m));
    await waitFor(() => client.state === 'open');
    for (let i = 0; i < 5; i++) {
      client.close();
      client.connect();
    }
    await waitFor(() => client.state === 'open' && server.open.size === 1, 3000, 'one stream');
    await new Promise((r) => setTimeout(r, 100));
    expect(server.open.size).toBe(1);
    server.write('\n\ndata: whole\n\n');
    await waitFor(() => got.length >= 2);
    await new Promise((r) => setTimeout(r, 50));
    // Only the live stream's block completes: the closed streams' half blocks were dropped.
    expect(got).toEqual(['partial', 'whole']);
  });
});

describe('parser limits', () => {
  it('a too-large event is a protocol error: events before it are delivered, then it reconnects', async () => {
    server = await new SseServer().start();
    server.setHandler((req, res, index) => {
      if (index === 0) {
        SseServer.accept(res, 'retry: 5\nid: 1\ndata: ok\n\ndata: ' + 'x'.repeat(100) + '\n\n');
        server.track(res);
      } else keepOpen(() => server)(req, res, index);
    });
    const errors: string[] = [];
    const got: string[] = [];
    const client = make({ url: server.url, maxEventBytes: 64, random: () => 0, onError: (e) => errors.push(e.code) });
    client.on('message', (m) => got.push(m));
    await waitFor(() => server.requests.length === 2, 3000, 'reconnect');
    expect(got).toEqual(['ok']);
    expect(errors).toContain('protocol');
    expect(server.requests[1]!.headers['last-event-id']).toBe('1');
  });
});

describe('reconnect() during a backoff wait', () => {
  it('connects at once, and the next drop backs off normally', async () => {
    server = await new SseServer().start();
    server.setHandler((req, res, index) => {
      if (index === 0) res.writeHead(502).end();
      else {
        SseServer.accept(res, 'retry: 5000\n\n');
        server.track(res);
      }
    });
    const delays: number[] = [];
    const client = make({ url: server.url, random: () => 1, backoff: { initialDelayMs: 10_000, maxDelayMs: 60_000 } });
    client.onStateChange((s) => {
      if (s.state === 'reconnecting' && s.retryInMs !== undefined) delays.push(s.retryInMs);
    });
    await waitFor(() => delays.length === 1);
    client.reconnect();
    await waitFor(() => client.state === 'open', 2000, 'reconnected at once');
    server.endAll();
    await waitFor(() => delays.length === 2);
    // The drop after the manual reconnect waits the hub's retry hint, not zero.
    expect(delays).toEqual([10_000, 5000]);
  });
});
