/**
 * Cross-tab hand-over under load in real Chromium (Web Locks, BroadcastChannel) against a real
 * hub: tabs of one origin share one stream, the test publishes continuously and closes the
 * leader tab right after bursts, again and again; every tab must dispatch every event once, in
 * the hub's order.
 *
 * Each page handles channel messages a little late (`bcDelay`: a random latency per tab, through
 * the `crossTab.BroadcastChannel` option), as a tab busy rendering does: how often the old
 * leader's relays are still queued when the lock passes then no longer depends on how loaded
 * the machine running the test happens to be.
 */
import type { Server } from 'node:http';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPage } from './build-page.js';
import { Hub, freePort, launchChromium, sleep, startStatic, until } from './harness.js';

let browser: Browser;
let site: { url: string; server: Server; tokens: () => number };
let hub: Hub;

beforeAll(async () => {
  const dir = await buildPage();
  site = await startStatic(dir);
  hub = new Hub(await freePort(), site.url);
  await hub.start();
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await hub?.kill();
  await new Promise<void>((resolve) => (site ? site.server.close(() => resolve()) : resolve()));
});

interface TestWindow {
  __tickIds: string[];
  __missed: unknown[];
  __client: { getSnapshot(): { isLeader: boolean } };
}

const tickIds = (page: Page): Promise<string[]> => page.evaluate(() => (window as unknown as TestWindow).__tickIds);
const missed = (page: Page): Promise<unknown[]> => page.evaluate(() => (window as unknown as TestWindow).__missed);
const isLeader = (page: Page): Promise<boolean> =>
  page.evaluate(() => (window as unknown as TestWindow).__client.getSnapshot().isLeader);

async function openTab(ctx: BrowserContext, user: string, bcDelayMs: number): Promise<Page> {
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  const query = { hub: hub.url, sub: user, crossTab: user, bcDelay: String(bcDelayMs) };
  await page.goto(`${site.url}/?${new URLSearchParams(query).toString()}`);
  await page.getByTestId('status').filter({ hasText: 'open' }).waitFor({ timeout: 10_000 });
  return page;
}

/** The one leader among `pages` (polled: leadership moves inside the pages, nothing to await). */
async function leaderOf(pages: Page[], what: string): Promise<Page> {
  const roles = await until(
    () => Promise.all(pages.map(isLeader)),
    (r) => r.filter(Boolean).length === 1,
    what,
    10_000,
  );
  return pages[roles.indexOf(true)]!;
}

interface Publisher {
  /** The hub's ids of everything published so far, in the hub's order (one request at a time). */
  ids: string[];
  /** How many events have been asked for so far (the ones asked for later get later ids). */
  readonly requested: number;
  /** Makes the next request a burst of 100; resolves with the burst's last id. */
  burst(): Promise<string>;
  stop(): Promise<void>;
}

/** Publishes ticks to `user` in small batches, about 250 a second, until stopped. */
function publishContinuously(user: string): Publisher {
  const ids: string[] = [];
  let running = true;
  let n = 0;
  let burstDone: ((lastId: string) => void) | undefined;
  const loop = (async () => {
    while (running) {
      const done = burstDone;
      burstDone = undefined;
      const batch = Array.from({ length: done ? 100 : 5 }, () => ({ user, event: 'tick', data: { n: ++n } }));
      ids.push(...((await hub.publish(batch)).ids ?? []));
      done?.(ids.at(-1)!);
      await sleep(15); // pacing
    }
  })();
  return {
    ids,
    get requested() {
      return n;
    },
    burst: () => new Promise<string>((resolve) => (burstDone = resolve)),
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/**
 * `ids` is a run of `published` that starts no later than index `from` (when its tab was open)
 * and, unless the tab closed early, goes to the end: no gap, no duplicate, no reordering.
 */
function expectRunOf(published: string[], ids: string[], from: number, toTheEnd: boolean): void {
  expect(ids.length).toBeGreaterThan(0);
  const start = published.indexOf(ids[0]!);
  expect(start).toBeGreaterThanOrEqual(0);
  expect(start).toBeLessThanOrEqual(from);
  expect(ids).toEqual(published.slice(start, toTheEnd ? undefined : start + ids.length));
}

async function handOversUnderLoad(tabs: number, handOvers: number, replaceClosed: boolean, bcDelayMs: number): Promise<void> {
  const ctx = await browser.newContext();
  try {
    const user = `crosstab-${tabs}`;
    const open: Page[] = [];
    for (let i = 0; i < tabs; i++) open.push(await openTab(ctx, user, bcDelayMs));
    await until(() => hub.streamsOf(user), (n) => n === 1, `one stream for ${tabs} tabs`);

    const publisher = publishContinuously(user);
    /** For every tab: how many events had been asked for when it was open (it gets all later ones). */
    const openedAt = new Map<Page, number>(open.map((p) => [p, 0]));
    const closed: Array<{ ids: string[]; from: number }> = [];
    for (let handOver = 1; handOver <= handOvers; handOver++) {
      const leader = await leaderOf(open, `a leader before hand-over ${handOver}`);
      // Close it as soon as it has a burst: the other tabs still have relays of it queued.
      const lastOfBurst = await publisher.burst();
      await leader.waitForFunction((id) => (window as unknown as TestWindow).__tickIds.includes(id), lastOfBurst, { polling: 5 });
      closed.push({ ids: await tickIds(leader), from: openedAt.get(leader) ?? 0 });
      await leader.close();
      open.splice(open.indexOf(leader), 1);
      await leaderOf(open, `a new leader after hand-over ${handOver}`);
      if (replaceClosed) {
        const page = await openTab(ctx, user, bcDelayMs);
        openedAt.set(page, publisher.requested);
        open.push(page);
      }
    }
    await publisher.stop();
    const published = publisher.ids;
    const last = published.at(-1)!;
    for (const page of open) {
      await page.waitForFunction((id) => (window as unknown as TestWindow).__tickIds.includes(id), last, { timeout: 10_000 });
    }

    console.log(`${tabs} tabs, ${handOvers} hand-overs: ${published.length} events`);
    for (const page of open) {
      const ids = await tickIds(page);
      const from = openedAt.get(page) ?? 0;
      if (from === 0) expect(ids).toEqual(published);
      else expectRunOf(published, ids, from, true);
      expect(await missed(page)).toEqual([]);
    }
    // A closed leader's events up to its close were a clean prefix too.
    for (const { ids, from } of closed) expectRunOf(published, ids, from, false);
    await until(() => hub.streamsOf(user), (n) => n === 1, 'one stream at the end');
  } finally {
    await ctx.close();
  }
}

describe('cross-tab hand-over under continuous publishing (real Chromium, real hub)', () => {
  it('three tabs, the leader closed four times (a new tab opens each time): every event once, in order', async () => {
    await handOversUnderLoad(3, 4, true, 30);
  });

  it('sixteen tabs, the leader closed eight times: every event once, in order', async () => {
    await handOversUnderLoad(16, 8, false, 20);
  });
});
