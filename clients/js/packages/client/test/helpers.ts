import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type {
  BroadcastChannelConstructor,
  BroadcastChannelLike,
  LockManagerLike,
} from '../src/index.js';

export interface SeenRequest {
  url: URL;
  headers: IncomingMessage['headers'];
}

export type Handler = (req: IncomingMessage, res: ServerResponse, index: number) => void;

/** A tiny SSE server: `handler` decides per request; open streams can be written to. */
export class SseServer {
  readonly requests: SeenRequest[] = [];
  readonly open = new Set<ServerResponse>();
  private server: Server;
  url = '';

  constructor(private handler: Handler = (_req, res) => SseServer.accept(res)) {
    this.server = createServer((req, res) => {
      const index = this.requests.length;
      this.requests.push({ url: new URL(req.url ?? '/', 'http://x'), headers: req.headers });
      res.on('close', () => this.open.delete(res));
      this.handler(req, res, index);
    });
  }

  static accept(res: ServerResponse, first = ': hi\n\n'): void {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    res.write(first);
  }

  setHandler(handler: Handler): void {
    this.handler = handler;
  }

  track(res: ServerResponse): void {
    this.open.add(res);
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}/events`;
    return this;
  }

  write(text: string): void {
    for (const res of this.open) res.write(text);
  }

  endAll(): void {
    for (const res of this.open) res.end();
    this.open.clear();
  }

  async stop(): Promise<void> {
    for (const res of this.open) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Handler that accepts and keeps the stream open for `write`. */
export function keepOpen(server: () => SseServer, first?: string): Handler {
  return (_req, res) => {
    SseServer.accept(res, first);
    server().track(res);
  };
}

export async function waitFor(cond: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A fake unsigned JWT whose payload has `exp` and `sub`. */
export function fakeJwt(sub: string, expSeconds: number): string {
  const enc = (v: object): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ sub, exp: expSeconds })}.sig`;
}

/** In-memory BroadcastChannel: delivers asynchronously to every other instance of the same name. */
export function fakeBroadcastChannel(): BroadcastChannelConstructor & { instances: Set<BroadcastChannelLike> } {
  const instances = new Set<FakeChannel>();
  class FakeChannel implements BroadcastChannelLike {
    onmessage: ((ev: MessageEvent) => void) | null = null;
    closed = false;
    constructor(readonly name: string) {
      instances.add(this);
    }
    postMessage(message: unknown): void {
      if (this.closed) throw new Error('closed');
      const copy: unknown = structuredClone(message);
      for (const other of instances) {
        if (other !== this && other.name === this.name) {
          setTimeout(() => {
            if (!other.closed) other.onmessage?.({ data: copy } as MessageEvent);
          }, 0);
        }
      }
    }
    close(): void {
      this.closed = true;
      instances.delete(this);
    }
  }
  return Object.assign(FakeChannel, { instances: instances as Set<BroadcastChannelLike> });
}

/** In-memory Web Locks: exclusive, FIFO, abortable while waiting, `ifAvailable`. */
export function fakeLocks(): LockManagerLike {
  const queues = new Map<string, Array<() => void>>();
  const held = new Set<string>();
  const next = (name: string): void => {
    const q = queues.get(name);
    const run = q?.shift();
    if (run) run();
  };
  return {
    request(name, options, callback) {
      if (options.ifAvailable && (held.has(name) || (queues.get(name)?.length ?? 0) > 0)) {
        return Promise.resolve().then(() => callback(null));
      }
      return new Promise((resolve, reject) => {
        const run = (): void => {
          held.add(name);
          Promise.resolve()
            .then(() => callback({ name }))
            .then(resolve, reject)
            .finally(() => {
              held.delete(name);
              next(name);
            });
        };
        const q = queues.get(name) ?? [];
        queues.set(name, q);
        options.signal?.addEventListener('abort', () => {
          const i = q.indexOf(run);
          if (i >= 0) {
            q.splice(i, 1);
            reject(new DOMException('aborted', 'AbortError'));
          }
        });
        if (!held.has(name) && q.length === 0) run();
        else q.push(run);
      });
    },
  };
}

/** A small deterministic PRNG (mulberry32), so a failing interleaving can be replayed by seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * BroadcastChannel with a latency per sender-receiver pair: `latencyMs(from, to)`, where tabs are
 * numbered by when they opened their channel, plus up to 1 ms of jitter per message. Each
 * sender's messages stay in order for each receiver (as the spec guarantees), but messages of
 * different senders interleave differently in each tab, and a closed sender's messages still
 * arrive: an old leader's relays land after the new leader has started, and a fast new leader's
 * overtake a slow old leader's.
 */
