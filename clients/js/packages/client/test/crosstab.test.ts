import { afterEach, describe, expect, it, vi } from 'vitest';
import { CrossTab, type CrossTabHooks } from '../src/crosstab.js';
import {
  createClient,
  type BroadcastChannelConstructor,
  type BroadcastChannelLike,
  type CrossTabOptions,
  type HeraldClient,
  type MissedInfo,
} from '../src/index.js';
import {
  FakeHub,
  SseServer,
  delayedBroadcastChannel,
  fakeBroadcastChannel,
  fakeLocks,
  keepOpen,
  randomPairLatency,
  seededRandom,
  waitFor,
} from './helpers.js';

type Events = { tick: { n: number } };

let server: SseServer;
const clients: HeraldClient<Events>[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await server?.stop();
});

/** Open streams the server holds right now. */
function streams(): number {
  return server.open.size;
}

function tab(options: Parameters<typeof createClient>[0]): { client: HeraldClient<Events>; got: number[] } {
  const client = createClient<Events>(options);
  clients.push(client);
  const got: number[] = [];
  client.on('tick', (p) => got.push(p.n));
  return { client, got };
}

for (const mode of ['locks', 'heartbeat'] as const) {
  describe(`cross-tab sharing (${mode} election)`, () => {
    it('one leader holds the stream, every tab gets every event, and leadership moves on close', async () => {
      server = await new SseServer().start();
      server.setHandler(keepOpen(() => server));
      const BroadcastChannel = fakeBroadcastChannel();
      const locks = mode === 'locks' ? fakeLocks() : null;
      const crossTab = { BroadcastChannel, locks, heartbeatMs: 100, leaderTimeoutMs: 1000, electionMs: 100 };
      const options = { url: server.url, token: 't', crossTab, random: () => 0 };
      const tabs = [tab(options), tab(options), tab(options)];

      await waitFor(() => tabs.every((t) => t.client.state === 'open'), 3000, 'all tabs open');
      await new Promise((r) => setTimeout(r, 150)); // let any election settle
      expect(streams()).toBe(1);
      expect(server.requests).toHaveLength(1);
      expect(tabs.filter((t) => t.client.getSnapshot().isLeader)).toHaveLength(1);

      for (let n = 1; n <= 3; n++) server.write(`event: tick\nid: ${n}\ndata: {"n":${n}}\n\n`);
      await waitFor(() => tabs.every((t) => t.got.length === 3), 3000, 'events in every tab');
      for (const t of tabs) expect(t.got).toEqual([1, 2, 3]);

      // The leader tab closes: another takes over and resumes from the last id the tabs saw.
      const leader = tabs.find((t) => t.client.getSnapshot().isLeader)!;
      leader.client.close();
      const rest = tabs.filter((t) => t !== leader);
      await waitFor(() => rest.some((t) => t.client.getSnapshot().isLeader), 3000, 'new leader');
      await waitFor(() => server.requests.length === 2 && streams() === 1, 3000, 'new stream');
      expect(server.requests[1]!.headers['last-event-id']).toBe('3');
      await waitFor(() => rest.every((t) => t.client.state === 'open'), 3000, 'followers see open');

      server.write('event: tick\nid: 4\ndata: {"n":4}\n\n');
      await waitFor(() => rest.every((t) => t.got.length === 4), 3000, 'event after hand-over');
      for (const t of rest) expect(t.got).toEqual([1, 2, 3, 4]);
      expect(leader.got).toEqual([1, 2, 3]);
      expect(rest.filter((t) => t.client.getSnapshot().isLeader)).toHaveLength(1);
      expect(streams()).toBe(1);
    });

    it('a tab that joins later sees the open state and a follower can ask for a reconnect', async () => {
      server = await new SseServer().start();
      server.setHandler(keepOpen(() => server, 'id: 10\n\n'));
      const BroadcastChannel = fakeBroadcastChannel();
      const locks = mode === 'locks' ? fakeLocks() : null;
      const crossTab = { BroadcastChannel, locks, heartbeatMs: 100, leaderTimeoutMs: 1000, electionMs: 100 };
      const options = { url: server.url, token: 't', crossTab };
      const first = tab(options);
      await waitFor(() => first.client.state === 'open' && first.client.getSnapshot().isLeader);
      const late = tab(options);
      await waitFor(() => late.client.state === 'open', 3000, 'late tab open');
      expect(late.client.getSnapshot().isLeader).toBe(false);
      expect(late.client.lastEventId).toBe('10');
      late.client.reconnect();
      await waitFor(() => server.requests.length === 2, 3000, 'leader reconnects');
      expect(server.requests[1]!.headers['last-event-id']).toBe('10');
    });

    it('a tab that joins later starts from the leader’s latest events (the retained values), without dispatching them', async () => {
      server = await new SseServer().start();
      // A fresh stream: the retained values, then the id-only block that ends the opening.
      server.setHandler(
        keepOpen(
          () => server,
          ': herald\n\nevent: tick\nid: 5\ndata: {"n":5}\n\nevent: unread\nid: 6\ndata: {"count":3}\n\n' +
            'event: herald.missed\ndata: {"reason":"test","lastEventId":""}\n\nid: 6\n\n',
        ),
      );
      const BroadcastChannel = fakeBroadcastChannel();
      const locks = mode === 'locks' ? fakeLocks() : null;
      const crossTab = { BroadcastChannel, locks, heartbeatMs: 100, leaderTimeoutMs: 1000, electionMs: 100 };
      const options = { url: server.url, token: 't', crossTab };
      const first = tab(options);
      await waitFor(() => first.client.state === 'open' && first.client.lastEventId === '6', 10_000, 'leader open');
      expect(first.got).toEqual([5]);

      const late = tab(options);
      const client = late.client as unknown as HeraldClient<Events & { unread: { count: number } }>;
      const seen: string[] = [];
      const missed: MissedInfo[] = [];
      client.onAny((event) => seen.push(event));
      client.onMissed((info) => missed.push(info));
      const changed: number[] = [];
      client.onLatest('unread', () => changed.push(client.latest('unread')?.data.count ?? -1));
      await waitFor(() => client.latest('unread') !== undefined, 10_000, 'latest state from the leader');
      expect(client.latest('unread')?.data).toEqual({ count: 3 });
      expect(client.latest('unread')?.meta).toMatchObject({ id: '6', event: 'unread', raw: '{"count":3}' });
      expect(client.latest('tick')?.data).toEqual({ n: 5 });
      expect(client.latest('herald.missed' as 'tick')).toBeUndefined(); // not state
      expect(changed).toEqual([3]);
      // State, not news: no listener heard them.
      expect(late.got).toEqual([]);
      expect(seen).toEqual([]);
      expect(missed).toEqual([]);
      expect(client.getSnapshot().isLeader).toBe(false);
      expect(client.lastEventId).toBe('6');

      // Live events reach it once, as usual.
      server.write('event: tick\nid: 7\ndata: {"n":7}\n\n');
      await waitFor(() => late.got.length === 1, 10_000, 'live event');
      expect(late.got).toEqual([7]);
      expect(client.latest('tick')?.data).toEqual({ n: 7 });

      // It leads next: its stream resumes (no retained values come again), and it keeps its state.
      first.client.close();
      await waitFor(() => client.getSnapshot().isLeader && server.requests.length === 2, 10_000, 'it leads');
      expect(server.requests[1]!.headers['last-event-id']).toBe('7');
      expect(client.latest('unread')?.data).toEqual({ count: 3 });
      expect(client.latest('tick')?.data).toEqual({ n: 7 });
      expect(late.got).toEqual([7]);

      // And a tab that joins it gets that state in turn.
      const third = tab(options);
      await waitFor(() => third.client.latest('tick') !== undefined, 10_000, 'third tab state');
      expect(third.client.latest('tick')?.data).toEqual({ n: 7 });
      expect((third.client as unknown as typeof client).latest('unread')?.data).toEqual({ count: 3 });
      expect(third.got).toEqual([]);
      // Several hand-overs in a row, each bounded by its own wait: more than vitest's default
      // 5 s on a loaded machine.
    }, 30_000);
  });
}

