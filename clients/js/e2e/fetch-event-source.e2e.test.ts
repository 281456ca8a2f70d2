/**
 * `@microsoft/fetch-event-source` (the real npm package, bundled into a page) in real headless
 * Chromium against a real `herald serve --heartbeat 1`: the library calls `onmessage` for every
 * blank line, so with Herald it must fire once per stream opening for the id-only position block
 * (data empty, id set), once per event, and never for heartbeats or the opening comment
 * (docs/API.md, "Parsers that fire on every blank line"). Older hubs sent heartbeats as `:\n\n`,
 * one empty `onmessage` each.
 */
import type { Server } from 'node:http';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildFetchEventSourcePage } from './build-page.js';
import type { FesMessage, FesOpen, FesState, FesWindow } from './fes-page.js';
import { Hub, Proxy, freePort, sleep, startStatic, subscriberToken, until } from './harness.js';

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const USER = 'fes-user';

let browser: Browser;
let site: { url: string; server: Server };
let hub: Hub;
let proxy: Proxy;

beforeAll(async () => {
  site = await startStatic(await buildFetchEventSourcePage());
  hub = new Hub(await freePort(), site.url, ['--heartbeat', '1']);
  await hub.start();
  proxy = new Proxy(hub.port); // to cut the first stream like a network drop
  await proxy.start();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
});

afterAll(async () => {
  await browser?.close();
  await proxy?.stop();
  await hub?.kill();
  await new Promise<void>((resolve) => (site ? site.server.close(() => resolve()) : resolve()));
});

const state = (page: Page): Promise<FesState> => page.evaluate(() => (window as unknown as FesWindow).__fes.state);
const openStream = (page: Page, options: FesOpen): Promise<number> =>
  page.evaluate((o) => (window as unknown as FesWindow).__fes.open(o), options);
/** Heartbeats in a response body as the library received it: `:` alone on a line. */
const heartbeats = (raw: string | undefined): number => (raw ?? '').split('\n').filter((line) => line === ':').length;
const of = (s: FesState, request: number): FesMessage[] => s.messages.filter((m) => m.request === request);

async function publishTick(n: number): Promise<string> {
  const { id } = await hub.publish({ user: USER, event: 'tick', data: { n } });
  if (!id) throw new Error('publish returned no id');
  return id;
}

/** The message for tick `n`, read from response `request`. */
const tick = (request: number, n: number, id: string): FesMessage => ({ request, event: 'tick', id, data: JSON.stringify({ n }) });

function report(what: string, messages: FesMessage[], raw: string | undefined): void {
  const empty = messages.filter((m) => m.data === '');
  console.log(
    `fetch-event-source, ${what}: ${messages.length} onmessage calls, ${empty.length} with empty data ` +
      `(${empty.filter((m) => m.id !== '').length} with an id), ${heartbeats(raw)} heartbeats in the raw stream`,
  );
}

/** The one empty-data message of a response: the id-only position block, `id` set. */
function positionBlock(messages: FesMessage[]): FesMessage {
  const empty = messages.filter((m) => m.data === '');
  expect(empty, 'exactly one empty-data onmessage call').toHaveLength(1);
  const block = empty[0]!;
  expect(block.id, 'the id-only block carries an id').not.toBe('');
  expect(block.event).toBe('');
  return block;
}