export function delayedBroadcastChannel(
  latencyMs: (from: number, to: number) => number,
  random: () => number = Math.random,
): BroadcastChannelConstructor & { instances: Set<BroadcastChannelLike> } {
  const instances = new Set<DelayedChannel>();
  let opened = 0;
  class DelayedChannel implements BroadcastChannelLike {
    onmessage: ((ev: MessageEvent) => void) | null = null;
    closed = false;
    readonly index = opened++;
    /** Per receiver: messages from this sender not delivered yet, in order. */
    private readonly queues = new Map<DelayedChannel, Array<{ at: number; data: unknown }>>();
    constructor(readonly name: string) {
      instances.add(this);
    }
    postMessage(message: unknown): void {
      if (this.closed) throw new Error('closed');
      for (const other of instances) {
        if (other === this || other.name !== this.name) continue;
        const queue = this.queues.get(other) ?? [];
        this.queues.set(other, queue);
        const at = Date.now() + latencyMs(this.index, other.index) + random();
        queue.push({ at: Math.max(queue.at(-1)?.at ?? 0, at), data: structuredClone(message) });
        if (queue.length === 1) this.pump(other);
      }
    }
    private pump(to: DelayedChannel): void {
      const queue = this.queues.get(to);
      const head = queue?.[0];
      if (!queue || !head) return;
      setTimeout(() => {
        queue.shift();
        if (!to.closed) to.onmessage?.({ data: head.data } as MessageEvent);
        this.pump(to);
      }, Math.max(0, head.at - Date.now()));
    }
    close(): void {
      this.closed = true;
      instances.delete(this);
    }
  }
  return Object.assign(DelayedChannel, { instances: instances as Set<BroadcastChannelLike> });
}

/** A latency for each pair of tabs, drawn once from 0..`maxMs` with `random`. */
export function randomPairLatency(random: () => number, maxMs: number): (from: number, to: number) => number {
  const drawn = new Map<string, number>();
  return (from, to) => {
    const key = `${from}>${to}`;
    const ms = drawn.get(key) ?? random() * maxMs;
    drawn.set(key, ms);
    return ms;
  };
}

/**
 * A hub-like SSE server: ids `<ms>-<seq>` in one increasing sequence, replay after
 * `Last-Event-ID`, `herald.missed` for an id it does not know, and the id-only block with its
 * latest id at the end of every preamble, as `herald serve` does.
 */
export class FakeHub {
  readonly server = new SseServer((req, res) => this.subscribe(req, res));
  private epoch = 1_732_460_000_000;
  private seq = 0;
  /**
   * Every id given out, in order, from the start id (the hub's position before any event);
   * `frame` is absent for the start and for events other subscribers got.
   */
  private history: Array<{ id: string; frame?: string }> = [{ id: this.nextId() }];

  get url(): string {
    return this.server.url;
  }

  get requests(): SeenRequest[] {
    return this.server.requests;
  }

  async start(): Promise<this> {
    await this.server.start();
    return this;
  }

  stop(): Promise<void> {
    return this.server.stop();
  }

  /** Publishes to the subscribers (every stream here); returns the event's id. */
  publish(event: string, data: unknown): string {
    const id = this.nextId();
    const frame = `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    this.history.push({ id, frame });
    this.server.write(frame);
    return id;
  }

  /** An event for someone else: it moves the hub's position but reaches no stream here. */
  publishElsewhere(): string {
    const id = this.nextId();
    this.history.push({ id });
    return id;
  }

  /** An in-memory hub restarting: history gone, ids from a new epoch, open streams cut. */
  restart(): void {
    this.epoch += 1000;
    this.seq = 0;
    this.history = [{ id: this.nextId() }];
    this.server.endAll();
  }

  private nextId(): string {
    return `${this.epoch}-${this.seq++}`;
  }

  private subscribe(req: IncomingMessage, res: ServerResponse): void {
    const resume = req.headers['last-event-id'];
    let preamble = ': herald\nretry: 10\n\n';
    if (typeof resume === 'string' && resume !== '') {
      const at = this.history.findIndex((entry) => entry.id === resume);
      if (at < 0) {
        preamble += `event: herald.missed\ndata: ${JSON.stringify({ reason: 'unknown_id', lastEventId: resume })}\n\n`;
      } else {
        for (const entry of this.history.slice(at + 1)) preamble += entry.frame ?? '';
      }
    }
    preamble += `id: ${this.history.at(-1)?.id ?? ''}\n\n`;
    SseServer.accept(res, preamble);
    this.server.track(res);
  }
}
