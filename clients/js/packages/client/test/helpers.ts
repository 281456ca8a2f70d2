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

/** In-memory Web Locks: exclusive, FIFO, abortable while waiting. */
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
