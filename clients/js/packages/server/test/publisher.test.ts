/**
 * HeraldPublisher against a real `herald serve`: what it publishes arrives on real SSE streams;
 * failures carry the hub's status, code and message; retries are bounded and honour
 * Retry-After (checked with small local HTTP servers in front of the hub, not fetch mocks).
 */
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeraldError, HeraldPublisher, mintToken, PUBLISH_USERS } from '../src/index.js';
import {
  Hub,
  PUBLISH_KEY,
  SECRET,
  ScriptedServer,
  answerJson,
  forwardToHub,
  openStream,
  type Stream,
} from './hub.js';

type Events = {
  payment_completed: { amount: number };
  order_update: { orderId: string; status: 'paid' | 'shipped' };
  notification: { message: string };
  note: string;
  unread: { count: number };
};

let hub: Hub;
const streams: Stream[] = [];
const servers: ScriptedServer[] = [];

beforeAll(async () => {
  hub = await new Hub().start();
});

afterAll(async () => {
  for (const s of streams) s.close();
  for (const s of servers) await s.stop();
  await hub?.stop();
});

let users = 0;
/** A fresh user with an open stream (and the given topic subscriptions). */
async function userStream(topics: string[] = []): Promise<{ user: string; stream: Stream }> {
  const user = `user-${process.pid}-${++users}`;
  const token = mintToken({ secret: SECRET, sub: user, topics: topics.length ? ['orders/**'] : undefined, ttl: 600 });
  const stream = await openStream(hub.url, token, topics);
  streams.push(stream);
  return { user, stream };
}

async function scripted(
  handler: ConstructorParameters<typeof ScriptedServer>[0],
): Promise<ScriptedServer> {
  const server = await new ScriptedServer(handler).start();
  servers.push(server);
  return server;
}

async function rejection(promise: Promise<unknown>): Promise<HeraldError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(HeraldError);
    return error as HeraldError;
  }
  throw new Error('expected the call to reject');
}

function publisher(options: Partial<ConstructorParameters<typeof HeraldPublisher>[0]> = {}): HeraldPublisher<Events> {
  return new HeraldPublisher<Events>({ url: hub.url, key: PUBLISH_KEY, ...options });
}

describe('publishing to a real hub', () => {
  it('sendToUser reaches that user, with the id it resolved to, and no one else', async () => {
    const alice = await userStream();
    const bob = await userStream();
    const herald = publisher();
    const id = await herald.sendToUser(alice.user, 'payment_completed', { amount: 5000 });
    expect(id).toMatch(/^\d+-\d+$/);
    const event = await alice.stream.byId('payment_completed', id);
    expect(JSON.parse(event.data)).toEqual({ amount: 5000 });
    // Bob's stream is ordered: once a later broadcast reached him, the user event would have too.
    const marker = await herald.broadcast('note', 'marker');
    await bob.stream.byId('note', marker);
    expect(bob.stream.events.some((e) => e.lastEventId === id)).toBe(false);
  });

  it('sendToUsers reaches every listed user under one id', async () => {
    const a = await userStream();
    const b = await userStream();
    const id = await publisher().sendToUsers([a.user, b.user], 'notification', { message: 'hi' });
    for (const { stream } of [a, b]) {
      expect(JSON.parse((await stream.byId('notification', id)).data)).toEqual({ message: 'hi' });
    }
  });

  it('toTopic reaches the topic subscribers; string data arrives verbatim', async () => {
    const sub = await userStream(['orders/42']);
    const id = await publisher().toTopic('orders/42', 'note', 'line one\nline two');
    expect((await sub.stream.byId('note', id)).data).toBe('line one\nline two');
  });

  it('broadcast reaches every stream', async () => {
    const a = await userStream();
    const b = await userStream(['orders/1']);
    const id = await publisher().broadcast('notification', { message: 'maintenance at 22:00' });
    await a.stream.byId('notification', id);
    await b.stream.byId('notification', id);
  });

  it('publishBatch resolves to the ids in order, and the events arrive in that order', async () => {
    const sub = await userStream(['orders/7']);
    const ids = await publisher().publishBatch([
      { user: sub.user, event: 'order_update', data: { orderId: '7', status: 'paid' } },
      { topic: 'orders/7', event: 'order_update', data: { orderId: '7', status: 'shipped' } },
      { users: [sub.user], topics: ['orders/7'], event: 'note', data: 'once', retry: 1500 },
    ]);
    expect(ids).toHaveLength(3);
    expect(new Set(ids).size).toBe(3);
    await sub.stream.byId('note', ids[2]!);
    const got = sub.stream.events.filter((e) => ids.includes(e.lastEventId));
    expect(got.map((e) => e.lastEventId)).toEqual(ids);
    expect(got.map((e) => e.data)).toEqual([
      '{"orderId":"7","status":"paid"}',
      '{"orderId":"7","status":"shipped"}',
      'once',
    ]);
    expect(await publisher().publishBatch([])).toEqual([]);
  });

  it('a publisher token from mintToken publishes within its claim and gets 403 outside it', async () => {
    const sub = await userStream();
    const token = mintToken({ secret: SECRET, publish: [PUBLISH_USERS], ttl: 60 });
    const herald = publisher({ key: token });
    const id = await herald.sendToUser(sub.user, 'note', 'from a publisher token');
    await sub.stream.byId('note', id);
    const error = await rejection(herald.broadcast('note', 'not allowed'));
    expect(error.status).toBe(403);
    expect(error.code).toBe('forbidden');
    expect(error.message).toContain('@broadcast');
    expect(error.attempts).toBe(1);
  });
});

