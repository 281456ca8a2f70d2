#!/usr/bin/env node
// The notifications demo's backend, and the one command that starts everything:
//
//   node server.mjs            (after `npm ci && npm run build`; `npm start` does all three)
//
// It starts `herald serve` (target/release/herald, or $HERALD_BIN) on a free port with dev
// secrets, serves the built app from dist/, mints subscriber tokens at /api/token (your login
// service's job), and plays a small shop: orders move through their statuses, imports report
// progress, a public feed ticks, and notifications go to the user — all published to the hub
// with the publish key, exactly as a real backend would.
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
export const USER = 'demo-user';
const STATUSES = ['placed', 'paid', 'shipped', 'delivered'];
const HEADLINES = [
  'Kickoff: Lyon 0 – 0 Nantes',
  'Markets open higher',
  'Goal! Lyon 1 – 0 Nantes',
  'New release of Herald is out',
  'Rain expected this afternoon',
  'Half-time: Lyon 1 – 0 Nantes',
  'Tech stocks rally',
  'Goal! Lyon 1 – 1 Nantes',
];

function signJwt(secret, claims) {
  const enc = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const head = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc(claims)}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}

/**
 * The demo backend: an http request handler and the simulation.
 * @param {{ hubUrl: string, publishKey: string, secret: string, staticDir: string, speed?: number }} options
 */
export function createDemoBackend({ hubUrl, publishKey, secret, staticDir, speed = 1 }) {
  const orders = [
    { id: 'A-1001', item: 'Espresso machine', status: 'placed' },
    { id: 'A-1002', item: 'Coffee grinder', status: 'placed' },
    { id: 'A-1003', item: 'Milk jug', status: 'paid' },
    { id: 'A-1004', item: 'Tamper', status: 'placed' },
  ];
  const timers = new Set();
  let jobs = 0;
  let feedIndex = 0;
  // The user's unread notifications, kept by the backend (your database's job): published as the
  // retained `unread` event, so a page that opens shows the badge at once.
  let unread = 0;

  // One publish at a time, in order: the counter's 3 never overtakes its 2.
  let queue = Promise.resolve();
  function publish(body) {
    queue = queue.then(() => send(body));
    return queue;
  }

  async function send(body) {
    try {
      const res = await fetch(`${hubUrl}/publish`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${publishKey}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (!res.ok) console.error('publish failed', res.status, await res.text());
    } catch (error) {
      console.error('publish failed:', error.message);
    }
  }

  function every(ms, fn) {
    const timer = setInterval(fn, ms / speed);
    timers.add(timer);
  }

  /** A notification for the user, and the new unread count (retained: the badge of a page that opens). */
  function notify(title, body) {
    unread++;
    return publish([
      { user: USER, event: 'notification', data: body ? { title, body } : { title } },
      { user: USER, event: 'unread', data: { count: unread }, retain: true },
    ]);
  }

  /** `one`: a single notification was read; otherwise all of them. */
  function markRead(one) {
    unread = one ? Math.max(0, unread - 1) : 0;
    return publish({ user: USER, event: 'unread', data: { count: 0 }, retain: true });
  }

  function advanceOrder() {
    const order = orders.find((o) => o.status !== 'delivered');
    if (!order) {
      // Start the story again, and say so: every open page shows the reset.
      for (const o of orders) o.status = 'placed';
      void publish(orders.map((o) => ({ user: USER, event: 'order_update', data: { orderId: o.id, status: o.status } })));
      return;
    }
    order.status = STATUSES[STATUSES.indexOf(order.status) + 1];
    void publish({ user: USER, event: 'order_update', data: { orderId: order.id, status: order.status } });
    if (order.status === 'shipped' || order.status === 'delivered') {
      void notify(`Order ${order.id} ${order.status}`, `${order.item} is ${order.status}.`);
    }
  }

  function feed() {
    const text = HEADLINES[feedIndex++ % HEADLINES.length];
    // Retained: a page that opens shows the latest headline at once, not an empty feed.
    void publish({ topic: 'public/feed', event: 'feed_item', data: { id: feedIndex, text, at: Date.now() }, retain: true });
  }

  function startImport() {
    const jobId = `import-${++jobs}`;
    const stages = [
      ['uploading', 0, 30],
      ['validating rows', 30, 70],
      ['importing', 70, 100],
    ];
    let step = 0;
    const total = 20;
    const timer = setInterval(() => {
      step++;
      const percent = Math.round((step / total) * 100);
      const stage = stages.find(([, from, to]) => percent >= from && percent <= to) ?? stages[2];
      if (step >= total) {
        clearInterval(timer);
        timers.delete(timer);
        void publish({
          user: USER,
          event: 'job_progress',
          data: { jobId, status: 'done', stage: 'finished', message: '3000 rows imported' },
          retain: true,
        });
        void notify('Import finished', `${jobId}: 3000 rows imported.`);
      } else {
        // Retained: a tab opened mid-way shows the running import where it is.
        void publish({
          user: USER,
          event: 'job_progress',
          data: { jobId, percent, stage: stage[0], status: 'running', message: `${step * 150} of 3000 rows` },
          retain: true,
        });
      }
    }, 250 / speed);
    timers.add(timer);
    return jobId;
  }

  function json(res, status, body) {
    res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
    res.end(JSON.stringify(body));
  }

  /** The request's JSON body (at most 4 KiB), or undefined. */
  function readJson(req) {
    return new Promise((resolve) => {
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (chunk) => {
        text += chunk;
        if (text.length > 4096) req.destroy();
      });
      req.on('end', () => {
        try {
          resolve(text ? JSON.parse(text) : {});
        } catch {
          resolve(undefined);
        }
      });
      req.on('error', () => resolve(undefined));
    });
  }

  async function sendNotification(req, res) {
    const body = await readJson(req);
    const field = (name, fallback) => {
      const value = body?.[name];
      return typeof value === 'string' && value.trim() ? value.trim().slice(0, 200) : fallback;
    };
    if (body === undefined || (body.title !== undefined && typeof body.title !== 'string') || (body.body !== undefined && typeof body.body !== 'string')) {
      return json(res, 400, { error: 'bad_request', message: 'expected {"title"?: string, "body"?: string}' });
    }
    const title = field('title', 'Hello from the backend');
    const text = field('body', new Date().toLocaleTimeString());
    await notify(title, text);
    return json(res, 200, { ok: true, unread });
  }

  function handle(req, res) {
    const url = new URL(req.url ?? '/', 'http://demo');
    if (url.pathname === '/api/config') return json(res, 200, { hub: `${hubUrl}/events`, user: USER });
    if (url.pathname === '/api/token') {
      // A real app checks its session here. Short-lived on purpose: the client refreshes it.
      return json(res, 200, { token: signJwt(secret, { sub: USER, exp: Math.floor(Date.now() / 1000) + 600 }) });
    }
    if (url.pathname === '/api/orders') return json(res, 200, orders);
    if (url.pathname === '/api/import' && req.method === 'POST') return json(res, 200, { jobId: startImport() });
    if (url.pathname === '/api/notify' && req.method === 'POST') return void sendNotification(req, res);
    if (url.pathname === '/api/read' && req.method === 'POST') {
      return void readJson(req)
        .then((body) => markRead(body?.one === true))
        .then(() => json(res, 200, { ok: true, unread }));
    }
    const file = url.pathname === '/' ? 'index.html' : url.pathname.slice(1);
    const path = join(staticDir, file);
    if (file.includes('..') || !existsSync(path)) {
      res.writeHead(404).end('not found');
      return;
    }
    const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };
    res.writeHead(200, { 'Content-Type': types[extname(file)] ?? 'application/octet-stream' });
    res.end(readFileSync(path));
  }

  return {
    handle,
    orders,
    start() {
      every(3000, advanceOrder);
      every(2000, feed);
    },
    stop() {
      for (const t of timers) clearInterval(t);
      timers.clear();
    },
  };
}

