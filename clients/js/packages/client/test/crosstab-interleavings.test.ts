/**
 * Randomized, seeded interleavings of cross-tab hand-overs, run against the real client
 * (`createClient` with `crossTab`), with everything around it simulated and driven step by step
 * by one scheduler:
 *
 * - a BroadcastChannel whose messages wait in one FIFO per sender → receiver pair until the
 *   scheduler delivers them (each pair has its own random speed: a delayed channel; a closed
 *   sender's messages still arrive, messages to a closed receiver are dropped);
 * - Web Locks: exclusive, FIFO, abortable; the next tab is granted the lock at a step the
 *   scheduler picks after the holder released it;
 * - a hub: one increasing id sequence, replay after `Last-Event-ID`, the id-only block with its
 *   newest id at the end of each preamble, events for other subscribers (they move the position
 *   only); each stream's chunks wait in the network until the scheduler delivers them.
 *
 * The scheduler picks one ready action at a time (deliver a channel message, deliver a chunk,
 * grant the lock, publish, close the leader tab under load, open a tab), then lets the
 * client's promises settle. Timers are faked: no timer decides anything, except when only
 * timers are left (then the fake clock is moved on, see `check`). Every tab open from the start
 * must dispatch every event exactly once and in order (a tab that closed, a prefix); a tab that
 * opened later, a contiguous run up to the last. 2000 seeds by default (`HERALD_SCHEDULES=n`
 * for more; `HERALD_SEED=n` runs one with a trace).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createClient, type BroadcastChannelLike, type HeraldClient, type LockManagerLike } from '../src/index.js';
import { seededRandom } from './helpers.js';

type Events = { tick: { n: number } };

/** Lets every settled promise run (timers are faked; `setImmediate` is not). */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
/** A few microtask turns: most steps need no more, and the next step goes on from wherever they got. */
async function settle(): Promise<void> {
  for (let i = 0; i < 16; i++) await Promise.resolve();
}

interface Pair {
  from: SimChannel;
  to: SimChannel;
  speed: number;
  queue: unknown[];
}

class SimChannel implements BroadcastChannelLike {
  onmessage: ((ev: MessageEvent) => void) | null = null;
  closed = false;
  constructor(
    readonly world: World,
    readonly name: string,
  ) {
    world.channels.add(this);
    world.allChannels.push(this);
  }
  postMessage(message: unknown): void {
    if (this.closed) throw new Error('closed');
    for (const other of this.world.channels) {
      if (other === this || other.name !== this.name) continue;
      this.world.pair(this, other).queue.push(structuredClone(message));
    }
  }
  close(): void {
    this.closed = true;
    this.world.channels.delete(this);
  }
}

interface LockRequest {
  callback: (lock: unknown) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

class SimLocks implements LockManagerLike {
  readonly queue: LockRequest[] = [];
  held = false;
  request(
    _name: string,
    options: { mode?: 'exclusive'; signal?: AbortSignal; ifAvailable?: boolean },
    callback: (lock: unknown) => Promise<unknown>,
  ): Promise<unknown> {
    if (options.ifAvailable) {
      if (this.held || this.queue.length > 0) return Promise.resolve().then(() => callback(null));
      this.held = true;
      return Promise.resolve()
        .then(() => callback({}))
        .finally(() => {
          this.held = false;
        });
    }
    return new Promise((resolve, reject) => {
      const entry: LockRequest = { callback, resolve, reject };
      this.queue.push(entry);
      options.signal?.addEventListener('abort', () => {
        const i = this.queue.indexOf(entry);
        if (i >= 0) {
          this.queue.splice(i, 1);
          reject(new DOMException('aborted', 'AbortError'));
        }
      });
    });
  }
  /** The scheduler's step: the lock is free and someone waits. */
  get grantable(): boolean {
    return !this.held && this.queue.length > 0;
  }
  grant(): void {
    const entry = this.queue.shift();
    if (!entry) return;
    this.held = true;
    Promise.resolve()
      .then(() => entry.callback({}))
      .then(entry.resolve, entry.reject)
      .finally(() => {
        this.held = false;
      });
  }
}

interface SimStream {
  pending: string[];
  arrived: string[];
  waiter: ((result: ReadableStreamReadResult<Uint8Array>) => void) | undefined;
  done: boolean;
  /** The first stream: publishing starts once its preamble reached the leader (its place is known). */
  first: boolean;
}

const encoder = new TextEncoder();

class SimHub {
  private seq = 0;
  /** Every id given out; `frame` for the events of our subscriber. */
  private history: Array<{ id: string; frame?: string }> = [{ id: this.nextId() }];
  readonly streams = new Set<SimStream>();
  readonly resumes: string[] = [];
  started = false;
  /** The ticks published after the first stream opened, in order. */
  readonly published: string[] = [];
  private n = 0;

