// The browser test page: a small app on the real packages (bundled by esbuild from their dist).
import {
  createClient,
  type BroadcastChannelConstructor,
  type BroadcastChannelLike,
  type MissedInfo,
} from '@herald/client';
import {
  HeraldProvider,
  createHeraldHooks,
  useConnectionState,
  useNotifications,
  useProgress,
} from '@herald/react';
import { createRoot } from 'react-dom/client';

type Events = {
  tick: { n: number };
  notification: { title: string; body?: string };
  job_progress: { jobId: string; percent?: number; stage?: string; status?: 'running' | 'done' | 'failed' };
};

interface TestWindow {
  __ticks: number[];
  /** The hub's id of every tick, in dispatch order. */
  __tickIds: string[];
  __missed: MissedInfo[];
  __states: string[];
  __client: ReturnType<typeof createClient<Events>>;
}
const w = window as unknown as TestWindow;
w.__ticks = [];
w.__tickIds = [];
w.__missed = [];
w.__states = [];

const params = new URLSearchParams(location.search);
const hub = params.get('hub') ?? 'http://127.0.0.1:8080';
const sub = params.get('sub') ?? 'u1';
const ttl = params.get('ttl') ?? '3600';

/**
 * `bcDelay`: this tab handles BroadcastChannel messages a random 0..bcDelay ms late (the same for
 * all of them, plus jitter; in order), like a tab busy rendering: another tab's relays are still
 * queued here when the lock hands this tab the lead. Injected through `crossTab.BroadcastChannel`.
 */
function slowBroadcastChannel(maxDelayMs: number): BroadcastChannelConstructor {
  const latencyMs = Math.random() * maxDelayMs;
  return class SlowBroadcastChannel implements BroadcastChannelLike {
    onmessage: ((ev: MessageEvent) => void) | null = null;
    private readonly channel: BroadcastChannel;
    private lastAt = 0;
    constructor(name: string) {
      this.channel = new BroadcastChannel(name);
      this.channel.onmessage = (ev) => {
        // Non-decreasing deadlines keep the messages in order.
        const at = Math.max(this.lastAt, performance.now() + latencyMs + Math.random() * 2);
        this.lastAt = at;
        setTimeout(() => this.onmessage?.(ev), at - performance.now());
      };
    }
    postMessage(message: unknown): void {
      this.channel.postMessage(message);
    }
    close(): void {
      this.channel.close();
    }
  };
}
const bcDelay = Number(params.get('bcDelay') ?? '0');

const client = createClient<Events>({
  url: `${hub}/events`,
  topics: ['public/feed'],
  getToken: async () => {
    const res = await fetch(`/token?sub=${encodeURIComponent(sub)}&ttl=${ttl}`);
    return ((await res.json()) as { token: string }).token;
  },
  crossTab: params.has('crossTab')
    ? {
        key: `e2e-${params.get('crossTab')}`,
        ...(params.get('election') === 'heartbeat' ? { locks: null } : {}),
        ...(bcDelay > 0 ? { BroadcastChannel: slowBroadcastChannel(bcDelay) } : {}),
      }
    : false,
  transport: (params.get('transport') as 'fetch' | 'eventsource' | null) ?? 'auto',
  backoff: { maxDelayMs: 1000 },
  onMissed: (info) => w.__missed.push(info),
});
w.__client = client;
client.on('tick', ({ n }, meta) => {
  w.__ticks.push(n);
  w.__tickIds.push(meta.id);
});
client.onStateChange((s) => w.__states.push(s.state));

const { useSSE } = createHeraldHooks<Events>();

function Status() {
  const { state, isLeader } = useConnectionState();
  return (
    <p>
      <span data-testid="status">{state}</span> <span data-testid="leader">{isLeader ? 'leader' : 'follower'}</span>
    </p>
  );
}

function Bell() {
  const { unreadCount, notifications, markAllRead } = useNotifications<Events['notification']>();
  return (
    <section>
      <button data-testid="bell" onClick={markAllRead}>
        🔔 <span data-testid="unread">{unreadCount}</span>
      </button>
      <ul>
        {notifications.map((n) => (
          <li key={n.id} data-testid="notification">
            {n.payload.title}
          </li>
        ))}
      </ul>
    </section>
  );
}

function LastTick() {
  const { data } = useSSE('tick');
  return <p data-testid="last-tick">{data ? data.n : '-'}</p>;
}

function Import() {
  const p = useProgress('import-1');
  return (
    <p>
      <progress max={100} value={p.percent} />{' '}
      <span data-testid="progress">
        {p.status} {p.percent}% {p.stage ?? ''}
      </span>
    </p>
  );
}

const root = document.getElementById('root');
if (root) {
  createRoot(root).render(
    <HeraldProvider client={client}>
      <Status />
      <Bell />
      <LastTick />
      <Import />
    </HeraldProvider>,
  );
}
