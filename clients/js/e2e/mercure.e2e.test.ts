/**
 * Mercure mode in real Chromium, in the shape of Mercure's own conformance tests: the page is
 * the hub's own `GET /` (so everything is same-origin), the browser's native `EventSource`
 * subscribes to `/.well-known/mercure`, the page publishes with `fetch` and a form body, and the
 * received `MessageEvent`'s `lastEventId` and `data` must be exactly the publisher's.
 *
 * Every selector kind (0.x exact string, exact URI, `*`, URI template; 1.0 `match=` and
 * `match_urlpattern=`) with both publisher token shapes (0.x claims, 1.0 `at+jwt` access
 * token); private updates (cookie and query tokens, anonymous subscribers left out); selectors
 * that must not match; alternate topics; resume by a publisher's id, by query and by the
 * browser's own reconnection. Then the same flows over Redis, subscribing on one node and
 * publishing on another.
 *
 * Negatives are never proven by waiting: a later update the subscriber does select (a marker)
 * is awaited, and since a stream delivers in order, anything that should not have arrived
 * would have arrived before it.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  HERALD,
  Hub,
  MERCURE,
  Proxy,
  Redis,
  freePort,
  launchChromium,
  mercureAccessToken,
  mercureLegacyToken,
  mercurePost,
  mercurePublish,
  signJwt,
  type MercureAnswer,
  type MercureFields,
} from './harness.js';

/** What a page's `onmessage` saw: the MessageEvent's type, `lastEventId` and `data`. */
interface Update {
  type: string;
  id: string;
  data: string;
}

/** Installed in the page by `installProbe`: native EventSources and fetch publishes. */
interface Probe {
  subscribe(name: string, query: string, timeoutMs: number): Promise<void>;
  updates(name: string): Update[];
  missed(name: string): string[];
  opens(name: string): number;
  errors(name: string): number;
  waitFor(name: string, what: 'id' | 'error', value: string, timeoutMs: number): Promise<Update[]>;
  close(name: string): void;
  closeAll(): void;
  publish(token: string, fields: MercureFields, contentType: string | null): Promise<MercureAnswer>;
}

interface ProbeWindow {
  __probe: Probe;
}

/** Runs in the page (serialized by playwright): defines `window.__probe`. */
function installProbe(): void {
  interface Stream {
    es: EventSource;
    updates: Update[];
    missed: string[];
    opens: number;
    errors: number;
    waiters: Array<() => void>;
  }
  const streams = new Map<string, Stream>();
  const get = (name: string): Stream => {
    const stream = streams.get(name);
    if (!stream) throw new Error(`no stream named ${name}`);
    return stream;
  };
  const notify = (stream: Stream): void => {
    for (const waiter of stream.waiters.slice()) waiter();
  };
  const probe: Probe = {
    subscribe: (name, query, timeoutMs) =>
      new Promise<void>((resolve, reject) => {
        const es = new EventSource(`/.well-known/mercure?${query}`);
        const stream: Stream = { es, updates: [], missed: [], opens: 0, errors: 0, waiters: [] };
        streams.set(name, stream);
        const timer = setTimeout(() => reject(new Error(`stream ${name} (${query}) did not open in time`)), timeoutMs);
        es.onmessage = (e: MessageEvent<string>) => {
          stream.updates.push({ type: e.type, id: e.lastEventId, data: e.data });
          notify(stream);
        };
        es.addEventListener('herald.missed', (e: MessageEvent<string>) => {
          stream.missed.push(e.data);
          notify(stream);
        });
        es.onopen = () => {
          clearTimeout(timer);
          stream.opens++;
          notify(stream);
          resolve();
        };
        es.onerror = () => {
          stream.errors++;
          notify(stream);
          if (es.readyState === EventSource.CLOSED) reject(new Error(`the hub refused stream ${name} (${query})`));
        };
      }),
    updates: (name) => get(name).updates.slice(),
    missed: (name) => get(name).missed.slice(),
    opens: (name) => get(name).opens,
    errors: (name) => get(name).errors,
    waitFor: (name, what, value, timeoutMs) =>
      new Promise<Update[]>((resolve, reject) => {
        const stream = get(name);
        const done = (): boolean =>
          what === 'id' ? stream.updates.some((u) => u.id === value) : stream.errors >= Number(value);
        if (done()) {
          resolve(stream.updates.slice());
          return;
        }
        const waiter = (): void => {
          if (!done()) return;
          clearTimeout(timer);
          stream.waiters.splice(stream.waiters.indexOf(waiter), 1);
          resolve(stream.updates.slice());
        };
        const timer = setTimeout(() => {
          stream.waiters.splice(stream.waiters.indexOf(waiter), 1);
          reject(new Error(`stream ${name}: no ${what} ${value} in time; got ${JSON.stringify(stream.updates)}`));
        }, timeoutMs);
        stream.waiters.push(waiter);
      }),
    close: (name) => {
      get(name).es.close();
      streams.delete(name);
    },
    closeAll: () => {
      for (const stream of streams.values()) stream.es.close();
      streams.clear();
    },
    publish: async (token, fields, contentType) => {
      const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
      // Without an explicit type fetch sends a URLSearchParams body as
      // `application/x-www-form-urlencoded;charset=UTF-8`, as Mercure's own tests do.
      if (contentType !== null) headers['Content-Type'] = contentType;
      const res = await fetch('/.well-known/mercure', { method: 'POST', headers, body: new URLSearchParams(fields) });
      return { status: res.status, contentType: res.headers.get('Content-Type'), body: await res.text() };
    },
  };
  (window as unknown as ProbeWindow).__probe = probe;
}