  private nextId(): string {
    return `1732460000000-${this.seq++}`;
  }

  publish(): string {
    const id = this.nextId();
    const frame = `id: ${id}\nevent: tick\ndata: {"n":${++this.n}}\n\n`;
    this.history.push({ id, frame });
    this.published.push(id);
    for (const s of this.streams) s.pending.push(frame);
    return id;
  }

  publishElsewhere(): void {
    this.history.push({ id: this.nextId() });
  }

  readonly fetch = (_input: string, init: RequestInit): Promise<Response> => {
    const headers = (init.headers ?? {}) as Record<string, string>;
    const resume = headers['Last-Event-ID'] ?? '';
    this.resumes.push(resume);
    if (TRACE) console.log(`fetch, Last-Event-ID ${resume}`);
    let preamble = ': herald\n\n';
    if (resume !== '') {
      const at = this.history.findIndex((entry) => entry.id === resume);
      if (at < 0) preamble += `event: herald.missed\ndata: {"reason":"unknown_id","lastEventId":"${resume}"}\n\n`;
      else for (const entry of this.history.slice(at + 1)) preamble += entry.frame ?? '';
    }
    preamble += `id: ${this.history.at(-1)?.id ?? ''}\n\n`;
    const stream: SimStream = { pending: [preamble], arrived: [], waiter: undefined, done: false, first: !this.started };
    this.streams.add(stream);
    const end = (): void => {
      stream.done = true;
      this.streams.delete(stream);
      const waiter = stream.waiter;
      stream.waiter = undefined;
      waiter?.({ done: true, value: undefined });
    };
    init.signal?.addEventListener('abort', end);
    const reader = {
      read: (): Promise<ReadableStreamReadResult<Uint8Array>> => {
        const chunk = stream.arrived.shift();
        if (chunk !== undefined) return Promise.resolve({ done: false, value: encoder.encode(chunk) });
        if (stream.done) return Promise.resolve({ done: true, value: undefined });
        return new Promise((resolve) => {
          stream.waiter = resolve;
        });
      },
      cancel: (): Promise<void> => {
        end();
        return Promise.resolve();
      },
    };
    const response = {
      status: 200,
      headers: new Headers({ 'content-type': 'text/event-stream' }),
      body: { getReader: () => reader, cancel: reader.cancel },
    };
    return Promise.resolve(response as unknown as Response);
  };

  /** The network delivers a stream's next chunk. */
  deliver(stream: SimStream): void {
    const chunk = stream.pending.shift();
    if (chunk === undefined || stream.done) return;
    if (stream.first) this.started = true;
    const waiter = stream.waiter;
    if (waiter) {
      stream.waiter = undefined;
      waiter({ done: false, value: encoder.encode(chunk) });
    } else stream.arrived.push(chunk);
  }
}

interface Tab {
  client: HeraldClient<Events>;
  ids: string[];
  missed: number;
  open: boolean;
  /** How many ticks had been published when the tab opened. */
  openedAt: number;
  /** … and when it closed. */
  closedAt: number;
}

class World {
  readonly channels = new Set<SimChannel>();
  private readonly pairs = new Map<SimChannel, Map<SimChannel, Pair>>();
  readonly locks = new SimLocks();
  readonly hub = new SimHub();
  readonly tabs: Tab[] = [];

  constructor(readonly random: () => number) {}

  readonly allChannels: SimChannel[] = [];
  channelIndex(channel: SimChannel): string {
    return String(this.allChannels.indexOf(channel));
  }

  pair(from: SimChannel, to: SimChannel): Pair {
    let row = this.pairs.get(from);
    if (!row) {
      row = new Map();
      this.pairs.set(from, row);
    }
    let pair = row.get(to);
    if (!pair) {
      // A slow pair is picked rarely: its messages lag behind everything else.
      const r = this.random();
      pair = { from, to, speed: r < 0.3 ? 0.05 : r < 0.6 ? 0.3 : 1, queue: [] };
      row.set(to, pair);
    }
    return pair;
  }

  /** Pairs with a message to deliver (messages to a closed tab are dropped). */
  readyPairs(): Pair[] {
    const ready: Pair[] = [];
    for (const row of this.pairs.values()) {
      for (const pair of row.values()) {
        if (pair.to.closed) pair.queue.length = 0;
        if (pair.queue.length > 0) ready.push(pair);
      }
    }
    return ready;
  }

