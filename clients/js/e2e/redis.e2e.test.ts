/**
 * Redis mode: the hub node a browser streams from is killed mid-stream while the cluster goes on
 * publishing through another node; when the node is back, the client resumes from Redis's shared
 * history with no lost event, no duplicate and no `herald.missed`.
 */
import { spawnSync } from 'node:child_process';
import type { Server } from 'node:http';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPage } from './build-page.js';
import { HERALD, Hub, Redis, freePort, startStatic, until } from './harness.js';

const redisMode =
  Redis.available() && spawnSync(HERALD, ['serve', '--help'], { encoding: 'utf8' }).stdout.includes('--redis-prefix');

let browser: Browser;
let site: { url: string; server: Server };
let redis: Redis;
let nodeA: Hub;
let nodeB: Hub;

describe.skipIf(!redisMode)('Redis mode in real Chromium', () => {
  beforeAll(async () => {
    site = await startStatic(await buildPage());
    redis = new Redis();
    await redis.start();
    nodeA = new Hub(await freePort(), site.url, ['--redis', redis.url]);
    nodeB = new Hub(await freePort(), site.url, ['--redis', redis.url]);
    await nodeA.start();
    await nodeB.start();
    browser = await chromium.launch({
      executablePath: process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-dev-shm-usage'],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await nodeA?.kill();
    await nodeB?.kill();
    await redis?.stop();
    await new Promise<void>((resolve) => (site ? site.server.close(() => resolve()) : resolve()));
  });

  const ticks = (page: Page): Promise<number[]> => page.evaluate(() => (window as unknown as { __ticks: number[] }).__ticks);

  it('the node is killed and restarted mid-stream: the client resumes with no lost event', async () => {
    const page = await browser.newPage();
    await page.goto(`${site.url}/?hub=${encodeURIComponent(nodeA.url)}&sub=rita`);
    await page.getByTestId('status').filter({ hasText: 'open' }).waitFor({ timeout: 10_000 });

    for (let n = 1; n <= 5; n++) await nodeA.publish({ user: 'rita', event: 'tick', data: { n } });
    await until(() => ticks(page), (t) => t.length === 5, 'ticks 1-5 through node A');

    await nodeA.kill();
    await until(() => page.getByTestId('status').innerText(), (s) => s === 'reconnecting', 'client notices');
    // The cluster goes on: node B takes the publishes while A is down.
    for (let n = 6; n <= 10; n++) await nodeB.publish({ user: 'rita', event: 'tick', data: { n } });
    await nodeA.start();
    await until(() => page.getByTestId('status').innerText(), (s) => s === 'open', 'client back on node A', 15_000);
    for (let n = 11; n <= 15; n++) await nodeA.publish({ user: 'rita', event: 'tick', data: { n } });

    const got = await until(() => ticks(page), (t) => t.length >= 15, '15 ticks', 15_000);
    expect(got).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    const missed = await page.evaluate(() => (window as unknown as { __missed: unknown[] }).__missed);
    expect(missed).toEqual([]);
  });
});