describe('cross-tab latest state for a tab that joins: bounds', () => {
  it('at most 256 KiB: the newest events first, one too big left out', async () => {
    server = await new SseServer().start();
    const big = 'x'.repeat(200 * 1024);
    server.setHandler(
      keepOpen(
        () => server,
        `event: a\nid: 1\ndata: "${big}"\n\nevent: b\nid: 2\ndata: "${big}"\n\n` +
          `event: huge\nid: 3\ndata: "${'y'.repeat(300 * 1024)}"\n\nevent: c\nid: 4\ndata: "small"\n\nid: 4\n\n`,
      ),
    );
    const BroadcastChannel = fakeBroadcastChannel();
    const options = { url: server.url, token: 't', crossTab: { BroadcastChannel, locks: fakeLocks() } };
    const first = createClient<Record<string, string>>(options);
    const late = createClient<Record<string, string>>({ ...options, autoConnect: false });
    clients.push(first as unknown as HeraldClient<Events>, late as unknown as HeraldClient<Events>);
    await waitFor(() => first.lastEventId === '4', 3000, 'leader open');
    expect(first.latest('huge')?.data).toHaveLength(300 * 1024);
    late.connect();
    await waitFor(() => late.latest('c') !== undefined, 3000, 'state');
    expect(late.latest('c')?.data).toBe('small');
    expect(late.latest('b')?.data).toBe(big);
    expect(late.latest('huge')).toBeUndefined(); // over the cap alone
    expect(late.latest('a')).toBeUndefined(); // b and a together are over it: the newer stays
  });
});