/** A fresh user name and a subscriber token for it, without opening a stream yet. */
function freshUser(): { user: string; token: string } {
  const user = `user-${process.pid}-${++users}`;
  return { user, token: mintToken({ secret: SECRET, sub: user, topics: ['orders/**'], ttl: 600 }) };
}

/** Publishes a marker to `user` and waits for it: everything the hub sent before it has arrived. */
async function settled(stream: Stream, user: string): Promise<void> {
  const id = await publisher().sendToUser(user, 'note', 'marker');
  await stream.byId('note', id);
}

describe('retained values', () => {
  it('retain: true makes the latest event what a stream opened later receives first, with its id', async () => {
    const { user, token } = freshUser();
    const herald = publisher();
    await herald.sendToUser(user, 'unread', { count: 1 }, { retain: true });
    const latest = await herald.sendToUser(user, 'unread', { count: 2 }, { retain: true });
    await herald.sendToUser(user, 'note', 'not retained');
    const topicIds = await herald.publishBatch([
      { topic: 'orders/retained-1', event: 'order_update', data: { orderId: 'r1', status: 'paid' }, retain: true },
      { topic: 'orders/retained-1', event: 'note', data: 'kept: false', retain: false },
    ]);
    const stream = await openStream(hub.url, token, ['orders/**']);
    streams.push(stream);
    await settled(stream, user);
    const first = stream.events.slice(0, 2);
    expect(first.map((e) => [e.type, e.lastEventId, e.data])).toEqual([
      ['unread', latest, '{"count":2}'],
      ['order_update', topicIds[0], '{"orderId":"r1","status":"paid"}'],
    ]);
    expect(stream.events.filter((e) => e.data === 'not retained' || e.data === 'kept: false')).toEqual([]);
  });

  it("retain: 'clear' and clearRetained forget the value: a stream opened after receives nothing of it", async () => {
    const { user, token } = freshUser();
    const herald = publisher();
    await herald.sendToUser(user, 'unread', { count: 5 }, { retain: true });
    await herald.toTopic('orders/retained-2', 'order_update', { orderId: 'r2', status: 'shipped' }, { retain: true });
    const clears = await herald.publishBatch([{ topic: 'orders/retained-2', event: 'order_update', retain: 'clear' }]);
    expect(clears).toHaveLength(1);
    expect(await herald.clearRetained({ user }, 'unread')).toMatch(/^\d+-\d+$/);
    const stream = await openStream(hub.url, token, ['orders/retained-2']);
    streams.push(stream);
    await settled(stream, user);
    expect(stream.events.map((e) => e.type)).toEqual(['note']);
  });
});

