// @vitest-environment jsdom
import { afterEach, expect, it } from 'vitest';
import { createClient, type HeraldClient } from '../src/index.js';
import { SseServer, keepOpen, waitFor } from './helpers.js';

let server: SseServer;
let client: HeraldClient | undefined;

afterEach(async () => {
  client?.close();
  await server?.stop();
});

it('skips the backoff wait when the browser comes back online', async () => {
  server = await new SseServer().start();
  server.setHandler((req, res, index) => {
    if (index === 0) res.writeHead(502).end();
    else keepOpen(() => server)(req, res, index);
  });
  client = createClient({ url: server.url, random: () => 1, backoff: { initialDelayMs: 20_000 } });
  await waitFor(() => client!.state === 'reconnecting' && client!.getSnapshot().retryInMs === 20_000);
  window.dispatchEvent(new Event('online'));
  await waitFor(() => client!.state === 'open', 2000, 'reconnected at once');
  expect(server.requests).toHaveLength(2);
});
