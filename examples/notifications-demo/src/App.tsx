import { createHeraldHooks, useConnectionState, useNotifications, useProgress, type HeraldNotification } from '@herald/react';
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import type { Events, FeedItem, Order } from './events';

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
        <SendNotification />
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

/** An inline bell: renders the same everywhere, with or without an emoji font. */
function BellIcon() {
  return (
    <svg width="22" height="22" viewBox="0 0 24 24" fill="none" stroke="currentColor" strokeWidth="2"
      strokeLinecap="round" strokeLinejoin="round" aria-hidden="true" data-testid="bell-icon">
      <path d="M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9" />
      <path d="M13.73 21a2 2 0 0 1-3.46 0" />
    </svg>
  );
}

function markReadOnServer(one: boolean): void {
  void fetch('/api/read', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ one }) });
}

function Bell() {
  const { notifications, markRead, markAllRead, permission, requestPermission } =
    useNotifications<Events['notification']>({ browser: true });
  // The backend's count, retained by the hub: right as soon as the page opens, in every tab.
  const unreadCount = useSSE('unread').data?.count ?? 0;
  const [open, setOpen] = useState(false);
  return (
    <div className="bell">
      <button className="bell-button" onClick={() => setOpen((o) => !o)} aria-label={`notifications, ${unreadCount} unread`} data-testid="bell">
        <BellIcon />
        {unreadCount > 0 && <span className="badge" data-testid="unread">{unreadCount}</span>}
      </button>
      {open && (
        <div className="dropdown" data-testid="inbox">
          <div className="dropdown-head">
            <strong>Notifications</strong>
            <button
              className="btn btn-small"
              onClick={() => {
                markAllRead();
                markReadOnServer(false);
              }}
              data-testid="mark-all-read"
            >
              Mark all read
            </button>
          </div>
          {permission === 'default' && (
            <button className="link" onClick={() => void requestPermission()}>
              Enable browser notifications
            </button>
          )}
          {notifications.length === 0 && <p className="muted">Nothing since this page opened.</p>}
          <ul>
            {notifications.map((n) => (
              <li
                key={n.id}
                className={n.read ? 'read' : 'unread'}
                onClick={() => {
                  if (n.read) return;
                  markRead(n.id);
                  markReadOnServer(true);
                }}
              >
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
  // The latest job_progress is retained by the hub: a tab opened mid-way shows the running import.
  const latest = useSSE('job_progress').data;
  const [started, setStarted] = useState<string | null>(null);
  const [starting, setStarting] = useState(false);
  const jobId = latest?.jobId ?? started;
  const progress = useProgress(jobId);
  const start = async () => {
    setStarting(true);
    try {
      const { jobId: id } = (await (await fetch('/api/import', { method: 'POST' })).json()) as { jobId: string };
      setStarted(id);
    } finally {
      setStarting(false);
    }
  };
  const running = progress.status === 'running';
  return (
    <section className="card">
      <h2>Import customers.csv</h2>
      <button className="btn btn-primary" onClick={() => void start()} disabled={running || starting} data-testid="start-import">
        {running ? 'Importing…' : 'Start import'}
      </button>
      {jobId && (
        <div className="progress" data-testid="import">
          <div className="bar" role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={progress.percent}>
            {/* No width transition: the bar shows the same percentage as the text below it. */}
            <div className={`fill ${progress.failed ? 'failed' : ''}`} style={{ width: `${progress.percent}%` }} data-testid="import-fill" />
          </div>
          <p data-testid="import-status">
            {progress.status} · {progress.percent}% · {progress.stage ?? 'queued'}
          </p>
          {progress.message && <p className="muted">{jobId}: {progress.message}</p>}
        </div>
      )}
    </section>
  );
}

function Feed() {
  const client = useHeraldClient();
  // Starts from the latest headline the client has (the retained one on a fresh stream).
  const [items, setItems] = useState<FeedItem[]>(() => {
    const latest = client.latest('feed_item')?.data;
    return latest ? [latest] : [];
  });
  const { data: latest } = useSSE('feed_item', (item) =>
    setItems((list) => [item, ...list.filter((i) => i.id !== item.id)].slice(0, 8)),
  );
  // The latest headline can also come without an event: a tab that joins a shared stream takes
  // the leader tab's latest values (the retained ones) as its state.
  useEffect(() => {
    if (latest) setItems((list) => (list.some((i) => i.id === latest.id) ? list : [latest, ...list].slice(0, 8)));
  }, [latest]);
  return (
    <section className="card">
      <h2>Live feed</h2>
      {items.length === 0 && <p className="muted">Waiting for the first headline…</p>}
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

/** The backend's POST /api/notify, from the page: it publishes a notification to this user. */
function SendNotification() {
  const [title, setTitle] = useState('Your order is ready');
  const [body, setBody] = useState('Come and pick it up at the counter.');
  const [state, setState] = useState<'idle' | 'sending' | 'sent' | 'failed'>('idle');
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setState('sending');
    try {
      const res = await fetch('/api/notify', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ title, body }),
      });
      setState(res.ok ? 'sent' : 'failed');
    } catch {
      setState('failed');
    }
  };
  return (
    <section className="card">
      <h2>Send a notification</h2>
      <form className="notify-form" onSubmit={(e) => void submit(e)} data-testid="notify-form">
        <label>
          Title
          <input value={title} onChange={(e) => setTitle(e.target.value)} maxLength={200} required data-testid="notify-title" />
        </label>
        <label>
          Message
          <input value={body} onChange={(e) => setBody(e.target.value)} maxLength={200} data-testid="notify-body" />
        </label>
        <div className="form-row">
          <button type="submit" className="btn btn-primary" disabled={state === 'sending'} data-testid="notify-send">
            Send to me
          </button>
          <span className="muted" data-testid="notify-state">
            {state === 'sent' ? 'Sent: watch the bell and the toast.' : state === 'failed' ? 'Could not send.' : ''}
          </span>
        </div>
        <p className="muted">
          The page calls the demo backend's <code>POST /api/notify</code>, which publishes to Herald with its publish key.
        </p>
      </form>
    </section>
  );
}
