import type { HeraldClient } from '@herald/client';

export interface HeraldNotification<P> {
  /** The hub's event id (unique per event). */
  readonly id: string;
  readonly payload: P;
  readonly receivedAt: number;
  readonly read: boolean;
}

interface Snapshot<P> {
  readonly list: readonly HeraldNotification<P>[];
  readonly unread: number;
}

/** One inbox per (client, event name), shared by every component. */
export class NotificationStore<P> {
  private snapshot: Snapshot<P> = { list: [], unread: 0 };
  private readonly listeners = new Set<() => void>();
  private counter = 0;

  constructor(
    client: HeraldClient<Record<string, unknown>>,
    event: string,
    private readonly max: number,
  ) {
    client.on(event, (payload, meta) => {
      const id = meta.id || `local-${++this.counter}`;
      if (this.snapshot.list.some((n) => n.id === id)) return;
      const item: HeraldNotification<P> = { id, payload: payload as P, receivedAt: meta.receivedAt, read: false };
      this.set([item, ...this.snapshot.list].slice(0, this.max));
    });
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getSnapshot = (): Snapshot<P> => this.snapshot;

  markRead = (id: string): void => {
    if (!this.snapshot.list.some((n) => n.id === id && !n.read)) return;
    this.set(this.snapshot.list.map((n) => (n.id === id ? { ...n, read: true } : n)));
  };

  markAllRead = (): void => {
    if (this.snapshot.unread === 0) return;
    this.set(this.snapshot.list.map((n) => (n.read ? n : { ...n, read: true })));
  };

  clear = (): void => {
    if (this.snapshot.list.length === 0) return;
    this.set([]);
  };

  private set(list: HeraldNotification<P>[]): void {
    this.snapshot = { list, unread: list.filter((n) => !n.read).length };
    for (const l of [...this.listeners]) l();
  }
}

const stores = new WeakMap<object, Map<string, NotificationStore<unknown>>>();

export function getNotificationStore(
  client: HeraldClient<Record<string, unknown>>,
  event: string,
  max: number,
): NotificationStore<unknown> {
  let byEvent = stores.get(client);
  if (!byEvent) {
    byEvent = new Map();
    stores.set(client, byEvent);
  }
  let store = byEvent.get(event);
  if (!store) {
    store = new NotificationStore(client, event, max);
    byEvent.set(event, store);
  }
  return store;
}
