/**
 * The notifications demo (examples/notifications-demo: its UI and its backend) in real headless
 * Chromium against a real hub, checked on what a user sees.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoBackend, type DemoBackend } from '../../../examples/notifications-demo/server.mjs';
import { buildDemo } from './build-demo.js';
import { Hub, PUBLISH_KEY, SECRET, freePort, until } from './harness.js';

/** A hub, the demo backend in front of it and the site serving the built demo. */
interface Demo {
  hub: Hub;
  backend: DemoBackend;
  site: Server;
  url: string;
}

async function startDemo(dir: string, play: boolean): Promise<Demo> {
  let backend: DemoBackend | undefined;
  const site = createServer((req, res) => backend?.handle(req, res));
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
  const hub = new Hub(await freePort(), url);
  await hub.start();
  backend = createDemoBackend({ hubUrl: hub.url, publishKey: PUBLISH_KEY, secret: SECRET, staticDir: dir, speed: 10 });
  if (play) backend.start();
  return { hub, backend, site, url };
}

async function stopDemo(demo: Demo | undefined): Promise<void> {
  if (!demo) return;
  demo.backend.stop();
  await demo.hub.kill();
  await new Promise<void>((resolve) => demo.site.close(() => resolve()));
}

let browser: Browser;
let dir: string;
let demo: Demo;

