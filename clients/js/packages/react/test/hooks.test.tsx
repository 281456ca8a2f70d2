// @vitest-environment jsdom
import { act, cleanup, fireEvent, render, screen } from '@testing-library/react';
import { StrictMode, useState } from 'react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createClient } from '@herald/client';
import {
  HeraldProvider,
  createHeraldHooks,
  useConnectionState,
  useNotifications,
  useProgress,
  useSSE,
} from '@herald/react';
import { SseServer, fakeBroadcastChannel, fakeLocks, keepOpen, waitFor } from '../../client/test/helpers.js';
import { FakeClient } from './fake-client.js';

type Events = {
  order_update: { orderId: string; status: string };
  notification: { title: string; body?: string };
  job_progress: { jobId: string; percent?: number; stage?: string; status?: 'running' | 'done' | 'failed'; error?: string };
};

const typed = createHeraldHooks<Events>();

afterEach(() => cleanup());

describe('useSSE', () => {
  it('returns the latest payload and the status, and calls the latest handler', () => {
    const fake = new FakeClient<Events>();
    const calls: string[] = [];
    function Order({ suffix }: { suffix: string }) {
      const { data, status, meta } = typed.useSSE('order_update', (o) => calls.push(o.status + suffix));
      return (
        <p data-testid="order">
          {status}:{data ? `${data.orderId}=${data.status}@${meta?.id}` : 'none'}
        </p>
      );
    }
    const { rerender } = render(
      <HeraldProvider client={fake.client}>
        <Order suffix="-1" />
      </HeraldProvider>,
    );
    expect(screen.getByTestId('order').textContent).toBe('open:none');
    act(() => fake.emit('order_update', { orderId: '42', status: 'paid' }));
    expect(screen.getByTestId('order').textContent).toBe('open:42=paid@1');
    rerender(
      <HeraldProvider client={fake.client}>
        <Order suffix="-2" />
      </HeraldProvider>,
    );
    act(() => fake.emit('order_update', { orderId: '42', status: 'shipped' }));
    expect(calls).toEqual(['paid-1', 'shipped-2']);
    // Re-rendering with a new handler did not resubscribe.
    expect(fake.listenerCount('order_update')).toBe(1);
    act(() => fake.setState('reconnecting'));
    expect(screen.getByTestId('order').textContent).toBe('reconnecting:42=shipped@2');
  });

  it('forgets the previous payload when the event name changes', () => {
    const fake = new FakeClient<Events>();
    function Latest({ name }: { name: 'order_update' | 'notification' }) {
      const { data } = useSSE<Events, 'order_update' | 'notification'>(name);
      return <p data-testid="latest">{data ? JSON.stringify(data) : 'none'}</p>;
    }
    const { rerender } = render(
      <HeraldProvider client={fake.client}>
        <Latest name="order_update" />
      </HeraldProvider>,
    );
    act(() => fake.emit('order_update', { orderId: '1', status: 'paid' }));
    expect(screen.getByTestId('latest').textContent).toContain('paid');
    rerender(
      <HeraldProvider client={fake.client}>
        <Latest name="notification" />
      </HeraldProvider>,
    );
    expect(screen.getByTestId('latest').textContent).toBe('none');
    expect(fake.listenerCount('order_update')).toBe(0);
  });

  it('data follows latest() state that came without an event (a cross-tab follower joining), the handler does not run', () => {
    const fake = new FakeClient<Events>();
    const calls: string[] = [];
    function Order() {
      const { data } = useSSE<Events, 'order_update'>('order_update', (p) => calls.push(p.status));
      return <p data-testid="order">{data?.status ?? 'none'}</p>;
    }
    render(
      <HeraldProvider client={fake.client}>
        <Order />
      </HeraldProvider>,
    );
    act(() => fake.seed('order_update', { orderId: '1', status: 'paid' }));
    expect(screen.getByTestId('order').textContent).toBe('paid');
    expect(calls).toEqual([]);
    act(() => fake.emit('order_update', { orderId: '1', status: 'shipped' }));
    expect(screen.getByTestId('order').textContent).toBe('shipped');
    expect(calls).toEqual(['shipped']);
  });

  it('unsubscribes on unmount', () => {
    const fake = new FakeClient<Events>();
    function Order() {
      useSSE<Events, 'order_update'>('order_update');
      return null;
    }
    const { unmount } = render(
      <HeraldProvider client={fake.client}>
        <Order />
      </HeraldProvider>,
    );
    expect(fake.listenerCount('order_update')).toBe(1);
    unmount();
    expect(fake.listenerCount('order_update')).toBe(0);
  });

  it('throws a clear error outside a provider', () => {
    const spy = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    function Lonely() {
      useConnectionState();
      return null;
    }
    expect(() => render(<Lonely />)).toThrow(/inside <HeraldProvider/);
    spy.mockRestore();
  });
});

