/**
 * The session hook in real headless Chromium: the real example app (examples/express-session:
 * Express + express-session, `node server.mjs`) on a free port, and a real `herald serve
 * --auth-url <app>/herald/auth --cors-origin <app>`. The page signs in through the app's form,
 * so all it holds is the app's session cookie: no token, no JWT anywhere in the page or the app.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page, type Request } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Hub, PUBLISH_KEY, freePort, until } from './harness.js';

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const EXAMPLE = fileURLToPath(new URL('../../../examples/express-session/', import.meta.url));

let browser: Browser;
let hub: Hub;
let app: ChildProcess | undefined;
let appLog = '';
let appUrl: string;
const contexts: BrowserContext[] = [];

/** Starts `node server.mjs` in the example, as its README does, and waits for it to listen. */
async function startApp(port: number, hubUrl: string): Promise<void> {
  if (!existsSync(`${EXAMPLE}node_modules/express-session`)) {
    throw new Error(`examples/express-session has no node_modules: cd ${EXAMPLE} && npm ci`);
  }
  const child = spawn(process.execPath, ['server.mjs'], {
    cwd: EXAMPLE,
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: String(port),
      HERALD_URL: hubUrl,
      HERALD_PUBLISH_KEY: PUBLISH_KEY,
      SESSION_SECRET: 'e2e-session-secret',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  app = child;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the example app did not start: ${appLog}`)), 15_000);
    child.stdout?.on('data', (d: Buffer) => {
      appLog += d.toString();
      if (appLog.includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr?.on('data', (d: Buffer) => (appLog += d.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the example app exited (${code}): ${appLog}`));
    });
  });
}

beforeAll(async () => {
  const appPort = await freePort();
  appUrl = `http://127.0.0.1:${appPort}`;
  hub = new Hub(await freePort(), appUrl, ['--auth-url', `${appUrl}/herald/auth`]);
  await startApp(appPort, hub.url);
  await hub.start();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
});

afterEach(async () => {
  for (const ctx of contexts.splice(0)) await ctx.close();
});

afterAll(async () => {
  await browser?.close();
  await hub?.kill();
  if (app && app.exitCode === null) {
    const exited = new Promise((resolve) => app?.once('exit', resolve));
    app.kill('SIGTERM');
    await exited;
  }
});

/** A fresh browser profile (its own cookie jar) on the app's page; `/events` requests recorded. */
async function visit(): Promise<{ page: Page; ctx: BrowserContext; streams: Request[]; statuses: number[] }> {
  const ctx = await browser.newContext();
  contexts.push(ctx);
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  const streams: Request[] = [];
  const statuses: number[] = [];
  const isStream = (r: Request): boolean => new URL(r.url()).pathname === '/events' && r.method() === 'GET';
  page.on('request', (r) => {
    if (isStream(r)) streams.push(r);
  });
  page.on('response', (r) => {
    if (isStream(r.request())) statuses.push(r.status());
  });
  await page.goto(appUrl);
  return { page, ctx, streams, statuses };
}

async function signIn(page: Page, user: string): Promise<void> {
  await page.getByTestId('username').fill(user);
  await page.getByTestId('login').click(); // POST /login → session cookie → redirect to /
  await page.getByTestId('user').filter({ hasText: user }).waitFor({ timeout: 10_000 });
  await page.getByTestId('status').filter({ hasText: /^open$/ }).waitFor({ timeout: 10_000 });
}

const items = (page: Page, list: 'notifications' | 'news'): Promise<string[]> =>
  page.getByTestId(`${list}-item`).allInnerTexts();

