import { afterEach, describe, expect, it } from 'vitest';
import { createClient, type HeraldClient } from '../src/index.js';
import { SseServer, fakeBroadcastChannel, fakeLocks, keepOpen, waitFor } from './helpers.js';

type Events = { tick: { n: number } };

let server: SseServer;
const clients: HeraldClient<Events>[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await server?.stop();
});

/** Open streams the server holds right now. */
function streams(): number {
  return server.open.size;
}

function tab(options: Parameters<typeof createClient>[0]): { client: HeraldClient<Events>; got: number[] } {
  const client = createClient<Events>(options);
  clients.push(client);
  const got: number[] = [];
  client.on('tick', (p) => got.push(p.n));
  return { client, got };
}

for (const mode of ['locks', 'heartbeat'] as const) {
  describe(`cross-tab sharing (${mode} election)`, () => {
    it('one leader holds the stream, every tab gets every event, and leadership moves on close', async () => {
      server = await new SseServer().start();
      server.setHandler(keepOpen(() => server));
      const BroadcastChannel = fakeBroadcastChannel();
      const locks = mode === 'locks' ? fakeLocks() : null;
      const crossTab = { BroadcastChannel, locks, heartbeatMs: 100, leaderTimeoutMs: 1000, electionMs: 100 };
      const options = { url: server.url, token: 't', crossTab, random: () => 0 };
      const tabs = [tab(options), tab(options), tab(options)];

      await waitFor(() => tabs.every((t) => t.client.state === 'open'), 3000, 'all tabs open');
      await new Promise((r) => setTimeout(r, 150)); // let any election settle
      expect(streams()).toBe(1);
      expect(server.requests).toHaveLength(1);
      expect(tabs.filter((t) => t.client.getSnapshot().isLeader)).toHaveLength(1);

      for (let n = 1; n <= 3; n++) server.write(`event: tick\nid: ${n}\ndata: {"n":${n}}\n\n`);
      await waitFor(() => tabs.every((t) => t.got.length === 3), 3000, 'events in every tab');
      for (const t of tabs) expect(t.got).toEqual([1, 2, 3]);

      // The leader tab closes: another takes over and resumes from the last id the tabs saw.
      const leader = tabs.find((t) => t.client.getSnapshot().isLeader)!;
      leader.client.close();
      const rest = tabs.filter((t) => t !== leader);
      await waitFor(() => rest.some((t) => t.client.getSnapshot().isLeader), 3000, 'new leader');
      await waitFor(() => server.requests.length === 2 && streams() === 1, 3000, 'new stream');
      expect(server.requests[1]!.headers['last-event-id']).toBe('3');
      await waitFor(() => rest.every((t) => t.client.state === 'open'), 3000, 'followers see open');

      server.write('event: tick\nid: 4\ndata: {"n":4}\n\n');
      await waitFor(() => rest.every((t) => t.got.length === 4), 3000, 'event after hand-over');
      for (const t of rest) expect(t.got).toEqual([1, 2, 3, 4]);
      expect(leader.got).toEqual([1, 2, 3]);
      expect(rest.filter((t) => t.client.getSnapshot().isLeader)).toHaveLength(1);
      expect(streams()).toBe(1);
    });

    it('a tab that joins later sees the open state and a follower can ask for a reconnect', async () => {
      server = await new SseServer().start();
      server.setHandler(keepOpen(() => server, 'id: 10\n\n'));
      const BroadcastChannel = fakeBroadcastChannel();
      const locks = mode === 'locks' ? fakeLocks() : null;
      const crossTab = { BroadcastChannel, locks, heartbeatMs: 100, leaderTimeoutMs: 1000, electionMs: 100 };
      const options = { url: server.url, token: 't', crossTab };
      const first = tab(options);
      await waitFor(() => first.client.state === 'open' && first.client.getSnapshot().isLeader);
      const late = tab(options);
      await waitFor(() => late.client.state === 'open', 3000, 'late tab open');
      expect(late.client.getSnapshot().isLeader).toBe(false);
      expect(late.client.lastEventId).toBe('10');
      late.client.reconnect();
      await waitFor(() => server.requests.length === 2, 3000, 'leader reconnects');
      expect(server.requests[1]!.headers['last-event-id']).toBe('10');
    });
  });
}

describe('cross-tab without BroadcastChannel', () => {
  it('falls back to a stream of its own', async () => {
    server = await new SseServer().start();
    server.setHandler(keepOpen(() => server));
    const saved = globalThis.BroadcastChannel;
    // @ts-expect-error simulate a runtime without BroadcastChannel
    delete globalThis.BroadcastChannel;
    try {
      const { client } = tab({ url: server.url, crossTab: true });
      await waitFor(() => client.state === 'open');
      expect(client.getSnapshot().isLeader).toBe(true);
    } finally {
      globalThis.BroadcastChannel = saved;
    }
  });
});