const FORM = 'application/x-www-form-urlencoded';
const WAIT_MS = 10_000;

/** A page on a hub's origin (`GET /`) with the probe installed. */
class Tab {
  private constructor(readonly page: Page) {}

  static async open(context: BrowserContext, origin: string): Promise<Tab> {
    const page = await context.newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
    const res = await page.goto(`${origin}/`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()['content-type']).toMatch(/^text\/html/);
    await page.evaluate(installProbe);
    return new Tab(page);
  }

  /** Opens a native EventSource on `/.well-known/mercure?<selectors>`; resolves once it is open. */
  subscribe(name: string, selectors: MercureFields): Promise<void> {
    const query = new URLSearchParams(selectors).toString();
    return this.page.evaluate(
      ([n, q, ms]) => (window as unknown as ProbeWindow).__probe.subscribe(n, q, ms),
      [name, query, WAIT_MS] as const,
    );
  }

  /** Every update the stream got, once the one with `id` is among them. */
  until(name: string, id: string): Promise<Update[]> {
    return this.page.evaluate(
      ([n, i, ms]) => (window as unknown as ProbeWindow).__probe.waitFor(n, 'id', i, ms),
      [name, id, WAIT_MS] as const,
    );
  }

  /** Resolves once the stream saw `count` errors (a drop, before its reconnection). */
  async untilErrors(name: string, count: number): Promise<void> {
    await this.page.evaluate(
      ([n, c, ms]) => (window as unknown as ProbeWindow).__probe.waitFor(n, 'error', String(c), ms),
      [name, count, WAIT_MS] as const,
    );
  }

  updates(name: string): Promise<Update[]> {
    return this.page.evaluate((n) => (window as unknown as ProbeWindow).__probe.updates(n), name);
  }

  missed(name: string): Promise<string[]> {
    return this.page.evaluate((n) => (window as unknown as ProbeWindow).__probe.missed(n), name);
  }

  opens(name: string): Promise<number> {
    return this.page.evaluate((n) => (window as unknown as ProbeWindow).__probe.opens(n), name);
  }

  close(name: string): Promise<void> {
    return this.page.evaluate((n) => (window as unknown as ProbeWindow).__probe.close(n), name);
  }

  closeAll(): Promise<void> {
    return this.page.evaluate(() => (window as unknown as ProbeWindow).__probe.closeAll());
  }

  /** Publishes from the page with `fetch` (same origin as the hub). */
  post(token: string, fields: MercureFields, contentType: string | null = FORM): Promise<MercureAnswer> {
    return this.page.evaluate(
      ([t, f, c]) => (window as unknown as ProbeWindow).__probe.publish(t, f, c),
      [token, fields, contentType] as const,
    );
  }

  /** Publishes from the page; the hub must answer 200 text/plain with the update's id. */
  async publish(token: string, fields: MercureFields): Promise<string> {
    const answer = await this.post(token, fields);
    expect(answer.status, answer.body).toBe(200);
    expect(answer.contentType).toMatch(/^text\/plain/);
    return answer.body;
  }
}

/** A multi-line payload with an empty line: each line is its own `data:` line on the wire. */
const MULTILINE = 'line one\n\nline three';
const rand = (): string => randomBytes(6).toString('hex');
const message = (id: string, data: string): Update => ({ type: 'message', id, data });

const PUBLISHERS = [
  { name: '0.x publisher token', token: mercureLegacyToken(['*'], ['*']) },
  { name: '1.0 publisher token', token: mercureAccessToken(['publish'], [{ match: '*' }]) },
] as const;

let browser: Browser;

beforeAll(async () => {
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
});

