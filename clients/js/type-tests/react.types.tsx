// Type tests for @herald/react (tsc --noEmit only).
import { createClient } from '@herald/client';
import {
  HeraldProvider,
  createHeraldHooks,
  useConnectionState,
  useNotifications,
  useProgress,
  useSSE,
  type JobProgress,
} from '@herald/react';

type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(_: T): void {}

type Events = {
  order_update: { orderId: string; status: 'paid' | 'shipped' };
  notification: { title: string; body?: string };
};

const client = createClient<Events>({ url: '/events' });
const { useSSE: useTypedSSE, useHeraldClient } = createHeraldHooks<Events>();

export function App() {
  return (
    <HeraldProvider client={client}>
      <Orders />
    </HeraldProvider>
  );
}

function Orders() {
  const { data, status, meta } = useTypedSSE('order_update', (order, m) => {
    assertType<Equals<typeof order.status, 'paid' | 'shipped'>>(true);
    void m.id;
  });
  assertType<Equals<typeof data, { orderId: string; status: 'paid' | 'shipped' } | undefined>>(true);
  assertType<Equals<typeof status, 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'>>(true);
  void meta?.receivedAt;

  const explicit = useSSE<Events, 'notification'>('notification');
  assertType<Equals<typeof explicit.data, { title: string; body?: string } | undefined>>(true);

  const typedClient = useHeraldClient();
  typedClient.on('notification', (n) => n.title);

  const { state, error } = useConnectionState();
  void [state, error?.code];

  const inbox = useNotifications<Events['notification']>({ browser: { title: (n) => n.title } });
  const unread: number = inbox.unreadCount;
  inbox.markRead(inbox.notifications[0]?.id ?? '');
  inbox.markAllRead();
  void inbox.requestPermission().then((p) => p === 'granted' || p === 'unsupported');
  const firstTitle: string | undefined = inbox.notifications[0]?.payload.title;

  const progress: JobProgress = useProgress('import-42');
  const pct: number = progress.percent;
  const done: boolean = progress.done || progress.failed || progress.status === 'running';
  useProgress(null);

  // @ts-expect-error unknown event name
  useTypedSSE('order_updated');
  // @ts-expect-error payload field that does not exist
  useTypedSSE('order_update', (order) => order.total);
  // @ts-expect-error data is possibly undefined
  void data.orderId;
  // @ts-expect-error notifications are read-only
  inbox.notifications.push({ id: 'x', payload: { title: 'x' }, receivedAt: 0, read: false });
  // @ts-expect-error progress percent is a number
  const bad: string = progress.percent;
  // @ts-expect-error the provider needs a client
  void (<HeraldProvider />);

  return <p>{[unread, firstTitle, pct, done, bad].join()}</p>;
}
