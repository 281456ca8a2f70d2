import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useRef,
  useState,
  useSyncExternalStore,
  type ReactNode,
} from 'react';
import type {
  ConnectionSnapshot,
  ConnectionState,
  EventMeta,
  EventName,
  HeraldClient,
  Listener,
} from '@herald/client';
import { getNotificationStore, type HeraldNotification, type NotificationStore } from './notifications.js';
import {
  getProgressStore,
  IDLE_PROGRESS,
  PROGRESS_EVENT,
  type JobProgress,
  type ProgressPayload,
  type ProgressStatus,
} from './progress.js';

export type { HeraldNotification, JobProgress, ProgressPayload, ProgressStatus };
export { PROGRESS_EVENT };

type AnyClient = HeraldClient<Record<string, unknown>>;

const HeraldContext = createContext<AnyClient | null>(null);

export interface HeraldProviderProps<E extends { [K in keyof E]: unknown }> {
  client: HeraldClient<E>;
  children?: ReactNode;
}

/**
 * Makes `client` available to the hooks below. The client owns the one stream; the provider
 * neither opens nor closes it, so re-rendering or remounting the tree never reconnects.
 */
export function HeraldProvider<E extends { [K in keyof E]: unknown }>({
  client,
  children,
}: HeraldProviderProps<E>): ReactNode {
  return <HeraldContext.Provider value={client as unknown as AnyClient}>{children}</HeraldContext.Provider>;
}

/** The client from the nearest `<HeraldProvider>`. */
export function useHeraldClient<E extends { [K in keyof E]: unknown } = Record<string, unknown>>(): HeraldClient<E> {
  const client = useContext(HeraldContext);
  if (!client) throw new Error('Herald hooks must be used inside <HeraldProvider client={...}>');
  return client as unknown as HeraldClient<E>;
}

/** Connection snapshot; re-renders on state changes only, not on every event. */
export function useConnectionState(): ConnectionSnapshot {
  const client = useHeraldClient();
  const subscribe = useCallback((onChange: () => void) => client.onStateChange(onChange), [client]);
  return useSyncExternalStore(subscribe, client.getSnapshot, client.getSnapshot);
}

export interface SSEResult<P, K extends string = string> {
  /**
   * The latest payload of this event the client has received, also before the component
   * mounted: right after a fresh stream opens, the hub's retained value of this event (the
   * counter, score or last state), with no new event and no extra fetch. `undefined` until the
   * client has received one.
   */
  data: P | undefined;
  meta: EventMeta<K> | undefined;
  status: ConnectionState;
}

/**
 * Subscribes to one event name: returns its latest payload (see {@link SSEResult.data}) and the
 * connection status, and calls `handler` (optional; the latest one is always used, so inline
 * functions are fine) for each event that arrives while mounted.
 */
export function useSSE<E extends { [K in keyof E]: unknown } = Record<string, unknown>, K extends EventName<E> = EventName<E>>(
  event: K,
  handler?: Listener<E[K], K>,
): SSEResult<E[K], K> {
  const client = useHeraldClient<E>();
  const handlerRef = useRef(handler);
  handlerRef.current = handler;
  const subscribe = useCallback(
    (onChange: () => void) => {
      // `data` follows `latest()`, which also changes without an event (a cross-tab follower
      // takes the leader's state when it joins); the handler hears only events.
      const offLatest = client.onLatest(event, onChange);
      const off = client.on(event, (data, meta) => handlerRef.current?.(data, meta));
      return () => {
        offLatest();
        off();
      };
    },
    [client, event],
  );
  // The client keeps the latest event of each name (the same object until the next one).
  const getLatest = useCallback(() => client.latest(event), [client, event]);
  const latest = useSyncExternalStore(subscribe, getLatest, getLatest);
  const { state } = useConnectionState();
  return { data: latest?.data, meta: latest?.meta, status: state };
}

/** Options of {@link useNotifications}. */
export interface NotificationsOptions<P> {
  /** Event name carrying notifications. Default `notification`. */
  event?: string;
  /** Most notifications kept (oldest dropped). Default 100. */
  max?: number;
  /**
   * Also show a browser `Notification` for each one (needs permission: see `requestPermission`).
   * `title`/`body` pick the texts from the payload; by default `payload.title` and
   * `payload.body ?? payload.message`. `onlyWhenHidden` (default true): only while the tab is
   * in the background. Tags with the event id, so several tabs show it once.
   */
  browser?:
    | boolean
    | {
        title?: (payload: P) => string;
        body?: (payload: P) => string | undefined;
        onlyWhenHidden?: boolean;
      };
}

