/** Real processes and sockets for the browser tests: the hub, a static server, a TCP proxy. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, connect, type AddressInfo, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const HERALD = process.env['HERALD_BIN'] ?? `${REPO}target/release/herald`;
export const SECRET = 'e2e-secret-not-for-production';
export const PUBLISH_KEY = 'e2e-publish-key';
export const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

/** Debian's Chromium, headless, driven by playwright-core (no browser download). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
}

export async function freePort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** An HS256 token signed with SECRET; `header` adds to (or overrides) `{alg, typ: 'JWT'}`. */
export function signJwt(claims: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  const enc = (v: object): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  const head = `${enc({ alg: 'HS256', typ: 'JWT', ...header })}.${enc(claims)}`;
  return `${head}.${createHmac('sha256', SECRET).update(head).digest('base64url')}`;
}

export function subscriberToken(sub: string, ttlSeconds = 3600): string {
  return signJwt({ sub, exp: Math.floor(Date.now() / 1000) + ttlSeconds });
}

/** The Mercure endpoint of a `--mercure` hub. */
export const MERCURE = '/.well-known/mercure';

/** A Mercure 0.x token: `{"mercure": {"publish": [...], "subscribe": [...]}}`, no `exp`. */
export function mercureLegacyToken(publish: string[], subscribe: string[]): string {
  return signJwt({ mercure: { publish, subscribe } });
}

export interface MercureTopicGrant {
  match: string;
  matchType?: 'Exact' | 'URLPattern';
}

/** A Mercure 1.0 access token: header `typ: at+jwt`, one `mercure` authorization detail. */
export function mercureAccessToken(actions: Array<'publish' | 'subscribe'>, topics: MercureTopicGrant[]): string {
  return signJwt(
    {
      exp: Math.floor(Date.now() / 1000) + 3600,
      authorization_details: [{ type: 'mercure', actions, topics }],
    },
    { typ: 'at+jwt' },
  );
}

/** Form fields of a Mercure update, in order (`topic` may repeat). */
export type MercureFields = Array<[name: string, value: string]>;

/** What the hub answered a Mercure publish. */
export interface MercureAnswer {
  status: number;
  contentType: string | null;
  body: string;
}

