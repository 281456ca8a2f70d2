/**
 * The notifications demo (examples/notifications-demo: its UI and its backend) in real headless
 * Chromium against a real hub.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoBackend, type DemoBackend } from '../../../examples/notifications-demo/server.mjs';
import { buildDemo } from './build-demo.js';
import { Hub, PUBLISH_KEY, SECRET, freePort, until } from './harness.js';

let browser: Browser;
let hub: Hub;
let backend: DemoBackend;
let site: Server;
let siteUrl: string;

beforeAll(async () => {
  const dir = await buildDemo();
  site = createServer((req, res) => backend.handle(req, res));
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
  siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
  hub = new Hub(await freePort(), siteUrl);
  await hub.start();
  backend = createDemoBackend({ hubUrl: hub.url, publishKey: PUBLISH_KEY, secret: SECRET, staticDir: dir, speed: 10 });
  backend.start();
  browser = await chromium.launch({ executablePath: process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-dev-shm-usage'] });
});

afterAll(async () => {
  backend?.stop();
  await browser?.close();
  await hub?.kill();
  await new Promise<void>((resolve) => (site ? site.close(() => resolve()) : resolve()));
});

describe('notifications demo', () => {
  it('shows live order statuses, the feed, import progress, toasts and the unread counter; two tabs share a stream', async () => {
    const ctx = await browser.newContext();
    try {
      const page = await ctx.newPage();
      page.on('pageerror', (e) => console.error('page error:', e.message));
      await page.goto(siteUrl);
      await page.getByTestId('connection').filter({ hasText: /^open$/ }).waitFor({ timeout: 10_000 });

      // Orders: statuses change live (the backend advances one every 300 ms at speed 10).
      await until(() => page.getByTestId('status-A-1001').innerText(), (s) => s !== 'placed', 'order A-1001 moves');
      // Feed items arrive on the public topic.
      await until(() => page.getByTestId('feed-item').count(), (n) => n >= 2, 'feed items');
      // Notifications: toasts and the unread badge.
      await until(() => page.getByTestId('unread').innerText().catch(() => '0'), (t) => Number(t) >= 1, 'unread badge');
      await page.getByTestId('toast').first().waitFor();
      await page.getByTestId('bell').click();
      await page.getByTestId('mark-all-read').click();
      await until(() => page.getByTestId('unread').count(), (n) => n === 0, 'badge cleared');

      // Import progress.
      await page.getByTestId('start-import').click();
      await until(() => page.getByTestId('import-status').innerText(), (t) => t.startsWith('running'), 'import running');
      await until(() => page.getByTestId('import-status').innerText(), (t) => t === 'done · 100% · finished', 'import done');

      // A second tab shares the first tab's stream.
      const base = await hub.connections();
      const second = await ctx.newPage();
      await second.goto(siteUrl);
      await second.getByTestId('connection').filter({ hasText: 'open (shared)' }).waitFor({ timeout: 10_000 });
      await until(() => second.getByTestId('feed-item').count(), (n) => n >= 1, 'feed in the second tab');
      expect(await hub.connections()).toBe(base);
    } finally {
      await ctx.close();
    }
  });
});
