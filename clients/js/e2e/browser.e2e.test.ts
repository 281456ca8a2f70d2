/**
 * Browser end-to-end: real headless Chromium (Debian's /usr/bin/chromium via playwright-core)
 * runs the bundled test page against a real `herald serve` over real sockets.
 */
import type { Server } from 'node:http';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildPage } from './build-page.js';
import { Hub, Proxy, freePort, launchChromium, startStatic, until } from './harness.js';

let browser: Browser;
let site: { url: string; server: Server; tokens: () => number };
let hub: Hub;
let context: BrowserContext | undefined;

beforeAll(async () => {
  const dir = await buildPage();
  site = await startStatic(dir);
  hub = new Hub(await freePort(), site.url);
  await hub.start();
  browser = await launchChromium();
});

afterEach(async () => {
  await context?.close();
  context = undefined;
});

afterAll(async () => {
  await browser?.close();
  await hub?.kill();
  await new Promise<void>((resolve) => (site ? site.server.close(() => resolve()) : resolve()));
});

async function open(query: Record<string, string>, ctx?: BrowserContext): Promise<Page> {
  if (!context) context = await browser.newContext();
  const page = await (ctx ?? context).newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.goto(`${site.url}/?${new URLSearchParams(query).toString()}`);
  await page.getByTestId('status').filter({ hasText: 'open' }).waitFor({ timeout: 10_000 });
  return page;
}

