/**
 * mintToken and tokenHandler against a real hub: the tokens they issue open streams that
 * receive the user's events and the topics the token allows, and nothing more.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeraldPublisher, mintToken, mintTokenWithExpiry, tokenHandler, type TokenResponse } from '../src/index.js';
import { Hub, PUBLISH_KEY, SECRET, StreamRefused, openStream, type Stream } from './hub.js';

let hub: Hub;
let herald: HeraldPublisher;
const streams: Stream[] = [];
const servers: Server[] = [];

beforeAll(async () => {
  hub = await new Hub().start();
  herald = new HeraldPublisher({ url: hub.url, key: PUBLISH_KEY });
});

afterAll(async () => {
  for (const s of streams) s.close();
  for (const s of servers) await new Promise((resolve) => s.close(resolve));
  await hub?.stop();
});

async function open(token: string, topics: string[] = []): Promise<Stream> {
  const stream = await openStream(hub.url, token, topics);
  streams.push(stream);
  return stream;
}

async function refusal(token: string, topics: string[] = []): Promise<number> {
  try {
    (await open(token, topics)).close();
  } catch (error) {
    if (error instanceof StreamRefused) return error.status;
    throw error;
  }
  throw new Error('expected the hub to refuse the stream');
}

function claims(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
}

describe('mintToken', () => {
  it('mints an HS256 JWT with sub, exp = iat + ttl, topics and publish', () => {
    const now = Date.UTC(2030, 0, 1);
    const { token, expiresAt } = mintTokenWithExpiry(
      { secret: SECRET, sub: 'u1', topics: ['orders/*'], publish: ['@users'], ttl: 90 },
      now,
    );
    const [head] = token.split('.');
    expect(JSON.parse(Buffer.from(head!, 'base64url').toString())).toEqual({ alg: 'HS256', typ: 'JWT' });
    expect(claims(token)).toEqual({ sub: 'u1', iat: now / 1000, exp: now / 1000 + 90, topics: ['orders/*'], publish: ['@users'] });
    expect(expiresAt).toBe(now / 1000 + 90);
    expect(() => mintToken({ secret: SECRET, sub: 'u1', ttl: 0 })).toThrow(RangeError);
    expect(() => mintToken({ secret: '', sub: 'u1' })).toThrow(TypeError);
  });

  it('opens a stream for its sub, receiving that user’s events and its allowed topics', async () => {
    const stream = await open(mintToken({ secret: SECRET, sub: 'token-user', topics: ['orders/*'], ttl: 600 }), ['orders/9']);
    const toUser = await herald.sendToUser('token-user', 'hello', { n: 1 });
    const toTopic = await herald.toTopic('orders/9', 'order_update', { orderId: '9' });
    await stream.byId('hello', toUser);
    await stream.byId('order_update', toTopic);
  });

  it('is refused for a topic outside its claim (403) and with another secret (401)', async () => {
    expect(await refusal(mintToken({ secret: SECRET, sub: 'u2', topics: ['orders/*'] }), ['billing/1'])).toBe(403);
    expect(await refusal(mintToken({ secret: 'another-secret', sub: 'u2' }))).toBe(401);
  });
});

describe('tokenHandler', () => {
  type SessionRequest = IncomingMessage & { user?: { id: number } };

  /** An app server: a fake session from the `x-session-user` header, the handler at /herald-token. */
  async function app(handler: (req: SessionRequest, res: import('node:http').ServerResponse) => void): Promise<string> {
    const server = createServer((req: SessionRequest, res) => {
      const session = req.headers['x-session-user'];
      if (typeof session === 'string') req.user = { id: Number(session) };
      handler(req, res);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/herald-token`;
  }

  it('answers the signed-in user a token that opens their stream', async () => {
    const handle = tokenHandler<SessionRequest>({
      secret: SECRET,
      getUser: (req) => req.user?.id,
      topics: (user) => [`users/${user}/**`],
      ttl: 120,
    });
    const url = await app((req, res) => void handle(req, res));
    const before = Math.floor(Date.now() / 1000);
    const res = await fetch(url, { headers: { 'x-session-user': '42' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = (await res.json()) as TokenResponse;
    expect(claims(body.token)).toMatchObject({ sub: '42', topics: ['users/42/**'], exp: body.expiresAt });
    expect(body.expiresAt - before).toBeGreaterThanOrEqual(120);
    expect(body.expiresAt - before).toBeLessThanOrEqual(121);

    const stream = await open(body.token, ['users/42/inbox']);
    const id = await herald.sendToUser('42', 'notification', { message: 'for 42' });
    const topicId = await herald.toTopic('users/42/inbox', 'notification', { message: 'inbox' });
    await stream.byId('notification', id);
    await stream.byId('notification', topicId);
  });

  it('answers 401 JSON when no one is signed in', async () => {
    const handle = tokenHandler<SessionRequest>({ secret: SECRET, getUser: (req) => req.user?.id });
    const url = await app((req, res) => void handle(req, res));
    const res = await fetch(url);
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: 'unauthorized', message: 'not signed in' });
  });

  it('passes a failing getUser to next(error), or answers 500 without one', async () => {
    const failure = new Error('session store down');
    const handle = tokenHandler({
      secret: SECRET,
      getUser: () => Promise.reject(failure),
    });
    let passed: unknown;
    const withNext = await app((req, res) =>
      void handle(req, res, (error) => {
        passed = error;
        res.statusCode = 502;
        res.end();
      }),
    );
    expect((await fetch(withNext)).status).toBe(502);
    expect(passed).toBe(failure);

    const bare = await app((req, res) => void handle(req, res));
    const res = await fetch(bare);
    expect(res.status).toBe(500);
    expect(await res.text()).not.toContain('session store down');
  });
});