describe('idempotency keys against the real hub', () => {
  it('a repeat with the same idempotencyKey resolves to the same id and is delivered once', async () => {
    const sub = await userStream();
    const herald = publisher();
    const key = `pay-${process.pid}-${Date.now()}`;
    const first = await herald.sendToUser(sub.user, 'payment_completed', { amount: 42 }, { idempotencyKey: key });
    const again = await herald.sendToUser(sub.user, 'payment_completed', { amount: 42 }, { idempotencyKey: key });
    expect(again).toBe(first);
    const batchKey = `${key}-batch`;
    const items = [{ user: sub.user, event: 'note' as const, data: 'batched' }];
    const ids = await herald.publishBatch(items, { idempotencyKey: batchKey });
    expect(await herald.publishBatch(items, { idempotencyKey: batchKey })).toEqual(ids);
    await settled(sub.stream, sub.user);
    expect(sub.stream.events.filter((e) => e.lastEventId === first)).toHaveLength(1);
    expect(sub.stream.events.filter((e) => e.data === 'batched')).toHaveLength(1);
    // Another key is another publish.
    expect(await herald.sendToUser(sub.user, 'payment_completed', { amount: 42 }, { idempotencyKey: `${key}-2` })).not.toBe(first);
  });
});

describe('errors carry the hub status, code and message', () => {
  it('a wrong key rejects with 401 unauthorized, not retried', async () => {
    const error = await rejection(publisher({ key: 'not-the-key' }).broadcast('note', 'x'));
    expect(error.status).toBe(401);
    expect(error.code).toBe('unauthorized');
    expect(error.message).toBe('invalid publish key or publisher token');
    expect(error.retryable).toBe(false);
    expect(error.attempts).toBe(1);
  });

  it('a bad field rejects with 400 bad_request and the hub message, sent once', async () => {
    const front = await scripted((req, body, res) => forwardToHub(hub.url, req, body, res));
    const herald = new HeraldPublisher({ url: front.url, key: PUBLISH_KEY, initialDelayMs: 1 });
    const error = await rejection(herald.broadcast('herald.reserved', {}));
    expect(error.status).toBe(400);
    expect(error.code).toBe('bad_request');
    expect(error.message).toMatch(/reserved/);
    expect(front.requests).toHaveLength(1);
  });
});