async function freePort() {
  const server = createTcpServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function main() {
  const repo = join(HERE, '..', '..');
  const herald = process.env.HERALD_BIN ?? join(repo, 'target', 'release', 'herald');
  if (!existsSync(herald)) {
    console.error(`${herald} not found: run \`cargo build --release -p herald\` at the repository root`);
    process.exit(1);
  }
  const staticDir = join(HERE, 'dist');
  if (!existsSync(join(staticDir, 'index.html'))) {
    console.error('dist/ not built: run `npm run build` (or `npm start`, which builds first)');
    process.exit(1);
  }
  const port = Number(process.env.PORT ?? 5173);
  const hubPort = Number(process.env.HUB_PORT ?? 0) || (await freePort());
  const secret = randomBytes(24).toString('hex');
  const publishKey = randomBytes(24).toString('hex');
  const origin = `http://127.0.0.1:${port}`;
  const hub = spawn(
    herald,
    ['serve', '--listen', `127.0.0.1:${hubPort}`, '--jwt-secret', secret, '--publish-key', publishKey,
      '--cors-origin', origin, '--cors-origin', `http://localhost:${port}`],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  const hubUrl = `http://127.0.0.1:${hubPort}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${hubUrl}/healthz`)).ok) break;
    } catch {
      // starting
    }
    if (i > 200) throw new Error('herald did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  const backend = createDemoBackend({ hubUrl, publishKey, secret, staticDir });
  const server = createServer(backend.handle);
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  backend.start();
  console.log(`\n  Herald hub:          ${hubUrl}`);
  console.log(`  Notifications demo:  ${origin}   (open it in two tabs)\n`);
  const stop = () => {
    backend.stop();
    hub.kill('SIGTERM');
    server.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  hub.on('exit', (code) => {
    console.error(`herald exited (${code})`);
    process.exit(1);
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
