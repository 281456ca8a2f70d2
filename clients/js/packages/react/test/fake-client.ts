import type { ConnectionSnapshot, EventMeta, HeraldClient, MissedInfo } from '@herald/client';

type Fn = (...args: never[]) => void;

/** A HeraldClient without a network: tests push events and states into it. */
export class FakeClient<E extends { [K in keyof E]: unknown }> {
  private readonly listeners = new Map<string, Set<(p: unknown, m: EventMeta) => void>>();
  private readonly stateListeners = new Set<(s: ConnectionSnapshot) => void>();
  private snapshot: ConnectionSnapshot = {
    state: 'open',
    error: undefined,
    attempt: 0,
    retryInMs: undefined,
    lastEventId: '',
    isLeader: true,
  };
  private seq = 0;
  private readonly kept = new Map<string, { data: unknown; meta: EventMeta }>();
  private readonly latestListeners = new Map<string, Set<() => void>>();
  subscriptions = 0;

  get client(): HeraldClient<E> {
    const self = this;
    const api = {
      on: (event: string, listener: (p: unknown, m: EventMeta) => void) => {
        let set = self.listeners.get(event);
        if (!set) self.listeners.set(event, (set = new Set()));
        const entry = (p: unknown, m: EventMeta): void => listener(p, m);
        set.add(entry);
        self.subscriptions++;
        return () => {
          set.delete(entry);
          self.subscriptions--;
        };
      },
      latest: (event: string) => self.kept.get(event),
      onLatest: (event: string, listener: () => void) => {
        let set = self.latestListeners.get(event);
        if (!set) self.latestListeners.set(event, (set = new Set()));
        const entry = (): void => listener();
        set.add(entry);
        return () => {
          set.delete(entry);
        };
      },
      onAny: () => () => undefined,
      onMissed: (_l: (i: MissedInfo) => void) => () => undefined,
      onStateChange: (l: (s: ConnectionSnapshot) => void) => {
        self.stateListeners.add(l);
        return () => self.stateListeners.delete(l);
      },
      onError: () => () => undefined,
      getSnapshot: () => self.snapshot,
      get state() {
        return self.snapshot.state;
      },
      get lastEventId() {
        return String(self.seq);
      },
      connect: () => undefined,
      reconnect: () => undefined,
      close: () => undefined,
    };
    return api as unknown as HeraldClient<E>;
  }

  emit<K extends keyof E & string>(event: K, payload: E[K], id = String(++this.seq)): void {
    const meta: EventMeta = { id, event, receivedAt: Date.now(), raw: JSON.stringify(payload) };
    this.kept.set(event, { data: payload, meta });
    for (const l of [...(this.latestListeners.get(event) ?? [])]) l();
    for (const l of [...(this.listeners.get(event) ?? [])]) l(payload, meta);
  }

  /** State without an event (as a cross-tab follower takes the leader's): `latest()` only. */
  seed<K extends keyof E & string>(event: K, payload: E[K], id = String(++this.seq)): void {
    const meta: EventMeta = { id, event, receivedAt: Date.now(), raw: JSON.stringify(payload) };
    this.kept.set(event, { data: payload, meta });
    for (const l of [...(this.latestListeners.get(event) ?? [])]) l();
  }

  setState(state: ConnectionSnapshot['state']): void {
    this.snapshot = { ...this.snapshot, state };
    for (const l of [...this.stateListeners]) (l as Fn)();
  }

  listenerCount(event: string): number {
    return this.listeners.get(event)?.size ?? 0;
  }
}