describe('cross-tab without BroadcastChannel', () => {
  it('falls back to a stream of its own', async () => {
    server = await new SseServer().start();
    server.setHandler(keepOpen(() => server));
    const saved = globalThis.BroadcastChannel;
    // @ts-expect-error simulate a runtime without BroadcastChannel
    delete globalThis.BroadcastChannel;
    try {
      const { client } = tab({ url: server.url, crossTab: true });
      await waitFor(() => client.state === 'open');
      expect(client.getSnapshot().isLeader).toBe(true);
    } finally {
      globalThis.BroadcastChannel = saved;
    }
  });
});

interface RecordingTab {
  client: HeraldClient<Events>;
  /** `meta.id` of every `tick` this tab dispatched, in dispatch order. */
  ids: string[];
  missed: MissedInfo[];
}

function recordingTab(options: Parameters<typeof createClient>[0]): RecordingTab {
  const client = createClient<Events>(options);
  clients.push(client);
  const recorded: RecordingTab = { client, ids: [], missed: [] };
  client.on('tick', (_p, meta) => recorded.ids.push(meta.id));
  client.onMissed((info) => recorded.missed.push(info));
  return recorded;
}

const isLeader = (t: RecordingTab): boolean => t.client.getSnapshot().isLeader;

let hub: FakeHub | undefined;

afterEach(async () => {
  await hub?.stop();
  hub = undefined;
});

/**
 * Five tabs; three times: a 100-event burst straight into the leader's stream, the leader closes
 * as soon as it has the burst (its relays still on the channel) while publishing goes on, and
 * the next leader's stream runs. Then every open tab must have every id once, in order.
 */