describe('useConnectionState', () => {
  it('follows the client state', () => {
    const fake = new FakeClient<Events>();
    function State() {
      return <span data-testid="s">{useConnectionState().state}</span>;
    }
    render(
      <HeraldProvider client={fake.client}>
        <State />
      </HeraldProvider>,
    );
    expect(screen.getByTestId('s').textContent).toBe('open');
    act(() => fake.setState('closed'));
    expect(screen.getByTestId('s').textContent).toBe('closed');
  });
});

describe('useNotifications', () => {
  function Bell() {
    const { unreadCount, notifications, markAllRead, markRead } = useNotifications<Events['notification']>();
    return (
      <div>
        <span data-testid="unread">{unreadCount}</span>
        <ul>
          {notifications.map((n) => (
            <li key={n.id} data-testid="item" onClick={() => markRead(n.id)}>
              {n.payload.title}
              {n.read ? ' (read)' : ''}
            </li>
          ))}
        </ul>
        <button onClick={markAllRead}>all read</button>
      </div>
    );
  }

  it('keeps a shared list with unread count, markRead and markAllRead', () => {
    const fake = new FakeClient<Events>();
    render(
      <HeraldProvider client={fake.client}>
        <Bell />
        <Bell />
      </HeraldProvider>,
    );
    act(() => {
      fake.emit('notification', { title: 'first' });
      fake.emit('notification', { title: 'second' });
      fake.emit('notification', { title: 'dup' }, '2'); // same id: ignored
    });
    expect(screen.getAllByTestId('unread').map((e) => e.textContent)).toEqual(['2', '2']);
    expect(screen.getAllByTestId('item').slice(0, 2).map((e) => e.textContent)).toEqual(['second', 'first']);
    act(() => fireEvent.click(screen.getAllByTestId('item')[1]!));
    expect(screen.getAllByTestId('unread').map((e) => e.textContent)).toEqual(['1', '1']);
    act(() => fireEvent.click(screen.getAllByText('all read')[0]!));
    expect(screen.getAllByTestId('unread').map((e) => e.textContent)).toEqual(['0', '0']);
    // One store subscription for the event, however many components.
    expect(fake.listenerCount('notification')).toBe(3); // store + one browser-notification effect per Bell
  });

  it('shows a browser notification when allowed and hidden, and asks for permission', async () => {
    const shown: Array<[string, NotificationOptions | undefined]> = [];
    class FakeNotification {
      static permission: NotificationPermission = 'default';
      static requestPermission = vi.fn(async () => {
        FakeNotification.permission = 'granted';
        return 'granted' as NotificationPermission;
      });
      constructor(title: string, options?: NotificationOptions) {
        shown.push([title, options]);
      }
    }
    vi.stubGlobal('Notification', FakeNotification);
    const visibility = vi.spyOn(document, 'visibilityState', 'get').mockReturnValue('hidden');
    const fake = new FakeClient<Events>();
    function Perm() {
      const { permission, requestPermission } = useNotifications<Events['notification']>({ browser: true });
      return <button onClick={() => void requestPermission()}>{permission}</button>;
    }
    render(
      <HeraldProvider client={fake.client}>
        <Perm />
      </HeraldProvider>,
    );
    act(() => fake.emit('notification', { title: 'before' }));
    expect(shown).toEqual([]); // no permission yet
    await act(async () => {
      fireEvent.click(screen.getByText('default'));
    });
    expect(screen.getByText('granted')).toBeTruthy();
    act(() => fake.emit('notification', { title: 'Paid', body: 'Order 42' }, 'id-7'));
    expect(shown).toEqual([['Paid', { body: 'Order 42', tag: 'id-7' }]]);
    visibility.mockRestore();
    vi.unstubAllGlobals();
  });

  it('reports unsupported without the Notification API', () => {
    vi.stubGlobal('Notification', undefined);
    const fake = new FakeClient<Events>();
    function Perm() {
      return <span data-testid="p">{useNotifications().permission}</span>;
    }
    render(
      <HeraldProvider client={fake.client}>
        <Perm />
      </HeraldProvider>,
    );
    expect(screen.getByTestId('p').textContent).toBe('unsupported');
    vi.unstubAllGlobals();
  });
});