describe('Mercure in Chromium against one hub', () => {
  let hub: Hub;
  let context: BrowserContext;
  let tab: Tab;
  const others: BrowserContext[] = [];

  beforeAll(async () => {
    hub = new Hub(await freePort(), undefined, ['--mercure', '--allow-anonymous']);
    await hub.start();
    context = await browser.newContext();
    tab = await Tab.open(context, hub.url);
  });

  afterEach(async () => {
    await tab.closeAll();
    for (const ctx of others.splice(0)) await ctx.close();
  });

  afterAll(async () => {
    await context?.close();
    await hub?.kill();
  });

  /** A tab in a context of its own (its own cookies), closed after the test. */
  async function isolatedTab(cookies: Array<{ name: string; value: string }> = []): Promise<Tab> {
    const ctx = await browser.newContext();
    others.push(ctx);
    if (cookies.length > 0) await ctx.addCookies(cookies.map((c) => ({ ...c, url: hub.url })));
    return Tab.open(ctx, hub.url);
  }

  for (const [p, publisher] of PUBLISHERS.entries()) {
    describe(`published with the ${publisher.name}`, () => {
      it('topic= an exact string: exactly the update, with the publisher id and multi-line data', async () => {
        const topic = `raw-topic-${rand()}`;
        await tab.subscribe('s', [['topic', topic]]);
        // A topic the selector only prefixes: not the same string.
        await tab.publish(publisher.token, [['topic', `${topic}-other`], ['data', 'decoy']]);
        const id = `urn:e2e:raw:${p}:${rand()}`;
        expect(await tab.publish(publisher.token, [['topic', topic], ['data', MULTILINE], ['id', id]])).toBe(id);
        expect(await tab.until('s', id)).toEqual([message(id, MULTILINE)]);
      });

      it('topic= an exact URI', async () => {
        const topic = `https://example.com/books/${rand()}`;
        await tab.subscribe('s', [['topic', topic]]);
        await tab.publish(publisher.token, [['topic', `${topic}/reviews`], ['data', 'decoy']]);
        const id = `https://example.com/events/${p}-${rand()}`;
        expect(await tab.publish(publisher.token, [['topic', topic], ['data', MULTILINE], ['id', id]])).toBe(id);
        expect(await tab.until('s', id)).toEqual([message(id, MULTILINE)]);
      });

      it('topic=*: every update, in order', async () => {
        await tab.subscribe('s', [['topic', '*']]);
        const first = `urn:e2e:star:${p}:1:${rand()}`;
        const second = `urn:e2e:star:${p}:2:${rand()}`;
        await tab.publish(publisher.token, [['topic', `plain-${rand()}`], ['data', 'first'], ['id', first]]);
        await tab.publish(publisher.token, [['topic', `https://example.org/${rand()}`], ['data', MULTILINE], ['id', second]]);
        expect(await tab.until('s', second)).toEqual([message(first, 'first'), message(second, MULTILINE)]);
      });

      it('topic= a URI template: the topics it expands to, not the others', async () => {
        const book = rand();
        await tab.subscribe('s', [['topic', 'https://example.com/books/{id}']]);
        // `{id}` is one path segment: a topic with a further `/…` is not an expansion of it.
        await tab.publish(publisher.token, [['topic', `https://example.com/books/${book}/reviews`], ['data', 'decoy 1']]);
        await tab.publish(publisher.token, [['topic', `https://example.com/authors/${book}`], ['data', 'decoy 2']]);
        const id = `urn:e2e:template:${p}:${rand()}`;
        await tab.publish(publisher.token, [['topic', `https://example.com/books/${book}`], ['data', MULTILINE], ['id', id]]);
        expect(await tab.until('s', id)).toEqual([message(id, MULTILINE)]);
      });

      it('match= (1.0) an exact topic, compared byte for byte', async () => {
        const topic = `https://example.com/books/${rand()}`;
        await tab.subscribe('s', [['match', topic]]);
        await tab.publish(publisher.token, [['topic', topic.toUpperCase()], ['data', 'decoy']]);
        const id = `urn:e2e:match:${p}:${rand()}`;
        await tab.publish(publisher.token, [['topic', topic], ['data', MULTILINE], ['id', id]]);
        expect(await tab.until('s', id)).toEqual([message(id, MULTILINE)]);
      });

      it('match_urlpattern= (1.0) a URL pattern: `:id` is one segment', async () => {
        const book = rand();
        await tab.subscribe('s', [['match_urlpattern', 'https://example.com/books/:id']]);
        await tab.publish(publisher.token, [['topic', `https://example.com/books/${book}/reviews`], ['data', 'decoy 1']]);
        await tab.publish(publisher.token, [['topic', `https://example.com/authors/${book}`], ['data', 'decoy 2']]);
        const id = `urn:e2e:urlpattern:${p}:${rand()}`;
        await tab.publish(publisher.token, [['topic', `https://example.com/books/${book}`], ['data', MULTILINE], ['id', id]]);
        expect(await tab.until('s', id)).toEqual([message(id, MULTILINE)]);
      });
    });
  }

  it('publish tokens are checked: no publish grant is 403, a 1.0 detail without typ at+jwt is 401, nothing is delivered', async () => {
    const topic = `https://example.com/books/${rand()}`;
    await tab.subscribe('s', [['topic', topic]]);
    const subscriberOnly = mercureLegacyToken([], ['*']);
    const otherTopics = mercureAccessToken(['publish'], [{ match: 'https://example.com/authors/:id', matchType: 'URLPattern' }]);
    const untyped = signJwt({ authorization_details: [{ type: 'mercure', actions: ['publish'], topics: [{ match: '*' }] }] });
    const fields: MercureFields = [['topic', topic], ['data', 'refused'], ['id', `urn:e2e:refused:${rand()}`]];
    expect((await tab.post(subscriberOnly, fields)).status).toBe(403);
    expect((await tab.post(otherTopics, fields)).status).toBe(403);
    expect((await tab.post(untyped, fields)).status).toBe(401);
    expect((await mercurePost(hub.url, 'not-a-token', fields)).status).toBe(401);
    const marker = `urn:e2e:marker:${rand()}`;
    await tab.publish(PUBLISHERS[1].token, [['topic', topic], ['data', 'allowed'], ['id', marker]]);
    expect(await tab.until('s', marker)).toEqual([message(marker, 'allowed')]);
  });

  it("as Mercure's conformance test publishes: no Content-Type of its own (fetch adds ;charset=UTF-8), a claims-only header", async () => {
    // Mercure's test token: header {"alg":"HS256"} (no typ), publish and subscribe ["*"].
    const token = signJwt({ mercure: { publish: ['*'], subscribe: ['*'] } }, { typ: undefined });
    expect(JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString())).toEqual({ alg: 'HS256' });
    const topic = rand();
    await tab.subscribe('s', [['topic', 'foo'], ['topic', topic]]);
    const id = `id-${JSON.stringify([topic])}`;
    const data = 'data for\n\n        multiple topic selectors';
    const answer = await tab.post(token, [['topic', topic], ['id', id], ['data', data]], null);
    expect(answer).toEqual({ status: 200, contentType: expect.stringMatching(/^text\/plain/), body: id });
    expect(await tab.until('s', id)).toEqual([message(id, data)]);
  });

  it('data is delivered exactly: empty, leading spaces, trailing newline, JSON, form-special characters, Unicode', async () => {
    const topic = `https://example.com/payloads/${rand()}`;
    await tab.subscribe('s', [['topic', topic]]);
    const payloads = [
      MULTILINE,
      '',
      '  two leading spaces\ntrailing newline\n',
      '\nstarts with a newline',
      '{"json": true, "n": 1}',
      'a=b&c=d+e%20f;g',
      'ünïcödé ✓ 🚀',
    ];
    const expected: Update[] = [];
    for (const [n, data] of payloads.entries()) {
      const id = `urn:e2e:payload:${n}:${rand()}`;
      await tab.publish(PUBLISHERS[0].token, [['topic', topic], ['data', data], ['id', id]]);
      expected.push(message(id, data));
    }
    expect(await tab.until('s', expected.at(-1)!.id)).toEqual(expected);
  });

  it('private: the mercureAuthorization cookie with a matching subscribe claim gets it; anonymous and wrong-claim subscribers do not', async () => {
    const book = rand();
    const topic = `https://example.com/books/${book}`;
    const allowed = await isolatedTab([{ name: 'mercureAuthorization', value: mercureLegacyToken([], [topic]) }]);
    const byTemplate = await isolatedTab([
      { name: 'mercureAuthorization', value: mercureLegacyToken([], ['https://example.com/books/{id}']) },
    ]);
    const wrongClaim = await isolatedTab([
      { name: 'mercureAuthorization', value: mercureLegacyToken([], ['https://example.com/authors/{id}']) },
    ]);
    await allowed.subscribe('s', [['topic', topic]]);
    await byTemplate.subscribe('s', [['topic', 'https://example.com/books/{id}']]);
    await wrongClaim.subscribe('s', [['topic', topic]]);
    // The main tab has no cookie: anonymous, with selectors that all match the topic.
    await tab.subscribe('exact', [['topic', topic]]);
    await tab.subscribe('star', [['topic', '*']]);
    await tab.subscribe('pattern', [['match_urlpattern', 'https://example.com/books/:id']]);

    const secret = `urn:e2e:private:${rand()}`;
    await tab.publish(PUBLISHERS[0].token, [['topic', topic], ['data', MULTILINE], ['id', secret], ['private', 'on']]);
    const marker = `urn:e2e:marker:${rand()}`;
    await tab.publish(PUBLISHERS[1].token, [['topic', topic], ['data', 'public marker'], ['id', marker]]);

    const both = [message(secret, MULTILINE), message(marker, 'public marker')];
    expect(await allowed.until('s', marker)).toEqual(both);
    expect(await byTemplate.until('s', marker)).toEqual(both);
    expect(await wrongClaim.until('s', marker)).toEqual([message(marker, 'public marker')]);
    for (const name of ['exact', 'star', 'pattern']) {
      expect(await tab.until(name, marker), name).toEqual([message(marker, 'public marker')]);
    }
  });

  it('private: 1.0 access tokens in the authorization query parameter and the mercureAccessToken cookie', async () => {
    const topic = `https://example.com/books/${rand()}`;
    const byPattern = mercureAccessToken(['subscribe'], [{ match: 'https://example.com/books/:id', matchType: 'URLPattern' }]);
    const exact = mercureAccessToken(['subscribe'], [{ match: topic, matchType: 'Exact' }]);
    const elsewhere = mercureAccessToken(['subscribe'], [{ match: 'https://example.com/authors/:id', matchType: 'URLPattern' }]);
    const cookie = await isolatedTab([{ name: 'mercureAccessToken', value: exact }]);
    await tab.subscribe('query', [['topic', topic], ['authorization', byPattern]]);
    await tab.subscribe('elsewhere', [['topic', topic], ['authorization', elsewhere]]);
    await tab.subscribe('anonymous', [['match', topic]]);
    await cookie.subscribe('s', [['match', topic]]);

    const secret = `urn:e2e:private:${rand()}`;
    await tab.publish(PUBLISHERS[1].token, [['topic', topic], ['data', MULTILINE], ['id', secret], ['private', '']]);
    const marker = `urn:e2e:marker:${rand()}`;
    await tab.publish(PUBLISHERS[1].token, [['topic', topic], ['data', 'public marker'], ['id', marker]]);

    const both = [message(secret, MULTILINE), message(marker, 'public marker')];
    expect(await tab.until('query', marker)).toEqual(both);
    expect(await cookie.until('s', marker)).toEqual(both);
    expect(await tab.until('elsewhere', marker)).toEqual([message(marker, 'public marker')]);
    expect(await tab.until('anonymous', marker)).toEqual([message(marker, 'public marker')]);
  });

  it('selectors that do not match get nothing (each proven by a later update they do match)', async () => {
    const ns = (slug: string): string => `https://example.net/${slug}-${rand()}`;
    const cases: Array<{ name: string; selector: [string, string]; decoy: string; marker: string }> = [];
    {
      const raw = `raw-${rand()}`;
      cases.push({ name: 'raw string', selector: ['topic', `${raw}-another-name`], decoy: `${raw}-will-not-match`, marker: `${raw}-another-name` });
    }
    {
      const base = ns('uri');
      cases.push({ name: 'URI', selector: ['topic', `${base}/another-name`], decoy: `${base}/will-not-match`, marker: `${base}/another-name` });
    }
    {
      const base = ns('template');
      cases.push({ name: 'URI template', selector: ['topic', `${base}/bar/{var}`], decoy: `${base}/foo/will-not-match`, marker: `${base}/bar/1` });
    }
    {
      const base = ns('match');
      // match= is exact: braces are literal text, not a template.
      cases.push({ name: 'match= braces', selector: ['match', `${base}/{var}`], decoy: `${base}/1`, marker: `${base}/{var}` });
    }
    {
      const base = ns('urlpattern');
      cases.push({ name: 'match_urlpattern= :name', selector: ['match_urlpattern', `${base}/:name`], decoy: `${base}/a/b`, marker: `${base}/a` });
    }
    {
      const base = ns('wildcard');
      const other = base.replace('example.net', 'example.org');
      cases.push({ name: 'match_urlpattern= host', selector: ['match_urlpattern', `${base}/*`], decoy: `${other}/x`, marker: `${base}/x` });
    }
    // Half the streams in a second tab: Chromium holds at most 6 connections per host.
    const second = await isolatedTab();
    const tabOf = (n: number): Tab => (n < 3 ? tab : second);
    for (const [n, c] of cases.entries()) await tabOf(n).subscribe(`case${n}`, [c.selector]);
    for (const c of cases) await tab.publish(PUBLISHERS[0].token, [['topic', c.decoy], ['data', `decoy for ${c.name}`]]);
    const markers: string[] = [];
    for (const [n, c] of cases.entries()) {
      markers.push(await tab.publish(PUBLISHERS[0].token, [['topic', c.marker], ['data', `marker ${n}`], ['id', `urn:e2e:nomatch:${n}:${rand()}`]]));
    }
    for (const [n, c] of cases.entries()) {
      expect(await tabOf(n).until(`case${n}`, markers[n]!), c.name).toEqual([message(markers[n]!, `marker ${n}`)]);
    }
  });

  it('alternate topics: a selector matching the second topic gets the update, once; so does a token allowing only it', async () => {
    const book = rand();
    const canonical = `https://example.com/canonical/${book}`;
    const alternate = `https://example.com/alternate/${book}`;
    // Some streams in a second tab: Chromium holds at most 6 connections per host.
    const second = await isolatedTab();
    const where: Record<string, Tab> = {
      topic: tab,
      template: tab,
      match: tab,
      pattern: tab,
      both: second,
      'canonical only': second,
      private: second,
    };
    await where['topic']!.subscribe('topic', [['topic', alternate]]);
    await where['template']!.subscribe('template', [['topic', 'https://example.com/alternate/{id}']]);
    await where['match']!.subscribe('match', [['match', alternate]]);
    await where['pattern']!.subscribe('pattern', [['match_urlpattern', 'https://example.com/alternate/:id']]);
    // Selecting both topics: still one delivery.
    await where['both']!.subscribe('both', [['topic', canonical], ['match', alternate]]);
    await where['canonical only']!.subscribe('canonical only', [['topic', canonical]]);
    const privateOk = mercureLegacyToken([], [alternate]);
    await where['private']!.subscribe('private', [['topic', canonical], ['authorization', privateOk]]);

    const id = `urn:e2e:alternate:${rand()}`;
    await tab.publish(PUBLISHERS[1].token, [['topic', canonical], ['topic', alternate], ['data', MULTILINE], ['id', id]]);
    for (const name of ['topic', 'template', 'match', 'pattern', 'both', 'canonical only']) {
      expect(await where[name]!.until(name, id), name).toEqual([message(id, MULTILINE)]);
    }

    const secret = `urn:e2e:alternate-private:${rand()}`;
    await tab.publish(PUBLISHERS[0].token, [['topic', canonical], ['topic', alternate], ['data', 'secret'], ['id', secret], ['private', 'on']]);
    const marker = `urn:e2e:marker:${rand()}`;
    await tab.publish(PUBLISHERS[0].token, [['topic', canonical], ['data', 'marker'], ['id', marker]]);
    expect(await second.until('private', marker)).toEqual([message(id, MULTILINE), message(secret, 'secret'), message(marker, 'marker')]);
    expect(await second.until('canonical only', marker)).toEqual([message(id, MULTILINE), message(marker, 'marker')]);
    expect(await second.until('both', marker)).toEqual([message(id, MULTILINE), message(marker, 'marker')]);
  });

  it('resume: an EventSource reconnecting with lastEventID=<publisher id> gets exactly the updates after it', async () => {
    const topic = `https://example.com/books/${rand()}`;
    const token = PUBLISHERS[0].token;
    const ids = [1, 2, 3, 4].map((n) => `https://example.com/events/${n}-${rand()}`);
    await tab.subscribe('first', [['topic', topic]]);
    await tab.publish(token, [['topic', topic], ['data', `${MULTILINE} 1`], ['id', ids[0]!]]);
    expect(await tab.until('first', ids[0]!)).toEqual([message(ids[0]!, `${MULTILINE} 1`)]);
    await tab.close('first');

    // While disconnected: two updates of the topic and one of another.
    await tab.publish(token, [['topic', topic], ['data', `${MULTILINE} 2`], ['id', ids[1]!]]);
    await tab.publish(token, [['topic', `${topic}/other`], ['data', 'not selected']]);
    await tab.publish(token, [['topic', topic], ['data', `${MULTILINE} 3`], ['id', ids[2]!]]);

    await tab.subscribe('again', [['topic', topic], ['lastEventID', ids[0]!]]);
    expect(await tab.until('again', ids[2]!)).toEqual([message(ids[1]!, `${MULTILINE} 2`), message(ids[2]!, `${MULTILINE} 3`)]);
    // Then live.
    await tab.publish(token, [['topic', topic], ['data', `${MULTILINE} 4`], ['id', ids[3]!]]);
    expect(await tab.until('again', ids[3]!)).toEqual(
      [2, 3, 4].map((n) => message(ids[n - 1]!, `${MULTILINE} ${n}`)),
    );
    expect(await tab.missed('again')).toEqual([]);

    // `earliest` replays the topic's whole history; the hub says where a resumed stream starts.
    await tab.subscribe('earliest', [['topic', topic], ['lastEventID', 'earliest']]);
    expect(await tab.until('earliest', ids[3]!)).toEqual([1, 2, 3, 4].map((n) => message(ids[n - 1]!, `${MULTILINE} ${n}`)));
    const abort = new AbortController();
    const res = await fetch(`${hub.url}${MERCURE}?${new URLSearchParams([['topic', topic], ['lastEventID', ids[1]!]])}`, {
      signal: abort.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('last-event-id')).toBe(ids[1]);
    expect(res.headers.get('mercure-last-event-id')).toBe(ids[1]);
    abort.abort();
  });

  it("resume: the browser's own reconnection after a dropped connection (Last-Event-ID header) loses and repeats nothing", async () => {
    const proxy = new Proxy(hub.port);
    await proxy.start();
    try {
      const ctx = await browser.newContext();
      others.push(ctx);
      const via = await Tab.open(ctx, `http://127.0.0.1:${proxy.port}`);
      const topic = `https://example.com/books/${rand()}`;
      const token = PUBLISHERS[1].token;
      const ids = [1, 2, 3, 4].map((n) => `urn:e2e:drop:${n}:${rand()}`);
      await via.subscribe('s', [['topic', topic]]);
      await mercurePublish(hub.url, token, [['topic', topic], ['data', `${MULTILINE} 1`], ['id', ids[0]!]]);
      await via.until('s', ids[0]!);

      expect(proxy.cutAll()).toBeGreaterThan(0); // the network drops
      await via.untilErrors('s', 1); // the EventSource noticed and will reconnect
      await mercurePublish(hub.url, token, [['topic', topic], ['data', `${MULTILINE} 2`], ['id', ids[1]!]]);
      await mercurePublish(hub.url, token, [['topic', topic], ['data', `${MULTILINE} 3`], ['id', ids[2]!]]);
      expect(await via.until('s', ids[2]!)).toEqual([1, 2, 3].map((n) => message(ids[n - 1]!, `${MULTILINE} ${n}`)));
      expect(await via.opens('s')).toBe(2);
      await mercurePublish(hub.url, token, [['topic', topic], ['data', `${MULTILINE} 4`], ['id', ids[3]!]]);
      expect(await via.until('s', ids[3]!)).toEqual([1, 2, 3, 4].map((n) => message(ids[n - 1]!, `${MULTILINE} ${n}`)));
      expect(await via.missed('s')).toEqual([]);
      await via.closeAll();
    } finally {
      await proxy.stop();
    }
  });
});

