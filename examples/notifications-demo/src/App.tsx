import { createHeraldHooks, useConnectionState, useNotifications, useProgress, type HeraldNotification } from '@herald/react';
import { useCallback, useEffect, useState } from 'react';
import type { Events, Order } from './events';

const { useSSE, useHeraldClient } = createHeraldHooks<Events>();

export function App({ user }: { user: string }) {
  return (
    <div className="app">
      <header>
        <h1>Herald shop</h1>
        <span className="user">{user}</span>
        <ConnectionPill />
        <Bell />
      </header>
      <main>
        <Orders />
        <Import />
        <Feed />
      </main>
      <Toasts />
    </div>
  );
}

function ConnectionPill() {
  const { state, isLeader, error } = useConnectionState();
  return (
    <span className={`pill pill-${state}`} data-testid="connection" title={error?.message ?? ''}>
      {state}
      {isLeader ? '' : ' (shared)'}
    </span>
  );
}

function Bell() {
  const { notifications, unreadCount, markRead, markAllRead, permission, requestPermission } =
    useNotifications<Events['notification']>({ browser: true });
  const [open, setOpen] = useState(false);
  return (
    <div className="bell">
      <button className="bell-button" onClick={() => setOpen((o) => !o)} aria-label="notifications" data-testid="bell">
        🔔{unreadCount > 0 && <span className="badge" data-testid="unread">{unreadCount}</span>}
      </button>
      {open && (
        <div className="dropdown" data-testid="inbox">
          <div className="dropdown-head">
            <strong>Notifications</strong>
            <button onClick={markAllRead} data-testid="mark-all-read">Mark all read</button>
          </div>
          {permission === 'default' && (
            <button className="link" onClick={() => void requestPermission()}>
              Enable browser notifications
            </button>
          )}
          {notifications.length === 0 && <p className="muted">Nothing yet.</p>}
          <ul>
            {notifications.map((n) => (
              <li key={n.id} className={n.read ? 'read' : 'unread'} onClick={() => markRead(n.id)}>
                <strong>{n.payload.title}</strong>
                {n.payload.body && <span>{n.payload.body}</span>}
                <time>{new Date(n.receivedAt).toLocaleTimeString()}</time>
              </li>
            ))}
          </ul>
        </div>
      )}
    </div>
  );
}

function Toasts() {
  const [toasts, setToasts] = useState<HeraldNotification<Events['notification']>[]>([]);
  useSSE('notification', (payload, meta) => {
    const toast = { id: meta.id, payload, receivedAt: meta.receivedAt, read: false };
    setToasts((t) => [...t, toast].slice(-3));
    setTimeout(() => setToasts((t) => t.filter((x) => x.id !== toast.id)), 4000);
  });
  return (
    <div className="toasts">
      {toasts.map((t) => (
        <div className="toast" key={t.id} data-testid="toast">
          <strong>{t.payload.title}</strong>
          {t.payload.body && <span>{t.payload.body}</span>}
        </div>
      ))}
    </div>
  );
}

function Orders() {
  const client = useHeraldClient();
  const [orders, setOrders] = useState<Order[]>([]);
  const load = useCallback(async () => {
    setOrders((await (await fetch('/api/orders')).json()) as Order[]);
  }, []);
  useEffect(() => {
    void load();
    // If the hub could not replay what we missed, reload the list from the API.
    return client.onMissed(() => void load());
  }, [client, load]);
  useSSE('order_update', (update) =>
    setOrders((list) => list.map((o) => (o.id === update.orderId ? { ...o, status: update.status } : o))),
  );
  return (
    <section className="card">
      <h2>Orders</h2>
      <table>
        <tbody>
          {orders.map((o) => (
            <tr key={o.id} data-testid="order">
              <td>{o.id}</td>
              <td>{o.item}</td>
              <td>
                <span className={`status status-${o.status}`} data-testid={`status-${o.id}`}>
                  {o.status}
                </span>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Import() {
  const [jobId, setJobId] = useState<string | null>(null);
  const progress = useProgress(jobId);
  const start = async () => {
    const { jobId: id } = (await (await fetch('/api/import', { method: 'POST' })).json()) as { jobId: string };
    setJobId(id);
  };
  const running = progress.status === 'running';
  return (
    <section className="card">
      <h2>Import customers.csv</h2>
      <button onClick={() => void start()} disabled={running} data-testid="start-import">
        {running ? 'Importing…' : 'Start import'}
      </button>
      {jobId && (
        <div className="progress" data-testid="import">
          <div className="bar">
            <div className={`fill ${progress.failed ? 'failed' : ''}`} style={{ width: `${progress.percent}%` }} />
          </div>
          <p data-testid="import-status">
            {progress.status} · {progress.percent}% · {progress.stage ?? 'queued'}
          </p>
          {progress.message && <p className="muted">{progress.message}</p>}
        </div>
      )}
    </section>
  );
}

function Feed() {
  const [items, setItems] = useState<Events['feed_item'][]>([]);
  useSSE('feed_item', (item) => setItems((list) => [item, ...list].slice(0, 8)));
  return (
    <section className="card">
      <h2>Live feed</h2>
      <ul className="feed">
        {items.map((i) => (
          <li key={i.id} data-testid="feed-item">
            <time>{new Date(i.at).toLocaleTimeString()}</time> {i.text}
          </li>
        ))}
      </ul>
    </section>
  );
}
