/** Real processes and sockets for the server SDK's tests: the hub binary and SSE streams read with fetch. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { SseParser, type SseMessage } from '@herald/client';

const REPO = fileURLToPath(new URL('../../../../../', import.meta.url));
export const HERALD = process.env['HERALD_BIN'] ?? `${REPO}target/release/herald`;
export const SECRET = 'server-sdk-test-secret';
export const PUBLISH_KEY = 'server-sdk-test-key';

/** `herald serve` on a free port (`--listen 127.0.0.1:0`; the address is read from its stdout). */
export class Hub {
  private child: ChildProcess | undefined;
  url = '';
  log = '';

  async start(extraArgs: string[] = []): Promise<this> {
    if (!existsSync(HERALD)) throw new Error(`${HERALD} not found: set HERALD_BIN or cargo build --release -p herald`);
    const child = spawn(
      HERALD,
      ['serve', '--listen', '127.0.0.1:0', '--jwt-secret', SECRET, '--publish-key', PUBLISH_KEY, ...extraArgs],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HERALD_LOG: 'warn' } },
    );
    this.child = child;
    child.stderr?.on('data', (d: Buffer) => (this.log += d.toString()));
    this.url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`herald did not start: ${this.log}`)), 15_000);
      child.once('exit', (code) => reject(new Error(`herald exited (${code}): ${this.log}`)));
      child.stdout?.on('data', (d: Buffer) => {
        this.log += d.toString();
        const match = /herald listening on (http:\/\/\S+)/.exec(this.log);
        if (match?.[1]) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      });
    });
    return this;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
}

/** An open `GET /events` stream; events are collected as they arrive. */
export class Stream {
  readonly events: SseMessage[] = [];
  private readonly waiters = new Set<() => void>();
  private ended = false;

  constructor(private readonly controller: AbortController) {}

  push(event: SseMessage): void {
    this.events.push(event);
    for (const wake of this.waiters) wake();
  }

  end(): void {
    this.ended = true;
    for (const wake of this.waiters) wake();
  }

  /** The first event (from the start of the stream) matching `match`, waiting up to `timeoutMs`. */
  next(match: (event: SseMessage) => boolean, timeoutMs = 5000): Promise<SseMessage> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = this.events.find(match);
        if (found) {
          done();
          resolve(found);
        } else if (this.ended) {
          done();
          reject(new Error(`stream ended; events: ${JSON.stringify(this.events)}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no matching event within ${timeoutMs} ms; events: ${JSON.stringify(this.events)}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** The event named `type` whose id is `id`. */
  byId(type: string, id: string, timeoutMs?: number): Promise<SseMessage> {
    return this.next((e) => e.type === type && e.lastEventId === id, timeoutMs);
  }

  close(): void {
    this.controller.abort();
  }
}

export class StreamRefused extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`GET /events answered ${status}: ${body}`);
  }
}

/**
 * Opens a stream with `token` (and `topics`), resolving once the hub's opening comment has
 * arrived: from then on the stream is registered and receives everything published.
 */
export async function openStream(hubUrl: string, token: string, topics: string[] = []): Promise<Stream> {
  const url = new URL('/events', hubUrl);
  for (const topic of topics) url.searchParams.append('topic', topic);
  const controller = new AbortController();
  const response = await fetch(url, {
    headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
    signal: controller.signal,
  });
  if (response.status !== 200 || !response.body) throw new StreamRefused(response.status, await response.text());
  const stream = new Stream(controller);
  const parser = new SseParser();
  let opened: () => void = () => undefined;
  const open = new Promise<void>((resolve) => (opened = resolve));
  const reader = response.body.getReader();
  void (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        for (const item of parser.feed(value)) {
          if (item.kind === 'comment') opened();
          if (item.kind === 'event') stream.push(item.event);
        }
      }
    } catch {
      // aborted by close()
    } finally {
      stream.end();
      opened();
    }
  })();
  await open;
  return stream;
}

/** A local HTTP server whose behaviour the test scripts, recording every request it gets. */
export class ScriptedServer {
  readonly requests: Array<{ at: number; headers: IncomingMessage['headers']; body: string }> = [];
  private readonly server: Server;
  url = '';

  constructor(handler: (req: IncomingMessage, body: string, res: ServerResponse, index: number) => void | Promise<void>) {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        const index = this.requests.push({ at: performance.now(), headers: req.headers, body }) - 1;
        void handler(req, body, res, index);
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Forwards a recorded publish request to the real hub and answers with what the hub said. */
export async function forwardToHub(hubUrl: string, req: IncomingMessage, body: string, res: ServerResponse): Promise<void> {
  const answer = await fetch(new URL('/publish', hubUrl), {
    method: 'POST',
    headers: { authorization: req.headers.authorization ?? '', 'content-type': 'application/json' },
    body,
  });
  res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' });
  res.end(await answer.text());
}

export function answerJson(res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}