const redisMode =
  Redis.available() && spawnSync(HERALD, ['serve', '--help'], { encoding: 'utf8' }).stdout.includes('--redis');

describe.skipIf(!redisMode)('Mercure in Chromium on two hub nodes over Redis', () => {
  let redis: Redis;
  let nodeA: Hub;
  let nodeB: Hub;
  let context: BrowserContext;
  let tabA: Tab;
  const others: BrowserContext[] = [];

  beforeAll(async () => {
    redis = new Redis();
    await redis.start();
    nodeA = new Hub(await freePort(), undefined, ['--mercure', '--allow-anonymous', '--redis', redis.url]);
    nodeB = new Hub(await freePort(), undefined, ['--mercure', '--allow-anonymous', '--redis', redis.url]);
    await nodeA.start();
    await nodeB.start();
    context = await browser.newContext();
    tabA = await Tab.open(context, nodeA.url);
  });

  afterEach(async () => {
    await tabA.closeAll();
    for (const ctx of others.splice(0)) await ctx.close();
  });

  afterAll(async () => {
    await context?.close();
    await nodeA?.kill();
    await nodeB?.kill();
    await redis?.stop();
  });

  /** A tab on `origin` in a context of its own; cookies (for every port of 127.0.0.1) with it. */
  async function isolatedTab(origin: string, cookies: Array<{ name: string; value: string }> = []): Promise<Tab> {
    const ctx = await browser.newContext();
    others.push(ctx);
    if (cookies.length > 0) await ctx.addCookies(cookies.map((c) => ({ ...c, url: origin })));
    return Tab.open(ctx, origin);
  }

  it("every selector kind on node A gets node B's updates, with the publisher's id and data exactly", async () => {
    const book = rand();
    const raw = `raw-${book}`;
    const uri = `https://example.com/books/${book}`;
    const selectors: Array<[string, [string, string]]> = [
      ['raw string', ['topic', raw]],
      ['URI', ['topic', uri]],
      ['star', ['topic', '*']],
      ['URI template', ['topic', 'https://example.com/books/{id}']],
      ['match=', ['match', uri]],
      ['match_urlpattern=', ['match_urlpattern', 'https://example.com/books/:id']],
    ];
    // Half the streams in a second tab: Chromium holds at most 6 connections per host.
    const tabA2 = await isolatedTab(nodeA.url);
    const tabOf = (name: string): Tab => (selectors.findIndex(([n]) => n === name) < 3 ? tabA : tabA2);
    for (const [name, selector] of selectors) await tabOf(name).subscribe(name, [selector]);
    const first = `urn:e2e:redis:raw:${rand()}`;
    const second = `urn:e2e:redis:uri:${rand()}`;
    expect(await mercurePublish(nodeB.url, PUBLISHERS[0].token, [['topic', raw], ['data', `${MULTILINE} raw`], ['id', first]])).toBe(first);
    expect(await mercurePublish(nodeB.url, PUBLISHERS[1].token, [['topic', uri], ['data', MULTILINE], ['id', second]])).toBe(second);
    const expected: Record<string, Update[]> = {
      'raw string': [message(first, `${MULTILINE} raw`)],
      URI: [message(second, MULTILINE)],
      star: [message(first, `${MULTILINE} raw`), message(second, MULTILINE)],
      'URI template': [message(second, MULTILINE)],
      'match=': [message(second, MULTILINE)],
      'match_urlpattern=': [message(second, MULTILINE)],
    };
    for (const [name] of selectors) {
      const last = expected[name]!.at(-1)!.id;
      expect(await tabOf(name).until(name, last), name).toEqual(expected[name]);
    }
  });

  it('updates published alternately on both nodes reach subscribers on both, in publish order', async () => {
    const tabB = await isolatedTab(nodeB.url);
    const topic = `https://example.com/books/${rand()}`;
    await tabA.subscribe('s', [['topic', topic]]);
    await tabB.subscribe('s', [['match_urlpattern', 'https://example.com/books/:id']]);
    const expected: Update[] = [];
    for (let n = 1; n <= 10; n++) {
      const id = `urn:e2e:redis:order:${n}:${rand()}`;
      const node = n % 2 === 0 ? nodeA : nodeB;
      await mercurePublish(node.url, PUBLISHERS[n % 2 === 0 ? 0 : 1].token, [['topic', topic], ['data', `${MULTILINE} #${n}`], ['id', id]]);
      expected.push(message(id, `${MULTILINE} #${n}`));
    }
    const last = expected.at(-1)!.id;
    expect(await tabA.until('s', last)).toEqual(expected);
    expect(await tabB.until('s', last)).toEqual(expected);
  });

  it("a private update published on node B reaches only node A's subscribers whose token allows it", async () => {
    const topic = `https://example.com/books/${rand()}`;
    const allowed = await isolatedTab(nodeA.url, [
      { name: 'mercureAuthorization', value: mercureLegacyToken([], ['https://example.com/books/{id}']) },
    ]);
    await allowed.subscribe('s', [['topic', topic]]);
    await tabA.subscribe('anonymous', [['topic', topic]]);
    await tabA.subscribe('star', [['topic', '*']]);
    const wrong = mercureAccessToken(['subscribe'], [{ match: `${topic}/other`, matchType: 'Exact' }]);
    await tabA.subscribe('wrong token', [['topic', topic], ['authorization', wrong]]);

    const secret = `urn:e2e:redis:private:${rand()}`;
    await mercurePublish(nodeB.url, PUBLISHERS[0].token, [['topic', topic], ['data', MULTILINE], ['id', secret], ['private', 'on']]);
    const marker = `urn:e2e:redis:marker:${rand()}`;
    await mercurePublish(nodeB.url, PUBLISHERS[1].token, [['topic', topic], ['data', 'public marker'], ['id', marker]]);

    expect(await allowed.until('s', marker)).toEqual([message(secret, MULTILINE), message(marker, 'public marker')]);
    for (const name of ['anonymous', 'star', 'wrong token']) {
      expect(await tabA.until(name, marker), name).toEqual([message(marker, 'public marker')]);
    }
  });

  // Node A looks the Mercure id up in the shared history, even before it has dispatched it.
  it(
    "resume on node A with lastEventID=<publisher id> of node B's update: exactly the updates after it",
    async () => {
      const topic = `https://example.com/books/${rand()}`;
      const ids = [1, 2, 3, 4].map((n) => `urn:e2e:redis:resume:${n}:${rand()}`);
      for (const n of [1, 2, 3]) {
        await mercurePublish(nodeB.url, PUBLISHERS[0].token, [['topic', topic], ['data', `${MULTILINE} ${n}`], ['id', ids[n - 1]!]]);
        await mercurePublish(nodeB.url, PUBLISHERS[0].token, [['topic', `${topic}/other`], ['data', 'not selected']]);
      }
      await tabA.subscribe('s', [['topic', topic], ['lastEventID', ids[0]!]]);
      expect(await tabA.until('s', ids[2]!)).toEqual([2, 3].map((n) => message(ids[n - 1]!, `${MULTILINE} ${n}`)));
      await mercurePublish(nodeB.url, PUBLISHERS[1].token, [['topic', topic], ['data', `${MULTILINE} 4`], ['id', ids[3]!]]);
      expect(await tabA.until('s', ids[3]!)).toEqual([2, 3, 4].map((n) => message(ids[n - 1]!, `${MULTILINE} ${n}`)));
      expect(await tabA.missed('s')).toEqual([]);
    },
  );
});