beforeAll(async () => {
  dir = await buildDemo();
  demo = await startDemo(dir, true);
  browser = await chromium.launch({ executablePath: process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-dev-shm-usage'] });
});

afterAll(async () => {
  await browser?.close();
  await stopDemo(demo);
});

async function open(page: Page, url: string, state: RegExp | string = /^open$/): Promise<void> {
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.goto(url);
  await page.getByTestId('connection').filter({ hasText: state }).waitFor({ timeout: 10_000 });
}

const badge = (page: Page): Promise<number> =>
  page.getByTestId('unread').count().then((n) => (n === 0 ? 0 : page.getByTestId('unread').innerText().then(Number)));

/** The import bar's filled share, in percent of the bar, as drawn. */
async function barPercent(page: Page): Promise<{ drawn: number; said: number }> {
  return page.evaluate(() => {
    const fill = document.querySelector('[data-testid="import-fill"]');
    const bar = fill?.parentElement;
    const said = Number(/(\d+)%/.exec(document.querySelector('[data-testid="import-status"]')?.textContent ?? '')?.[1]);
    if (!fill || !bar) return { drawn: NaN, said };
    return { drawn: (fill.getBoundingClientRect().width / bar.getBoundingClientRect().width) * 100, said };
  });
}

describe('notifications demo', () => {
  it('shows live order statuses, the feed, import progress, toasts and the unread counter', async () => {
    const ctx = await browser.newContext();
    try {
      const page = await ctx.newPage();
      await open(page, demo.url);

      // The bell is an inline SVG, not an emoji (which needs an emoji font to render).
      await page.getByTestId('bell-icon').waitFor();
      expect(await page.getByTestId('bell').evaluate((b) => b.querySelector('svg') !== null)).toBe(true);
      expect((await page.getByTestId('bell').innerText()).replace(/\d/g, '').trim()).toBe('');
      // Buttons are styled (not the browser's default grey).
      const startBg = await page.getByTestId('start-import').evaluate((b) => getComputedStyle(b).backgroundColor);
      expect(startBg).toBe('rgb(43, 108, 176)');

      // Orders: statuses change live (the backend advances one every 300 ms at speed 10).
      await until(() => page.getByTestId('status-A-1001').innerText(), (s) => s !== 'placed', 'order A-1001 moves');
      // Feed items arrive on the public topic.
      await until(() => page.getByTestId('feed-item').count(), (n) => n >= 2, 'feed items');
      // Notifications: toasts and the unread badge (the backend's count).
      await until(() => badge(page), (n) => n >= 1, 'unread badge');
      await page.getByTestId('toast').first().waitFor();
      // The story pauses while the badge is checked: at test speed a new notification may follow
      // the reset within milliseconds, and the 0 would never be seen (nor drawn).
      demo.backend.stop();
      await page.getByTestId('bell').click();
      await page.getByTestId('mark-all-read').click();
      await until(() => badge(page), (n) => n === 0, 'badge cleared');
      demo.backend.start();
      await page.getByTestId('bell').click();

      // The form on the page sends a notification: a toast with its title, and the badge counts it.
      await page.getByTestId('notify-title').fill('Coffee time');
      await page.getByTestId('notify-body').fill('Sent from the form');
      const before = await badge(page);
      await page.getByTestId('notify-send').click();
      await page.getByTestId('toast').filter({ hasText: 'Coffee time' }).waitFor();
      await until(() => badge(page), (n) => n > before, 'the badge counts the sent notification');

      // Import progress; the bar is drawn at the percentage written under it.
      await page.getByTestId('start-import').click();
      await until(() => page.getByTestId('import-status').innerText(), (t) => t.startsWith('running'), 'import running');
      for (let i = 0; i < 5; i++) {
        const { drawn, said } = await barPercent(page);
        if (Number.isNaN(said)) continue; // done meanwhile
        expect(Math.abs(drawn - said)).toBeLessThan(1.5);
      }

      // A tab opened later shares the first tab's stream (no new connection) and shows the running
      // import and the feed at once (the retained values, from the leader tab), and the same badge.
      const streams = await demo.hub.connections();
      const later = await ctx.newPage();
      await open(later, demo.url, 'open (shared)');
      await later.getByTestId('import').waitFor({ timeout: 10_000 });
      expect(await later.getByTestId('feed-item').count()).toBeGreaterThanOrEqual(1);
      await until(() => page.getByTestId('import-status').innerText(), (t) => t === 'done · 100% · finished', 'import done');
      await until(() => later.getByTestId('import-status').innerText(), (t) => t === 'done · 100% · finished', 'import done, later tab');
      await until(async () => [await badge(page), await badge(later)], ([a, b]) => a === b, 'same badge in both tabs');
      expect(await demo.hub.connections()).toBe(streams);

      // When the story loops, the reset is published: both tabs show every order placed again.
      for (const tab of [page, later]) {
        await until(() => tab.getByTestId('status-A-1004').innerText(), (s) => s === 'delivered', 'A-1004 delivered', 20_000);
        await until(() => tab.getByTestId('status-A-1004').innerText(), (s) => s === 'placed', 'A-1004 placed again', 20_000);
      }
    } finally {
      await ctx.close();
    }
  });

  it('a second tab shares the first tab’s stream; with ?solo it opens its own', async () => {
    const ctx = await browser.newContext();
    try {
      const page = await ctx.newPage();
      await open(page, demo.url);
      const base = await demo.hub.connections();
      const second = await ctx.newPage();
      await open(second, demo.url, 'open (shared)');
      // The latest headline at once, from the leader tab's state (not only once the next comes).
      await second.getByTestId('feed-item').first().waitFor({ timeout: 2000 });
      expect(await demo.hub.connections()).toBe(base);
      const solo = await ctx.newPage();
      await open(solo, `${demo.url}/?solo`);
      await solo.getByTestId('feed-item').first().waitFor({ timeout: 2000 });
      await until(() => demo.hub.connections(), (n) => n === base + 1, 'the solo tab’s own stream');
    } finally {
      await ctx.close();
    }
  });

  it('a page opened after a counter was published shows the value without any new event', async () => {
    // A quiet shop: nothing is published but what this test asks for.
    const quiet = await startDemo(dir, false);
    const ctx = await browser.newContext();
    try {
      for (const title of ['one', 'two', 'three']) {
        const res = await fetch(`${quiet.url}/api/notify`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ title }),
        });
        expect(await res.json()).toMatchObject({ ok: true });
      }
      const last = await quiet.hub.lastEventId();
      const page = await ctx.newPage();
      await open(page, quiet.url);
      await until(() => badge(page), (n) => n === 3, 'the retained unread count');
      // Nothing was published since: the value came with the stream's opening.
      expect(await quiet.hub.lastEventId()).toBe(last);
      // It is a counter, not three notifications replayed: no toast, an empty inbox.
      expect(await page.getByTestId('toast').count()).toBe(0);
      // A reload is a fresh stream again: the same value.
      await page.reload();
      await page.getByTestId('connection').filter({ hasText: /^open$/ }).waitFor({ timeout: 10_000 });
      await until(() => badge(page), (n) => n === 3, 'the retained unread count after a reload');
      expect(await quiet.hub.lastEventId()).toBe(last);
      // A second tab shares that stream: nothing new is published, the retained values went to the
      // first tab's stream, and it shows the count at once all the same (the leader's state), with
      // no toast.
      const base = await quiet.hub.connections();
      const second = await ctx.newPage();
      await open(second, quiet.url, 'open (shared)');
      await until(() => badge(second), (n) => n === 3, 'the count in a tab that shares the stream', 2000);
      expect(await second.getByTestId('toast').count()).toBe(0);
      expect(await quiet.hub.connections()).toBeLessThanOrEqual(base);
      // And a tab with its own stream gets it from the hub.
      const solo = await ctx.newPage();
      await open(solo, `${quiet.url}/?solo`);
      await until(() => badge(solo), (n) => n === 3, 'the retained count in a ?solo tab');
      expect(await quiet.hub.lastEventId()).toBe(last);
    } finally {
      await ctx.close();
      await stopDemo(quiet);
    }
  });
});