  openTab(): Tab {
    const world = this;
    const Channel = class extends SimChannel {
      constructor(name: string) {
        super(world, name);
      }
    };
    const client = createClient<Events>({
      url: 'http://hub.test/events',
      token: 't',
      fetch: this.hub.fetch,
      idleTimeoutMs: 0,
      random: () => 0,
      crossTab: { key: 'k', BroadcastChannel: Channel, locks: this.locks },
    });
    const tab: Tab = { client, ids: [], missed: 0, open: true, openedAt: this.hub.published.length, closedAt: Infinity };
    client.on('tick', (_payload, meta) => tab.ids.push(meta.id));
    client.onMissed(() => tab.missed++);
    this.tabs.push(tab);
    return tab;
  }

  closeTab(tab: Tab): void {
    tab.open = false;
    tab.closedAt = this.hub.published.length;
    tab.client.close();
  }
}

interface Plan {
  tabs: number;
  events: number;
  closes: number;
  lateTabs: number;
}

type Failure = 'duplicate' | 'missing' | 'order' | 'missed' | 'stuck';
type Outcome = { ok: true; timeouts: number } | { ok: false; kind: Failure; detail: string };

/**
 * Once nothing is left to deliver: every tab that was open from the start has every tick
 * published (after the first stream's preamble) exactly once, in order, or, if it closed, a
 * prefix of them; a tab that opened later, a contiguous run of them up to the last. Nothing
 * waits for a timer at the end; and without late tabs, nothing needed one (a step waiting for a
 * predecessor, a tab for a goodbye): only a tab that opened just after a goodbye it never hears
 * may wait for its join timeout.
 */
function check(world: World, plan: Plan, seed: number, timeouts: number): Outcome {
  const published = world.hub.published;
  const short = (id: string): string => id.replace('1732460000000-', '');
  const resumes = world.hub.resumes.map((r) => short(r) || '-').join(' ');
  for (const [index, tab] of world.tabs.entries()) {
    const early = index < plan.tabs;
    const expected = published.slice(0, tab.open ? published.length : tab.closedAt);
    const what = `seed ${seed}, tab ${index}${early ? '' : ' (late)'}${tab.open ? '' : ' (closed)'}: got [${tab.ids.map(short).join(' ')}] of [${expected.map(short).join(' ')}], resumes [${resumes}]`;
    const fail = (kind: Failure): Outcome => ({ ok: false, kind, detail: what });
    if (tab.missed > 0) return fail('missed');
    if (new Set(tab.ids).size !== tab.ids.length) return fail('duplicate');
    const positions = tab.ids.map((id) => expected.indexOf(id));
    if (positions.some((p) => p < 0)) return fail('order'); // an event after its close
    if (positions.some((p, i) => i > 0 && p < positions[i - 1]!)) return fail('order');
    const first = positions[0] ?? (tab.open ? expected.length : 0);
    const contiguous = positions.every((p, i) => p === first + i);
    const last = first + tab.ids.length;
    if (!contiguous || (early && first !== 0) || (tab.open && last !== expected.length)) return fail('missing');
  }
  if (TRACE) {
    for (const tab of world.tabs) {
      const inner = tab.client as unknown as { sequence: { waiting: number; hasJoined: boolean; head: string } };
      console.log('tab', world.tabs.indexOf(tab), tab.open, 'waiting', inner.sequence.waiting, 'joined', inner.sequence.hasJoined, inner.sequence.head, tab.client.getSnapshot().isLeader);
    }
  }
  // Without late tabs, nothing ever waits for a timer.
  if (vi.getTimerCount() > 0 || (timeouts > 0 && world.tabs.length === plan.tabs)) {
    return { ok: false, kind: 'stuck', detail: `seed ${seed}: needed ${timeouts} timeouts, ${vi.getTimerCount()} timers pending, resumes [${resumes}]` };
  }
  return { ok: true, timeouts };
}

async function runSchedule(seed: number): Promise<Outcome> {
  const random = seededRandom(seed);
  const plan: Plan = {
    tabs: 3 + Math.floor(random() * 3),
    events: 20 + Math.floor(random() * 30),
    closes: 1 + Math.floor(random() * 2),
    lateTabs: Math.floor(random() * 2),
  };
  const world = new World(random);
  for (let i = 0; i < plan.tabs; i++) world.openTab();
  await flush();
  let closes = 0;
  let late = 0;
  let timeouts = 0;
  let flushed = false;
  const hub = world.hub;
  const leader = (): Tab | undefined => world.tabs.find((t) => t.open && t.client.getSnapshot().isLeader);

  for (let steps = 0; steps < 20_000; steps++) {
    type Action = { weight: number; run: () => void };
    const actions: Action[] = [];
    for (const pair of world.readyPairs()) {
      actions.push({
        weight: pair.speed,
        run: () => {
          const message = pair.queue.shift();
          if (TRACE) console.log(`${[...world.channelIndex(pair.from)]} -> ${world.channelIndex(pair.to)}`, JSON.stringify(message));
          pair.to.onmessage?.({ data: message } as MessageEvent);
        },
      });
    }
    for (const stream of hub.streams) {
      if (stream.pending.length > 0) {
        actions.push({
          weight: 1,
          run: () => {
            if (TRACE) console.log(`net -> stream ${hub.resumes.length}:`, JSON.stringify(stream.pending[0]));
            hub.deliver(stream);
          },
        });
      }
    }
    if (world.locks.grantable) {
      actions.push({
        weight: 0.5,
        run: () => {
          if (TRACE) console.log('grant');
          world.locks.grant();
        },
      });
    }
    if (hub.started && hub.published.length < plan.events) {
      actions.push({
        weight: 1.5,
        run: () => {
          hub.publish();
          if (random() < 0.2) hub.publishElsewhere();
        },
      });
    }
    const current = leader();
    // The leader's page closes, under load: its stream has events it got, or has yet to get.
    if (current && closes < plan.closes && hub.published.length > 3 + closes * 8) {
      actions.push({
        weight: 0.15,
        run: () => {
          closes++;
          if (TRACE) console.log(`close tab ${world.tabs.indexOf(current)}`);
          world.closeTab(current);
        },
      });
    }
    if (late < plan.lateTabs && hub.published.length > 5) {
      actions.push({
        weight: 0.05,
        run: () => {
          late++;
          world.openTab();
        },
      });
    }
    if (actions.length === 0 && !flushed) {
      // Nothing ready: let everything pending settle, then look again.
      await flush();
      flushed = true;
      continue;
    }
    flushed = false;
    if (actions.length === 0) {
      // Only timers are left (a tab that opened just after a goodbye it never heard waits for
      // it): let the time pass, and go on.
      if (vi.getTimerCount() === 0 || timeouts >= 5) break;
      timeouts++;
      if (TRACE) {
        for (const tab of world.tabs) {
          const inner = tab.client as unknown as { sequence: { waiting: number; hasJoined: boolean; head: string } };
          console.log('before timeout: tab', world.tabs.indexOf(tab), tab.open, 'waiting', inner.sequence.waiting, 'joined', inner.sequence.hasJoined, tab.client.getSnapshot().isLeader);
        }
      }
      vi.advanceTimersByTime(1000);
      await flush();
      continue;
    }
    let pick = random() * actions.reduce((sum, a) => sum + a.weight, 0);
    let chosen = actions[actions.length - 1]!;
    for (const action of actions) {
      pick -= action.weight;
      if (pick <= 0) {
        chosen = action;
        break;
      }
    }
    chosen.run();
    await settle();
  }

  const outcome = check(world, plan, seed, timeouts);
  for (const tab of world.tabs) if (tab.open) tab.client.close();
  await flush();
  return outcome;
}

const SCHEDULES = Number(process.env['HERALD_SCHEDULES'] ?? 2000);
const ONLY = process.env['HERALD_SEED'] === undefined ? undefined : Number(process.env['HERALD_SEED']);
const TRACE = ONLY !== undefined;

describe('cross-tab hand-over, randomized interleavings (simulated channel, locks and hub)', () => {
  beforeAll(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  });
  afterAll(() => {
    vi.useRealTimers();
  });

  it(`every tab dispatches every id once, in order, in ${SCHEDULES} seeded schedules`, async () => {
    const failures: Record<string, number> = {};
    let timedOut = 0;
    const examples: string[] = [];
    for (let seed = ONLY ?? 1; seed <= (ONLY ?? SCHEDULES); seed++) {
      const outcome = await runSchedule(seed);
      if (outcome.ok && outcome.timeouts > 0) timedOut++;
      if (!outcome.ok) {
        failures[outcome.kind] = (failures[outcome.kind] ?? 0) + 1;
        if (examples.length < 3) examples.push(`${outcome.kind}: ${outcome.detail}`);
      }
    }
    const failed = Object.values(failures).reduce((a, b) => a + b, 0);
    console.log(`${failed} of ${SCHEDULES} schedules failed`, failures, `; ${timedOut} passed after a timeout`, '\n' + examples.join('\n'));
    expect({ failed, failures, examples }).toEqual({ failed: 0, failures: {}, examples: [] });
  }, 120_000);
});