describe('retries', () => {
  it('503 with Retry-After is retried after that delay, with the same Idempotency-Key', async () => {
    const sub = await userStream();
    const front = await scripted((req, body, res, index) => {
      if (index === 0) answerJson(res, 503, { error: 'unavailable', message: 'broker down' }, { 'retry-after': '1' });
      else void forwardToHub(hub.url, req, body, res);
    });
    const herald = new HeraldPublisher<Events>({ url: front.url, key: PUBLISH_KEY, initialDelayMs: 50 });
    const id = await herald.sendToUser(sub.user, 'payment_completed', { amount: 1 }, { idempotencyKey: 'pay-1' });
    await sub.stream.byId('payment_completed', id);
    expect(front.requests).toHaveLength(2);
    const [first, second] = front.requests;
    const gap = second!.at - first!.at;
    expect(gap).toBeGreaterThanOrEqual(1000);
    expect(gap).toBeLessThan(1000 + 50 + 500);
    expect(first!.headers['idempotency-key']).toBe('pay-1');
    expect(second!.headers['idempotency-key']).toBe('pay-1');
    expect(second!.body).toBe(first!.body);
  });

  it('429 is retried; after the last retry the hub error is what rejects', async () => {
    const front = await scripted((_req, _body, res) =>
      answerJson(res, 429, { error: 'too_many_requests', message: 'over the rate' }, { 'retry-after': '0' }),
    );
    const herald = new HeraldPublisher({ url: front.url, key: PUBLISH_KEY, retries: 2, initialDelayMs: 1 });
    const error = await rejection(herald.broadcast('note', 'x'));
    expect(front.requests).toHaveLength(3);
    expect(error).toMatchObject({ status: 429, code: 'too_many_requests', message: 'over the rate', attempts: 3 });
    expect(error.retryAfterMs).toBe(0);
  });

  it('a Retry-After longer than maxDelayMs is not waited out', async () => {
    const front = await scripted((_req, _body, res) =>
      answerJson(res, 503, { error: 'unavailable', message: 'later' }, { 'retry-after': '120' }),
    );
    const started = performance.now();
    const error = await rejection(
      new HeraldPublisher({ url: front.url, key: PUBLISH_KEY, maxDelayMs: 5000 }).broadcast('note', 'x'),
    );
    expect(performance.now() - started).toBeLessThan(1000);
    expect(front.requests).toHaveLength(1);
    expect(error).toMatchObject({ status: 503, code: 'unavailable', retryAfterMs: 120_000 });
  });

  it('an unreachable hub rejects with a network error after the bounded retries', async () => {
    const port = await closedPort();
    const herald = new HeraldPublisher({
      url: `http://127.0.0.1:${port}`,
      key: PUBLISH_KEY,
      retries: 2,
      initialDelayMs: 40,
      random: () => 1,
    });
    const started = performance.now();
    const error = await rejection(herald.broadcast('note', 'x'));
    const elapsed = performance.now() - started;
    expect(error.code).toBe('network');
    expect(error.status).toBeUndefined();
    expect(error.message).toContain('ECONNREFUSED');
    expect(error.attempts).toBe(3);
    // Backoff waited 40 then 80 ms (random = 1: the full ceiling) and then gave up.
    expect(elapsed).toBeGreaterThanOrEqual(115);
    expect(elapsed).toBeLessThan(3000);
  });

  it('connections that break are retried, retries + 1 in all', async () => {
    let connections = 0;
    const resetting = createTcpServer((socket) => {
      connections++;
      socket.resetAndDestroy();
    });
    const port = await listen(resetting);
    try {
      const herald = new HeraldPublisher({ url: `http://127.0.0.1:${port}`, key: PUBLISH_KEY, retries: 3, initialDelayMs: 5 });
      const error = await rejection(herald.broadcast('note', 'x'));
      expect(error.code).toBe('network');
      expect(error.attempts).toBe(4);
      expect(connections).toBe(4);
    } finally {
      resetting.close();
    }
  });

  it('a hub that does not answer times out after timeoutMs', async () => {
    const silent = await scripted(() => undefined);
    const herald = new HeraldPublisher({ url: silent.url, key: PUBLISH_KEY, retries: 0, timeoutMs: 300 });
    const started = performance.now();
    const error = await rejection(herald.broadcast('note', 'x'));
    expect(error.code).toBe('timeout');
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(silent.requests).toHaveLength(1);
  });

  it('an abort signal ends the wait between retries', async () => {
    let refused: () => void = () => undefined;
    const firstRefusal = new Promise<void>((resolve) => (refused = resolve));
    const front = await scripted((_req, _body, res) => {
      answerJson(res, 503, { error: 'unavailable', message: 'down' }, { 'retry-after': '10' });
      refused();
    });
    const controller = new AbortController();
    const herald = new HeraldPublisher({ url: front.url, key: PUBLISH_KEY });
    const pending = rejection(herald.broadcast('note', 'x', { signal: controller.signal }));
    await firstRefusal;
    const started = performance.now();
    controller.abort();
    const error = await pending;
    expect(error.code).toBe('aborted');
    expect(performance.now() - started).toBeLessThan(2000);
    expect(front.requests).toHaveLength(1);
  });
});

async function listen(server: TcpServer): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** A loopback port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createTcpServer();
  const port = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