describe('the session hook in Chromium (examples/express-session)', () => {
  it('a page signed in by cookie only gets its user events and topic events through the hub', async () => {
    const alice = await visit();
    await signIn(alice.page, 'alice');

    // The stream request carried the session cookie and no token of any kind.
    const request = alice.streams.at(-1);
    expect(request).toBeDefined();
    const headers = await request!.allHeaders();
    expect(headers['authorization']).toBeUndefined();
    expect(headers['cookie']).toMatch(/(^|;\s*)sid=/);
    expect(headers['cookie']).not.toMatch(/herald_token/);
    expect(new URL(request!.url()).searchParams.has('access_token')).toBe(false);
    expect((await alice.ctx.cookies()).map((c) => c.name)).toEqual(['sid']);
    // The hub knows the stream as alice's: the user came from the app's hook.
    await until(() => hub.streamsOf('alice'), (n) => n === 1, "alice's stream on the hub");

    const bob = await visit();
    await signIn(bob.page, 'bob');
    await until(() => hub.streamsOf('bob'), (n) => n === 1, "bob's stream on the hub");

    // A user event, published by the app's backend with @herald/server and the publish key.
    await alice.page.getByTestId('notify-me').click();
    await alice.page.getByTestId('notifications-item').filter({ hasText: 'Hello alice' }).waitFor();

    // A topic event (the hook allowed `news`, the page subscribed to it): both users get it.
    await alice.page.getByTestId('headline').fill('Lyon 1 – 0 Nantes');
    await alice.page.getByTestId('post-news').click();
    await alice.page.getByTestId('news-item').filter({ hasText: 'Lyon 1 – 0 Nantes — alice' }).waitFor();
    await bob.page.getByTestId('news-item').filter({ hasText: 'Lyon 1 – 0 Nantes — alice' }).waitFor();

    // Each user's events reach that user only.
    await bob.page.getByTestId('notify-me').click();
    await bob.page.getByTestId('notifications-item').filter({ hasText: 'Hello bob' }).waitFor();
    await hub.publish({ user: 'alice', event: 'notification', data: { title: 'straight from the hub' } });
    await alice.page.getByTestId('notifications-item').filter({ hasText: 'straight from the hub' }).waitFor();
    expect(await items(alice.page, 'notifications')).toEqual(['straight from the hub', 'Hello alice']);
    expect(await items(bob.page, 'notifications')).toEqual(['Hello bob']);
    expect(await items(bob.page, 'news')).toEqual(['Lyon 1 – 0 Nantes — alice']);
  });

  it('the native EventSource transport sends the cookie too (withCredentials: true)', async () => {
    const dave = await visit();
    await signIn(dave.page, 'dave');
    await until(() => hub.streamsOf('dave'), (n) => n === 1, "dave's first stream");
    // A second client in the same page, on the browser's own EventSource (the page's import map
    // resolves '@herald/client'; a string, so the test runner leaves the dynamic import alone).
    await dave.page.evaluate(`(async () => {
      const { createClient } = await import('@herald/client');
      const client = createClient({
        url: ${JSON.stringify(`${hub.url}/events`)},
        topics: ['news'],
        withCredentials: true,
        transport: 'eventsource',
      });
      window.esGot = [];
      client.on('notification', (n) => window.esGot.push(n.title));
      client.on('news', (n) => window.esGot.push(n.headline));
      await new Promise((resolve, reject) => client.onStateChange((s) => {
        if (s.state === 'open') resolve();
        if (s.state === 'closed') reject(new Error(String(s.error && s.error.message)));
      }));
    })()`);
    await until(() => hub.streamsOf('dave'), (n) => n === 2, "dave's EventSource stream");
    const request = dave.streams.at(-1)!;
    expect(request.resourceType()).toBe('eventsource');
    expect((await request.allHeaders())['cookie']).toMatch(/(^|;\s*)sid=/);
    expect(new URL(request.url()).searchParams.has('access_token')).toBe(false);

    await hub.publish({ user: 'dave', event: 'notification', data: { title: 'to dave' } });
    await hub.publish({ topic: 'news', event: 'news', data: { headline: 'for everyone', by: 'hub' } });
    const got = (): Promise<string[]> => dave.page.evaluate(() => (window as unknown as { esGot: string[] }).esGot);
    await until(got, (g) => g.length === 2, 'both events on the EventSource client');
    expect(await got()).toEqual(['to dave', 'for everyone']);
  });

  it('a page that is not signed in is refused: the hook\'s 401 reaches the client, which stops', async () => {
    const { page, streams, statuses } = await visit();
    await page.getByTestId('signed-out').waitFor();
    await page.getByTestId('status').filter({ hasText: /^closed$/ }).waitFor({ timeout: 10_000 });
    await until(() => statuses, (s) => s.length > 0, 'the answer to the stream request');
    expect(statuses).toEqual([401]);
    const error = await page.getByTestId('error').innerText();
    expect(error).toMatch(/^unauthorized \(401\): /);
    expect(error).toContain('without a token');
    const snapshot = await page.evaluate(() => {
      const s = (window as unknown as { heraldClient: { getSnapshot(): { state: string; error?: { status?: number; fatal: boolean } } } })
        .heraldClient.getSnapshot();
      return { state: s.state, status: s.error?.status, fatal: s.error?.fatal };
    });
    expect(snapshot).toEqual({ state: 'closed', status: 401, fatal: true });
    // Refused for good: one request, no retry loop against the hook.
    expect(streams).toHaveLength(1);
    expect((await streams[0]!.allHeaders())['authorization']).toBeUndefined();

    // Signing in through the app is all it takes: the reloaded page's stream opens.
    await page.getByTestId('username').fill('carol');
    await page.getByTestId('login').click();
    await page.getByTestId('status').filter({ hasText: /^open$/ }).waitFor({ timeout: 10_000 });
    await until(() => hub.streamsOf('carol'), (n) => n === 1, "carol's stream on the hub");
  });
});