describe('useProgress', () => {
  it('tracks percent, stage and done/failed per job, also for late mounts', () => {
    const fake = new FakeClient<Events>();
    function Bar({ job }: { job: string }) {
      const p = useProgress(job);
      return (
        <span data-testid={`job-${job}`}>
          {p.status}:{p.percent}:{p.stage ?? '-'}:{p.error ?? '-'}
        </span>
      );
    }
    function App() {
      const [late, setLate] = useState(false);
      return (
        <>
          <Bar job="a" />
          <Bar job="b" />
          {late && <Bar job="a" />}
          <button onClick={() => setLate(true)}>mount</button>
        </>
      );
    }
    render(
      <HeraldProvider client={fake.client}>
        <App />
      </HeraldProvider>,
    );
    expect(screen.getByTestId('job-a').textContent).toBe('idle:0:-:-');
    act(() => fake.emit('job_progress', { jobId: 'a', percent: 40, stage: 'validating' }));
    expect(screen.getByTestId('job-a').textContent).toBe('running:40:validating:-');
    expect(screen.getByTestId('job-b').textContent).toBe('idle:0:-:-');
    act(() => fireEvent.click(screen.getByText('mount')));
    expect(screen.getAllByTestId('job-a').map((e) => e.textContent)).toEqual(['running:40:validating:-', 'running:40:validating:-']);
    act(() => fake.emit('job_progress', { jobId: 'a', percent: 250 }));
    expect(screen.getAllByTestId('job-a')[0]!.textContent).toBe('running:100:validating:-');
    act(() => fake.emit('job_progress', { jobId: 'a', status: 'done', stage: 'finished' }));
    expect(screen.getAllByTestId('job-a')[0]!.textContent).toBe('done:100:finished:-');
    act(() => fake.emit('job_progress', { jobId: 'b', percent: 10, status: 'failed', error: 'bad row 7' }));
    expect(screen.getByTestId('job-b').textContent).toBe('failed:10:-:bad row 7');
  });
});

describe('with a real client', () => {
  it('mounting and unmounting hooks never reconnects the stream', async () => {
    const server = await new SseServer().start();
    server.setHandler(keepOpen(() => server));
    const client = createClient<Events>({ url: server.url, token: 't' });
    function Orders() {
      const { data } = useSSE<Events, 'order_update'>('order_update');
      return <span data-testid="o">{data?.status ?? '-'}</span>;
    }
    function App() {
      const [n, setN] = useState(1);
      return (
        <>
          {Array.from({ length: n }, (_, i) => (
            <Orders key={i} />
          ))}
          <button onClick={() => setN((x) => (x === 1 ? 5 : 1))}>toggle</button>
        </>
      );
    }
    render(
      <StrictMode>
        <HeraldProvider client={client}>
          <App />
        </HeraldProvider>
      </StrictMode>,
    );
    await waitFor(() => client.state === 'open');
    for (let i = 0; i < 4; i++) act(() => fireEvent.click(screen.getByText('toggle')));
    act(() => fireEvent.click(screen.getByText('toggle')));
    server.write('event: order_update\nid: 1\ndata: {"orderId":"1","status":"shipped"}\n\n');
    await waitFor(() => screen.queryAllByTestId('o').every((e) => e.textContent === 'shipped'));
    expect(screen.getAllByTestId('o')).toHaveLength(5);
    expect(server.requests).toHaveLength(1);
    client.close();
    await server.stop();
  });
});