async function handOversDuringBursts(crossTab: CrossTabOptions): Promise<void> {
  hub = await new FakeHub().start();
  const fake = hub;
  const options = { url: fake.url, token: 't', crossTab, random: () => 0 };
  const all = Array.from({ length: 5 }, () => recordingTab(options));
  await waitFor(() => all.every((t) => t.client.state === 'open'), 3000, 'all tabs open');
  await waitFor(() => all.filter(isLeader).length === 1 && fake.server.open.size === 1, 3000, 'one leader');

  const published: string[] = [];
  let n = 0;
  const publish = (count: number): void => {
    for (let i = 0; i < count; i++) published.push(fake.publish('tick', { n: ++n }));
    // Another user's event: the hub's position moves past the last tick, so preambles end with
    // an id-only block that is not an event here.
    fake.publishElsewhere();
  };

  let open = all;
  for (let handOver = 1; handOver <= 3; handOver++) {
    const leader = open.find(isLeader)!;
    publish(100);
    await waitFor(() => leader.ids.includes(published.at(-1)!), 3000, 'the leader has the burst');
    const streamsBefore = fake.requests.length;
    leader.client.close();
    open = open.filter((t) => t !== leader);
    // Publishing goes on while the lead changes hands.
    const ticker = setInterval(() => publish(2), 5);
    try {
      await waitFor(
        () => open.filter(isLeader).length === 1 && fake.requests.length === streamsBefore + 1 && fake.server.open.size === 1,
        3000,
        `hand-over ${handOver}`,
      );
      const next = open.find(isLeader)!;
      const target = published.length + 10;
      await waitFor(() => published.length >= target && next.ids.includes(published[target - 1]!), 3000, 'the new stream runs');
    } finally {
      clearInterval(ticker);
    }
  }
  publish(5);
  const last = published.at(-1)!;
  await waitFor(() => open.every((t) => t.ids.includes(last)), 3000, 'the last event everywhere');

  for (const t of open) expect(t.ids).toEqual(published);
  // The tabs that closed got a clean prefix up to their close.
  for (const t of all.filter((t) => !open.includes(t))) expect(t.ids).toEqual(published.slice(0, t.ids.length));
  for (const t of all) expect(t.missed).toEqual([]);
  expect(fake.server.open.size).toBe(1);
}

const fastElections = { heartbeatMs: 50, leaderTimeoutMs: 500, electionMs: 50 };

describe('cross-tab hand-over during bursts (delayed BroadcastChannel)', () => {
  for (const mode of ['locks', 'heartbeat'] as const) {
    for (const seed of [1, 2]) {
      it(`${mode} election, random latency per pair of tabs (seed ${seed}): every event once, in order`, async () => {
        const BroadcastChannel = delayedBroadcastChannel(randomPairLatency(seededRandom(seed), 25), seededRandom(seed + 100));
        await handOversDuringBursts({ BroadcastChannel, locks: mode === 'locks' ? fakeLocks() : null, ...fastElections });
      }, 15_000);
    }
  }

  it('the new leader hears the old one at once, the others late: its relays overtake the late ones', async () => {
    // Web Locks grant in queue order, so tab k leads after tab k - 1. The tab that leads next
    // hears its predecessor at once; even-numbered leaders are slow to reach everyone else,
    // odd-numbered ones fast: after hand-overs 1 and 3 the followers get the new leader's
    // relays before the old leader's last ones.
    const latency = (from: number, to: number): number => (to === from + 1 ? 0 : from % 2 === 0 ? 30 : 1);
    await handOversDuringBursts({ BroadcastChannel: delayedBroadcastChannel(latency), locks: fakeLocks() });
  }, 15_000);
});

describe('cross-tab relays of events without an id', () => {
  it('herald.missed (no id of its own) reaches every tab once and is not taken for a duplicate', async () => {
    hub = await new FakeHub().start();
    const fake = hub;
    const crossTab = { BroadcastChannel: delayedBroadcastChannel(randomPairLatency(seededRandom(7), 10)), locks: fakeLocks() };
    const options = { url: fake.url, token: 't', crossTab, random: () => 0 };
    const all = Array.from({ length: 3 }, () => recordingTab(options));
    await waitFor(() => all.every((t) => t.client.state === 'open') && fake.server.open.size === 1, 3000, 'open');
    const before = [1, 2, 3].map((n) => fake.publish('tick', { n }));
    await waitFor(() => all.every((t) => t.ids.length === 3), 3000, 'first ticks');

    // The hub restarts: the leader resumes with an id the new process never gave out.
    fake.restart();
    await waitFor(() => all.every((t) => t.missed.length === 1), 3000, 'herald.missed in every tab');
    const after = [4, 5].map((n) => fake.publish('tick', { n }));
    await waitFor(() => all.every((t) => t.ids.length === 5), 3000, 'ticks after the restart');
    for (const t of all) {
      expect(t.missed).toEqual([{ reason: 'unknown_id', lastEventId: before[2] }]);
      expect(t.ids).toEqual([...before, ...after]);
    }
  });
});