export type BrowserPermission = NotificationPermission | 'unsupported';

export interface NotificationsResult<P> {
  /** Newest first. */
  notifications: readonly HeraldNotification<P>[];
  unreadCount: number;
  markRead(id: string): void;
  markAllRead(): void;
  clear(): void;
  /** Browser notification permission, or `unsupported`. */
  permission: BrowserPermission;
  /** Asks the user (call it from a click handler); resolves to the new permission. */
  requestPermission(): Promise<BrowserPermission>;
}

/** The default notification payload shape; any other shape works with `useNotifications<P>()`. */
export interface NotificationPayload {
  title?: string;
  body?: string;
  message?: string;
  [key: string]: unknown;
}

function currentPermission(): BrowserPermission {
  return typeof Notification === 'undefined' ? 'unsupported' : Notification.permission;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/**
 * An in-app notification list for the signed-in user, shared by every component that calls it
 * with the same client and event name (the list lives as long as the client does).
 */
export function useNotifications<P = NotificationPayload>(options: NotificationsOptions<P> = {}): NotificationsResult<P> {
  const client = useHeraldClient();
  const event = options.event ?? 'notification';
  const store = getNotificationStore(client, event, options.max ?? 100) as NotificationStore<P>;
  const items = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
  const [permission, setPermission] = useState<BrowserPermission>(currentPermission);

  const browserRef = useRef(options.browser);
  browserRef.current = options.browser;
  useEffect(
    () =>
      client.on(event, (payload, meta) => {
        const browser = browserRef.current;
        if (!browser || typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
        const config = browser === true ? {} : browser;
        const hidden = typeof document !== 'undefined' && document.visibilityState === 'hidden';
        if ((config.onlyWhenHidden ?? true) && !hidden) return;
        const p = payload as P;
        const record = (typeof payload === 'object' && payload !== null ? payload : {}) as Record<string, unknown>;
        const title = config.title?.(p) ?? text(record['title']) ?? 'Notification';
        const body = config.body ? config.body(p) : text(record['body']) ?? text(record['message']);
        try {
          new Notification(title, { body, tag: meta.id || undefined });
        } catch {
          // e.g. Chrome on Android requires a service worker
        }
      }),
    [client, event],
  );

  const requestPermission = useCallback(async (): Promise<BrowserPermission> => {
    if (typeof Notification === 'undefined') return 'unsupported';
    const result = await Notification.requestPermission();
    setPermission(result);
    return result;
  }, []);

  return {
    notifications: items.list,
    unreadCount: items.unread,
    markRead: store.markRead,
    markAllRead: store.markAllRead,
    clear: store.clear,
    permission,
    requestPermission,
  };
}

/**
 * Progress of a long operation started by this user (an import, a report), from `job_progress`
 * events `{ jobId, percent, stage, status }` (see the README). Keeps the last state of each job,
 * so a component mounted mid-way shows where the job is.
 */
export function useProgress(jobId: string | null | undefined, options: { event?: string } = {}): JobProgress {
  const client = useHeraldClient();
  const store = getProgressStore(client, options.event ?? PROGRESS_EVENT);
  const getSnapshot = useCallback(() => (jobId ? store.get(jobId) : IDLE_PROGRESS), [store, jobId]);
  return useSyncExternalStore(store.subscribe, getSnapshot, getSnapshot);
}

/**
 * Typed hooks for an event map, once per app:
 *
 * ```ts
 * export const { useSSE, useHeraldClient } = createHeraldHooks<Events>();
 * const { data } = useSSE('order_update'); // data: Events['order_update'] | undefined
 * ```
 */
export function createHeraldHooks<E extends { [K in keyof E]: unknown }>(): {
  useSSE: <K extends EventName<E>>(event: K, handler?: Listener<E[K], K>) => SSEResult<E[K], K>;
  useHeraldClient: () => HeraldClient<E>;
} {
  return {
    useSSE: <K extends EventName<E>>(event: K, handler?: Listener<E[K], K>) => useSSE<E, K>(event, handler),
    useHeraldClient: () => useHeraldClient<E>(),
  };
}