const ticks = (page: Page): Promise<number[]> => page.evaluate(() => (window as unknown as { __ticks: number[] }).__ticks);
const text = (page: Page, id: string): Promise<string> => page.getByTestId(id).innerText();
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('in real Chromium against a real hub', () => {
  it('events appear in the UI, the unread counter updates, progress moves', async () => {
    const page = await open({ hub: hub.url, sub: 'alice' });
    expect(await text(page, 'unread')).toBe('0');

    for (const title of ['Order shipped', 'Payment received', 'New message']) {
      await hub.publish({ user: 'alice', event: 'notification', data: { title } });
    }
    await until(() => text(page, 'unread'), (t) => t === '3', 'unread = 3');
    expect(await page.getByTestId('notification').allInnerTexts()).toEqual(['New message', 'Payment received', 'Order shipped']);
    // Another user's notification does not reach alice.
    await hub.publish({ user: 'bob', event: 'notification', data: { title: 'not for alice' } });
    await page.getByTestId('bell').click();
    await until(() => text(page, 'unread'), (t) => t === '0', 'unread = 0 after mark all read');
    await hub.publish({ user: 'alice', event: 'notification', data: { title: 'One more' } });
    await until(() => text(page, 'unread'), (t) => t === '1', 'unread = 1');

    // A broadcast tick and a topic the page subscribed to.
    await hub.publish({ event: 'tick', data: { n: 1 } });
    await hub.publish({ topic: 'public/feed', event: 'tick', data: { n: 2 } });
    await until(() => text(page, 'last-tick'), (t) => t === '2', 'last tick = 2');
    expect(await ticks(page)).toEqual([1, 2]);

    await hub.publish({ user: 'alice', event: 'job_progress', data: { jobId: 'import-1', percent: 40, stage: 'validating' } });
    await until(() => text(page, 'progress'), (t) => t === 'running 40% validating', 'progress 40%');
    await hub.publish({ user: 'alice', event: 'job_progress', data: { jobId: 'import-1', status: 'done', stage: 'imported' } });
    await until(() => text(page, 'progress'), (t) => t === 'done 100% imported', 'progress done');
  });

  it('resumes with no lost and no duplicated event when the stream drops mid-publishing', async () => {
    const proxy = new Proxy(hub.port);
    await proxy.start();
    try {
      const page = await open({ hub: `http://127.0.0.1:${proxy.port}`, sub: 'carol' });
      const total = 60;
      const publishing = (async () => {
        for (let n = 1; n <= total; n++) {
          await hub.publish({ user: 'carol', event: 'tick', data: { n } });
          if (n === 15 || n === 35) expect(proxy.cutAll()).toBeGreaterThan(0); // the network drops
          await new Promise((r) => setTimeout(r, 15));
        }
      })();
      await publishing;
      const got = await until(() => ticks(page), (t) => t.length >= total, `${total} ticks`, 15_000);
      expect(got).toEqual(range(1, total));
      const states = await page.evaluate(() => (window as unknown as { __states: string[] }).__states);
      expect(states.filter((s) => s === 'reconnecting').length).toBeGreaterThanOrEqual(2);
      const missed = await page.evaluate(() => (window as unknown as { __missed: unknown[] }).__missed);
      expect(missed).toEqual([]);
    } finally {
      await proxy.stop();
    }
  });

  it('survives the hub being killed and restarted: herald.missed → onMissed, then live events', async () => {
    const page = await open({ hub: hub.url, sub: 'dave' });
    for (let n = 1; n <= 5; n++) await hub.publish({ user: 'dave', event: 'tick', data: { n } });
    await until(() => ticks(page), (t) => t.length === 5, '5 ticks');
    const before = await page.evaluate(() => (window as unknown as { __client: { lastEventId: string } }).__client.lastEventId);
    expect(before).not.toBe('');

    await hub.kill();
    await until(() => text(page, 'status'), (s) => s === 'reconnecting', 'client notices');
    await hub.start(); // a new process: its in-memory history starts empty
    await until(() => text(page, 'status'), (s) => s === 'open', 'client reconnected', 15_000);

    // The hub cannot replay from an id of the previous process: the documented herald.missed.
    const missed = await until(
      () => page.evaluate(() => (window as unknown as { __missed: Array<{ reason: string; lastEventId: string }> }).__missed),
      (m) => m.length === 1,
      'onMissed',
    );
    expect(['unknown_id', 'history_expired']).toContain(missed[0]!.reason);
    expect(missed[0]!.lastEventId).toBe(before);
    console.log(`hub restart: herald.missed reason = ${missed[0]!.reason}`);

    for (let n = 6; n <= 10; n++) await hub.publish({ user: 'dave', event: 'tick', data: { n } });
    expect(await until(() => ticks(page), (t) => t.length === 10, '10 ticks')).toEqual(range(1, 10));
  });

  for (const election of ['locks', 'heartbeat'] as const) {
    it(`two tabs share one stream; the other tab takes over when the leader closes (${election} election)`, async () => {
      const ctx = await browser.newContext();
      try {
        // Counted per user: streams of earlier tests may still be closing, so a count of all
        // connections taken before this test is not a reliable base.
        const user = `erin-${election}`;
        const a = await open({ hub: hub.url, sub: `erin-${election}`, crossTab: `erin-${election}`, election }, ctx);
        const b = await open({ hub: hub.url, sub: `erin-${election}`, crossTab: `erin-${election}`, election }, ctx);
        await until(() => hub.streamsOf(user), (n) => n === 1, 'one stream for two tabs');
        const roles = [await text(a, 'leader'), await text(b, 'leader')].sort();
        expect(roles).toEqual(['follower', 'leader']);

        for (let n = 1; n <= 3; n++) await hub.publish({ user: `erin-${election}`, event: 'tick', data: { n } });
        await hub.publish({ user: `erin-${election}`, event: 'notification', data: { title: 'hello both' } });
        for (const page of [a, b]) {
          await until(() => ticks(page), (t) => t.length === 3, 'ticks in each tab');
          await until(() => text(page, 'unread'), (t) => t === '1', 'unread in each tab');
        }

        const [leader, follower] = (await text(a, 'leader')) === 'leader' ? [a, b] : [b, a];
        await leader.close();
        await until(() => text(follower, 'leader'), (t) => t === 'leader', 'follower takes over');
        await until(() => hub.streamsOf(user), (n) => n === 1, 'still one stream');
        for (let n = 4; n <= 6; n++) await hub.publish({ user: `erin-${election}`, event: 'tick', data: { n } });
        expect(await until(() => ticks(follower), (t) => t.length === 6, 'ticks after hand-over')).toEqual(range(1, 6));
      } finally {
        await ctx.close();
      }
    });
  }

  it('refreshes short-lived tokens ahead of expiry without losing an event', async () => {
    const before = site.tokens();
    // 4 s tokens: the hub closes a stream at expiry; the client must refresh (at about half-life)
    // and reconnect with Last-Event-ID before that, again and again.
    const page = await open({ hub: hub.url, sub: 'gina', ttl: '4' });
    const total = 80;
    for (let n = 1; n <= total; n++) {
      await hub.publish({ user: 'gina', event: 'tick', data: { n } });
      await new Promise((r) => setTimeout(r, 75));
    }
    expect(await until(() => ticks(page), (t) => t.length >= total, `${total} ticks`)).toEqual(range(1, total));
    expect(site.tokens() - before).toBeGreaterThanOrEqual(3);
    const states = await page.evaluate(() => (window as unknown as { __states: string[] }).__states);
    expect(states).not.toContain('closed');
  });

  it('falls back to native EventSource with access_token', async () => {
    const page = await open({ hub: hub.url, sub: 'frank', transport: 'eventsource' });
    await hub.publish({ user: 'frank', event: 'tick', data: { n: 1 } });
    await hub.publish({ user: 'frank', event: 'notification', data: { title: 'via EventSource' } });
    await until(() => ticks(page), (t) => t.length === 1, 'tick via EventSource');
    await until(() => text(page, 'unread'), (t) => t === '1', 'unread via EventSource');
  });
});