describe('CrossTab hand-over (Web Locks)', () => {
  /** A channel whose messages wait until `deliver()`. */
  function manualChannel(): { Ctor: BroadcastChannelConstructor; deliver: () => void } {
    const open = new Set<ManualChannel>();
    const queue: Array<{ to: ManualChannel; data: unknown }> = [];
    class ManualChannel implements BroadcastChannelLike {
      onmessage: ((ev: MessageEvent) => void) | null = null;
      constructor(readonly name: string) {
        open.add(this);
      }
      postMessage(message: unknown): void {
        for (const other of open) if (other !== this) queue.push({ to: other, data: structuredClone(message) });
      }
      close(): void {
        open.delete(this);
      }
    }
    const deliver = (): void => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        if (open.has(next.to)) next.to.onmessage?.({ data: next.data } as MessageEvent);
      }
    };
    return { Ctor: ManualChannel, deliver };
  }

  function tabOf(key: string, options: CrossTabOptions, led: string[], name: string): CrossTab {
    const hooks: CrossTabHooks = {
      lead: () => led.push(name),
      follow: () => undefined,
      receive: () => undefined,
      joined: () => undefined,
      place: () => ({ head: `${name}-head`, id: `${name}-head`, recent: [] }),
    };
    return new CrossTab(key, options, hooks);
  }

  const microtasks = async (): Promise<void> => {
    for (let i = 0; i < 20; i++) await Promise.resolve();
  };

  it('the next tab leads only once the old leader’s goodbye (after its last relay) arrived', async () => {
    const { Ctor, deliver } = manualChannel();
    const options: CrossTabOptions = { BroadcastChannel: Ctor, locks: fakeLocks(), handOverTimeoutMs: 60_000 };
    const led: string[] = [];
    const a = tabOf('k', options, led, 'a');
    const b = tabOf('k', options, led, 'b');
    a.start();
    b.start();
    await microtasks();
    expect(led).toEqual(['a']);
    a.post({ t: 'event', from: a.id, type: 'tick', data: '1', id: '1', after: '', hasId: true });
    a.stop(); // posts its goodbye, then releases the lock
    await microtasks();
    expect(led).toEqual(['a']); // b holds the lock but waits for a's relays and goodbye
    deliver();
    expect(led).toEqual(['a', 'b']);
    b.stop();
  });

  it('a leader that left without a goodbye (a crash) is waited for only handOverTimeoutMs', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const { Ctor, deliver } = manualChannel();
      const options: CrossTabOptions = { BroadcastChannel: Ctor, locks: fakeLocks(), handOverTimeoutMs: 500 };
      const led: string[] = [];
      const hooks: CrossTabHooks = { lead: () => led.push('a'), follow: () => undefined, receive: () => undefined, joined: () => undefined };
      const a = new CrossTab('k', options, hooks);
      const b = tabOf('k', options, led, 'b');
      a.start();
      b.start();
      await microtasks();
      a.post({ t: 'event', from: a.id, type: 'tick', data: '1', id: '1', after: '', hasId: true });
      deliver(); // b heard a lead
      // A crash: the lock is released, no goodbye is posted.
      (a as unknown as { releaseLock: () => void }).releaseLock();
      await microtasks();
      expect(led).toEqual(['a']);
      vi.advanceTimersByTime(500);
      expect(led).toEqual(['a', 'b']);
      b.stop();
    } finally {
      vi.useRealTimers();
    }
  });
});