describe('retained values as initial state', () => {
  it('a component mounted after the stream opened shows the retained value at once, typed', async () => {
    const server = await new SseServer().start();
    // What the hub sends a fresh stream: the opening, the retained values, then its position.
    server.setHandler(
      keepOpen(
        () => server,
        ': herald\n\nevent: unread\nid: 5-0\ndata: {"count":3}\n\n' +
          'event: job_progress\nid: 6-0\ndata: {"jobId":"import-1","percent":40,"status":"running"}\n\nid: 6-0\n\n',
      ),
    );
    const client = createClient<Events & { unread: { count: number } }>({ url: server.url, token: 't' });
    await waitFor(() => client.latest('job_progress') !== undefined);
    const hooks = createHeraldHooks<Events & { unread: { count: number } }>();
    function Badge() {
      const { data, meta } = hooks.useSSE('unread');
      const count: number | undefined = data?.count;
      return <span data-testid="badge">{count === undefined ? '-' : `${count}@${meta?.id}`}</span>;
    }
    function Job() {
      const job = useSSE<Events, 'job_progress'>('job_progress').data;
      const progress = useProgress(job?.jobId);
      return <span data-testid="job">{`${job?.jobId}:${progress.status}:${progress.percent}`}</span>;
    }
    render(
      <HeraldProvider client={client}>
        <Badge />
        <Job />
      </HeraldProvider>,
    );
    expect(screen.getByTestId('badge').textContent).toBe('3@5-0');
    expect(screen.getByTestId('job').textContent).toBe('import-1:running:40');
    server.write('event: unread\nid: 7-0\ndata: {"count":4}\n\n');
    await waitFor(() => screen.getByTestId('badge').textContent === '4@7-0');
    expect(server.requests).toHaveLength(1);
    client.close();
    await server.stop();
  });

  it('a cross-tab follower opened later shows the leader’s latest values at once, without calling handlers', async () => {
    const server = await new SseServer().start();
    server.setHandler(
      keepOpen(
        () => server,
        ': herald\n\nevent: unread\nid: 5-0\ndata: {"count":3}\n\n' +
          'event: job_progress\nid: 6-0\ndata: {"jobId":"import-1","percent":40,"status":"running"}\n\nid: 6-0\n\n',
      ),
    );
    type All = Events & { unread: { count: number } };
    const crossTab = { BroadcastChannel: fakeBroadcastChannel(), locks: fakeLocks() };
    const leader = createClient<All>({ url: server.url, token: 't', crossTab });
    await waitFor(() => leader.latest('job_progress') !== undefined && leader.getSnapshot().isLeader);
    const follower = createClient<All>({ url: server.url, token: 't', crossTab });
    const hooks = createHeraldHooks<All>();
    const handled: string[] = [];
    function Badge() {
      const { data, meta } = hooks.useSSE('unread', (p) => handled.push(`unread:${p.count}`));
      return <span data-testid="badge">{data === undefined ? '-' : `${data.count}@${meta?.id}`}</span>;
    }
    function Job() {
      const job = hooks.useSSE('job_progress', (p) => handled.push(`job:${p.jobId}`)).data;
      const progress = useProgress(job?.jobId ?? 'import-1');
      return <span data-testid="job">{`${job?.jobId}:${progress.status}:${progress.percent}`}</span>;
    }
    // Mounted before the leader's answer came: the state arrives after mount, without an event.
    render(
      <HeraldProvider client={follower}>
        <Badge />
        <Job />
      </HeraldProvider>,
    );
    expect(screen.getByTestId('badge').textContent).toBe('-');
    await waitFor(() => screen.getByTestId('badge').textContent === '3@5-0', 3000, 'badge from the leader');
    await waitFor(() => screen.getByTestId('job').textContent === 'import-1:running:40', 3000, 'job from the leader');
    expect(handled).toEqual([]);
    expect(follower.getSnapshot().isLeader).toBe(false);
    server.write('event: unread\nid: 7-0\ndata: {"count":4}\n\n');
    await waitFor(() => screen.getByTestId('badge').textContent === '4@7-0');
    expect(handled).toEqual(['unread:4']);
    expect(server.requests).toHaveLength(1);
    follower.close();
    leader.close();
    await server.stop();
  });
});
