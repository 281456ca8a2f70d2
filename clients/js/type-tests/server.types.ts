// Type tests for @herald/server: checked by `tsc --noEmit` (npm run typecheck), never run.
// Every `@ts-expect-error` line must be an error, or tsc fails ("unused directive").
import { createServer, type IncomingMessage } from 'node:http';
import { createClient } from '@herald/client';
import {
  HeraldError,
  HeraldPublisher,
  mintToken,
  tokenHandler,
  type PublishItem,
} from '@herald/server';

type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(_: T): void {}

// One map of event names to data types for both ends.
type Events = {
  payment_completed: { amount: number };
  order_update: { orderId: string; status: 'paid' | 'shipped' };
  counter: number;
};

interface InterfaceEvents {
  ping: { at: number };
}

const herald = new HeraldPublisher<Events>({ url: 'http://127.0.0.1:8080', key: 'k' });
const client = createClient<Events>({ url: '/events', token: 't' });
client.on('payment_completed', (p) => p.amount.toFixed(2));

// ---- positive: what the seed's services do, with typed data
const id: Promise<string> = herald.sendToUser('user_123', 'payment_completed', { amount: 5000 });
const ids: Promise<string[]> = herald.publishBatch([
  { user: 'u1', event: 'counter', data: 3 },
  { topic: 'orders/42', event: 'order_update', data: { orderId: '42', status: 'shipped' } },
  { users: ['a', 'b'], topics: ['x'], event: 'counter', data: 1, retry: 1000 },
]);
void [id, ids];
void herald.sendToUsers(['a', 'b'], 'counter', 7, { idempotencyKey: 'count-7' });
void herald.toTopic('orders/42', 'order_update', { orderId: '42', status: 'paid' });
void herald.broadcast('counter', 0, { signal: AbortSignal.timeout(1000) });
void herald.publish({ users: ['a'], topic: 't', event: 'counter', data: 1 });
void new HeraldPublisher<InterfaceEvents>({ url: 'http://hub', key: 'k' }).broadcast('ping', { at: 1 });

// untyped: any event name, any data
const loose = new HeraldPublisher({ url: 'http://hub', key: 'k' });
void loose.sendToUser('u', 'anything', { whatever: [1, 'two'] });

// the batch item is a union over event names: data follows the event beside it
type Item = PublishItem<Events>;
assertType<Equals<Exclude<Extract<Item, { event: 'counter' }>, { retain: 'clear' }>['data'], number>>(true);

// retained values: retain on items and sends, 'clear' needs no data
void herald.publish({ user: 'u1', event: 'counter', data: 3, retain: true });
void herald.publishBatch([
  { user: 'u1', event: 'counter', data: 4, retain: false },
  { user: 'u1', event: 'counter', retain: 'clear' },
]);
void herald.sendToUser('u1', 'counter', 5, { retain: true, idempotencyKey: 'c-5' });
void herald.toTopic('orders/42', 'order_update', { orderId: '42', status: 'paid' }, { retain: true });
void herald.clearRetained({ user: 'u1' }, 'counter');
// @ts-expect-error a value that is kept needs its data
void herald.publish({ user: 'u1', event: 'counter', retain: true });
// @ts-expect-error retain is true, false or 'clear'
void herald.publish({ user: 'u1', event: 'counter', data: 1, retain: 'keep' });
// @ts-expect-error the sends keep or not; clearing is clearRetained
void herald.sendToUser('u1', 'counter', 5, { retain: 'clear' });
// @ts-expect-error not an event of the map
void herald.clearRetained({ user: 'u1' }, 'nope');

// ---- negative
// @ts-expect-error not an event of the map
void herald.sendToUser('u', 'payment_failed', { amount: 1 });
// @ts-expect-error amount is a number
void herald.sendToUser('u', 'payment_completed', { amount: '5000' });
// @ts-expect-error status is one of the union's values
void herald.toTopic('orders/1', 'order_update', { orderId: '1', status: 'lost' });
// @ts-expect-error data does not match this item's event
void herald.publishBatch([{ user: 'u', event: 'counter', data: { amount: 1 } }]);
// @ts-expect-error users is a list
void herald.publish({ users: 'u1', event: 'counter', data: 1 });
// @ts-expect-error url and key are required
void new HeraldPublisher<Events>({ url: 'http://hub' });

// ---- errors
async function handled(): Promise<void> {
  try {
    await herald.broadcast('counter', 1);
  } catch (error) {
    if (error instanceof HeraldError) {
      const status: number | undefined = error.status;
      const code: string = error.code;
      const retryAfter: number | undefined = error.retryAfterMs;
      void [status, code, retryAfter, error.message, error.attempts, error.retryable];
    }
  }
}
void handled;

// ---- tokens
void mintToken({ secret: 's', sub: 'u1', topics: ['orders/*'], ttl: 3600 });
void mintToken({ secret: 's', publish: ['orders/**', '@users'] });
// @ts-expect-error a token needs a sub (subscriber) or a publish claim (publisher)
void mintToken({ secret: 's', ttl: 60 });

// ---- the token handler plugs into node:http (and so Express/Connect)
type SessionRequest = IncomingMessage & { user?: { id: string } };
const handler = tokenHandler<SessionRequest>({ secret: 's', getUser: (req) => req.user?.id, topics: ['news/**'] });
createServer((req, res) => void handler(req, res));
tokenHandler({ secret: 's', getUser: async () => 42, topics: async (user) => [`users/${user}/**`] });
// @ts-expect-error getUser returns a user id, not a session object
tokenHandler<SessionRequest>({ secret: 's', getUser: (req) => req.user });