/** POSTs a Mercure update (form body) from Node; the hub's answer, whatever its status. */
export async function mercurePost(hubUrl: string, token: string, fields: MercureFields): Promise<MercureAnswer> {
  const res = await fetch(`${hubUrl}${MERCURE}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  });
  return { status: res.status, contentType: res.headers.get('content-type'), body: await res.text() };
}

/** POSTs a Mercure update from Node and returns the id the hub answered (200 text/plain). */
export async function mercurePublish(hubUrl: string, token: string, fields: MercureFields): Promise<string> {
  const answer = await mercurePost(hubUrl, token, fields);
  if (answer.status !== 200) throw new Error(`Mercure publish ${answer.status}: ${answer.body}`);
  if (!answer.contentType?.startsWith('text/plain')) throw new Error(`Mercure publish answered ${answer.contentType}`);
  return answer.body;
}

export class Hub {
  private child: ChildProcess | undefined;
  readonly url: string;
  log = '';

  /** `corsOrigin` undefined: no `--cors-origin` (pages on the hub's own origin need none). */
  constructor(
    readonly port: number,
    private readonly corsOrigin: string | undefined,
    private readonly extraArgs: string[] = [],
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  async start(): Promise<void> {
    if (!existsSync(HERALD)) throw new Error(`${HERALD} not found: cargo build --release -p herald`);
    // Defaults that `extraArgs` may override (the hub takes each flag once).
    const defaults: Array<[flag: string, value: string]> = [['--retry-ms', '300'], ['--heartbeat', '5']];
    const child = spawn(
      HERALD,
      [
        'serve',
        '--listen', `127.0.0.1:${this.port}`,
        '--jwt-secret', SECRET,
        '--publish-key', PUBLISH_KEY,
        ...(this.corsOrigin === undefined ? [] : ['--cors-origin', this.corsOrigin]),
        ...defaults.filter(([flag]) => !this.extraArgs.includes(flag)).flat(),
        '--console',
        ...this.extraArgs,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    child.stdout?.on('data', (d: Buffer) => (this.log += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.log += d.toString()));
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`herald exited: ${this.log}`);
      try {
        const res = await fetch(`${this.url}/healthz`);
        if (res.ok) return;
      } catch {
        // not yet
      }
      if (Date.now() > deadline) throw new Error(`herald did not start: ${this.log}`);
      await sleep(50);
    }
  }

  /** SIGKILL: no goodbye to the clients. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    this.child = undefined;
  }

  async publish(body: object | object[]): Promise<{ id?: string; ids?: string[] }> {
    const res = await fetch(`${this.url}/publish`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${PUBLISH_KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`publish ${res.status}: ${await res.text()}`);
    return (await res.json()) as { id?: string; ids?: string[] };
  }

  /** Open streams of one user on this hub (from the console's snapshot, publish key only). */
  async streamsOf(user: string): Promise<number> {
    const res = await fetch(`${this.url}/console/api/snapshot`, {
      headers: { Authorization: `Bearer ${PUBLISH_KEY}` },
    });
    if (!res.ok) throw new Error(`snapshot ${res.status}: ${await res.text()}`);
    const snapshot = (await res.json()) as { top_users: Array<{ name: string; streams: number }> };
    return snapshot.top_users.find((u) => u.name === user)?.streams ?? 0;
  }

  /** The id of the newest event this hub published (console snapshot, publish key only). */
  async lastEventId(): Promise<string> {
    const res = await fetch(`${this.url}/console/api/snapshot`, {
      headers: { Authorization: `Bearer ${PUBLISH_KEY}` },
    });
    if (!res.ok) throw new Error(`snapshot ${res.status}: ${await res.text()}`);
    return String(((await res.json()) as { last_event_id: unknown }).last_event_id ?? '');
  }

  async connections(): Promise<number> {
    const text = await (await fetch(`${this.url}/metrics`)).text();
    const match = /^herald_connections (\d+)/m.exec(text);
    return match ? Number(match[1]) : NaN;
  }
}

/** Serves the bundled page and a /token endpoint (the app's login service). */
export async function startStatic(dir: string): Promise<{ url: string; server: Server; tokens: () => number }> {
  let tokens = 0;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/token') {
      tokens++;
      const sub = url.searchParams.get('sub') ?? 'u1';
      const ttl = Number(url.searchParams.get('ttl') ?? '3600');
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
      res.end(JSON.stringify({ token: subscriberToken(sub, ttl) }));
      return;
    }
    const file = url.pathname === '/' ? 'index.html' : url.pathname.slice(1);
    if (!/^[\w.-]+$/.test(file) || !existsSync(`${dir}/${file}`)) {
      res.writeHead(404).end();
      return;
    }
    const type = file.endsWith('.js') ? 'text/javascript' : file.endsWith('.html') ? 'text/html' : 'application/octet-stream';
    res.writeHead(200, { 'Content-Type': type });
    res.end(readFileSync(`${dir}/${file}`));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, server, tokens: () => tokens };
}

/** A TCP proxy whose connections can all be cut at once: a network drop, hub still up. */
export class Proxy {
  private readonly sockets = new Set<Socket>();
  private server = createTcpServer((client) => {
    const upstream = connect(this.target, '127.0.0.1');
    this.sockets.add(client);
    this.sockets.add(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  port = 0;

  constructor(private readonly target: number) {}

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  cutAll(): number {
    const n = this.sockets.size;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    return n;
  }

  async stop(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function until<T>(fn: () => Promise<T> | T, ok: (v: T) => boolean, what: string, timeoutMs = 10_000): Promise<T> {
  const start = Date.now();
  let last: T = await fn();
  while (!ok(last)) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)}`);
    await sleep(50);
    last = await fn();
  }
  return last;
}

/** A private redis-server on a free loopback port, persistence off. */
export class Redis {
  private child: ChildProcess | undefined;
  port = 0;

  static available(): boolean {
    try {
      return spawnSync('redis-server', ['--version']).status === 0;
    } catch {
      return false;
    }
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'herald-js-redis-'));
    this.child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (await this.ping()) return;
      if (Date.now() > deadline) throw new Error('redis-server did not start');
      await sleep(50);
    }
  }

  private ping(): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = connect(this.port, '127.0.0.1');
      socket.once('error', () => resolve(false));
      socket.once('connect', () => socket.write('PING\r\n'));
      socket.once('data', (d) => {
        socket.destroy();
        resolve(d.toString().startsWith('+PONG'));
      });
    });
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
}