describe('@microsoft/fetch-event-source in real Chromium against a real hub', () => {
  it('onmessage fires for the events and one id-only block per opening, never for heartbeats', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      page.on('pageerror', (e) => console.error('page error:', e.message));
      await page.goto(site.url);
      await page.waitForFunction(() => '__fes' in window);
      const token = subscriberToken(USER);

      // 1. A fresh stream (through the proxy), idle for at least 3 heartbeats, then 3 events.
      const first = await openStream(page, { url: `http://127.0.0.1:${proxy.port}/events`, token });
      await until(() => state(page), (s) => (s.raw[0] ?? '') !== '', 'the opening comment');
      // Nothing is supposed to happen in this period, so it is waited out (bounded), not awaited.
      await sleep(3_500);
      await until(() => state(page), (s) => heartbeats(s.raw[0]) >= 3, 'three heartbeats in the raw stream', 5_000);
      const ids: string[] = [];
      for (let n = 1; n <= 3; n++) ids.push(await publishTick(n));
      // The stream is in order: once tick 3 is handed over, every heartbeat before it was parsed.
      let s = await until(() => state(page), (st) => of(st, 0).some((m) => m.id === ids[2]), 'tick 3');
      report('fresh stream', of(s, 0), s.raw[0]);
      expect(s.requests).toEqual([{ stream: first, lastEventId: null, authorized: true }]);
      expect(s.errors).toEqual([]);
      expect(heartbeats(s.raw[0])).toBeGreaterThanOrEqual(3);
      const opening = positionBlock(of(s, 0));
      expect(of(s, 0)).toEqual([opening, tick(0, 1, ids[0]!), tick(0, 2, ids[1]!), tick(0, 3, ids[2]!)]);

      // 2. The network drops; the library retries by itself with `last-event-id` = tick 3's id
      //    (held until ticks 4 and 5 are published, so they are replayed): ticks 4, 5, then one
      //    id-only block; 2 more heartbeats trigger nothing (tick 6, live, closes the period).
      expect(proxy.cutAll()).toBeGreaterThan(0);
      await until(() => state(page), (st) => st.errors.length === 1 && st.requests.length === 2, 'the library retries');
      for (let n = 4; n <= 5; n++) ids.push(await publishTick(n));
      await page.evaluate(() => (window as unknown as FesWindow).__fes.releaseRetries());
      await until(() => state(page), (st) => of(st, 1).some((m) => m.id === ids[4]), 'ticks replayed');
      await until(() => state(page), (st) => heartbeats(st.raw[1]) >= 2, 'two heartbeats after the replay', 5_000);
      ids.push(await publishTick(6));
      s = await until(() => state(page), (st) => of(st, 1).some((m) => m.id === ids[5]), 'tick 6');
      report('retry with last-event-id', of(s, 1), s.raw[1]);
      expect(s.requests[1]).toEqual({ stream: first, lastEventId: ids[2], authorized: true });
      const resumed = positionBlock(of(s, 1));
      expect(of(s, 1)).toEqual([tick(1, 4, ids[3]!), tick(1, 5, ids[4]!), resumed, tick(1, 6, ids[5]!)]);

      // 3. A second stream opened with `Last-Event-ID: <tick 1's id>`: ticks 2..6 replayed, then
      //    one id-only block; a heartbeat after it triggers nothing (tick 7 closes the period).
      await page.evaluate((n) => (window as unknown as FesWindow).__fes.close(n), first);
      const second = await openStream(page, { url: `${hub.url}/events`, token, lastEventId: ids[0]! });
      s = await until(() => state(page), (st) => st.requests.some((r) => r.stream === second), 'the second stream');
      const req = s.requests.findIndex((r) => r.stream === second);
      await until(() => state(page), (st) => heartbeats(st.raw[req]) >= 1, 'a heartbeat on the second stream', 5_000);
      ids.push(await publishTick(7));
      s = await until(() => state(page), (st) => of(st, req).some((m) => m.id === ids[6]), 'tick 7');
      report('Last-Event-ID header', of(s, req), s.raw[req]);
      expect(s.requests[req]).toEqual({ stream: second, lastEventId: ids[0], authorized: true });
      const replayed = positionBlock(of(s, req));
      expect(of(s, req)).toEqual([
        ...[2, 3, 4, 5, 6].map((n) => tick(req, n, ids[n - 1]!)),
        replayed,
        tick(req, 7, ids[6]!),
      ]);
      expect(s.requests).toHaveLength(3); // no other retry
    } finally {
      await context.close();
    }
  }, 25_000);
});
