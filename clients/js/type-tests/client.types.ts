// Type tests for @herald/client: checked by `tsc --noEmit` (npm run typecheck), never run.
// Every `@ts-expect-error` line must be an error, or tsc fails ("unused directive").
import {
  createClient,
  type ConnectionSnapshot,
  type EventMeta,
  type HeraldClient,
  type MissedInfo,
  type Unsubscribe,
} from '@herald/client';

type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(_: T): void {}

type Events = {
  order_update: { orderId: string; status: 'paid' | 'shipped' };
  counter: number;
  message: string;
};

interface InterfaceEvents {
  ping: { at: number };
}

const client = createClient<Events>({ url: 'https://hub.example.com/events', getToken: async () => 'jwt' });

// ---- positive: payloads and meta are typed from the map
const off: Unsubscribe = client.on('order_update', (order, meta) => {
  assertType<Equals<typeof order, { orderId: string; status: 'paid' | 'shipped' }>>(true);
  assertType<Equals<typeof meta, EventMeta<'order_update'>>>(true);
  const id: string = meta.id;
  const name: 'order_update' = meta.event;
  const at: number = meta.receivedAt;
  void [id, name, at, order.status === 'paid'];
});
off();
client.on('counter', (n) => n.toFixed(0));
client.on('message', (text) => text.toUpperCase());
client.onMissed((info: MissedInfo) => info.reason === 'history_expired');
client.onStateChange((s: ConnectionSnapshot) => s.state === 'reconnecting' && s.retryInMs);
client.onError((e) => e.code === 'unauthorized' && e.fatal);
client.onAny((event, payload) => {
  assertType<Equals<typeof event, 'order_update' | 'counter' | 'message'>>(true);
  void payload;
});
const state: 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed' = client.state;
void state;

// interfaces are accepted as event maps too
const iclient: HeraldClient<InterfaceEvents> = createClient<InterfaceEvents>({ url: '/events', token: 't' });
iclient.on('ping', (p) => p.at.toFixed());

// untyped clients accept any name, payload unknown
const loose = createClient({ url: '/events' });
loose.on('anything', (payload) => {
  assertType<Equals<typeof payload, unknown>>(true);
});

// options
createClient<Events>({
  url: '/events',
  token: 'jwt',
  topics: ['orders/*'],
  lastEventId: '1732460000000-0',
  transport: 'fetch',
  backoff: { initialDelayMs: 500, maxDelayMs: 10_000, factor: 2 },
  refreshLeewayMs: 10_000,
  crossTab: { key: 'shop', heartbeatMs: 1000 },
  onMissed: (info) => info.lastEventId,
  autoConnect: false,
});

// ---- negative
// @ts-expect-error unknown event name
client.on('order_updated', () => undefined);
// @ts-expect-error payload property that does not exist
client.on('order_update', (order) => order.total);
// @ts-expect-error status is a union of literals
client.on('order_update', (order) => order.status === 'cancelled');
// @ts-expect-error counter is a number
client.on('counter', (n) => n.toUpperCase());
// @ts-expect-error meta.event is the literal name
client.on('counter', (_n, meta) => meta.event === 'message');
// @ts-expect-error url is required
createClient<Events>({ token: 'x' });
// @ts-expect-error getToken returns a token string
createClient<Events>({ url: '/events', getToken: () => 42 });
// @ts-expect-error transport is one of auto | fetch | eventsource
createClient<Events>({ url: '/events', transport: 'websocket' });
// @ts-expect-error on() returns an unsubscribe function, not a promise
client.on('counter', () => undefined).then(() => undefined);
